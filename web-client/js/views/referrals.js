// Community doctor: referrals (sent up to the hospital, received down from it, with accept,
// reject and complete on the receiving side) and follow-up visits that are overdue.
import { h, when, field, formValues } from '../dom.js';
import { t } from '../i18n.js';
import { get, post, api } from '../api.js';

/**
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function referralsView(app) {
  const [sent, received, patients] = await Promise.all([
    get('/api/v1/referrals?side=sent'), get('/api/v1/referrals?side=received'), get('/api/v1/patients'),
  ]);
  const reload = () => app.navigate('/referrals', true);
  const error = h('p', { class: 'error', role: 'alert' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid', 'aria-labelledby': 'new-ref-h' },
    field(t('wizard.patient'), h('select', { name: 'patient_id', required: true },
      patients.items.map((/** @type {any} */ p) => h('option', { value: p.id }, p.name)))),
    field(t('wizard.urgency'), h('select', { name: 'urgency' },
      ['routine', 'urgent', 'emergency'].map((u) => h('option', { value: u }, t(`urgency.${u}`))))),
    field(t('referral.reason'), h('textarea', { name: 'reason', required: true, rows: 2 })),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('referral.sendUp'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    try {
      await post('/api/v1/referrals', { ...formValues(form), direction: 'up' });
      reload();
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return h('div', { class: 'stack' },
    h('h1', null, t('referral.title')),
    h('section', { class: 'card', 'aria-labelledby': 'recv-ref-h' }, h('h2', { id: 'recv-ref-h' }, t('referral.received')),
      referralList(received.items, true, reload)),
    h('section', { class: 'card', 'aria-labelledby': 'sent-ref-h' }, h('h2', { id: 'sent-ref-h' }, t('referral.sent')),
      referralList(sent.items, false, reload)),
    h('section', { class: 'card', 'aria-labelledby': 'new-ref-h' }, h('h2', { id: 'new-ref-h' }, t('referral.new')),
      h('p', { class: 'hint' }, t('referral.upHint')), form));
}

/**
 * @param {any[]} items
 * @param {boolean} receiving whether the caller's organisation receives these
 * @param {() => void} reload
 * @returns {HTMLElement}
 */
function referralList(items, receiving, reload) {
  if (!items.length) return h('p', { class: 'muted' }, t('common.none'));
  return h('ul', { class: 'list referrals' }, items.map((r) => {
    const error = h('p', { class: 'error', role: 'alert' });
    /** @param {string} action @param {any} body */
    const act = async (action, body) => {
      error.textContent = '';
      try {
        await post(`/api/v1/referrals/${r.id}/${action}`, body);
        reload();
      } catch (err) {
        error.textContent = /** @type {Error} */ (err).message;
      }
    };
    const reasonId = `reject-${r.id}`;
    const reason = /** @type {HTMLInputElement} */ (h('input', { id: reasonId, name: 'reason' }));
    const actions = [];
    if (receiving && r.status === 'requested') {
      actions.push(
        h('button', { class: 'primary', onclick: () => act('accept', {}) }, t('referral.accept')),
        h('label', { for: reasonId }, t('referral.rejectReason')), reason,
        h('button', { onclick: () => {
          if (!reason.value.trim()) { error.textContent = t('referral.reasonNeeded'); return; }
          act('reject', { reason: reason.value });
        } }, t('referral.reject')));
    }
    if (receiving && r.status === 'accepted') actions.push(h('button', { onclick: () => act('complete', {}) }, t('referral.complete')));
    return h('li', { 'data-status': r.status },
      h('div', null,
        h('p', null, h('strong', null, r.patient_name), ' · ', t(`referral.direction.${r.direction}`),
          ' · ', `${r.from_organisation_name} → ${r.to_organisation_name}`,
          h('span', { class: 'badge' }, t(`referral.status.${r.status}`)),
          r.urgency !== 'routine' ? h('span', { class: 'badge urgent' }, t(`urgency.${r.urgency}`)) : null),
        h('p', { class: 'referral-reason' }, r.reason),
        r.care_plan ? h('p', { class: 'referral-plan' }, t('referral.carePlan', { plan: r.care_plan })) : null,
        h('p', { class: 'hint' }, when(r.created_at), r.appointment_at ? ` · ${t('referral.appointment', { at: when(r.appointment_at) })}` : '')),
      actions.length ? h('div', { class: 'actions' }, actions, error) : null);
  }));
}

/**
 * Overdue follow-up visits of the centre's patients, each to be marked done or moved.
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function followUpsView(app) {
  const overdue = (await get('/api/v1/follow-ups?overdue=true')).items;
  const reload = () => app.navigate('/follow-ups', true);
  return h('div', { class: 'stack' },
    h('h1', null, t('followup.title')),
    h('section', { class: 'card', 'aria-labelledby': 'overdue-h' }, h('h2', { id: 'overdue-h' }, t('followup.overdue')),
      overdue.length ? h('ul', { class: 'list overdue' }, overdue.map((/** @type {any} */ v) => {
        const error = h('p', { class: 'error', role: 'alert' });
        const dateId = `move-${v.id}`;
        const date = /** @type {HTMLInputElement} */ (h('input', { id: dateId, type: 'date' }));
        /** @param {any} body */
        const patch = async (body) => {
          error.textContent = '';
          try {
            await api('PATCH', `/api/v1/follow-ups/${v.id}`, body);
            reload();
          } catch (err) {
            error.textContent = /** @type {Error} */ (err).message;
          }
        };
        return h('li', null,
          h('div', null,
            h('p', null, h('strong', null, v.patient_name), ' · ', v.condition, ' · ', t('followup.visit', { n: v.seq })),
            h('p', { class: 'due' }, t('followup.due', { date: v.due_date, days: daysSince(v.due_date) }))),
          h('div', { class: 'actions' },
            h('button', { class: 'primary', onclick: () => patch({ status: 'done' }) }, t('followup.done')),
            h('label', { for: dateId }, t('followup.moveTo')), date,
            h('button', { onclick: () => { if (date.value) patch({ due_date: date.value }); } }, t('followup.move')),
            error));
      })) : h('p', { class: 'muted' }, t('followup.none'))));
}

/**
 * Whole days from a date (YYYY-MM-DD) to today.
 * @param {string} date
 * @returns {number}
 */
export function daysSince(date) {
  const [y, m, d] = date.split('-').map(Number);
  const now = new Date();
  return Math.round((Date.UTC(now.getFullYear(), now.getMonth(), now.getDate()) - Date.UTC(y, m - 1, d)) / 86400000);
}
