// Coordinator and administrator: figures, the consortium's links, organisations, user accounts,
// devices and (admins) the audit trail.
import { h, when } from '../dom.js';
import { t, lang } from '../i18n.js';
import { get, api, post } from '../api.js';
import { STATE_ORDER } from './common.js';

/**
 * Counts of items by a key.
 * @template T
 * @param {T[]} items
 * @param {(item: T) => string} key
 * @returns {Map<string, number>}
 */
export function countBy(items, key) {
  const out = new Map();
  for (const item of items) out.set(key(item), (out.get(key(item)) || 0) + 1);
  return out;
}

/**
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function adminHome(app) {
  const [orgs, users, figures, devices, specialties, links] = await Promise.all([
    get('/api/v1/organisations'), get('/api/v1/users'), get('/api/v1/figures'), get('/api/v1/devices?limit=200'),
    get('/api/v1/specialties'), get('/api/v1/consortium-links'),
  ]);
  const usersBody = h('tbody', null, users.items.map((/** @type {any} */ u) => userRow(app, u, specialties.items)));
  const byRole = countBy(users.items, (/** @type {any} */ u) => u.role);
  const referrals = referralTotals(figures.referrals_per_month);
  return h('div', { class: 'stack' },
    h('h1', null, t(app.user().role === 'admin' ? 'admin.home' : 'coordinator.home')),
    h('section', { class: 'card', 'aria-labelledby': 'fig' }, h('h2', { id: 'fig' }, t('admin.figures')),
      h('div', { class: 'figures' },
        figure(t('admin.organisations'), orgs.items.length),
        figure(t('admin.users'), users.items.length),
        figure(t('admin.consultations'), figures.consultations_total),
        STATE_ORDER.filter((s) => figures.by_state[s]).map((s) => figure(t(`state.${s}`), figures.by_state[s])),
        figure(t('admin.toAcceptance'), minutesText(figures.median_minutes_to_acceptance)),
        figure(t('admin.toOpinion'), minutesText(figures.median_minutes_to_signed_opinion)),
        figure(t('admin.referralsUp'), referrals.up),
        figure(t('admin.referralsDown'), referrals.down))),
    linksSection(app, orgs.items, links.items),
    h('section', { class: 'card', 'aria-labelledby': 'orgs' }, h('h2', { id: 'orgs' }, t('admin.organisations')),
      h('table', null,
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('admin.name')), h('th', { scope: 'col' }, t('admin.kind')), h('th', { scope: 'col' }, t('admin.address')))),
        h('tbody', null, orgs.items.map((/** @type {any} */ o) => h('tr', null, h('td', null, o.name), h('td', null, t(`orgKind.${o.kind}`)), h('td', null, o.address)))))),
    h('section', { class: 'card', 'aria-labelledby': 'users' }, h('h2', { id: 'users' }, t('admin.users')),
      h('p', null, [...byRole].map(([r, n]) => `${t(`role.${r}`)} ${n}`).join(' · ')),
      h('table', null,
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('admin.name')), h('th', { scope: 'col' }, t('admin.username')), h('th', { scope: 'col' }, t('admin.role')), h('th', { scope: 'col' }, t('admin.organisation')), h('th', { scope: 'col' }, t('admin.status')), h('th', { scope: 'col' }, t('common.actions')))),
        usersBody),
      newAccount(app, orgs.items, specialties.items, (u) => usersBody.append(userRow(app, u, specialties.items)))),
    devicesSection(orgs.items, devices.items),
    app.user().role === 'admin' ? await auditSection() : null,
  );
}

/**
 * The audit trail's newest events (admins only: the server refuses anyone else), with a
 * switch to the refusals alone.
 * @returns {Promise<HTMLElement>}
 */
