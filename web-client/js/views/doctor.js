// Community doctor: patients (list, search, register) and the consultations they requested.
import { h, mount, field, formValues } from '../dom.js';
import { t } from '../i18n.js';
import { get, post } from '../api.js';
import { consultationList } from './common.js';

/**
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function doctorHome(app) {
  const [patients, active, ended] = await Promise.all([
    get('/api/v1/patients'),
    // Every consultation still open, however long ago it was asked for (a page of the newest
    // would lose a slot booked weeks ahead), and the most recently ended ones.
    get('/api/v1/consultations?active=true&limit=200'),
    get('/api/v1/consultations?active=false&limit=20'),
  ]);
  const patientList = h('ul', { class: 'list', 'aria-label': t('doctor.patients') });
  /** @param {any[]} items */
  const renderPatients = (items) => mount(patientList, items.length ? items.map((p) => h('li', null,
    h('span', null, h('strong', null, p.name), ' ', h('span', { class: 'muted' }, `${t(`sex.${p.sex}`)} · ${p.birth_date}`)),
    h('button', { onclick: () => app.navigate(`/consultations/new?patient=${p.id}`) }, t('doctor.requestFor')),
    h('button', { onclick: () => app.navigate(`/patients/${p.id}`) }, t('doctor.record')),
  )) : h('li', { class: 'muted' }, t('common.none')));
  renderPatients(patients.items);

  const search = /** @type {HTMLInputElement} */ (h('input', { name: 'q', type: 'search' }));
  search.addEventListener('input', async () => {
    const page = await get(`/api/v1/patients?q=${encodeURIComponent(search.value)}`);
    renderPatients(page.items);
  });

  const error = h('p', { class: 'error', role: 'alert' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid' },
    field(t('patient.name'), h('input', { name: 'name', required: true })),
    field(t('patient.sex'), h('select', { name: 'sex' },
      h('option', { value: 'female' }, t('sex.female')), h('option', { value: 'male' }, t('sex.male')))),
    field(t('patient.birthDate'), h('input', { name: 'birth_date', type: 'date', required: true })),
    field(t('patient.phone'), h('input', { name: 'phone', type: 'tel' })),
    field(t('patient.residentId'), h('input', { name: 'resident_id' })),
    field(t('identifier.cardNumber'), h('input', { name: 'card_number', inputmode: 'numeric', autocomplete: 'off' })),
    field(t('identifier.cardIssuer'), h('input', { name: 'card_issuer', placeholder: t('identifier.cardIssuerDefault') })),
    field(t('identifier.insurance.number'), h('input', { name: 'insurance_number', autocomplete: 'off' })),
    field(t('identifier.insurance.issuer'), h('input', { name: 'insurance_issuer' })),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('doctor.registerPatient')),
  ));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    try {
      const { card_number, card_issuer, insurance_number, insurance_issuer, ...record } = formValues(form);
      const identifiers = [];
      if (card_number.trim()) identifiers.push({ kind: 'health_card', value: card_number, issuer: card_issuer.trim() || undefined });
      if (insurance_number.trim()) identifiers.push({ kind: 'insurance', value: insurance_number, issuer: insurance_issuer.trim() || undefined });
      const p = await post('/api/v1/patients', { ...record, identifiers });
      patients.items.unshift(p);
      renderPatients(patients.items);
      form.reset();
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });

  return h('div', { class: 'stack' },
    h('h1', null, t('doctor.home')),
    h('div', { class: 'actions' }, h('button', { class: 'primary', onclick: () => app.navigate('/consultations/new') }, t('doctor.newConsultation')),
      h('button', { onclick: () => app.navigate('/opinions') }, t('opinion.received')),
      h('button', { onclick: () => app.navigate('/referrals') }, t('referral.title')),
      h('button', { onclick: () => app.navigate('/follow-ups') }, t('followup.title')),
      h('button', { onclick: () => app.navigate('/worklist') }, t('worklist.title'))),
    h('section', { class: 'card', 'aria-labelledby': 'pl' }, h('h2', { id: 'pl' }, t('doctor.patients')),
      field(t('common.search'), search), patientList),
    h('section', { class: 'card', 'aria-labelledby': 'pr' }, h('h2', { id: 'pr' }, t('doctor.registerPatient')), form),
    h('section', { class: 'card', 'aria-labelledby': 'mc' }, h('h2', { id: 'mc' }, t('doctor.myConsultations')),
      consultationList(app, [...active.items, ...ended.items], true)),
  );
}
