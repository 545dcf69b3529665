// New-consultation wizard: 1 patient and clinical question, 2 informed consent,
// 3 addressee chosen from the candidates ranked for the request's criteria, then send.
// Nothing is stored before the doctor sends.
import { h, mount, field, formValues, when } from '../dom.js';
import { t, lang } from '../i18n.js';
import { get, post } from '../api.js';
import { candidateReasons } from '../reasons.js';
import { dropZone, pendingUploads, size } from './files.js';

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
  /** Attachments chosen now, sent once the request exists (nothing is stored before). @type {File[]} */
  const attachments = [];
  const attachmentList = h('ul', { class: 'list attachments', 'aria-label': t('wizard.attachments') });
  const showAttachments = () => mount(attachmentList, attachments.map((f, i) => h('li', null,
    `${f.name} · ${size(f.size)}`,
    h('button', { type: 'button', onclick: () => { attachments.splice(i, 1); showAttachments(); } }, t('common.remove', {})))));

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
      h('div', { class: 'field' }, h('span', { class: 'label' }, t('wizard.attachments')),
        dropZone('wizard-upload', (files) => { attachments.push(...files); showAttachments(); }), attachmentList),
      h('button', { type: 'submit', class: 'primary' }, t('common.next')),
    ));
    form.addEventListener('submit', (e) => { e.preventDefault(); Object.assign(request, formValues(form)); step2(); });
    showAttachments();
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
      if (v.given_by === 'guardian' && !String(v.guardian_name || '').trim()) {
        error.textContent = t('wizard.guardianNeeded');
        return;
      }
      request.consent = { given_by: v.given_by, guardian_name: v.guardian_name || '', method: v.method, at: new Date().toISOString() };
      try {
        await step3();
      } catch (err) {
        error.textContent = /** @type {Error} */ (err).message;
      }
    });
    mount(root, h('h1', { id: 'wz' }, t('wizard.consentTitle')), h('p', { class: 'step' }, t('wizard.step', { n: 2 })), form);
  };

  const step3 = async () => {
    // Ranked for the criteria as filled in; the request itself is stored only when sent.
    const candidates = await post('/api/v1/consultations/candidates', {
      specialty: request.specialty, min_title: request.min_title, urgency: request.urgency,
    });
    /** @param {string} code */
    const specialtyName = (code) => {
      const s = specialties.items.find((/** @type {any} */ x) => x.code === code);
      return s ? (lang() === 'en' ? s.name_en : s.name_zh) : code;
    };
    const error = h('p', { class: 'error', role: 'alert' });
    /** @param {Record<string, any>} addressee */
    const send = async (addressee) => {
      try {
        const c = await post('/api/v1/consultations', { ...request, addressee });
        if (attachments.length) pendingUploads.set(c.id, [...attachments]);
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
          h('ul', { class: 'reasons' }, candidateReasons(c, t, specialtyName).map((r) => h('li', null, r)))),
        h('button', { class: 'primary', onclick: () => send({ kind: 'expert', expert_id: c.expert_id }) },
          t('wizard.sendTo', { name: c.name }))))),
      h('button', { onclick: () => send({ kind: 'pool' }) }, t('wizard.sendPool')),
      error);
  };

  step1();
  return root;
}
