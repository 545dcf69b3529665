// The patient header shown on clinical screens (the consultation, the ECG viewer): name, sex,
// age and the resident ID as the server gives it to the viewer (masked for experts).
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { get } from '../api.js';

/**
 * Whole years between a birth date (YYYY-MM-DD) and `now`.
 * @param {string} birth
 * @param {Date} now
 * @returns {number | null}
 */
export function ageOn(birth, now) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(birth || '');
  if (!m) return null;
  let age = now.getFullYear() - Number(m[1]);
  const month = now.getMonth() + 1;
  if (month < Number(m[2]) || (month === Number(m[2]) && now.getDate() < Number(m[3]))) age -= 1;
  return age;
}

/**
 * The patient record of a consultation, or null when the viewer may not read it.
 * @param {string} patientId
 * @returns {Promise<any | null>}
 */
export async function patientOf(patientId) {
  try {
    return await get(`/api/v1/patients/${patientId}`);
  } catch {
    return null;
  }
}

/**
 * @param {any} p the patient record
 * @param {any[]} [extra] further [label, value] pairs (recording time, device)
 * @returns {HTMLElement}
 */
export function patientHeader(p, extra = []) {
  const age = ageOn(p.birth_date, new Date());
  const sex = t(`sex.${p.sex}`);
  return h('dl', { class: 'patient-header', 'aria-label': t('header.label') },
    h('dt', null, t('patient.name')), h('dd', { class: 'ph-name' }, p.name),
    h('dt', null, t('patient.sex')), h('dd', { class: 'ph-sex' }, sex),
    h('dt', null, t('header.age')), h('dd', { class: 'ph-age' }, age === null ? '—' : t('header.years', { n: age })),
    h('dt', null, t('patient.residentId')), h('dd', { class: 'ph-id' }, p.resident_id || '—'),
    (p.identifiers || []).filter((/** @type {any} */ i) => i.kind !== 'phone').map((/** @type {any} */ i) => [
      h('dt', null, t(`identifier.${i.kind}`)), h('dd', { class: `ph-identifier ph-${i.kind}` }, i.masked)]),
    extra.map(([label, value]) => [h('dt', null, label), h('dd', null, value || '—')]));
}
