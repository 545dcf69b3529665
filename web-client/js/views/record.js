// The resident's longitudinal record: for the family doctor, the active follow-up plans on
// top, trend charts (blood pressure, glucose, heart rate, QTc) and the timeline of every
// consultation, opinion, referral, follow-up, file, ECG and vital sign; for the patient
// (elder mode), the same story in plain words with the news sent to them. Also the family
// doctor's worklist of readings out of target or missing.
import { h, mount, when, field, formValues } from '../dom.js';
import { t, lang } from '../i18n.js';
import { whoLooked, refusedTimes } from '../trail.js';
import { api, get, getAll, post } from '../api.js';
import { patientOf, patientHeader } from './patient-header.js';
import { trendChart } from '../vitals/chart.js';
import { kindName, readingWords } from '../vitals/live.js';
import { deviceRow, tokenShownOnce } from './admin.js';
import { noticeText } from '../notifications.js';

/**
 * A plan's targets in words: "血压 < 140/90 mmHg · 空腹血糖 < 7 mmol/L · 每 7 天测量".
 * @param {any} targets
 * @returns {string}
 */
export function targetWords(targets) {
  if (!targets) return '';
  const parts = [];
  if (targets.systolic_below || targets.diastolic_below) parts.push(t('record.targetBp', { s: targets.systolic_below ?? '–', d: targets.diastolic_below ?? '–' }));
  if (targets.fasting_glucose_below) parts.push(t('record.targetFasting', { v: targets.fasting_glucose_below }));
  if (targets.postprandial_glucose_below) parts.push(t('record.targetPost', { v: targets.postprandial_glucose_below }));
  if (targets.measure_every_days) parts.push(t('record.every', { n: targets.measure_every_days }));
  return parts.join(' · ');
}

/**
 * A timeline item's status in words: a consultation's state, a referral's or a follow-up
 * plan's status, or a record's own (draft, superseded, entered in error).
 * @param {string} kind
 * @param {string} status
 * @returns {string}
 */
export function statusWord(kind, status) {
  /** @type {Record<string, string>} */
  const keys = { consultation: `state.${status}`, referral: `referral.status.${status}`, follow_up: `record.planStatus.${status}` };
  return t(keys[kind] ?? `record.status.${status}`);
}

/**
 * One timeline item as a doctor reads it.
 * @param {import('../main.js').App} app
 * @param {any} item
 * @returns {HTMLElement}
 */
function timelineRow(app, item) {
  const extra = [];
  if (item.kind === 'vital') extra.push(`${kindName(item.data.reading_kind)} · ${t(`vitals.source.${item.data.source}`)}${item.data.device ? ` · ${item.data.device}` : ''}`);
  if (item.kind === 'ecg' && item.data.qtc_bazett_ms) extra.push(t('record.ecgFigures', { hr: Math.round(item.data.heart_rate_bpm || 0), qtc: Math.round(item.data.qtc_bazett_ms) }));
  if (item.kind === 'opinion') extra.push(item.data.signer_name);
  if (item.kind === 'referral') extra.push(item.data.to_organisation);
  if (item.kind === 'follow_up') extra.push(targetWords(item.data.targets));
  return h('li', { class: `tl tl-${item.kind}`, 'data-kind': item.kind, 'data-id': item.id },
    h('span', { class: 'tl-when' }, when(item.at)), ' ',
    h('strong', { class: 'tl-kind' }, t(`record.kind.${item.kind}`)), ' ',
    h('span', { class: 'tl-title' }, item.kind === 'vital' ? readingWords(item.data.reading_kind, item.data.values, item.title) : item.title),
    item.status && !['current', 'stored', 'signed'].includes(item.status) ? h('span', { class: 'tl-status', 'data-status': item.status }, ` · ${statusWord(item.kind, item.status)}`) : null,
    extra.filter(Boolean).length ? h('span', { class: 'tl-extra muted' }, ` · ${extra.filter(Boolean).join(' · ')}`) : null,
    item.consultation_id ? h('button', { class: 'link', onclick: () => app.navigate(`/consultations/${item.consultation_id}`) }, t('record.openConsultation')) : null);
}

/**
 * The trend charts from the readings and the ECGs.
 * @param {any[]} readings observations, newest first
 * @param {any[]} ecgs timeline items of kind ecg
 * @param {any[]} plans active follow-up plans (their targets draw the lines)
 */
