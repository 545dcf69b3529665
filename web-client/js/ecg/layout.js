// ECG paper geometry, apart from drawing: 25 mm/s, 10 mm/mV, the 3x4 twelve-lead layout with
// a rhythm strip, and where each lead's window of time goes.

export const MM_PER_S = 25;
export const MM_PER_MV = 10;
/** Height of one row of leads on the paper, in mm. */
export const ROW_MM = 30;

/** Lead rows of the standard 3x4 layout: each column shows 2.5 s of its leads. */
export const GRID = [
  ['I', 'aVR', 'V1', 'V4'],
  ['II', 'aVL', 'V2', 'V5'],
  ['III', 'aVF', 'V3', 'V6'],
];

/**
 * @typedef {{lead: string, row: number, t0: number, t1: number, xMm: number}} Panel
 * A lead's window [t0, t1) in seconds, drawn from `xMm` on row `row`.
 */

/**
 * Panels for a recording: the 3x4 grid plus a lead-II rhythm strip when all twelve standard
 * leads are present, otherwise one full-length row per lead.
 * @param {string[]} leads
 * @param {number} durationS
 * @returns {{panels: Panel[], widthMm: number, rows: number}}
 */
export function layout(leads, durationS) {
  const shown = Math.min(durationS, 10);
  const widthMm = shown * MM_PER_S;
  const standard = GRID.flat().every((l) => leads.includes(l));
  /** @type {Panel[]} */
  const panels = [];
  if (standard) {
    const col = shown / 4;
    GRID.forEach((row, r) => row.forEach((lead, c) =>
      panels.push({ lead, row: r, t0: c * col, t1: (c + 1) * col, xMm: c * col * MM_PER_S })));
    panels.push({ lead: 'II', row: 3, t0: 0, t1: shown, xMm: 0 });
    return { panels, widthMm, rows: 4 };
  }
  leads.forEach((lead, r) => panels.push({ lead, row: r, t0: 0, t1: shown, xMm: 0 }));
  return { panels, widthMm, rows: leads.length };
}

/**
 * The y offset in mm (downwards) of a sample in microvolts, from the row's baseline.
 * @param {number} uv
 * @returns {number}
 */
export function uvToMm(uv) {
  return -(uv / 1000) * MM_PER_MV;
}
