// Trend charts as plain SVG (no chart library): one or more series of values over time, with
// dashed target lines, the axis ranges written out, and each point titled with its value and
// time. `scale` is pure and tested with node.
import { t } from '../i18n.js';

const SVG = 'http://www.w3.org/2000/svg';

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 * @param {...(Element | string)} children
 * @returns {SVGElement}
 */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/**
 * @typedef {{t: number, v: number, label?: string}} Point
 * @typedef {{name: string, points: Point[]}} Series
 */

/**
 * Maps times and values onto a `width` x `height` box with `pad` around: earliest left,
 * highest value on top. Targets widen the value range so their lines are in view.
 * @param {Series[]} series
 * @param {number[]} targets
 * @param {{width: number, height: number, pad: number}} box
 */
export function scale(series, targets, box) {
  const points = series.flatMap((x) => x.points);
  const ts = points.map((p) => p.t);
  const vs = [...points.map((p) => p.v), ...targets];
  const t0 = Math.min(...ts);
  const t1 = Math.max(...ts);
  let v0 = Math.min(...vs);
  let v1 = Math.max(...vs);
  const margin = (v1 - v0) * 0.1 || Math.abs(v1) * 0.1 || 1;
  v0 -= margin;
  v1 += margin;
  const x = (/** @type {number} */ tt) => (t1 === t0 ? box.width / 2 : box.pad + ((tt - t0) / (t1 - t0)) * (box.width - 2 * box.pad));
  const y = (/** @type {number} */ v) => box.pad + ((v1 - v) / (v1 - v0)) * (box.height - 2 * box.pad);
  return { x, y, t0, t1, v0, v1 };
}

/**
 * A trend chart.
 * @param {{title: string, unit: string, series: Series[], targets?: {v: number, label: string}[], id: string}} opts
 * @returns {Element}
 */
export function trendChart({ title, unit, series, targets = [], id }) {
  const box = { width: 480, height: 180, pad: 28 };
  const points = series.flatMap((x) => x.points);
  const figure = document.createElement('figure');
  figure.className = 'trend';
  figure.dataset.chart = id;
  const caption = document.createElement('figcaption');
  caption.textContent = `${title} (${unit})`;
  figure.append(caption);
  if (!points.length) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = t('record.noData');
    figure.append(p);
    return figure;
  }
  const sc = scale(series, targets.map((x) => x.v), box);
  const svg = s('svg', { viewBox: `0 0 ${box.width} ${box.height}`, role: 'img', 'aria-label': `${title}: ${points.length} ${t('record.points')}`, class: 'trend-svg' });
  const fmt = (/** @type {number} */ v) => (Math.round(v * 10) / 10).toString();
  const day = (/** @type {number} */ tt) => new Date(tt).toLocaleDateString(document.documentElement.lang || 'zh-CN', { month: '2-digit', day: '2-digit' });
  svg.append(
    s('line', { x1: box.pad, y1: box.height - box.pad, x2: box.width - box.pad, y2: box.height - box.pad, class: 'axis' }),
    s('line', { x1: box.pad, y1: box.pad, x2: box.pad, y2: box.height - box.pad, class: 'axis' }),
    s('text', { x: 2, y: box.pad, class: 'tick' }, fmt(sc.v1)),
    s('text', { x: 2, y: box.height - box.pad, class: 'tick' }, fmt(sc.v0)),
    s('text', { x: box.pad, y: box.height - 6, class: 'tick' }, day(sc.t0)),
    s('text', { x: box.width - box.pad, y: box.height - 6, class: 'tick', 'text-anchor': 'end' }, day(sc.t1)));
  for (const target of targets) {
    svg.append(s('line', { x1: box.pad, x2: box.width - box.pad, y1: sc.y(target.v), y2: sc.y(target.v), class: 'target' }),
      s('text', { x: box.width - box.pad, y: sc.y(target.v) - 3, class: 'tick target-label', 'text-anchor': 'end' }, target.label));
  }
  series.forEach((x, i) => {
    const sorted = [...x.points].sort((a, b) => a.t - b.t);
    svg.append(s('polyline', { points: sorted.map((p) => `${sc.x(p.t).toFixed(1)},${sc.y(p.v).toFixed(1)}`).join(' '), class: `series series-${i}`, fill: 'none' }));
    for (const p of sorted) {
      svg.append(s('circle', { cx: sc.x(p.t).toFixed(1), cy: sc.y(p.v).toFixed(1), r: 3.5, class: `point series-${i}` },
        s('title', {}, `${x.name} ${fmt(p.v)} ${unit} · ${new Date(p.t).toLocaleString()}`)));
    }
  });
  figure.append(svg);
  return figure;
}