function charts(readings, ecgs, plans) {
  const at = (/** @type {any} */ x) => Date.parse(x.measured_at || x.at);
  const bp = readings.filter((r) => r.kind === 'blood_pressure');
  const glucose = readings.filter((r) => r.kind === 'glucose');
  const pulse = readings.filter((r) => r.values.pulse_bpm);
  const targets = plans.map((p) => p.data.targets || {});
  const sysTarget = targets.map((x) => x.systolic_below).find(Boolean);
  const diaTarget = targets.map((x) => x.diastolic_below).find(Boolean);
  const fasting = targets.map((x) => x.fasting_glucose_below).find(Boolean);
  return h('div', { class: 'trends' },
    trendChart({ id: 'bp', title: t('record.chartBp'), unit: 'mmHg',
      series: [
        { name: t('vitals.systolic'), points: bp.map((r) => ({ t: at(r), v: r.values.systolic_mmhg })) },
        { name: t('vitals.diastolic'), points: bp.map((r) => ({ t: at(r), v: r.values.diastolic_mmhg })) },
      ],
      targets: [sysTarget, diaTarget].filter((v) => typeof v === 'number').map((v) => ({ v: Number(v), label: `${v}` })) }),
    trendChart({ id: 'glucose', title: t('record.chartGlucose'), unit: 'mmol/L',
      series: [{ name: t('vitals.kind.glucose'), points: glucose.map((r) => ({ t: at(r), v: r.values.glucose_mmol_l })) }],
      targets: fasting ? [{ v: fasting, label: `${fasting}` }] : [] }),
    trendChart({ id: 'heart-rate', title: t('record.chartHr'), unit: 'bpm',
      series: [{ name: t('vitals.pulse'), points: [...pulse.map((r) => ({ t: at(r), v: r.values.pulse_bpm })),
        ...ecgs.filter((e) => e.data.heart_rate_bpm).map((e) => ({ t: at(e), v: e.data.heart_rate_bpm }))] }] }),
    trendChart({ id: 'qtc', title: t('record.chartQtc'), unit: 'ms',
      series: [{ name: 'QTc', points: ecgs.filter((e) => e.data.qtc_bazett_ms).map((e) => ({ t: at(e), v: e.data.qtc_bazett_ms })) }] }));
}

/**
 * The family doctor's view of one resident.
 * @param {import('../main.js').App} app
 * @param {string} patientId
 * @returns {Promise<HTMLElement>}
 */
export async function patientRecordView(app, patientId) {
  const patient = await patientOf(patientId);
  const managesDevices = ['community_doctor', 'coordinator'].includes(app.user().role);
  const [plans, readings, ecgs, first] = await Promise.all([
    getAll(`/api/v1/patients/${patientId}/timeline?kind=follow_up&limit=200`),
    getAll(`/api/v1/patients/${patientId}/observations?limit=1000`).catch(() => []),
    getAll(`/api/v1/patients/${patientId}/timeline?kind=ecg&limit=200`),
    get(`/api/v1/patients/${patientId}/timeline?limit=50`),
  ]);
  const active = plans.filter((p) => p.status === 'active');
  const list = h('ol', { class: 'timeline', 'aria-label': t('record.timeline') });
  const more = h('button', { class: 'more' }, t('record.more'));
  /** @type {string | null} */
  let next = first.next;
  const show = (/** @type {any[]} */ items) => { for (const i of items) list.append(timelineRow(app, i)); more.hidden = !next; };
  more.addEventListener('click', async () => {
    if (!next) return;
    const page = await get(`/api/v1/patients/${patientId}/timeline?limit=50&cursor=${encodeURIComponent(next)}`);
    next = page.next;
    show(page.items);
  });
  show(first.items);
  return h('div', { class: 'stack patient-record' },
    h('h1', null, t('record.title', { name: patient?.name || '' })),
    patient ? await particularsSection(app, patient) : null,
    h('section', { class: 'card plans', 'aria-labelledby': 'plans-h' }, h('h2', { id: 'plans-h' }, t('record.plans')),
      active.length ? h('ul', { class: 'list' }, active.map((p) => h('li', { 'data-plan': p.id },
        h('strong', null, p.data.condition), ' · ', t('record.planVisits', { n: p.data.visits, weeks: p.data.interval_weeks }),
        h('span', { class: 'plan-targets' }, ` · ${targetWords(p.data.targets)}`))))
        : h('p', { class: 'muted' }, t('common.none'))),
    h('section', { class: 'card', 'aria-labelledby': 'trends-h' }, h('h2', { id: 'trends-h' }, t('record.trends')), charts(readings, ecgs, active)),
    managesDevices ? await homeDevicesSection(patientId, patient?.name || '') : null,
    h('section', { class: 'card', 'aria-labelledby': 'tl-h' }, h('h2', { id: 'tl-h' }, t('record.timeline')), list, more));
}

