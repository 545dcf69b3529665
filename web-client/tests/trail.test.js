// The audit trail as a patient reads it (js/trail.js): pure, no server or browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { whoLooked, refusedTimes } from '../js/trail.js';

const me = 'u-zhang';
const ev = (/** @type {string} */ actor, /** @type {string} */ name, /** @type {string} */ role, /** @type {string} */ at, outcome = 'success') =>
  ({ actor_id: actor, actor_name: name, actor_role: role, at, outcome });
const dayOf = (/** @type {string} */ iso) => iso.slice(0, 10);

test('one line per person and day, newest first, counting what they did', () => {
  const events = [
    ev('u-li', '李明', 'community_doctor', '2026-12-06T10:05:00Z'),
    ev('u-wang', '王建国', 'expert', '2026-12-06T09:00:00Z'),
    ev('u-li', '李明', 'community_doctor', '2026-12-06T08:00:00Z'),
    ev('u-li', '李明', 'community_doctor', '2026-12-05T16:00:00Z'),
  ];
  assert.deepEqual(whoLooked(events, me, dayOf), [
    { name: '李明', role: 'community_doctor', day: '2026-12-06', count: 2 },
    { name: '王建国', role: 'expert', day: '2026-12-06', count: 1 },
    { name: '李明', role: 'community_doctor', day: '2026-12-05', count: 1 },
  ]);
});

test('her own reads, refusals, devices and the server are not someone opening her record', () => {
  const events = [
    ev(me, '张秀英', 'patient', '2026-12-06T10:00:00Z'),
    ev('u-chen', '陈', 'expert', '2026-12-06T09:00:00Z', 'denied'),
    ev('dev-1', '', 'device', '2026-12-06T08:00:00Z'),
    { actor_id: null, actor_name: null, actor_role: 'system', at: '2026-12-06T07:00:00Z', outcome: 'success' },
  ];
  assert.deepEqual(whoLooked(events, me, dayOf), []);
  assert.equal(refusedTimes(events, me), 1);
});
