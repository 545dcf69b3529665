// The image viewer: a consultation's DICOM series (QIDO-RS), each series as one stack of
// frames across its instances (WADO-RS metadata), drawn from the server's rendered frames
// (`.../frames/{n}/rendered?window=center,width`). Frame scrolling by wheel, keys and slider;
// window/level by dragging and presets; zoom and pan.
import { h, mount } from '../dom.js';
import { t } from '../i18n.js';
import { get, authHeader } from '../api.js';

/** Window presets in Hounsfield units (centre, width), as the server's `preset=` table. */
export const PRESETS = /** @type {const} */ ({
  lung: [-600, 1500], bone: [400, 1800], soft_tissue: [40, 400], brain: [40, 80],
});

/** Modalities of waveform series, which have no image frames. */
const WAVEFORM_MODALITIES = ['ECG', 'HD', 'EPS', 'RESP', 'AU'];

/**
 * @typedef {{uid: string, frame: number}} Slice one frame of one instance
 * @typedef {{study: string, series: string, modality: string, description: string, number: number | null, instances: number}} Series
 * @typedef {{center: number, width: number}} Win
 */

/**
 * First value of a DICOM JSON attribute.
 * @param {any} ds
 * @param {string} tag
 * @returns {any}
 */
function value(ds, tag) {
  const v = ds?.[tag]?.Value?.[0];
  return v === undefined ? null : v;
}

/**
 * The frames of a series in display order (instance number, then frame) and the window to
 * start from: the first instance's own window, else the full range of its stored bits.
 * @param {any[]} metadata DICOM JSON of the series' instances
 * @returns {{slices: Slice[], window: Win, explicit: boolean}}
 */
export function stackOf(metadata) {
  const instances = [...metadata].sort((a, b) =>
    (Number(value(a, '00200013') ?? 0) - Number(value(b, '00200013') ?? 0))
    || String(value(a, '00080018')).localeCompare(String(value(b, '00080018'))));
  /** @type {Slice[]} */
  const slices = [];
  for (const ds of instances) {
    const frames = Math.max(1, Number(value(ds, '00280008') ?? 1));
    for (let frame = 1; frame <= frames; frame++) slices.push({ uid: String(value(ds, '00080018')), frame });
  }
  const first = instances[0];
  const center = value(first, '00281050');
  const width = value(first, '00281051');
  if (center !== null && width !== null) return { slices, window: { center: Number(center), width: Number(width) }, explicit: true };
  const bits = Number(value(first, '00280101') ?? 8);
  const signed = Number(value(first, '00280103') ?? 0) === 1;
  const slope = Number(value(first, '00281053') ?? 1);
  const intercept = Number(value(first, '00281052') ?? 0);
  const low = signed ? -(2 ** (bits - 1)) : 0;
  const high = low + 2 ** bits - 1;
  return { slices, window: { center: ((low + high) / 2) * slope + intercept, width: (high - low + 1) * slope }, explicit: false };
}

/**
 * The window after dragging by (dx, dy) pixels from `start`: right widens, down raises the
 * centre; the step scales with the width so narrow and wide windows both move usefully.
 * @param {Win} start
 * @param {number} dx
 * @param {number} dy
 * @returns {Win}
 */
export function dragWindow(start, dx, dy) {
  const step = Math.max(start.width / 256, 0.5);
  return { center: Math.round(start.center + dy * step), width: Math.max(1, Math.round(start.width + dx * step)) };
}

/**
 * @param {import('../main.js').App} app
 * @param {string} consultationId
 * @returns {Promise<HTMLElement>}
 */
