// The pre-call network check: the browser connects to the server as its WebRTC peer with the
// same ICE servers as a real call, sends timed probes and a burst of bulk data over the
// `probe` data channel, and shows the path, round trip, loss, upload speed and a plain
// verdict. The contract is docs/netcheck.md. Coordinators and admins also see recent results
// of the clinics they oversee.
import { h, mount, when } from '../dom.js';
import { t } from '../i18n.js';
import { get, post } from '../api.js';
import { netcheckReasons } from '../reasons.js';
import { devicesPanel, rememberVerdict } from '../call/devices.js';

/**
 * @typedef {{id: string, ice_servers: RTCIceServer[], expires_at: string,
 *   probe: {count: number, interval_ms: number, bytes: number},
 *   bulk: {duration_ms: number, chunk_bytes: number}}} Session
 * @typedef {{rtt_ms: number[], sent: number, received: number, bulk_bytes: number, bulk_ms: number}} Report
 * @typedef {{id: string, path: string, rtt_ms: {median: number, p95: number} | null, loss: number,
 *   throughput_kbps: number | null, verdict: 'video' | 'audio_only' | 'cannot_connect', verdict_text: string,
 *   detail: string, reason_codes?: import('../reasons.js').ReasonCode[],
 *   organisation_name?: string, user_name?: string, completed_at?: string}} Result
 */

/** First byte of a bulk (throughput) message; every other message is a probe and is echoed. */
const BULK_MARKER = 0x01;

/**
 * Resolves once ICE gathering is complete (or after `ms`).
 * @param {RTCPeerConnection} pc
 * @param {number} ms
 * @returns {Promise<void>}
 */
function gathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => { if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); } };
    const timer = setTimeout(resolve, ms);
    pc.addEventListener('icegatheringstatechange', done);
  });
}

/**
 * Resolves true once the channel is open, false after `ms`.
 * @param {RTCDataChannel} dc
 * @param {number} ms
 * @returns {Promise<boolean>}
 */
function opened(dc, ms) {
  return new Promise((resolve) => {
    if (dc.readyState === 'open') return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    dc.addEventListener('open', () => { clearTimeout(timer); resolve(true); });
  });
}

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Probes, then bulk data, over an open channel.
 * @param {RTCDataChannel} dc
 * @param {Session} s
 * @param {(step: string) => void} progress
 * @returns {Promise<Report>}
 */
async function measure(dc, s, progress) {
  /** @type {Map<number, number>} */
  const pending = new Map();
  /** @type {number[]} */
  const rtt = [];
  /** @type {((ack: any) => void) | null} */
  let onAck = null;
  dc.addEventListener('message', (e) => {
    if (typeof e.data !== 'string') return;
    /** @type {any} */
    let m;
    try { m = JSON.parse(e.data); } catch { return; }
    if (m.type === 'probe' && pending.has(m.seq)) {
      rtt.push(performance.now() - /** @type {number} */ (pending.get(m.seq)));
      pending.delete(m.seq);
    } else if (m.type === 'bulk_ack' && onAck) {
      onAck(m);
    }
  });
  progress(t('netcheck.probing'));
  for (let seq = 0; seq < s.probe.count; seq++) {
    const base = JSON.stringify({ type: 'probe', seq, pad: '' });
    const probe = JSON.stringify({ type: 'probe', seq, pad: 'x'.repeat(Math.max(0, s.probe.bytes - base.length)) });
    pending.set(seq, performance.now());
    dc.send(probe);
    await sleep(s.probe.interval_ms);
  }
  await sleep(1000); // late answers still count; later than this they are lost

  progress(t('netcheck.measuringUpload'));
  const chunk = new Uint8Array(s.bulk.chunk_bytes);
  chunk[0] = BULK_MARKER;
  const started = performance.now();
  let bytes = 0;
  while (performance.now() - started < s.bulk.duration_ms && dc.readyState === 'open') {
    if (dc.bufferedAmount > 1024 * 1024) { await sleep(5); continue; }
    dc.send(chunk);
    bytes += chunk.byteLength;
  }
  const ack = new Promise((resolve) => { onAck = resolve; setTimeout(() => resolve(null), 15000); });
  if (dc.readyState === 'open') dc.send(JSON.stringify({ type: 'bulk_end' }));
  await ack;
  return { rtt_ms: rtt.map((r) => Math.round(r * 100) / 100), sent: s.probe.count, received: rtt.length, bulk_bytes: bytes, bulk_ms: Math.round(performance.now() - started) };
}

/**
 * Runs one check against the server and answers its result.
 * @param {(step: string) => void} progress
 * @returns {Promise<Result>}
 */