async function auditSection() {
  const events = (await get('/api/v1/audit?limit=200')).items;
  const body = h('tbody');
  const onlyRefused = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', id: 'audit-refused' }));
  const render = () => {
    const shown = events.filter((/** @type {any} */ e) => !onlyRefused.checked || e.outcome !== 'success');
    body.replaceChildren(...(shown.length ? shown.map((/** @type {any} */ e) => h('tr', { 'data-outcome': e.outcome },
      h('td', null, when(e.at)),
      h('td', null, e.actor_name || e.actor_id || t('audit.system'), ' ', h('span', { class: 'muted' }, t(`role.${e.actor_role}`))),
      h('td', null, e.action),
      h('td', null, e.resource_type, ' ', h('span', { class: 'muted' }, e.resource_id)),
      h('td', null, t(`audit.outcome.${e.outcome}`)),
      h('td', null, e.detail)))
      : [h('tr', null, h('td', { colspan: '6', class: 'muted' }, t('common.none')))]));
  };
  onlyRefused.addEventListener('change', render);
  render();
  return h('section', { class: 'card', 'aria-labelledby': 'audit' }, h('h2', { id: 'audit' }, t('audit.title')),
    h('label', { class: 'check' }, onlyRefused, ' ', t('audit.onlyRefused')),
    h('table', { class: 'audit' },
      h('thead', null, h('tr', null, ['audit.at', 'audit.actor', 'audit.action', 'audit.resource', 'audit.outcome', 'audit.detail']
        .map((k) => h('th', { scope: 'col' }, t(k))))),
      body));
}

/**
 * Devices (check-in kiosks, clinic devices): issue one (its token shown once, to copy onto
 * the device) and revoke one (its token stops working at once).
 * @param {any[]} orgs
 * @param {any[]} devices
 * @returns {HTMLElement}
 */
function devicesSection(orgs, devices) {
  const body = h('tbody');
  const renderRows = () => {
    body.replaceChildren(...(devices.length
      ? devices.map((d) => deviceRow(d, () => { devices = devices.filter((x) => x.id !== d.id); renderRows(); }))
      : [h('tr', null, h('td', { colspan: '5', class: 'muted' }, t('device.none')))]));
  };
  renderRows();
  const issued = h('div', { class: 'issued', role: 'status' });
  const error = h('p', { class: 'error', role: 'alert' });
  const kind = /** @type {HTMLSelectElement} */ (h('select', { id: 'dev-kind', name: 'kind' },
    ['kiosk', 'clinic'].map((k) => h('option', { value: k }, t(`device.kind.${k}`)))));
  const org = /** @type {HTMLSelectElement} */ (h('select', { id: 'dev-org', name: 'organisation_id' },
    orgs.filter((o) => o.active).map((o) => h('option', { value: o.id }, o.name))));
  const label = /** @type {HTMLInputElement} */ (h('input', { id: 'dev-label', name: 'label', required: true, maxlength: '100' }));
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid device-issue' },
    h('div', { class: 'field' }, h('label', { for: 'dev-kind' }, t('device.kind')), kind),
    h('div', { class: 'field' }, h('label', { for: 'dev-org' }, t('device.organisation')), org),
    h('div', { class: 'field' }, h('label', { for: 'dev-label' }, t('device.label')), label),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('device.issue'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    try {
      const answer = await post('/api/v1/devices', { kind: kind.value, organisation_id: org.value, label: label.value });
      devices = [...devices, answer.device];
      renderRows();
      form.reset();
      issued.replaceChildren(...tokenShownOnce(answer.token, 'dev-token', t('device.token')));
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'devices' }, h('h2', { id: 'devices' }, t('device.title')),
    h('table', { class: 'devices' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('device.label')), h('th', { scope: 'col' }, t('device.kind')),
        h('th', { scope: 'col' }, t('device.organisation')), h('th', { scope: 'col' }, t('device.lastSeen')), h('th', { scope: 'col' }, t('common.actions')))),
      body),
    h('h3', null, t('device.issue')), form, issued);
}

/**
 * A device token as it is handed over, once: what it is for, the token selected for copying,
 * and a copy button.
 * @param {string} token
 * @param {string} id the input's id
 * @param {string} words what to do with it
 * @returns {HTMLElement[]}
 */
export function tokenShownOnce(token, id, words) {
  const input = /** @type {HTMLInputElement} */ (h('input', { id, class: 'device-token', readonly: true, value: token, 'aria-label': words }));
  const copy = h('button', { type: 'button', onclick: async () => {
    input.select();
    try { await navigator.clipboard.writeText(token); copy.textContent = t('device.copied'); } catch { /* selected for copying by hand */ }
  } }, t('device.copy'));
  return [h('p', null, words), input, copy];
}

/**
 * One device with its revocation, confirmed first.
 * @param {any} d
 * @param {() => void} gone called once the device is revoked
 * @param {boolean} [full] with its kind and organisation (the admin's list); a patient's
 *   record lists only her home devices, by name
 */
