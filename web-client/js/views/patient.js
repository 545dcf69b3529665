// Patient and kiosk (elder mode): large type, one main action per screen.
import { h, when } from '../dom.js';
import { t } from '../i18n.js';
import { get } from '../api.js';

/**
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function patientHome(app) {
  const page = await get('/api/v1/consultations');
  /** @type {any[]} */
  const items = page.items;
  const live = items.find((c) => c.state === 'in_progress') || items.find((c) => c.state === 'scheduled');
  let next = null;
  if (live) {
    const detail = await get(`/api/v1/consultations/${live.id}`);
    next = detail.appointments.find((/** @type {any} */ a) => a.status === 'booked') || null;
  }
  return h('section', { class: 'elder-home', 'aria-labelledby': 'ph' },
    h('h1', { id: 'ph' }, t('patient.hello', { name: app.user().display_name })),
    live
      ? [
        h('p', { class: 'big' }, t('patient.next', { expert: live.assigned_expert_name || '', at: next ? when(next.start) : '' })),
        h('button', { class: 'primary huge', onclick: () => app.navigate(`/call/${live.id}`) }, t('patient.join')),
      ]
      : h('p', { class: 'big' }, t('patient.nothing')),
  );
}
