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

test('every notification text the server writes is the client\'s, word for word, in both languages', async () => {
  const { readFileSync } = await import('node:fs');
  const { ZH } = await import('../js/strings-zh.js');
  const { EN } = await import('../js/strings-en.js');
  const source = readFileSync(new URL('../../server/src/notifications/text.rs', import.meta.url), 'utf8');
  const catalogue = source.slice(source.indexOf('const CATALOGUE'), source.indexOf('];', source.indexOf('const CATALOGUE')));
  const str = String.raw`"((?:[^"\\]|\\.)*)"`;
  const unescape = (/** @type {string} */ x) => x.replace(/\\"/g, '"');
  /** @type {[string, string, string | null, string, string | null][]} */
  const entries = [];
  for (const m of catalogue.matchAll(new RegExp(String.raw`title\(\s*${str},\s*${str},\s*${str},?\s*\)`, 'g'))) {
    entries.push([m[1], unescape(m[2]), null, unescape(m[3]), null]);
  }
  const pair = String.raw`\(\s*${str},\s*${str},?\s*\)`;
  for (const m of catalogue.matchAll(new RegExp(String.raw`with_body\(\s*${str},\s*${pair},\s*${pair},?\s*\)`, 'g'))) {
    entries.push([m[1], unescape(m[2]), unescape(m[3]), unescape(m[4]), unescape(m[5])]);
  }
  assert.equal(entries.length, (catalogue.match(/\b(title|with_body)\(/g) || []).length, 'every entry read');
  /** @type {Record<string, string>} */
  const zh = ZH;
  /** @type {Record<string, string>} */
  const en = EN;
  for (const [code, zhTitle, zhBody, enTitle, enBody] of entries) {
    assert.equal(zh[`notify.${code}.title`], zhTitle, code);
    assert.equal(en[`notify.${code}.title`], enTitle, code);
    assert.equal(zh[`notify.${code}.body`], zhBody ?? undefined, code);
    assert.equal(en[`notify.${code}.body`], enBody ?? undefined, code);
  }
});

test('a problem the server answers is told in the reader\'s words where the client has them', async () => {
  const { problemText } = await import('../js/api.js');
  const taken = { code: 'slot_taken', title: 'Conflict', detail: 'the slot was taken by another booking' };
  assert.equal(problemText(taken, 409, 'zh-CN'), '该时段刚被他人预约，请选择其他时段');
  assert.equal(problemText(taken, 409, 'en'), 'the slot was taken by another booking');
  // A code without Chinese words yet, or no code at all: the server's own text.
  assert.equal(problemText({ code: 'fhir_search', detail: 'unknown parameter' }, 400, 'zh-CN'), 'unknown parameter');
  assert.equal(problemText({}, 502, 'zh-CN'), 'HTTP 502');
  // Every code with Chinese words is one the server has (server/src/error.rs).
  const { readFileSync } = await import('node:fs');
  const { ZH } = await import('../js/strings-zh.js');
  const source = readFileSync(new URL('../../server/src/error.rs', import.meta.url), 'utf8');
  const codes = new Set([...source.matchAll(/=> "([a-z_]+)",/g)].map((m) => m[1]));
  assert.ok(codes.has('validation_failed') && codes.size > 60, `codes read: ${codes.size}`);
  assert.deepEqual(Object.keys(ZH).filter((k) => k.startsWith('problem.') && !codes.has(k.slice(8))), []);
});

test('calipers read milliseconds at 25 mm/s and the rate', async () => {
  const { caliperReading } = await import('../js/ecg/viewer.js');
  assert.deepEqual(caliperReading(20), { ms: 800, bpm: 75 });
  assert.deepEqual(caliperReading(-25), { ms: 1000, bpm: 60 });
  assert.deepEqual(caliperReading(0), { ms: 0, bpm: null });
});

test('ranking reason codes in the user\'s language, unknown codes in the server\'s English', async () => {
  const { reasonText, candidateReasons, waitText } = await import('../js/reasons.js');
  const { ZH } = await import('../js/strings-zh.js');
  const { EN } = await import('../js/strings-en.js');
  /** @param {Record<string, string>} table */
  const translator = (table) => (/** @type {string} */ key, /** @type {Record<string, string | number>} */ vars = {}) =>
    (table[key] ?? `!${key}`).replace(/\{(\w+)\}/g, (_, name) => String(vars[name]));
  const zh = translator(ZH);
  const en = translator(EN);
  const names = (/** @type {string} */ code) => ({ cardiology: '心血管内科' })[code] ?? code;
  const candidate = {
    reasons: ['urgent request: earliest availability ranked first', 'specialty: cardiology', 'title chief physician ≥ attending physician',
      'consortium partner of the requesting centre', 'earliest free slot in 3 h', '2 open consultations', 'something new'],
    reason_codes: [
      { code: 'availability_first', urgency: 'urgent' }, { code: 'specialty_match', specialty: 'cardiology' },
      { code: 'title_meets_minimum', title: 'chief', min_title: 'attending' }, { code: 'consortium_partner' },
      { code: 'earliest_slot', wait_minutes: 200 }, { code: 'open_consultations', count: 2 }, { code: 'new_in_a_later_server' },
    ],
  };
  assert.deepEqual(candidateReasons(candidate, zh, names), [
    '加急申请：优先考虑最早可约时间', '专科：心血管内科', '职称 主任医师（要求不低于主治医师）', '与本中心同属医联体',
    '最早可约：3 小时后', '当前有 2 个进行中的会诊', 'something new',
  ]);
  assert.deepEqual(candidateReasons(candidate, en, (code) => code).slice(0, 6), [
    'Urgent request: earliest availability ranked first', 'Specialty: cardiology', 'Title Chief (at least Attending asked for)',
    'Consortium partner of your centre', 'Earliest free slot: in 3 h', '2 open consultations',
  ]);
  assert.equal(reasonText({ code: 'specialty_secondary', specialty: 'cardiology' }, zh, names), '专科：心血管内科（非其主要专科）');
  assert.equal(reasonText({ code: 'no_consortium_link' }, zh, names), '与本中心无医联体关系');
  assert.equal(reasonText({ code: 'no_free_slot' }, en, names), 'No free slot soon');
  assert.equal(reasonText({ code: 'open_consultations', count: 0 }, zh, names), '当前无进行中的会诊');
  assert.equal(reasonText({ code: 'open_consultations', count: 1 }, en, names), '1 open consultation');
  assert.equal(reasonText({ code: 'unheard_of' }, en, names), null);
  // Waits: now, minutes, hours under two days, then days (as the server words them).
  assert.deepEqual([0, 45, 47 * 60 + 59, 48 * 60, 5 * 24 * 60].map((m) => waitText(m, en)), ['now', 'in 45 min', 'in 47 h', 'in 2 days', 'in 5 days']);
  assert.deepEqual([0, 45, 120].map((m) => waitText(m, zh)), ['现在', '45 分钟后', '2 小时后']);
  // A server without codes: the English sentences as they are.
  assert.deepEqual(candidateReasons({ reasons: ['specialty: cardiology'] }, zh, names), ['specialty: cardiology']);
  // Every key the codes use is in both tables.
  for (const table of [ZH, EN]) {
    const missing = Object.keys(ZH).concat(Object.keys(EN)).filter((k) => k.startsWith('reason.') && !(k in table));
    assert.deepEqual(missing, []);
  }
});

test('network check reason codes in the user\'s language, unknown codes in the server\'s English', async () => {
  const { netcheckReasons, netcheckReasonText } = await import('../js/reasons.js');
  const { ZH } = await import('../js/strings-zh.js');
  const { EN } = await import('../js/strings-en.js');
  /** @param {Record<string, string>} table */
  const translator = (table) => (/** @type {string} */ key, /** @type {Record<string, string | number>} */ vars = {}) =>
    (table[key] ?? `!${key}`).replace(/\{(\w+)\}/g, (_, name) => String(vars[name]));
  const zh = translator(ZH);
  const en = translator(EN);
  // As the server sends an audio-only result: what rules video out, with video's limits.
  const audioOnly = {
    verdict: 'audio_only',
    detail: 'upload 200 kbit/s, video needs 500; 7.5 % of probes lost, video needs under 5 %; round trip 450 ms, video needs under 400; something new',
    reason_codes: [
      { code: 'upload_too_slow', call: 'video', throughput_kbps: 200.4, min_kbps: 500 },
      { code: 'loss_too_high', call: 'video', loss: 0.075, max_loss: 0.05 },
      { code: 'rtt_too_high', call: 'video', rtt_ms: 450.25, max_rtt_ms: 400 },
      { code: 'new_in_a_later_server' },
    ],
  };
  assert.deepEqual(netcheckReasons(audioOnly, zh), [
    '上行速度 200 kbit/s，视频通话至少需要 500 kbit/s', '丢包率 7.5 %，视频通话需要低于 5 %',
    '往返时延 450 毫秒，视频通话需要低于 400 毫秒', 'something new',
  ]);
  assert.deepEqual(netcheckReasons(audioOnly, en).slice(0, 3), [
    'Upload 200 kbit/s; a video call needs at least 500 kbit/s', '7.5 % of probes lost; a video call needs under 5 %',
    'Round trip 450 ms; a video call needs under 400 ms',
  ]);
  assert.equal(netcheckReasonText({ code: 'loss_too_high', call: 'audio', loss: 0.5, max_loss: 0.2 }, zh), '丢包率 50.0 %，语音通话需要低于 20 %');
  assert.equal(netcheckReasonText({ code: 'upload_not_measured', call: 'video' }, zh), '未能测得上行速度，视频通话需要确认上行速度足够');
  assert.equal(netcheckReasonText({ code: 'upload_too_slow', call: 'audio', throughput_kbps: 50, min_kbps: 64 }, en),
    'Upload 50 kbit/s; an audio call needs at least 64 kbit/s');
  assert.equal(netcheckReasonText({ code: 'no_network_path' }, zh), '找不到通往服务器的网络路径（可能被防火墙拦截，或连不上中继服务器）');
  assert.equal(netcheckReasonText({ code: 'timed_out' }, en), 'The check timed out before a connection was made');
  assert.equal(netcheckReasonText({ code: 'no_probe_returned' }, zh), '连接已建立，但探测包一个也没有返回');
  assert.equal(netcheckReasonText({ code: 'unheard_of' }, zh), null);
  // Video: nothing to explain. A result without codes (stored before they existed): its English.
  assert.deepEqual(netcheckReasons({ verdict: 'video', detail: 'round trip 1.0 ms', reason_codes: [] }, zh), []);
  assert.deepEqual(netcheckReasons({ verdict: 'video', detail: 'round trip 1.0 ms' }, zh), []);
  assert.deepEqual(netcheckReasons({ verdict: 'cannot_connect', detail: 'the connection was set up but no probe came back' }, zh),
    ['the connection was set up but no probe came back']);
  // Every key the codes use is in both tables.
  for (const table of [ZH, EN]) {
    const missing = Object.keys(ZH).concat(Object.keys(EN))
      .filter((k) => (k.startsWith('netcheck.reason.') || k.startsWith('netcheck.call.')) && !(k in table));
    assert.deepEqual(missing, []);
  }
});

test('caliper keys: the first places a pair 1 s apart, arrows move the active line, Enter switches it', async () => {
  const { caliperKey } = await import('../js/ecg/viewer.js');
  const placed = caliperKey(null, 'ArrowLeft', false, 250);
  assert.deepEqual(placed, { start: 12.5, end: 37.5, active: 'end' });
  assert.deepEqual(caliperKey(null, 'Enter', false, 250), placed);
  assert.deepEqual(caliperKey(placed, 'ArrowRight', false, 250), { start: 12.5, end: 38.5, active: 'end' });
  assert.deepEqual(caliperKey(placed, 'ArrowLeft', true, 250), { start: 12.5, end: 32.5, active: 'end' });
  const switched = caliperKey(placed, ' ', false, 250);
  assert.deepEqual(switched, { start: 12.5, end: 37.5, active: 'start' });
  assert.deepEqual(caliperKey(switched, 'Enter', false, 250), placed, 'Enter switches back');
  assert.deepEqual(caliperKey(switched, 'ArrowLeft', true, 250), { start: 7.5, end: 37.5, active: 'start' });
  // Lines stay on the paper.
  assert.equal(caliperKey({ start: 2, end: 30, active: 'start' }, 'ArrowLeft', true, 250)?.start, 0);
  assert.equal(caliperKey({ start: 2, end: 248, active: 'end' }, 'ArrowRight', true, 250)?.end, 250);
  assert.deepEqual(caliperKey(null, 'ArrowRight', false, 20), { start: 12.5, end: 20, active: 'end' }, 'a short strip');
  // Esc removes the pair; other keys are not the calipers' (Tab still leaves).
  assert.equal(caliperKey(placed, 'Escape', false, 250), null);
  assert.equal(caliperKey(placed, 'Tab', false, 250), undefined);
  assert.equal(caliperKey(placed, 'ArrowUp', false, 250), undefined);
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

test('a clinic day\'s small rules: call clock, expected wait, age, sizes, tus metadata, microphone level', async () => {
  const { clock, expectedWait } = await import('../js/call/call.js');
  const { size, uploadMetadata } = await import('../js/views/files.js');
  const { ageOn } = await import('../js/views/patient-header.js');
  const { level } = await import('../js/call/devices.js');
  assert.deepEqual([clock(0), clock(75.9), clock(3725)], ['00:00', '01:15', '1:02:05']);
  const start = '2026-12-07T01:00:00Z';
  assert.equal(expectedWait(start, Date.parse('2026-12-07T00:50:30Z')), 10, 'whole minutes, rounded up');
  assert.equal(expectedWait(start, Date.parse('2026-12-07T01:05:00Z')), 0, 'never negative');
  assert.equal(expectedWait(null, Date.now()), null);
  assert.equal(ageOn('1949-12-31', new Date(2026, 11, 30)), 76, 'the day before the birthday');
  assert.equal(ageOn('1949-12-31', new Date(2026, 11, 31)), 77, 'on the birthday');
  assert.equal(ageOn('', new Date()), null);
  assert.deepEqual([size(512), size(1536), size(600 * 1024), size(5 * 1024 ** 3)], ['512 B', '1.5 KB', '600.0 KB', '5.0 GB']);
  // tus: the key, a space, base64 of the UTF-8 bytes.
  const meta = uploadMetadata('转诊信.pdf');
  assert.ok(meta.startsWith('filename '));
  assert.equal(Buffer.from(meta.slice(9), 'base64').toString('utf8'), '转诊信.pdf');
  assert.equal(level(new Uint8Array([128, 128, 128])), 0, 'silence');
  assert.equal(level(new Uint8Array([0, 0])), 1, 'full scale');
  assert.ok(Math.abs(level(new Uint8Array([192, 64])) - 0.5) < 1e-9, 'half scale');
});

test('notifications show in the reader\'s language from their code, else as the server wrote them', async () => {
  const { noticeText } = await import('../js/notifications.js');
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'localStorage');
  const stored = new Map();
  Object.defineProperty(globalThis, 'localStorage', {
    configurable: true,
    value: { getItem: (/** @type {string} */ k) => stored.get(k) ?? null, setItem: (/** @type {string} */ k, /** @type {string} */ v) => stored.set(k, v) },
  });
  try {
    const n = {
      id: '1', kind: 'referral', title: '转诊状态：accepted Referral accepted', body: '胸痛待查', consultation_id: null,
      created_at: '2026-12-04T10:00:00Z', read_at: null, code: 'referral_status', params: { status: 'accepted' },
    };
    assert.deepEqual(noticeText(n), { title: '转诊状态：accepted', body: '胸痛待查' });
    stored.set('teleconsult.lang', 'en');
    assert.deepEqual(noticeText(n), { title: 'Referral accepted', body: '胸痛待查' });
    const walkIn = { ...n, kind: 'kiosk_walk_in', code: 'kiosk_walk_in', params: { name: '刘德明', kiosk: '大厅自助机' } };
    assert.equal(noticeText(walkIn).body, '刘德明 checked in at the kiosk "大厅自助机" with nothing booked today and asks for the doctor on duty.');
    // A reading out of target says what was read and the target in the reader's words; one
    // stored before its text named them (only `detail` then) keeps the server's text.
    const high = {
      ...n, kind: 'reading_out_of_target', code: 'reading_blood_pressure_above_target', title: '血压高于目标 Your blood pressure is above your target',
      body: '您的血压 152/96 mmHg, target below 140/90 mmHg。…', params: { detail: '152/96 mmHg, target below 140/90 mmHg', reading: '152/96 mmHg', target: '140/90 mmHg' },
    };
    stored.set('teleconsult.lang', 'zh');
    assert.match(noticeText(high).body, /^您的血压 152\/96 mmHg，目标是低于 140\/90 mmHg。/);
    const before = { ...high, params: { detail: '152/96 mmHg, target below 140/90 mmHg' } };
    assert.deepEqual(noticeText(before), { title: before.title, body: before.body });
    stored.set('teleconsult.lang', 'en');
    // Made before codes, or a code this client does not know: the server's text.
    assert.deepEqual(noticeText({ ...n, code: '' }), { title: n.title, body: n.body });
    assert.deepEqual(noticeText({ ...n, code: 'from_a_newer_server' }), { title: n.title, body: n.body });
  } finally {
    if (saved) Object.defineProperty(globalThis, 'localStorage', saved);
    else delete globalThis.localStorage;
  }
});

test('every consultation state the server has is named in both languages and has its place in grouped lists', async () => {
  const { readFileSync } = await import('node:fs');
  const { ZH } = await import('../js/strings-zh.js');
  const { EN } = await import('../js/strings-en.js');
  const { STATE_ORDER } = await import('../js/views/common.js');
  // The server's own list: the `State` block of its lifecycle module.
  const source = readFileSync(new URL('../../server/src/consultations/state.rs', import.meta.url), 'utf8');
  const block = source.slice(source.indexOf('State, "consultation state" {'));
  const states = [...block.slice(0, block.indexOf('}')).matchAll(/=> "(\w+)"/g)].map((m) => m[1]);
  assert.ok(states.includes('awaiting_opinion') && states.length >= 10, `states read: ${states}`);
  for (const table of [ZH, EN]) assert.deepEqual(states.filter((s) => !(`state.${s}` in table)), []);
  assert.deepEqual([...STATE_ORDER].sort(), [...states].sort());
});

test('the availability editor takes a time zone the zone database names, spelt as listed, and nothing else', async () => {
  const { zoneName } = await import('../js/views/expert.js');
  const listed = ['Asia/Shanghai', 'America/New_York'];
  assert.equal(zoneName('asia/shanghai', listed), 'Asia/Shanghai');
  assert.equal(zoneName(' America/New_York ', listed), 'America/New_York');
  assert.equal(zoneName('utc', listed), 'UTC', 'spelt as Intl resolves it when the list lacks it');
  assert.equal(zoneName('Etc/GMT-5', listed), 'Etc/GMT-5');
  for (const bad of ['', '  ', 'Asia/Beijing', 'Mars/Olympus', '+08:00', 'GMT+8']) assert.equal(zoneName(bad, listed), null, bad);
});

test('the coordinator\'s figures: median durations in words, referrals summed over the months', async () => {
  const { minutesText, referralTotals } = await import('../js/views/admin.js');
  assert.deepEqual([0.4, 45, 119.6, 150, 47 * 60, 3 * 24 * 60].map(minutesText), ['0 分钟', '45 分钟', '120 分钟', '2.5 小时', '47 小时', '3 天']);
  assert.equal(minutesText(null), '–', 'no consultation accepted yet');
  assert.equal(minutesText(undefined), '–');
  assert.deepEqual(referralTotals({ '2026-11': { up: 3 }, '2026-12': { up: 1, down: 2 } }), { up: 4, down: 2 });
  assert.deepEqual(referralTotals({}), { up: 0, down: 0 });
});

test('a long recording\'s fibrillation episodes are summed up for the reader', async () => {
  const { episodeSummary } = await import('../js/ecg/viewer.js');
  const summary = episodeSummary([{ start_s: 0, end_s: 90 }, { start_s: 180, end_s: 230 }, { start_s: 3600, end_s: 4330 }], 7200);
  assert.deepEqual(summary, { count: 3, total: '0:14:30', share: 12, from: '1:00:00', to: '1:12:10' });
});