export async function imagesView(app, consultationId) {
  const base = `/api/v1/consultations/${consultationId}/dicomweb`;
  const found = await get(`${base}/series`);
  /** @type {Series[]} */
  // Waveform series (a DICOM ECG is indexed for DICOMweb too) have no frames to render; the
  // ECG viewer opens them from the files list.
  const series = found.filter((/** @type {any} */ s) => !WAVEFORM_MODALITIES.includes(value(s, '00080060'))).map((/** @type {any} */ s) => ({
    study: value(s, '0020000D'), series: value(s, '0020000E'), modality: value(s, '00080060') || '',
    description: value(s, '0008103E') || '', number: value(s, '00200011'), instances: Number(value(s, '00201209') ?? 0),
  }));
  const stage = h('div', { class: 'viewer-stage' });
  const list = h('ul', { class: 'list series-list', 'aria-label': t('images.series') });
  /** @type {(() => void) | null} */
  let close = null;
  app.onLeave(() => close?.());
  /** @param {number} i */
  const open = async (i) => {
    close?.();
    for (const [j, li] of [...list.children].entries()) li.querySelector('button')?.setAttribute('aria-pressed', String(i === j));
    const s = series[i];
    const metadata = await get(`${base}/studies/${s.study}/series/${s.series}/metadata`);
    const viewer = stackViewer(`${base}/studies/${s.study}/series/${s.series}`, stackOf(metadata));
    close = viewer.close;
    mount(stage, viewer.el);
  };
  mount(list, series.map((s, i) => h('li', null,
    h('span', null, h('strong', null, s.modality), ' ', s.description || t('images.untitled'),
      h('span', { class: 'muted' }, ' · ', t('images.instances', { n: s.instances }))),
    h('button', { 'aria-pressed': 'false', onclick: () => open(i) }, t('common.open')))));
  const view = h('div', { class: 'stack' },
    h('h1', null, t('images.title')),
    h('div', { class: 'actions' }, h('button', { class: 'link', onclick: () => app.navigate(`/consultations/${consultationId}`) }, t('images.back'))),
    h('section', { class: 'card', 'aria-labelledby': 'series-h' }, h('h2', { id: 'series-h' }, t('images.series')),
      series.length ? list : h('p', { class: 'muted' }, t('images.none'))),
    stage);
  if (series.length) await open(0);
  return view;
}

/**
 * One series' frames on a canvas with its controls.
 * @param {string} seriesUrl DICOMweb URL of the series
 * @param {{slices: Slice[], window: Win, explicit: boolean}} stack
 * @returns {{el: HTMLElement, close: () => void}}
 */