/** The fields of a record's revision, in the order they are shown. */
const REVISED_FIELDS = ['name', 'sex', 'birth_date', 'phone', 'resident_id', 'due_date', 'status', 'note'];

/**
 * A replaced value as a reader reads it.
 * @param {string} key
 * @param {any} value
 * @returns {string}
 */
function revisedValue(key, value) {
  if (value === null || value === undefined || value === '') return t('record.empty');
  if (key === 'sex') return t(`sex.${value}`);
  if (key === 'status') return t(`record.visitStatus.${value}`);
  return String(value);
}

/**
 * The resident's particulars (name, sex, age, resident ID, phone) and, for the staff of her
 * own centre who keep them, a form that corrects them in place; below, every value a
 * correction replaced, with who replaced it and when (`GET /patients/{id}/revisions`), so
 * that nothing written over is lost from sight.
 * @param {import('../main.js').App} app
 * @param {any} patient
 * @returns {Promise<HTMLElement>}
 */
async function particularsSection(app, patient) {
  const me = app.user();
  // The server decides (403 otherwise); the form is offered to those it allows: the community
  // doctors and coordinators of the patient's home organisation.
  const keeps = ['community_doctor', 'coordinator'].includes(me.role) && patient.home_organisation_id === me.organisation_id;
  let current = patient;
  const header = h('div', { class: 'particulars' });
  const showHeader = () => mount(header, patientHeader(current, [[t('patient.birthDate'), current.birth_date], [t('patient.phone'), current.phone]]));
  const history = h('ol', { class: 'revisions', 'aria-labelledby': 'rev-h' });
  const noHistory = h('p', { class: 'muted' }, t('record.noRevisions'));
  const showHistory = async () => {
    const items = (await get(`/api/v1/patients/${current.id}/revisions`)).items;
    history.replaceChildren(...items.map((/** @type {any} */ r) => h('li', { 'data-kind': r.resource_type },
      h('span', { class: 'tl-when' }, when(r.revised_at)), ' ',
      h('strong', null, t(`record.revisionOf.${r.resource_type}`)), ' ',
      h('span', { class: 'muted' }, t('record.revisedBy', { name: r.revised_by_name })), ' · ',
      h('span', { class: 'revised' }, REVISED_FIELDS.filter((k) => k in r.previous)
        .map((k) => t('record.revisedField', { field: t(`record.field.${k}`), before: revisedValue(k, r.previous[k]) })).join('；')))));
    noHistory.hidden = items.length > 0;
  };
  showHeader();
  await showHistory();
  if (!keeps) {
    return h('section', { class: 'card', 'aria-labelledby': 'pp-h' }, h('h2', { id: 'pp-h' }, t('record.particulars')), header,
      h('h3', { id: 'rev-h' }, t('record.revisions')), noHistory, history);
  }
  const error = h('p', { class: 'error', role: 'alert' });
  const done = h('p', { class: 'muted', role: 'status' });
  const sex = /** @type {HTMLSelectElement} */ (h('select', { name: 'sex' },
    h('option', { value: 'female' }, t('sex.female')), h('option', { value: 'male' }, t('sex.male'))));
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid particulars-form', hidden: true },
    field(t('patient.name'), h('input', { name: 'name', id: 'pp-name', required: true, maxlength: '100' })),
    field(t('patient.sex'), sex),
    field(t('patient.birthDate'), h('input', { name: 'birth_date', id: 'pp-birth', type: 'date', required: true })),
    field(t('patient.phone'), h('input', { name: 'phone', id: 'pp-phone', type: 'tel' })),
    field(t('patient.residentId'), h('input', { name: 'resident_id', id: 'pp-rid', autocomplete: 'off' })),
    error,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, t('record.saveParticulars')),
      h('button', { type: 'button', onclick: () => { form.hidden = true; edit.hidden = false; } }, t('record.cancelEdit')))));
  const fill = () => {
    for (const k of ['name', 'birth_date', 'phone', 'resident_id']) {
      /** @type {HTMLInputElement} */ (form.elements.namedItem(k)).value = current[k] || '';
    }
    sex.value = current.sex;
  };
  const edit = h('button', { type: 'button', class: 'edit-particulars', onclick: () => {
    fill();
    error.textContent = '';
    done.textContent = '';
    form.hidden = false;
    edit.hidden = true;
    /** @type {HTMLInputElement} */ (form.elements.namedItem('name')).focus();
  } }, t('record.editParticulars'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const values = formValues(form);
    /** @type {Record<string, string>} */
    const changed = {};
    for (const [k, v] of Object.entries(values)) {
      if (v.trim() !== String(current[k] ?? '')) changed[k] = v.trim();
    }
    if (!Object.keys(changed).length) { form.hidden = true; edit.hidden = false; return; }
    try {
      current = await api('PATCH', `/api/v1/patients/${current.id}`, changed);
      showHeader();
      await showHistory();
      form.hidden = true;
      edit.hidden = false;
      done.textContent = t('record.particularsSaved');
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'pp-h' }, h('h2', { id: 'pp-h' }, t('record.particulars')), header,
    edit, form, done, h('h3', { id: 'rev-h' }, t('record.revisions')), noHistory, history);
}

