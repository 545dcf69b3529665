// The ECG viewer: the recording on ECG paper (1 mm and 5 mm grid), with the R peaks marked as
// a computer-assisted pre-read.
import { h, when } from '../dom.js';
import { patientOf, patientHeader } from '../views/patient-header.js';
import { t, known } from '../i18n.js';
import { get } from '../api.js';
import { layout, uvToMm, MM_PER_S, ROW_MM } from './layout.js';

/**
 * @typedef {{sample_rate_hz: number, duration_s: number, leads: {name: string, samples: number[]}[],
 *   measurements: {heart_rate_bpm: number | null, r_peaks_s: number[], rhythm: string, pr_ms: number | null,
 *   qrs_ms: number | null, qt_ms: number | null, qtc_bazett_ms: number | null, detection_lead: string | null,
 *   normal_beats?: number, ventricular_ectopic_beats?: number,
 *   findings?: {code: string, text: string, episodes?: {start_s: number, end_s: number}[]}[]},
 *   label: string}} EcgView
 */

/**
 * The ECG screen: the patient header (name, sex, age, ID, recording time, device), a way back
 * to the consultation, the measurements and the tracing with calipers.
 * @param {string} fileId
 * @param {import('../main.js').App} [app]
 * @param {string} [consultationId] the consultation the file belongs to (for the header and the way back)
 * @returns {Promise<HTMLElement>}
 */
export async function ecgView(fileId, app, consultationId) {
  /** @type {EcgView & {acquisition_time?: string | null, device?: string | null}} */
  const ecg = await get(`/api/v1/files/${fileId}/ecg`);
  const m = ecg.measurements;
  const fmt = (/** @type {number | null} */ v, /** @type {string} */ unit) => (v == null ? '—' : `${Math.round(v)} ${unit}`);
  /** @type {HTMLElement | null} */
  let header = null;
  if (consultationId) {
    try {
      const c = await get(`/api/v1/consultations/${consultationId}`);
      const p = await patientOf(c.patient_id);
      const recorded = [[t('ecg.recordedAt'), ecg.acquisition_time ? when(ecg.acquisition_time) : ''], [t('ecg.device'), ecg.device || '']];
      header = p ? patientHeader(p, recorded) : h('p', { class: 'ph-name' }, c.patient_name);
    } catch { /* the tracing is shown without the header */ }
  }
  return h('section', { class: 'card', 'aria-labelledby': 'ecg-title' },
    app && consultationId ? h('div', { class: 'actions' },
      h('button', { class: 'link back', onclick: () => app.navigate(`/consultations/${consultationId}`) }, t('ecg.back'))) : null,
    h('h1', { id: 'ecg-title' }, t('ecg.title')),
    header,
    h('p', { class: 'notice' }, t('ecg.computerAssisted')),
    h('dl', { class: 'facts' },
      h('dt', null, t('ecg.rate')), h('dd', null, fmt(m.heart_rate_bpm, 'bpm')),
      h('dt', null, 'PR'), h('dd', null, fmt(m.pr_ms, 'ms')),
      h('dt', null, 'QRS'), h('dd', null, fmt(m.qrs_ms, 'ms')),
      h('dt', null, 'QT / QTc'), h('dd', null, `${fmt(m.qt_ms, 'ms')} / ${fmt(m.qtc_bazett_ms, 'ms')}`),
      h('dt', null, t('ecg.beats')),
      h('dd', null, t('ecg.beatCounts', { normal: m.normal_beats ?? 0, ventricular: m.ventricular_ectopic_beats ?? 0 }))),
    // A finding this client has no words for is shown in the server's own (English) words.
    ...(m.findings ?? []).map((f) => h('p', { class: 'notice', role: 'status' },
      known(`ecg.finding.${f.code}`)
        ? [t(`ecg.finding.${f.code}`), f.episodes?.length ? ` ${t('ecg.finding.episodes', episodeSummary(f.episodes, ecg.duration_s))}` : ''].join('')
        : f.text)),
    calipers(drawEcg(ecg, 4), 4),
    h('p', { class: 'muted' }, '25 mm/s · 10 mm/mV'));
}

/** A time in the recording as h:mm:ss. @param {number} s */
const clock = (s) => {
  const r = Math.round(s);
  return `${Math.floor(r / 3600)}:${String(Math.floor(r / 60) % 60).padStart(2, '0')}:${String(r % 60).padStart(2, '0')}`;
};

/**
 * Where a finding about stretches of a long recording lies (pure): how many episodes, their
 * time in all, its share of the recording and the longest one.
 * @param {{start_s: number, end_s: number}[]} episodes
 * @param {number} durationS
 * @returns {{count: number, total: string, share: number, from: string, to: string}}
 */