function stackViewer(seriesUrl, stack) {
  const { slices } = stack;
  const initial = { ...stack.window };
  // Without a window in the file the first frames use the server's own (min-max) window
  // until the user chooses one.
  const state = { index: 0, window: { ...initial }, auto: !stack.explicit, zoom: 1, panX: 0, panY: 0, tool: 'window' };
  const canvas = /** @type {HTMLCanvasElement} */ (h('canvas', { class: 'dicom', width: 512, height: 512, tabindex: 0, role: 'img', 'aria-label': t('images.canvasLabel') }));
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  const status = h('p', { class: 'viewer-status', 'aria-live': 'polite' });
  const slider = /** @type {HTMLInputElement} */ (h('input', { type: 'range', id: 'frame-slider', min: 1, max: slices.length, value: 1, step: 1 }));
  /** @type {ImageBitmap | null} */
  let image = null;
  let seq = 0;
  let loading = false;
  let pending = false;
  /** @type {Map<string, ImageBitmap>} */
  const cache = new Map();

  const url = () => {
    const s = slices[state.index];
    const w = state.window;
    const query = state.auto ? '' : `?window=${w.center},${w.width}`;
    return `${seriesUrl}/instances/${s.uid}/frames/${s.frame}/rendered${query}`;
  };
  const draw = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!image) return;
    const fit = Math.min(canvas.width / image.width, canvas.height / image.height) * state.zoom;
    const w = image.width * fit, hgt = image.height * fit;
    ctx.imageSmoothingEnabled = fit < 1;
    ctx.drawImage(image, (canvas.width - w) / 2 + state.panX, (canvas.height - hgt) / 2 + state.panY, w, hgt);
  };
  const describe = () => {
    status.textContent = t('images.status', {
      frame: state.index + 1, frames: slices.length, zoom: Math.round(state.zoom * 100),
      window: state.auto ? t('images.autoWindow') : t('images.window', { center: state.window.center, width: state.window.width }),
    });
    slider.value = String(state.index + 1);
  };
  // One request in flight; a newer wish replaces the queued one (dragging sends many).
  const load = async () => {
    if (loading) { pending = true; return; }
    loading = true;
    const mine = ++seq;
    const src = url();
    try {
      let bitmap = cache.get(src);
      if (!bitmap) {
        const res = await fetch(src, { headers: { Accept: 'image/png', ...authHeader() } });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        bitmap = await createImageBitmap(await res.blob());
        if (cache.size > 96) cache.delete(/** @type {string} */ (cache.keys().next().value));
        cache.set(src, bitmap);
      }
      if (mine === seq) {
        image = bitmap;
        canvas.dataset.src = src;
        canvas.dataset.frame = String(state.index + 1);
        canvas.dataset.window = state.auto ? 'auto' : `${state.window.center},${state.window.width}`;
        draw();
      }
      error.textContent = '';
    } catch (err) {
      error.textContent = t('images.failed', { message: /** @type {Error} */ (err).message });
    } finally {
      loading = false;
      if (pending) { pending = false; load(); }
    }
  };
  const error = h('p', { class: 'error', role: 'alert' });
  const update = () => { describe(); load(); };
  /** @param {number} i */
  const go = (i) => {
    const next = Math.min(slices.length - 1, Math.max(0, i));
    if (next === state.index) return;
    state.index = next;
    update();
  };
  /** @param {Win} w */
  const setWindow = (w) => { state.window = { ...w }; state.auto = false; update(); };
  /** @param {number} factor */
  const zoomBy = (factor) => { state.zoom = Math.min(16, Math.max(0.25, state.zoom * factor)); describe(); draw(); };

  canvas.addEventListener('wheel', (e) => { e.preventDefault(); go(state.index + Math.sign(e.deltaY)); }, { passive: false });
  canvas.addEventListener('keydown', (e) => {
    const keys = /** @type {Record<string, () => void>} */ ({
      ArrowDown: () => go(state.index + 1), ArrowRight: () => go(state.index + 1), PageDown: () => go(state.index + 1),
      ArrowUp: () => go(state.index - 1), ArrowLeft: () => go(state.index - 1), PageUp: () => go(state.index - 1),
      Home: () => go(0), End: () => go(slices.length - 1), '+': () => zoomBy(1.25), '=': () => zoomBy(1.25), '-': () => zoomBy(0.8),
    });
    const act = keys[e.key];
    if (act) { e.preventDefault(); act(); }
  });
  slider.addEventListener('input', () => go(Number(slider.value) - 1));

  /** @type {{x: number, y: number, window: Win, panX: number, panY: number, pan: boolean} | null} */
  let drag = null;
  canvas.addEventListener('pointerdown', (e) => {
    canvas.setPointerCapture(e.pointerId);
    canvas.focus();
    drag = { x: e.clientX, y: e.clientY, window: { ...state.window }, panX: state.panX, panY: state.panY,
      pan: state.tool === 'pan' || e.shiftKey || e.button === 1 };
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const scale = canvas.width / (canvas.getBoundingClientRect().width || canvas.width);
    const dx = (e.clientX - drag.x) * scale, dy = (e.clientY - drag.y) * scale;
    if (drag.pan) { state.panX = drag.panX + dx; state.panY = drag.panY + dy; draw(); } else setWindow(dragWindow(drag.window, dx, dy));
  });
  const end = () => { drag = null; };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);

  /** @param {'window' | 'pan'} tool */
  const toolButton = (tool) => h('button', { 'aria-pressed': String(state.tool === tool), 'data-tool': tool, onclick: (/** @type {Event} */ e) => {
    state.tool = tool;
    for (const b of /** @type {HTMLElement} */ (/** @type {HTMLElement} */ (e.currentTarget).parentElement).querySelectorAll('[data-tool]')) b.setAttribute('aria-pressed', String(b.getAttribute('data-tool') === tool));
  } }, t(`images.tool.${tool}`));

  const el = h('section', { class: 'card viewer', 'aria-labelledby': 'viewer-h' },
    h('h2', { id: 'viewer-h' }, t('images.viewer')),
    h('div', { class: 'actions', role: 'group', 'aria-label': t('images.presets') },
      h('span', null, t('images.presets')),
      Object.entries(PRESETS).map(([name, [center, width]]) =>
        h('button', { 'data-preset': name, onclick: () => setWindow({ center, width }) }, t(`images.preset.${name}`))),
      h('button', { 'data-preset': 'default', onclick: () => { state.window = { ...initial }; state.auto = !stack.explicit; update(); } }, t('images.preset.default'))),
    h('div', { class: 'actions', role: 'group', 'aria-label': t('images.tools') },
      toolButton('window'), toolButton('pan'),
      h('button', { 'aria-label': t('images.zoomIn'), onclick: () => zoomBy(1.25) }, '+'),
      h('button', { 'aria-label': t('images.zoomOut'), onclick: () => zoomBy(0.8) }, '−'),
      h('button', { onclick: () => { state.zoom = 1; state.panX = 0; state.panY = 0; describe(); draw(); } }, t('images.reset'))),
    canvas,
    h('div', { class: 'field' }, h('label', { for: 'frame-slider' }, t('images.frame')), slider),
    status, error,
    h('p', { class: 'hint' }, t('images.help')));
  update();
  return { el, close: () => { seq++; for (const b of cache.values()) b.close(); cache.clear(); } };
}