export function deviceRow(d, gone, full = true) {
  const actions = h('td', { class: 'actions' });
  const message = h('p', { role: 'status', class: 'hint' });
  const render = () => {
    actions.replaceChildren(h('button', { onclick: () => {
      actions.replaceChildren(
        h('span', null, t('device.confirmRevoke', { label: d.label })),
        h('button', { class: 'primary', onclick: async () => {
          try {
            await post(`/api/v1/devices/${d.id}/revoke`, {});
            gone();
          } catch (err) { message.textContent = /** @type {Error} */ (err).message; render(); }
        } }, t('admin.confirm')),
        h('button', { onclick: render }, t('admin.cancel')), message);
    } }, t('device.revoke')), message);
  };
  render();
  return h('tr', { 'data-device': d.id }, h('td', null, d.label),
    full ? [h('td', null, t(`device.kind.${d.kind}`)), h('td', null, d.organisation_name)] : null,
    h('td', null, d.last_seen_at ? when(d.last_seen_at) : t('device.never')), actions);
}

/**
 * Whether the signed-in manager manages `account` (the server decides; this only hides
 * buttons that would be refused): admins every account but their own, coordinators the
 * clinicians and patients of the organisations they see.
 * @param {any} me
 * @param {any} account
 */
export function manages(me, account) {
  if (me.id === account.id) return false;
  if (me.role === 'admin') return true;
  return me.role === 'coordinator' && ['community_doctor', 'expert', 'patient'].includes(account.role);
}

/**
 * A new clinician's (or, for the admin, coordinator's) account. Its first password is a
 * one-time password made here and shown once, to hand over in person: it opens nothing but
 * setting one's own at the first sign-in, so the person who made the account cannot act as
 * its owner.
 * @param {import('../main.js').App} app
 * @param {any[]} orgs
 * @param {any[]} specialties
 * @param {(u: any) => void} added called with the account once it is made
 * @returns {HTMLElement}
 */
