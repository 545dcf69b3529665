// Community doctor: referrals (sent up to the hospital, received down from it, with accept,
// reject and complete on the receiving side), follow-up plans started and the visits that are
// overdue. Expert: the down-referral of a consultation's patient back to the community, with
// its care plan and follow-up visits.
import { h, mount, when, field, formValues } from '../dom.js';
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
 * The expert's referral of the consultation's patient back to the community centre (the
 * patient's own, which the server chooses): the reason, the care plan the centre follows, and
 * optionally the follow-up visits it lays out; the referrals already made from this
 * consultation are listed above the form.
 * @param {any} c the consultation
 * @returns {Promise<HTMLElement>}
 */
export async function referDownSection(c) {
  /** @type {any[]} */
  let made = [];
  try {
    made = (await get('/api/v1/referrals?side=sent')).items.filter((/** @type {any} */ r) => r.consultation_id === c.id);
  } catch { /* the list is a convenience; the form stands without it */ }
  const list = h('div', null, made.length ? referralList(made, false, () => {}) : null);
  const error = h('p', { class: 'error', role: 'alert' });
  const done = h('p', { class: 'notice', role: 'status' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid refer-down' },
    field(t('referral.reason'), h('textarea', { name: 'reason', required: true, rows: 2 })),
    field(t('wizard.urgency'), h('select', { name: 'urgency' },
      ['routine', 'urgent', 'emergency'].map((u) => h('option', { value: u }, t(`urgency.${u}`))))),
    field(t('referral.carePlanLabel'), h('textarea', { name: 'care_plan', required: true, rows: 3 })),
    h('fieldset', null, h('legend', null, t('followup.planOptional')), ...planFields('rd')),
    error, done,
    h('button', { type: 'submit', class: 'primary' }, t('referral.sendDown'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    done.textContent = '';
    const v = formValues(form);
    try {
      const r = await post('/api/v1/referrals', {
        patient_id: c.patient_id, consultation_id: c.id, direction: 'down', reason: v.reason, urgency: v.urgency,
        care_plan: v.care_plan,
        ...(v.condition.trim() ? { follow_up: { condition: v.condition, interval_weeks: Number(v.interval_weeks), visits: Number(v.visits), instructions: v.instructions } } : {}),
      });
      form.reset();
      done.textContent = t('referral.sentDown', { to: r.to_organisation_name || '' });
      mount(list, referralList([r, ...made], false, () => {}));
      made = [r, ...made];
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'refer-down-h' },
    h('h2', { id: 'refer-down-h' }, t('referral.down')),
    h('p', { class: 'hint' }, t('referral.downHint')), list, form);
}

/**
 * The fields of a follow-up plan: condition (with the common ones offered), every how many
 * weeks, how many visits, instructions. Ids start with `prefix`.
 * @param {string} prefix
 * @returns {HTMLElement[]}
 */
function planFields(prefix) {
  const conditions = h('datalist', { id: `${prefix}-conditions` },
    ['hypertension', 'diabetes', 'chd', 'copd', 'stroke'].map((x) => h('option', { value: t(`followup.condition.${x}`) })));
  // Defaults as default values, so that a form's reset brings them back.
  const number = (/** @type {string} */ name, /** @type {number} */ value) => {
    const input = /** @type {HTMLInputElement} */ (h('input', { name, type: 'number', min: 1, max: 52 }));
    input.defaultValue = String(value);
    return input;
  };
  return [
    field(t('followup.condition'), h('input', { name: 'condition', list: `${prefix}-conditions` })), conditions,
    field(t('followup.interval'), number('interval_weeks', 4)),
    field(t('followup.visits'), number('visits', 6)),
    field(t('followup.instructions'), h('textarea', { name: 'instructions', rows: 2 })),
  ];
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
  const [overdueList, patients] = await Promise.all([get('/api/v1/follow-ups?overdue=true'), get('/api/v1/patients')]);
  const overdue = overdueList.items;
  const reload = () => app.navigate('/follow-ups', true);
  // A new plan: its visits are laid out one interval apart from the start date (today unless
  // an earlier one is given, for a patient already under follow-up on paper).
  const error = h('p', { class: 'error', role: 'alert' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid new-plan' },
    field(t('wizard.patient'), h('select', { name: 'patient_id', required: true },
      patients.items.map((/** @type {any} */ p) => h('option', { value: p.id }, p.name)))),
    ...planFields('np'),
    field(t('followup.start'), h('input', { name: 'start_date', type: 'date' })),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('followup.startPlan'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const v = formValues(form);
    if (!v.condition.trim()) { error.textContent = t('followup.conditionNeeded'); return; }
    try {
      await post('/api/v1/follow-up-plans', {
        patient_id: v.patient_id, condition: v.condition, interval_weeks: Number(v.interval_weeks), visits: Number(v.visits),
        instructions: v.instructions, ...(v.start_date ? { start_date: v.start_date } : {}),
      });
      reload();
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
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
      })) : h('p', { class: 'muted' }, t('followup.none'))),
    h('section', { class: 'card', 'aria-labelledby': 'new-plan-h' }, h('h2', { id: 'new-plan-h' }, t('followup.newPlan')), form));
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