export function episodeSummary(episodes, durationS) {
  const total = episodes.reduce((sum, e) => sum + (e.end_s - e.start_s), 0);
  const longest = episodes.reduce((a, e) => (e.end_s - e.start_s > a.end_s - a.start_s ? e : a), episodes[0]);
  return { count: episodes.length, total: clock(total), share: Math.round((100 * total) / Math.max(durationS, 1)), from: clock(longest.start_s), to: clock(longest.end_s) };
}

/** @param {number} mm */
export function caliperReading(mm) {
  const ms = Math.round((Math.abs(mm) / MM_PER_S) * 1000);
  return { ms, bpm: ms > 0 ? Math.round(60000 / ms) : null };
}

/**
 * @typedef {{start: number, end: number, active: 'start' | 'end'}} CaliperPair
 * The two caliper lines in millimetres from the left of the paper, and the line the arrow
 * keys move.
 */

/** Arrow-key steps: one small box (1 mm, 40 ms), with Shift one large box (5 mm, 200 ms). */
export const CALIPER_STEP_MM = 1;
export const CALIPER_BIG_STEP_MM = 5;

/**
 * What a key does to the calipers (pure). The first arrow, Enter or Space places a pair one
 * second apart (12.5 mm and 37.5 mm, the end line active); then ← → move the active line
 * (Shift: five times further), Enter or Space switches the active line, Escape removes the
 * pair. Lines stay on the paper. Returns `undefined` for a key the calipers do not use.
 * @param {CaliperPair | null} pair
 * @param {string} key a `KeyboardEvent.key`
 * @param {boolean} shift
 * @param {number} widthMm the paper's width
 * @returns {CaliperPair | null | undefined}
 */
export function caliperKey(pair, key, shift, widthMm) {
  const known = ['ArrowLeft', 'ArrowRight', 'Enter', ' ', 'Escape'];
  if (!known.includes(key)) return undefined;
  if (key === 'Escape') return null;
  if (!pair) return { start: Math.min(12.5, widthMm), end: Math.min(12.5 + MM_PER_S, widthMm), active: 'end' };
  if (key === 'Enter' || key === ' ') return { ...pair, active: pair.active === 'end' ? 'start' : 'end' };
  const step = (shift ? CALIPER_BIG_STEP_MM : CALIPER_STEP_MM) * (key === 'ArrowLeft' ? -1 : 1);
  const moved = Math.min(widthMm, Math.max(0, pair[pair.active] + step));
  return { ...pair, [pair.active]: moved };
}

/**
 * Calipers: dragging across the tracing draws two vertical lines and reads the interval in
 * ms and the rate in bpm; a new drag replaces the old pair. From the keyboard the tracing
 * is a focusable control (see `caliperKey`); the reading goes to a polite live region.
 * @param {HTMLCanvasElement} canvas the drawn tracing
 * @param {number} pxPerMm
 * @returns {HTMLElement}
 */
export function calipers(canvas, pxPerMm) {
  const ctx = canvas.getContext('2d');
  const hint = h('p', { class: 'caliper-hint muted', id: 'caliper-hint' }, t('ecg.caliperHint'));
  const readout = h('output', { class: 'caliper-readout', 'aria-live': 'polite' });
  if (!ctx) return h('div', null, canvas, hint, readout);
  const paper = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const widthMm = canvas.width / pxPerMm;
  canvas.classList.add('calipers');
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'application');
  canvas.setAttribute('aria-label', t('ecg.caliperLabel'));
  canvas.setAttribute('aria-describedby', 'caliper-hint');
  /** @param {PointerEvent} e */
  const at = (e) => {
    const box = canvas.getBoundingClientRect();
    return { x: (e.clientX - box.left) * (canvas.width / box.width), y: (e.clientY - box.top) * (canvas.height / box.height) };
  };
  /** @type {{x: number, y: number} | null} */
  let start = null;
  /** @type {CaliperPair | null} */
  let pair = null;
  // The measuring line of keyboard calipers: across the middle of the bottom row.
  let lineY = Math.max(4 * pxPerMm, canvas.height - 15 * pxPerMm);
  /** @param {string} [prefix] */
  const draw = (prefix) => {
    ctx.putImageData(paper, 0, 0);
    if (!pair) {
      readout.textContent = '';
      delete canvas.dataset.caliperMs;
      return;
    }
    const x0 = pair.start * pxPerMm;
    const x1 = pair.end * pxPerMm;
    ctx.strokeStyle = '#047857';
    ctx.fillStyle = '#047857';
    ctx.lineWidth = 2;
    ctx.beginPath();
    for (const x of [x0, x1]) { ctx.moveTo(Math.round(x) + 0.5, 0); ctx.lineTo(Math.round(x) + 0.5, canvas.height); }
    ctx.moveTo(x0, lineY); ctx.lineTo(x1, lineY);
    ctx.stroke();
    // A handle on the line the arrow keys move.
    const handle = pair.active === 'start' ? x0 : x1;
    ctx.fillRect(Math.round(handle) - 4, lineY - 4, 9, 9);
    const r = caliperReading(pair.end - pair.start);
    const text = r.bpm === null ? `${r.ms} ms` : t('ecg.caliperReading', { ms: r.ms, bpm: r.bpm });
    ctx.font = `${3 * pxPerMm}px sans-serif`;
    ctx.fillText(text, Math.min(x0, x1) + 4, Math.max(3 * pxPerMm, lineY - 4));
    readout.textContent = prefix ? `${prefix} · ${text}` : text;
    canvas.dataset.caliperMs = String(r.ms);
  };
  /** @param {number} x0 @param {number} x1 */
  const dragTo = (x0, x1) => { pair = { start: x0 / pxPerMm, end: x1 / pxPerMm, active: 'end' }; draw(); };
  canvas.addEventListener('pointerdown', (e) => { canvas.setPointerCapture(e.pointerId); start = at(e); lineY = start.y; });
  canvas.addEventListener('pointermove', (e) => { if (start) dragTo(start.x, at(e).x); });
  canvas.addEventListener('pointerup', (e) => { if (start) dragTo(start.x, at(e).x); start = null; });
  canvas.addEventListener('pointercancel', () => { start = null; });
  canvas.addEventListener('keydown', (e) => {
    const next = caliperKey(pair, e.key, e.shiftKey, widthMm);
    if (next === undefined) return;
    e.preventDefault();
    const switched = !!pair && !!next && next.active !== pair.active;
    pair = next;
    draw(pair && switched ? t(`ecg.caliperActive.${pair.active}`) : undefined);
  });
  return h('div', { class: 'ecg-paper' }, canvas, hint, readout);
}

