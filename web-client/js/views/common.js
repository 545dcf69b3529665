// Pieces shared by several screens.
import { h } from '../dom.js';
import { t } from '../i18n.js';

/** The order in which states are grouped, the most pressing first. */
export const STATE_ORDER = ['in_progress', 'awaiting_opinion', 'scheduled', 'accepted', 'requested', 'draft', 'completed', 'declined', 'cancelled', 'no_show'];

/**
 * Consultations as a list, optionally grouped by state.
 * @param {import('../main.js').App} app
 * @param {any[]} items consultation summaries
 * @param {boolean} grouped
 * @returns {HTMLElement}
 */
export function consultationList(app, items, grouped) {
  if (!items.length) return h('p', { class: 'muted' }, t('common.none'));
  /** @param {any} c */
  const row = (c) => h('li', null,
    h('span', null, h('strong', null, c.patient_name), ' · ', t(`specialty.${c.specialty}`), ' · ',
      h('span', { class: `badge state-${c.state}` }, t(`state.${c.state}`)),
      c.urgency !== 'routine' ? h('span', { class: 'badge urgent' }, t(`urgency.${c.urgency}`)) : null),
    h('button', { onclick: () => app.navigate(`/consultations/${c.id}`) }, t('common.open')));
  if (!grouped) return h('ul', { class: 'list' }, items.map(row));
  return h('div', null, STATE_ORDER.filter((s) => items.some((c) => c.state === s)).map((s) =>
    h('div', { class: 'group' }, h('h3', null, t(`state.${s}`)),
      h('ul', { class: 'list' }, items.filter((c) => c.state === s).map(row)))));
}
