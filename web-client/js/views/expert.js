// Expert: requests waiting for an answer, the weekly availability, extra sessions and leave,
// upcoming appointments.
import { h, mount, when, field, formValues } from '../dom.js';
import { t } from '../i18n.js';
import { get, put, post } from '../api.js';
import { consultationList } from './common.js';

/**
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function expertHome(app) {
  const me = app.user();
  const [active, appointments, availability] = await Promise.all([
    // Every consultation still open, in one list: the requests waiting for an answer, and
    // his own however long ago they began (a page of his newest would lose an old one).
    get('/api/v1/consultations?active=true&limit=200'),
    // Upcoming: from the start of today (an appointment under way still shows); the list
    // holds at most 500 by start, so without a start it would show the oldest ones.
    get(`/api/v1/appointments?from=${encodeURIComponent(startOfToday())}`),
    get(`/api/v1/experts/${me.id}/availability`),
  ]);
  const exceptions = await exceptionsSection(me.id);
  const requests = active.items.filter((/** @type {any} */ c) => c.state === 'requested');
  const open = active.items.filter((/** @type {any} */ c) => c.state !== 'requested');
  return h('div', { class: 'stack' },
    h('h1', null, t('expert.home')),
    h('section', { class: 'card', 'aria-labelledby': 'inbox' }, h('h2', { id: 'inbox' }, t('expert.inbox')),
      consultationList(app, requests, false)),
    h('section', { class: 'card', 'aria-labelledby': 'open' }, h('h2', { id: 'open' }, t('expert.open')),
      consultationList(app, open, true)),
    h('section', { class: 'card', 'aria-labelledby': 'appts' }, h('h2', { id: 'appts' }, t('expert.appointments')),
      appointments.items.length ? h('ul', { class: 'list' }, appointments.items.map((/** @type {any} */ a) => h('li', null,
        `${when(a.start)} – ${when(a.end)}`, h('span', { class: 'badge' }, t(`appointment.${a.status}`)),
        h('button', { onclick: () => app.navigate(`/consultations/${a.consultation_id}`) }, t('common.open')))))
        : h('p', { class: 'muted' }, t('common.none'))),
    availabilityEditor(me.id, availability, me.expert?.time_zone),
    exceptions,
  );
}

/**
 * One-off changes to the weekly rules: an extra session (its own slot length) or leave, each
 * with a reason, listed from now on and each withdrawable; a form adds one. Times are the
 * browser's local time.
 * @param {string} expertId
 * @returns {Promise<HTMLElement>}
 */