/**
 * The patient's home devices (a blood-pressure monitor lent for her follow-up, which sends its
 * readings to her record): those in use, with their last contact and a "revoke" that is
 * confirmed first; and lending another, whose token is shown once, to enter on the device or
 * its app. For the staff who manage devices (the server decides which: a community doctor,
 * those of their own centre's patients).
 * @param {string} patientId
 * @param {string} name
 * @returns {Promise<HTMLElement>}
 */
async function homeDevicesSection(patientId, name) {
  /** @type {any[]} */
  let devices = (await get(`/api/v1/devices?kind=home&patient_id=${encodeURIComponent(patientId)}&limit=200`)).items;
  const body = h('tbody');
  const renderRows = () => {
    body.replaceChildren(...(devices.length
      ? devices.map((d) => deviceRow(d, () => { devices = devices.filter((x) => x.id !== d.id); renderRows(); }, false))
      : [h('tr', null, h('td', { colspan: '3', class: 'muted' }, t('homeDevice.none')))]));
  };
  renderRows();
  const issued = h('div', { class: 'issued', role: 'status' });
  const error = h('p', { class: 'error', role: 'alert' });
  const label = /** @type {HTMLInputElement} */ (h('input', {
    id: 'home-dev-label', name: 'label', required: true, maxlength: '100', value: t('homeDevice.defaultLabel', { name }),
  }));
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'grid home-device-issue' },
    h('div', { class: 'field' }, h('label', { for: 'home-dev-label' }, t('device.label')), label),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('homeDevice.lend'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    issued.replaceChildren();
    try {
      const answer = await post('/api/v1/devices', { kind: 'home', label: label.value.trim(), patient_id: patientId });
      devices = [...devices, answer.device];
      renderRows();
      issued.replaceChildren(...tokenShownOnce(answer.token, 'home-dev-token', t('homeDevice.token')));
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return h('section', { class: 'card home-devices', 'aria-labelledby': 'home-dev-h' },
    h('h2', { id: 'home-dev-h' }, t('homeDevice.title')),
    h('table', { class: 'devices' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, t('device.label')), h('th', { scope: 'col' }, t('device.lastSeen')),
        h('th', { scope: 'col' }, t('common.actions')))),
      body),
    form, issued);
}

/**
 * One timeline item in plain words, for the patient.
 * @param {any} item
 * @returns {string}
 */
export function plainWords(item) {
  switch (item.kind) {
    case 'vital': return t('mine.vital', { kind: kindName(item.data.reading_kind), value: readingWords(item.data.reading_kind, item.data.values, item.title) });
    case 'consultation': return t('mine.consultation', { reason: item.title });
    case 'opinion': return t('mine.opinion', { text: item.data.patient_summary || item.data.impression, name: item.data.signer_name });
    case 'referral': return t('mine.referral', { to: item.data.to_organisation, status: t(`mine.referral.${item.status}`) });
    case 'follow_up': return t('mine.followUp', { condition: item.title, targets: targetWords(item.data.targets) });
    case 'ecg': return t('mine.ecg');
    default: return t('mine.file', { name: item.title });
  }
}

