// Pure parts of the client, without a browser: ECG paper geometry and calipers, the event-stream
// parser, and the image viewer's stacking of a series and window dragging.
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

test('a DICOM series stacks every frame in instance-number order and starts from its window', async () => {
  const { stackOf, dragWindow } = await import('../js/dicom/viewer.js');
  const inst = (/** @type {string} */ uid, /** @type {number} */ n, /** @type {number} */ frames, /** @type {any} */ extra = {}) => ({
    '00080018': { vr: 'UI', Value: [uid] }, '00200013': { vr: 'IS', Value: [n] }, '00280008': { vr: 'IS', Value: [frames] }, ...extra,
  });
  const windowed = stackOf([
    inst('1.3', 3, 1), inst('1.1', 1, 2, { '00281050': { vr: 'DS', Value: [40] }, '00281051': { vr: 'DS', Value: [400] } }), inst('1.2', 2, 1),
  ]);
  assert.deepEqual(windowed.slices, [{ uid: '1.1', frame: 1 }, { uid: '1.1', frame: 2 }, { uid: '1.2', frame: 1 }, { uid: '1.3', frame: 1 }]);
  assert.deepEqual(windowed.window, { center: 40, width: 400 });
  assert.equal(windowed.explicit, true);
  // No window: the full range of 12 unsigned stored bits through the rescale.
  const bare = stackOf([inst('2.1', 1, 1, { '00280101': { vr: 'US', Value: [12] }, '00281052': { vr: 'DS', Value: [-1024] } })]);
  assert.deepEqual(bare.window, { center: 2047.5 - 1024, width: 4096 });
  assert.equal(bare.explicit, false);
  // Dragging right widens, down raises the level, and the width never reaches zero.
  assert.deepEqual(dragWindow({ center: 40, width: 400 }, 64, 32), { center: 90, width: 500 });
  assert.equal(dragWindow({ center: 40, width: 400 }, -10000, 0).width, 1);
});

test('calipers read milliseconds at 25 mm/s and the rate', async () => {
  const { caliperReading } = await import('../js/ecg/viewer.js');
  assert.deepEqual(caliperReading(20), { ms: 800, bpm: 75 });
  assert.deepEqual(caliperReading(-25), { ms: 1000, bpm: 60 });
  assert.deepEqual(caliperReading(0), { ms: 0, bpm: null });
});

test('connection quality: every measure within the good limits is good, one past them lowers the level', async () => {
  const { classify, THRESHOLDS } = await import('../js/call/quality.js');
  assert.equal(classify({ rttMs: 20, lossPct: 0, jitterMs: 5 }), 'good');
  assert.equal(classify({ rttMs: THRESHOLDS.good.rttMs, lossPct: THRESHOLDS.good.lossPct, jitterMs: THRESHOLDS.good.jitterMs }), 'good');
  assert.equal(classify({ rttMs: 20, lossPct: 0, jitterMs: 40 }), 'fair', 'jitter alone');
  assert.equal(classify({ rttMs: 250, lossPct: 0, jitterMs: 5 }), 'fair', 'round trip alone');
  assert.equal(classify({ rttMs: 20, lossPct: 5, jitterMs: 5 }), 'fair', 'loss alone');
  assert.equal(classify({ rttMs: 20, lossPct: 12, jitterMs: 5 }), 'poor', 'heavy loss');
  assert.equal(classify({ rttMs: 600, lossPct: 0, jitterMs: 5 }), 'poor', 'slow round trip');
  assert.equal(classify({ rttMs: 20, lossPct: 0, jitterMs: 120 }), 'poor', 'heavy jitter');
  assert.equal(classify({ rttMs: null, lossPct: null, jitterMs: 10 }), 'good', 'unknown measures do not count');
  assert.equal(classify({ rttMs: null, lossPct: null, jitterMs: null }), null, 'nothing known yet');
});

test('connection quality samples the selected pair and the inbound video, loss between samples', async () => {
  const { sampleOf, lossBetween } = await import('../js/call/quality.js');
  const report = (/** @type {number} */ lost, /** @type {number} */ received) => [
    { id: 'T1', type: 'transport', selectedCandidatePairId: 'CP2' },
    { id: 'CP1', type: 'candidate-pair', state: 'failed', currentRoundTripTime: 9 },
    { id: 'CP2', type: 'candidate-pair', state: 'succeeded', nominated: true, currentRoundTripTime: 0.084 },
    { id: 'IA', type: 'inbound-rtp', kind: 'audio', packetsLost: 500, packetsReceived: 500, jitter: 0.5 },
    { id: 'IV', type: 'inbound-rtp', kind: 'video', packetsLost: lost, packetsReceived: received, jitter: 0.012 },
  ];
  const first = sampleOf(report(10, 990));
  assert.equal(first.rttMs, 84);
  assert.equal(first.jitterMs, 12);
  assert.equal(first.kind, 'video');
  assert.equal(lossBetween(null, first), 1, 'over the whole stream at first');
  const second = sampleOf(report(40, 1960));
  assert.equal(lossBetween(first, second), 3, '30 lost of 1000 since the last sample');
  assert.equal(lossBetween(second, second), null, 'no packet expected');
  // Audio only (camera off on the other side): the audio stream counts.
  const audio = sampleOf([{ id: 'IA', type: 'inbound-rtp', kind: 'audio', packetsLost: 0, packetsReceived: 50, jitter: 0.002 }]);
  assert.deepEqual(audio, { rttMs: null, lost: 0, received: 50, jitterMs: 2, kind: 'audio' });
  // No transport entry (older browsers): the nominated, succeeded pair.
  assert.equal(sampleOf(report(0, 1).slice(1)).rttMs, 84);
});