export async function exceptionsSection(expertId) {
  const base = `/api/v1/experts/${expertId}/exceptions`;
  const list = h('div');
  const error = h('p', { class: 'error', role: 'alert' });
  const status = h('p', { role: 'status' });
  const render = async () => {
    const items = (await get(base)).items;
    mount(list, items.length ? h('ul', { class: 'list exceptions' }, items.map((/** @type {any} */ x) => h('li', { 'data-kind': x.kind },
      h('div', null,
        h('p', null, h('span', { class: `badge kind-${x.kind}` }, t(`exception.${x.kind}`)), ' ', `${when(x.start)} – ${when(x.end)}`,
          x.kind === 'extra' ? ` · ${t('exception.slotOf', { n: x.slot_minutes })}` : ''),
        x.reason ? h('p', { class: 'hint' }, x.reason) : null),
      h('button', { onclick: async () => {
        error.textContent = '';
        try {
          await post(`${base}/${x.id}/withdraw`, {});
          status.textContent = t('exception.withdrawn');
          await render();
        } catch (err) {
          error.textContent = /** @type {Error} */ (err).message;
        }
      } }, t('exception.withdraw')))))
      : h('p', { class: 'muted' }, t('exception.none')));
  };
  await render();
  const slot = field(t('availability.slot'), h('input', { name: 'slot_minutes', type: 'number', min: 5, max: 480, value: 30 }));
  const kind = /** @type {HTMLSelectElement} */ (h('select', { name: 'kind' },
    ['extra', 'leave'].map((k) => h('option', { value: k }, t(`exception.${k}`)))));
  kind.addEventListener('change', () => { slot.hidden = kind.value !== 'extra'; });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid new-exception' },
    field(t('exception.kind'), kind),
    field(t('exception.start'), h('input', { name: 'start', type: 'datetime-local', required: true })),
    field(t('exception.end'), h('input', { name: 'end', type: 'datetime-local', required: true })),
    slot,
    field(t('exception.reason'), h('input', { name: 'reason' })),
    h('button', { type: 'submit', class: 'primary' }, t('exception.add'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    status.textContent = '';
    const v = formValues(form);
    try {
      await post(base, {
        kind: v.kind, start: new Date(v.start).toISOString(), end: new Date(v.end).toISOString(), reason: v.reason,
        ...(v.kind === 'extra' ? { slot_minutes: Number(v.slot_minutes) } : {}),
      });
      status.textContent = t('exception.added');
      await render();
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'exc-h' },
    h('h2', { id: 'exc-h' }, t('exception.title')), h('p', { class: 'hint' }, t('exception.hint')), list, form, error, status);
}

/** @returns {string} the start of the local day, as an RFC 3339 time in UTC */
function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

/**
 * The IANA zones the browser knows, for the time-zone field's suggestions.
 * @returns {string[]}
 */
function knownZones() {
  try {
    return /** @type {any} */ (Intl).supportedValuesOf('timeZone');
  } catch {
    return [];
  }
}

/**
 * An IANA time zone as typed, checked by the browser's own zone database and spelt as listed
 * there (the server compares names case by case); null when it is no zone.
 * @param {string} typed
 * @param {string[]} zones
 * @returns {string | null}
 */
export function zoneName(typed, zones) {
  const v = typed.trim();
  // A name from the zone database (Intl would also take an offset such as +08:00).
  if (!/^[A-Za-z][\w+\-/]*$/.test(v)) return null;
  let resolved;
  try {
    resolved = new Intl.DateTimeFormat('en', { timeZone: v }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
  const same = (/** @type {string} */ z) => z.toLowerCase() === v.toLowerCase();
  return zones.find(same) || (same(resolved) ? resolved : v);
}

/**
 * Weekly rules as editable rows, in one time zone (the expert's, or wherever they see
 * patients from), with the booking policy; saved with PUT.
 * @param {string} expertId
 * @param {{rules: {weekday: number, start: string, end: string, slot_minutes: number, time_zone?: string | null}[],
 *   policy: {buffer_minutes: number, max_per_day: number, min_notice_minutes: number}}} availability
 * @param {string} [defaultZone] the expert's own zone, for a calendar without rules yet
 * @returns {HTMLElement}
 */
export function availabilityEditor(expertId, availability, defaultZone = 'Asia/Shanghai') {
  const rules = availability.rules.map((r) => ({ ...r }));
  const policy = { ...availability.policy };
  const status = h('p', { role: 'status' });
  const error = h('p', { class: 'error', role: 'alert' });
  const zones = knownZones();
  // One zone for the whole week: the server counts a day's appointments in the first rule's.
  const loadedZones = [...new Set(rules.map((r) => r.time_zone).filter(Boolean))];
  const zone = /** @type {HTMLInputElement} */ (h('input', {
    id: 'avail-tz', name: 'time_zone', list: 'avail-tz-list', autocomplete: 'off', spellcheck: 'false', required: true,
    value: loadedZones[0] || defaultZone, 'aria-describedby': 'avail-tz-hint',
  }));
  zone.addEventListener('input', () => zone.removeAttribute('aria-invalid'));
  const table = h('tbody');
  const render = () => mount(table, rules.map((r, i) => h('tr', null,
    h('td', null, h('select', { 'aria-label': t('availability.weekday'), onchange: (/** @type {Event} */ e) => { r.weekday = Number(/** @type {HTMLSelectElement} */ (e.target).value); } },
      [1, 2, 3, 4, 5, 6, 7].map((d) => h('option', { value: d, selected: d === r.weekday }, t(`weekday.${d}`))))),
    h('td', null, h('input', { type: 'time', value: r.start, 'aria-label': t('availability.start'), onchange: (/** @type {Event} */ e) => { r.start = /** @type {HTMLInputElement} */ (e.target).value; } })),
    h('td', null, h('input', { type: 'time', value: r.end, 'aria-label': t('availability.end'), onchange: (/** @type {Event} */ e) => { r.end = /** @type {HTMLInputElement} */ (e.target).value; } })),
    h('td', null, h('input', { type: 'number', min: 5, max: 480, value: r.slot_minutes, 'aria-label': t('availability.slot'), onchange: (/** @type {Event} */ e) => { r.slot_minutes = Number(/** @type {HTMLInputElement} */ (e.target).value); } })),
    h('td', null, h('button', { onclick: () => { rules.splice(i, 1); render(); } }, t('common.remove'))),
  )));
  render();
  /** The server's limits. */
  const limits = { buffer_minutes: 240, max_per_day: 100, min_notice_minutes: 43200 };
  /** @param {'buffer_minutes' | 'max_per_day' | 'min_notice_minutes'} key */
  const policyInput = (key) => h('div', { class: 'field' }, h('label', { for: `p-${key}` }, t(`availability.${key}`)),
    h('input', { id: `p-${key}`, type: 'number', min: 0, max: limits[key], value: policy[key], onchange: (/** @type {Event} */ e) => { policy[key] = Number(/** @type {HTMLInputElement} */ (e.target).value); } }));
  return h('section', { class: 'card', 'aria-labelledby': 'avail' },
    h('h2', { id: 'avail' }, t('availability.title')),
    h('div', { class: 'field' }, h('label', { for: 'avail-tz' }, t('availability.timeZone')), zone,
      h('datalist', { id: 'avail-tz-list' }, zones.map((z) => h('option', { value: z }))),
      h('p', { class: 'hint', id: 'avail-tz-hint' }, t('availability.timeZoneHint'),
        loadedZones.length > 1 ? ` ${t('availability.zonesDiffer', { zones: loadedZones.join('、') })}` : '')),
    h('table', null, h('thead', null, h('tr', null,
      ['weekday', 'start', 'end', 'slot'].map((k) => h('th', { scope: 'col' }, t(`availability.${k}`))), h('th', { scope: 'col' }, t('common.actions')))), table),
    h('button', { onclick: () => { rules.push({ weekday: 1, start: '09:00', end: '12:00', slot_minutes: 30 }); render(); } }, t('availability.addRule')),
    h('div', { class: 'grid' }, policyInput('buffer_minutes'), policyInput('max_per_day'), policyInput('min_notice_minutes')),
    h('button', { class: 'primary', onclick: async () => {
      status.textContent = '';
      error.textContent = '';
      const time_zone = zoneName(zone.value, zones);
      if (!time_zone) {
        zone.setAttribute('aria-invalid', 'true');
        error.textContent = t('availability.badZone');
        zone.focus();
        return;
      }
      zone.value = time_zone;
      try {
        await put(`/api/v1/experts/${expertId}/availability`, {
          rules: rules.map(({ weekday, start, end, slot_minutes }) => ({ weekday, start, end, slot_minutes, time_zone })), policy,
        });
        status.textContent = t('common.saved');
      } catch (err) {
        error.textContent = /** @type {Error} */ (err).message;
      }
    } }, t('common.save')),
    error, status);
}