/**
 * The patient's own record in plain words (elder mode), with the news sent to them.
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function myRecordView(app) {
  const me = (await get('/api/v1/patients')).items[0];
  if (!me) return h('p', { class: 'big' }, t('mine.none'));
  const [page, news, trail] = await Promise.all([
    get(`/api/v1/patients/${me.id}/timeline?limit=30`),
    get('/api/v1/notifications?limit=10'),
    get('/api/v1/audit?limit=500'),
  ]);
  const dayOf = (/** @type {string} */ iso) =>
    new Date(iso).toLocaleDateString(lang() === 'en' ? 'en-GB' : 'zh-CN', { month: 'long', day: 'numeric' });
  const looked = whoLooked(trail.items, app.user().id, dayOf).slice(0, 10);
  const refused = refusedTimes(trail.items, app.user().id);
  return h('section', { class: 'elder-record', 'aria-labelledby': 'mine-h' },
    h('h1', { id: 'mine-h' }, t('mine.title')),
    h('h2', null, t('mine.news')),
    news.items.length ? h('ul', { class: 'list news' }, news.items.map((/** @type {any} */ n) => {
      const text = noticeText(n);
      return h('li', { class: 'big-item' }, h('strong', null, text.title), h('p', null, text.body), h('p', { class: 'muted' }, when(n.created_at)));
    }))
      : h('p', { class: 'muted' }, t('common.none')),
    h('h2', null, t('mine.story')),
    h('ol', { class: 'timeline plain' }, page.items.map((/** @type {any} */ i) => h('li', { class: 'big-item', 'data-kind': i.kind },
      h('span', { class: 'tl-when' }, when(i.at)), ' ', plainWords(i)))),
    h('h2', null, t('mine.looked')),
    looked.length
      ? h('ul', { class: 'list looked' }, looked.map((l) => h('li', { class: 'big-item' },
        t('mine.lookedLine', { day: l.day, name: l.name, role: t(`role.${l.role}`), count: l.count }))))
      : h('p', { class: 'muted' }, t('mine.nobody')),
    refused ? h('p', { class: 'refused' }, t('mine.refused', { n: refused })) : null,
    h('button', { class: 'primary huge', onclick: () => app.navigate('/') }, t('mine.back')));
}

/**
 * What a worklist item saw against what was aimed for, in the reader's words: the reading and
 * the target, or since when nothing arrived; the server's English `detail` for items that
 * carry neither (opened before they were kept apart).
 * @param {any} w
 * @returns {string}
 */
export function worklistDetail(w) {
  if (w.reading && w.target) return t(`worklist.detail.${w.reason}`, { reading: w.reading, target: w.target });
  if (w.since) return t('worklist.detail.missing', { since: when(w.since) });
  return w.detail;
}

/**
 * The family doctor's worklist: readings out of target or missing, one line per episode.
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function worklistView(app) {
  const items = (await get('/api/v1/worklist?limit=200')).items;
  const error = h('p', { class: 'error', role: 'alert' });
  const list = h('ul', { class: 'list worklist', 'aria-label': t('worklist.title') });
  const render = (/** @type {any[]} */ rows) => mount(list, rows.length ? rows.map((w) => {
    const note = /** @type {HTMLInputElement} */ (h('input', { name: 'note', id: `note-${w.id}`, placeholder: t('worklist.notePlaceholder') }));
    return h('li', { 'data-item': w.id, 'data-reason': w.reason },
      h('p', null, h('strong', null, w.patient_name), ' · ', w.condition, ' · ', h('span', { class: 'wl-reason' }, t(`worklist.reason.${w.reason}`))),
      h('p', { class: 'wl-detail' }, worklistDetail(w)),
      h('p', { class: 'muted' }, t('worklist.since', { at: when(w.opened_at), n: w.readings })),
      h('div', { class: 'actions' },
        h('label', { for: note.id, class: 'visually-hidden' }, t('worklist.note')), note,
        h('button', { class: 'primary', onclick: async () => {
          error.textContent = '';
          try {
            await post(`/api/v1/worklist/${w.id}/acknowledge`, { note: note.value });
            render(rows.filter((x) => x.id !== w.id));
          } catch (err) {
            error.textContent = /** @type {Error} */ (err).message;
          }
        } }, t('worklist.acknowledge')),
        h('button', { onclick: () => app.navigate(`/patients/${w.patient_id}`) }, t('worklist.openRecord'))));
  }) : h('li', { class: 'muted' }, t('worklist.empty')));
  render(items);
  return h('div', { class: 'stack' }, h('h1', null, t('worklist.title')), error, list);
}
