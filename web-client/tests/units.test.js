// Pure parts of the client, without a browser: ECG paper geometry and the event-stream parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layout, uvToMm, MM_PER_S } from '../js/ecg/layout.js';
import { parseEvents } from '../js/notifications.js';

const TWELVE = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];

test('twelve leads are laid out 3x4 with a lead-II rhythm strip at 25 mm/s', () => {
  const { panels, widthMm, rows } = layout(TWELVE, 10);
  assert.equal(rows, 4);
  assert.equal(widthMm, 250);
  assert.equal(panels.length, 13);
  const v4 = panels.find((p) => p.lead === 'V4');
  assert.deepEqual(v4, { lead: 'V4', row: 0, t0: 7.5, t1: 10, xMm: 7.5 * MM_PER_S });
  const strip = panels.filter((p) => p.row === 3);
  assert.deepEqual(strip, [{ lead: 'II', row: 3, t0: 0, t1: 10, xMm: 0 }]);
});

test('other lead sets get one full-length row each, at most 10 s', () => {
  const { panels, widthMm, rows } = layout(['MLII', 'V5'], 30);
  assert.equal(rows, 2);
  assert.equal(widthMm, 250);
  assert.deepEqual(panels.map((p) => [p.lead, p.row, p.t1]), [['MLII', 0, 10], ['V5', 1, 10]]);
});

test('1 mV is 10 mm upwards', () => {
  assert.equal(uvToMm(1000), -10);
  assert.equal(uvToMm(-500), 5);
});

test('event-stream blocks are parsed and an unfinished one is kept', () => {
  const { events, rest } = parseEvents(': keep-alive\n\nevent: accepted\nid: 1\ndata: {"a":1}\n\nevent: booked\ndata: {"b"');
  assert.deepEqual(events, [{ event: 'accepted', data: '{"a":1}' }]);
  assert.equal(rest, 'event: booked\ndata: {"b"');
  const more = parseEvents(`${rest}:2}\r\n\r\n`);
  assert.deepEqual(more.events, [{ event: 'booked', data: '{"b":2}' }]);
});