export async function runCheck(progress) {
  progress(t('netcheck.connecting'));
  /** @type {Session} */
  const s = await post('/api/v1/netcheck', {});
  const pc = new RTCPeerConnection({ iceServers: s.ice_servers });
  try {
    const dc = pc.createDataChannel('probe', { ordered: true });
    dc.binaryType = 'arraybuffer';
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 10000);
    const answer = await post(`/api/v1/netcheck/${s.id}/offer`, { sdp: pc.localDescription?.sdp ?? '' });
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    /** @type {Report} */
    let report = { rtt_ms: [], sent: s.probe.count, received: 0, bulk_bytes: 0, bulk_ms: 0 };
    if (await opened(dc, 15000)) report = await measure(dc, s, progress);
    return await post(`/api/v1/netcheck/${s.id}/complete`, report);
  } finally {
    pc.close();
  }
}

/**
 * The figures of one result.
 * @param {Result} r
 * @returns {HTMLElement}
 */
function resultView(r) {
  const dash = t('netcheck.notMeasured');
  const reasons = netcheckReasons(r, t);
  return h('div', { class: 'card stack', 'data-verdict': r.verdict },
    h('h2', { role: 'status' }, t(`netcheck.verdict.${r.verdict}`)),
    h('dl', { class: 'facts' },
      h('dt', null, t('netcheck.path')), h('dd', { 'data-field': 'path' }, t(`netcheck.path.${r.path}`)),
      h('dt', null, t('netcheck.rtt')),
      h('dd', { 'data-field': 'rtt' }, r.rtt_ms ? t('netcheck.rttValue', { median: r.rtt_ms.median, p95: r.rtt_ms.p95 }) : dash),
      h('dt', null, t('netcheck.loss')), h('dd', { 'data-field': 'loss' }, `${(r.loss * 100).toFixed(1)} %`),
      h('dt', null, t('netcheck.throughput')),
      h('dd', { 'data-field': 'throughput' }, r.throughput_kbps == null ? dash : t('netcheck.kbps', { value: Math.round(r.throughput_kbps) })),
      // Why it fell short, worded here from the server's reason codes.
      reasons.length ? [h('dt', null, t('netcheck.reasons')),
        h('dd', { 'data-field': 'reasons' }, h('ul', { class: 'shortfalls' }, reasons.map((x) => h('li', null, x))))] : null));
}

/**
 * Recent results of the organisations a coordinator or admin oversees.
 * @returns {Promise<HTMLElement>}
 */
async function recentResults() {
  const page = await get('/api/v1/netcheck/results?limit=20');
  /** @type {Result[]} */
  const items = page.items;
  return h('section', { class: 'card', 'aria-labelledby': 'nc-recent' },
    h('h2', { id: 'nc-recent' }, t('netcheck.recent')),
    items.length === 0 ? h('p', { class: 'muted' }, t('common.none')) : h('table', null,
      h('thead', null, h('tr', null,
        h('th', null, t('admin.organisation')), h('th', null, t('netcheck.who')), h('th', null, t('netcheck.when')),
        h('th', null, t('netcheck.path')), h('th', null, t('netcheck.result')))),
      h('tbody', null, items.map((r) => h('tr', null,
        h('td', null, r.organisation_name ?? ''), h('td', null, r.user_name ?? ''), h('td', null, when(r.completed_at)),
        h('td', null, t(`netcheck.path.${r.path}`)), h('td', null, t(`netcheck.verdict.${r.verdict}`)))))));
}

/**
 * The network check screen.
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function netcheckView(app) {
  const out = h('div', { 'aria-live': 'polite' });
  const button = /** @type {HTMLButtonElement} */ (h('button', { class: 'primary', type: 'button' }, t('netcheck.start')));
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const result = await runCheck((step) => mount(out, h('p', { class: 'muted' }, step)));
      rememberVerdict(result.verdict);
      mount(out, resultView(result));
    } catch (err) {
      const e = /** @type {Error & {code?: string}} */ (err);
      mount(out, h('p', { class: 'error', role: 'alert' }, e.code === 'netcheck_busy' ? t('netcheck.busy') : t('app.error', { message: e.message })));
    } finally {
      button.disabled = false;
    }
  });
  const role = app.user().role;
  const recent = role === 'coordinator' || role === 'admin' ? await recentResults().catch(() => null) : null;
  // One "check my setup" step: the devices first, then the network.
  const devices = await devicesPanel(app.onLeave);
  return h('section', { class: 'stack', 'aria-labelledby': 'nc-title' },
    h('h1', { id: 'nc-title' }, t('netcheck.title')),
    devices,
    h('h2', null, t('setup.network')),
    h('p', { class: 'hint' }, t('netcheck.intro')),
    h('div', { class: 'actions' }, button),
    out,
    recent);
}