function newAccount(app, orgs, specialties, added) {
  // A patient's login is bound to her record, which only her care team sees: the coordinators
  // of her consortium make it; the system's administrator, who takes part in no care, does not.
  const roles = app.user().role === 'admin' ? ['community_doctor', 'expert', 'coordinator'] : ['community_doctor', 'expert', 'patient'];
  const role = /** @type {HTMLSelectElement} */ (h('select', { id: 'acc-role', name: 'role' },
    roles.map((r) => h('option', { value: r }, t(`role.${r}`)))));
  const org = /** @type {HTMLSelectElement} */ (h('select', { id: 'acc-org', name: 'organisation_id' },
    orgs.filter((o) => o.active).map((o) => h('option', { value: o.id }, o.name))));
  const title = /** @type {HTMLSelectElement} */ (h('select', { id: 'acc-title', name: 'title' },
    ['resident', 'attending', 'associate_chief', 'chief'].map((x) => h('option', { value: x }, t(`title.${x}`)))));
  const boxes = specialties.map((s) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'specialty', value: s.code }), ' ', lang() === 'en' ? s.name_en : s.name_zh));
  const expertFields = h('fieldset', { class: 'expert-fields', hidden: true },
    h('legend', null, t('role.expert')),
    h('div', { class: 'field' }, h('label', { for: 'acc-title' }, t('admin.title')), title),
    h('div', { class: 'field' }, h('span', { class: 'label' }, t('admin.specialties')), h('div', { class: 'checks' }, boxes)));
  // A patient's own login belongs to her record: found by name among the records the caller
  // may see, and made at her centre.
  const query = /** @type {HTMLInputElement} */ (h('input', { id: 'acc-patient-q', autocomplete: 'off' }));
  const record = /** @type {HTMLSelectElement} */ (h('select', { id: 'acc-patient', name: 'patient_id' }));
  /** @type {Map<string, any>} */
  const found = new Map();
  const choose = () => {
    const p = found.get(record.value);
    if (p) org.value = p.home_organisation_id;
  };
  record.addEventListener('change', choose);
  const search = async () => {
    error.textContent = '';
    const items = (await get(`/api/v1/patients?q=${encodeURIComponent(query.value.trim())}`)).items;
    found.clear();
    for (const p of items) found.set(p.id, p);
    record.replaceChildren(...items.map((/** @type {any} */ p) => h('option', { value: p.id },
      `${p.name} · ${p.birth_date || ''} · ${orgs.find((o) => o.id === p.home_organisation_id)?.name || ''}`)));
    if (!items.length) error.textContent = t('admin.noPatient');
    choose();
  };
  const patientFields = h('fieldset', { class: 'patient-fields', hidden: true },
    h('legend', null, t('admin.patientRecord')),
    h('div', { class: 'field' }, h('label', { for: 'acc-patient-q' }, t('admin.patientName')), query),
    h('button', { type: 'button', onclick: () => { search().catch((err) => { error.textContent = err.message; }); } }, t('admin.findPatient')),
    h('div', { class: 'field' }, h('label', { for: 'acc-patient' }, t('admin.patientRecord')), record));
  role.addEventListener('change', () => {
    expertFields.hidden = role.value !== 'expert';
    patientFields.hidden = role.value !== 'patient';
    org.disabled = role.value === 'patient';
  });
  const error = h('p', { class: 'error', role: 'alert' });
  const done = h('p', { class: 'issued', role: 'status' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid new-account' },
    h('div', { class: 'field' }, h('label', { for: 'acc-name' }, t('admin.name')),
      h('input', { id: 'acc-name', name: 'display_name', required: true, maxlength: '100', autocomplete: 'off' })),
    h('div', { class: 'field' }, h('label', { for: 'acc-username' }, t('admin.username')),
      h('input', { id: 'acc-username', name: 'username', required: true, maxlength: '64', autocomplete: 'off', autocapitalize: 'none' })),
    h('div', { class: 'field' }, h('label', { for: 'acc-role' }, t('admin.role')), role),
    h('div', { class: 'field' }, h('label', { for: 'acc-org' }, t('admin.organisation')), org),
    expertFields, patientFields, error,
    h('button', { type: 'submit', class: 'primary' }, t('admin.create'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    done.textContent = '';
    const name = /** @type {HTMLInputElement} */ (form.elements.namedItem('display_name')).value.trim();
    const username = /** @type {HTMLInputElement} */ (form.elements.namedItem('username')).value.trim();
    /** @type {Record<string, any>} */
    const body = { username, display_name: name, role: role.value, organisation_id: org.value, password: oneTimePassword() };
    if (role.value === 'patient') {
      const p = found.get(record.value);
      if (!p) { error.textContent = t('admin.needPatient'); return; }
      body.patient_id = p.id;
      body.organisation_id = p.home_organisation_id;
    }
    if (role.value === 'expert') {
      const chosen = [...form.querySelectorAll('input[name=specialty]:checked')].map((b) => /** @type {HTMLInputElement} */ (b).value);
      if (!chosen.length) { error.textContent = t('admin.needSpecialty'); return; }
      body.expert = { title: title.value, specialties: chosen };
    }
    try {
      const u = await post('/api/v1/users', body);
      added(u);
      form.reset();
      expertFields.hidden = true;
      patientFields.hidden = true;
      org.disabled = false;
      record.replaceChildren();
      found.clear();
      done.textContent = t('admin.createdDone', { name: u.display_name, username: u.username, password: body.password });
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return h('div', null, h('h3', null, t('admin.newAccount')), form, done);
}

/** A one-time password to hand over: 12 characters without look-alikes. */
function oneTimePassword() {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return [...bytes].map((b) => alphabet[b % alphabet.length]).join('');
}

/**
 * One account with its status and, for those the caller manages, deactivation and password
 * reset, each confirmed first; for an expert, also their title and specialties, which decide
 * the requests they are matched with and the pool requests they see.
 * @param {import('../main.js').App} app
 * @param {any} u
 * @param {any[]} specialties every specialty
 */
function userRow(app, u, specialties) {
  const status = h('td', null, t(u.active ? 'admin.active' : 'admin.inactive'));
  const actions = h('td', { class: 'actions' });
  const message = h('p', { role: 'status', class: 'hint' });
  const render = () => {
    actions.replaceChildren();
    if (!manages(app.user(), u)) return;
    const ask = (/** @type {string} */ question, /** @type {() => Promise<void>} */ go) => {
      actions.replaceChildren(
        h('span', null, question),
        h('button', { class: 'primary', onclick: async () => {
          try { await go(); } catch (err) { message.textContent = /** @type {Error} */ (err).message; }
          render();
        } }, t('admin.confirm')),
        h('button', { onclick: render }, t('admin.cancel')),
        message);
    };
    actions.append(
      h('button', { onclick: () => ask(t(u.active ? 'admin.confirmDeactivate' : 'admin.confirmActivate', { name: u.display_name }), async () => {
        const after = await api('PATCH', `/api/v1/users/${u.id}`, { active: !u.active });
        u.active = after.active;
        status.textContent = t(u.active ? 'admin.active' : 'admin.inactive');
        message.textContent = t(u.active ? 'admin.activated' : 'admin.deactivated', { name: u.display_name });
      }) }, t(u.active ? 'admin.deactivate' : 'admin.activate')),
      // A patient's password is set by the coordinators of her consortium, not by the admin,
      // who takes part in no care (a password they set would let them sign in as her).
      ...(app.user().role === 'admin' && u.role === 'patient' ? [] : [h('button', { onclick: () => ask(t('admin.confirmReset', { name: u.display_name }), async () => {
        const password = oneTimePassword();
        await api('PATCH', `/api/v1/users/${u.id}`, { password });
        message.textContent = t('admin.resetDone', { name: u.display_name, password });
      }) }, t('admin.resetPassword'))]),
      ...(u.expert ? [h('button', { onclick: editProfile }, t('admin.editProfile'))] : []),
      message);
  };
  const editProfile = () => {
    const key = `prof-${u.id}`;
    const title = /** @type {HTMLSelectElement} */ (h('select', { id: `${key}-title`, name: 'title' },
      ['resident', 'attending', 'associate_chief', 'chief'].map((x) => h('option', { value: x, selected: x === u.expert.title }, t(`title.${x}`)))));
    const boxes = specialties.map((sp) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'specialty', value: sp.code, checked: u.expert.specialties.includes(sp.code) }), ' ',
      lang() === 'en' ? sp.name_en : sp.name_zh));
    const error = h('p', { class: 'error', role: 'alert' });
    const form = /** @type {HTMLFormElement} */ (h('form', { class: 'with-reason expert-profile' },
      h('div', { class: 'field' }, h('label', { for: `${key}-title` }, t('admin.title')), title),
      h('fieldset', null, h('legend', null, t('admin.specialties')), boxes),
      error,
      h('button', { type: 'submit', class: 'primary' }, t('admin.saveProfile')),
      h('button', { type: 'button', onclick: render }, t('change.back'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const chosen = [...form.querySelectorAll('input[name=specialty]:checked')].map((b) => /** @type {HTMLInputElement} */ (b).value);
      if (!chosen.length) { error.textContent = t('admin.needSpecialty'); return; }
      try {
        const after = await api('PATCH', `/api/v1/users/${u.id}`, { expert: { title: title.value, specialties: chosen } });
        u.expert = after.expert;
        roleCell.textContent = roleText();
        render();
        message.textContent = t('admin.profileSaved', { name: u.display_name });
      } catch (err) {
        error.textContent = /** @type {Error} */ (err).message;
      }
    });
    actions.replaceChildren(form, message);
  };
  const roleText = () => u.expert ? `${t(`role.${u.role}`)} · ${t(`title.${u.expert.title}`)}` : t(`role.${u.role}`);
  const roleCell = h('td', null, roleText());
  render();
  return h('tr', null, h('td', null, u.display_name), h('td', null, u.username), roleCell, h('td', null, u.organisation_name), status, actions);
}

/**
 * Referrals up (to a hospital) and down (to a centre) over every month of the figures.
 * @param {Record<string, Record<string, number>>} perMonth
 * @returns {{ up: number, down: number }}
 */
export function referralTotals(perMonth) {
  let up = 0;
  let down = 0;
  for (const month of Object.values(perMonth || {})) {
    up += month.up || 0;
    down += month.down || 0;
  }
  return { up, down };
}

/**
 * A median duration in minutes as a person reads it: minutes under two hours, hours under two
 * days, days beyond; a dash when there is none yet.
 * @param {number | null | undefined} minutes
 * @returns {string}
 */
export function minutesText(minutes) {
  if (minutes == null || !Number.isFinite(minutes)) return '–';
  if (minutes < 120) return t('admin.minutes', { n: Math.round(minutes) });
  if (minutes < 48 * 60) return t('admin.hours', { n: Math.round(minutes / 6) / 10 });
  return t('admin.days', { n: Math.round(minutes / 144) / 10 });
}

/**
 * The consortium: which hospital each centre belongs to. A coordinator links a centre that no
 * hospital holds yet to its own hospital; an admin links any and ends a link, with a reason
 * (the hospital's coordinators lose the centre's records at once).
 * @param {import('../main.js').App} app
 * @param {any[]} orgs
 * @param {any[]} links
 * @returns {HTMLElement}
 */
function linksSection(app, orgs, links) {
  const me = app.user();
  const isAdmin = me.role === 'admin';
  const body = h('tbody');
  const said = h('p', { role: 'status', class: 'hint' });
  const renderRows = () => {
    body.replaceChildren(...(links.length
      ? links.map((l) => linkRow(l, isAdmin, said, () => { links = links.filter((x) => x.id !== l.id); renderRows(); }))
      : [h('tr', null, h('td', { colspan: '4', class: 'muted' }, t('link.none')))]));
  };
  renderRows();
  const hospitals = orgs.filter((o) => o.active && o.kind === 'tertiary_hospital' && (isAdmin || o.id === me.organisation_id));
  const linked = new Set(links.map((l) => l.centre_id));
  const centres = orgs.filter((o) => o.active && o.kind !== 'tertiary_hospital' && (isAdmin || !linked.has(o.id)));
  const hospital = /** @type {HTMLSelectElement} */ (h('select', { id: 'link-hospital', name: 'hospital_id' },
    hospitals.map((o) => h('option', { value: o.id }, o.name))));
  const centre = /** @type {HTMLSelectElement} */ (h('select', { id: 'link-centre', name: 'centre_id' },
    centres.map((o) => h('option', { value: o.id }, o.name))));
  const error = h('p', { class: 'error', role: 'alert' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid link-new' },
    h('div', { class: 'field' }, h('label', { for: 'link-hospital' }, t('link.hospital')), hospital),
    h('div', { class: 'field' }, h('label', { for: 'link-centre' }, t('link.centre')), centre),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('link.create'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    said.textContent = '';
    try {
      const made = await post('/api/v1/consortium-links', { hospital_id: hospital.value, centre_id: centre.value });
      const name = (/** @type {string} */ id) => orgs.find((o) => o.id === id)?.name || id;
      links = [...links, { ...made, hospital_name: name(made.hospital_id), centre_name: name(made.centre_id), created_at: new Date().toISOString() }];
      renderRows();
      said.textContent = t('link.made', { hospital: name(made.hospital_id), centre: name(made.centre_id) });
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'links' }, h('h2', { id: 'links' }, t('link.title')),
    h('table', { class: 'links' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('link.hospital')), h('th', { scope: 'col' }, t('link.centre')),
        h('th', { scope: 'col' }, t('link.since')), h('th', { scope: 'col' }, t('common.actions')))),
      body),
    said,
    hospitals.length && centres.length ? [h('h3', null, t('link.create')), form] : null);
}

/**
 * One link; for an admin, ending it: the reason asked for and the ending confirmed first.
 * @param {any} l
 * @param {boolean} mayEnd
 * @param {HTMLElement} said where the outcome is said
 * @param {() => void} ended called once the link has ended
 * @returns {HTMLElement}
 */
function linkRow(l, mayEnd, said, ended) {
  const actions = h('td', { class: 'actions' });
  const render = () => {
    actions.replaceChildren();
    if (!mayEnd) return;
    actions.append(h('button', { onclick: ask }, t('link.end')));
  };
  const ask = () => {
    const reason = /** @type {HTMLInputElement} */ (h('input', { id: `link-reason-${l.id}`, name: 'reason', required: true, maxlength: '2000' }));
    const error = h('p', { class: 'error', role: 'alert' });
    const form = /** @type {HTMLFormElement} */ (h('form', { class: 'link-end' },
      h('p', null, t('link.confirmEnd', { hospital: l.hospital_name, centre: l.centre_name })),
      h('div', { class: 'field' }, h('label', { for: `link-reason-${l.id}` }, t('link.reason')), reason),
      error,
      h('button', { type: 'submit', class: 'primary' }, t('link.endConfirm')),
      h('button', { type: 'button', onclick: render }, t('admin.cancel'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      try {
        await post(`/api/v1/consortium-links/${l.id}/end`, { reason: reason.value });
        said.textContent = t('link.ended', { hospital: l.hospital_name, centre: l.centre_name });
        ended();
      } catch (err) {
        error.textContent = /** @type {Error} */ (err).message;
      }
    });
    actions.replaceChildren(form);
    reason.focus();
  };
  render();
  return h('tr', { 'data-link': l.id }, h('td', null, l.hospital_name), h('td', null, l.centre_name), h('td', null, when(l.created_at)), actions);
}

/**
 * @param {string} label
 * @param {number | string} value
 */
function figure(label, value) {
  return h('div', { class: 'figure' }, h('span', { class: 'value' }, String(value)), h('span', { class: 'label' }, label));
}