/**
 * Draws the recording on a canvas at `pxPerMm` pixels per millimetre.
 * @param {EcgView} ecg
 * @param {number} pxPerMm
 * @returns {HTMLCanvasElement}
 */
export function drawEcg(ecg, pxPerMm) {
  const { panels, widthMm, rows } = layout(ecg.leads.map((l) => l.name), ecg.duration_s);
  const heightMm = rows * ROW_MM;
  const canvas = /** @type {HTMLCanvasElement} */ (h('canvas', { role: 'img', 'aria-label': t('ecg.canvasLabel') }));
  canvas.width = Math.ceil(widthMm * pxPerMm);
  canvas.height = Math.ceil(heightMm * pxPerMm);
  const ctx = canvas.getContext('2d');
  if (!ctx) return canvas;
  ctx.fillStyle = '#fff8f6';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let mm = 0; mm <= Math.max(widthMm, heightMm); mm++) {
    ctx.strokeStyle = mm % 5 === 0 ? '#f0a0a0' : '#fadada';
    ctx.lineWidth = 1;
    ctx.beginPath();
    const at = Math.round(mm * pxPerMm) + 0.5; // on a pixel centre: crisp one-pixel lines
    if (mm <= widthMm) { ctx.moveTo(at, 0); ctx.lineTo(at, canvas.height); }
    if (mm <= heightMm) { ctx.moveTo(0, at); ctx.lineTo(canvas.width, at); }
    ctx.stroke();
  }
  const rate = ecg.sample_rate_hz;
  // R peaks are marked on the rhythm strip, or else on the row of the lead they were found on.
  const markRow = panels.length > rows
    ? rows - 1
    : (panels.find((p) => p.lead === ecg.measurements.detection_lead)?.row ?? 0);
  ctx.font = `${3 * pxPerMm}px sans-serif`;
  for (const p of panels) {
    const lead = ecg.leads.find((l) => l.name === p.lead);
    if (!lead) continue;
    const base = (p.row * ROW_MM + ROW_MM / 2) * pxPerMm;
    ctx.strokeStyle = '#111';
    ctx.lineWidth = 1.2;
    ctx.beginPath();
    const from = Math.floor(p.t0 * rate);
    const to = Math.min(lead.samples.length, Math.floor(p.t1 * rate));
    for (let i = from; i < to; i++) {
      const x = (p.xMm + ((i - from) / rate) * MM_PER_S) * pxPerMm;
      const y = base + uvToMm(lead.samples[i]) * pxPerMm;
      if (i === from) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke();
    ctx.fillStyle = '#111';
    ctx.fillText(p.lead, p.xMm * pxPerMm + 4, base - 10 * pxPerMm);
    if (p.row === markRow) {
      ctx.fillStyle = '#0050b3';
      for (const r of ecg.measurements.r_peaks_s.filter((s) => s >= p.t0 && s < p.t1)) {
        const x = (p.xMm + (r - p.t0) * MM_PER_S) * pxPerMm;
        ctx.beginPath();
        ctx.moveTo(x, base - 13 * pxPerMm); ctx.lineTo(x - 4, base - 14.5 * pxPerMm); ctx.lineTo(x + 4, base - 14.5 * pxPerMm);
        ctx.fill();
      }
      ctx.fillText(t('ecg.rPeaksLabel'), 4, (rows * ROW_MM - 1) * pxPerMm);
    }
  }
  return canvas;
}
