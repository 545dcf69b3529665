// New-consultation wizard: 1 patient and clinical question, 2 informed consent,
// 3 addressee chosen from the ranked candidates, then send.
import { h, mount, field, formValues, when } from '../dom.js';
import { t, lang } from '../i18n.js';
import { get, post } from '../api.js';

/**
 * @param {import('../main.js').App} app
 * @param {URLSearchParams} query
 * @returns {Promise<HTMLElement>}
 */
export async function wizardView(app, query) {
  const [patients, specialties] = await Promise.all([get('/api/v1/patients'), get('/api/v1/specialties')]);
  const root = h('section', { class: 'card', 'aria-labelledby': 'wz' });
  /** @type {Record<string, any>} */
  const request = {};

  const step1 = () => {
    const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid' },
      field(t('wizard.patient'), h('select', { name: 'patient_id', required: true },
        patients.items.map((/** @type {any} */ p) => h('option', { value: p.id, selected: p.id === query.get('patient') }, p.name)))),
      field(t('wizard.specialty'), h('select', { name: 'specialty' },
        specialties.items.map((/** @type {any} */ s) => h('option', { value: s.code }, lang() === 'en' ? s.name_en : s.name_zh)))),
      field(t('wizard.reason'), h('textarea', { name: 'reason', required: true, rows: 3 })),
      field(t('wizard.summary'), h('textarea', { name: 'record_summary', rows: 3 })),
      field(t('wizard.urgency'), h('select', { name: 'urgency' },
        ['routine', 'urgent', 'emergency'].map((u) => h('option', { value: u }, t(`urgency.${u}`))))),
      field(t('wizard.mode'), h('select', { name: 'mode' },
        ['video', 'ecg_review', 'imaging_review', 'mdt'].map((m) => h('option', { value: m }, t(`mode.${m}`))))),
      field(t('wizard.minTitle'), h('select', { name: 'min_title' },
        ['resident', 'attending', 'associate_chief', 'chief'].map((x) => h('option', { value: x, selected: x === 'attending' }, t(`title.${x}`))))),
      h('button', { type: 'submit', class: 'primary' }, t('common.next')),
    ));
    form.addEventListener('submit', (e) => { e.preventDefault(); Object.assign(request, formValues(form)); step2(); });
    mount(root, h('h1', { id: 'wz' }, t('wizard.title')), h('p', { class: 'step' }, t('wizard.step', { n: 1 })), form);
  };

  const step2 = () => {
    const error = h('p', { class: 'error', role: 'alert' });
    const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid' },
      h('p', null, t('wizard.consentText')),
      field(t('wizard.givenBy'), h('select', { name: 'given_by' },
        h('option', { value: 'patient' }, t('wizard.byPatient')), h('option', { value: 'guardian' }, t('wizard.byGuardian')))),
      field(t('wizard.guardianName'), h('input', { name: 'guardian_name' })),
      field(t('wizard.method'), h('select', { name: 'method' },
        h('option', { value: 'written' }, t('wizard.written')), h('option', { value: 'recorded_verbal' }, t('wizard.verbal')))),
      h('div', { class: 'field check' }, h('input', { type: 'checkbox', id: 'consent-ok', name: 'confirmed', required: true }),
        h('label', { for: 'consent-ok' }, t('wizard.consentConfirm'))),
      error,
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: step1 }, t('common.back')),
        h('button', { type: 'submit', class: 'primary' }, t('common.next'))),
    ));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const v = formValues(form);
      request.consent = { given_by: v.given_by, guardian_name: v.guardian_name || '', method: v.method, at: new Date().toISOString() };
      try {
        // A draft addressed to the department pool, so that the server can rank candidates.
        const draft = await post('/api/v1/consultations', {
          ...request, addressee: { kind: 'pool' }, submit: false,
        });
        await step3(draft.id);
      } catch (err) {
        error.textContent = /** @type {Error} */ (err).message;
      }
    });
    mount(root, h('h1', { id: 'wz' }, t('wizard.consentTitle')), h('p', { class: 'step' }, t('wizard.step', { n: 2 })), form);
  };

  /** @param {string} draftId */
  const step3 = async (draftId) => {
    const candidates = await get(`/api/v1/consultations/${draftId}/candidates`);
    const error = h('p', { class: 'error', role: 'alert' });
    /** @param {() => Promise<any>} action */
    const send = async (action) => {
      try {
        const c = await action();
        app.navigate(`/consultations/${c.id}`);
      } catch (err) {
        error.textContent = /** @type {Error} */ (err).message;
      }
    };
    mount(root,
      h('h1', { id: 'wz' }, t('wizard.chooseExpert')),
      h('p', { class: 'step' }, t('wizard.step', { n: 3 })),
      h('ol', { class: 'list candidates' }, candidates.items.map((/** @type {any} */ c) => h('li', null,
        h('div', null, h('strong', null, c.name), ' ',
          h('span', { class: 'muted' }, c.earliest_slot ? t('wizard.earliest', { at: when(c.earliest_slot) }) : t('wizard.noSlot')),
          h('ul', { class: 'reasons' }, c.reasons.map((/** @type {string} */ r) => h('li', null, r)))),
        h('button', { class: 'primary', onclick: () => send(async () => {
          // The addressee of a draft cannot be changed: the pool draft gives way to a request
          // addressed to the chosen expert.
          await post(`/api/v1/consultations/${draftId}/cancel`, { reason: 'addressed to a named expert' });
          return post('/api/v1/consultations', { ...request, addressee: { kind: 'expert', expert_id: c.expert_id } });
        }) }, t('wizard.sendTo', { name: c.name }))))),
      h('button', { onclick: () => send(() => post(`/api/v1/consultations/${draftId}/submit`)) }, t('wizard.sendPool')),
      error);
  };

  step1();
  return root;
}
