// One consultation: its facts, participants and history, and what the signed-in user can do
// with it (accept or decline, book, move or cancel a slot, cancel the request, join the call,
// open an ECG).
import { arrangingText } from './patient.js';
import { h, mount, when } from '../dom.js';
import { t, lang } from '../i18n.js';
import { candidateReasons } from '../reasons.js';
import { get, post } from '../api.js';
import { opinionSection } from './opinion.js';
import { filesSection } from './files.js';
import { patientOf, patientHeader } from './patient-header.js';
import { referDownSection } from './referrals.js';

/**
 * @param {import('../main.js').App} app
 * @param {string} id
 * @returns {Promise<HTMLElement>}
 */
export async function consultationView(app, id) {
  const c = await get(`/api/v1/consultations/${id}`);
  const role = app.user().role;
  const error = h('p', { class: 'error', role: 'alert' });
  /** @param {() => Promise<any>} action */
  const act = async (action) => {
    error.textContent = '';
    try {
      // An action that answers false has shown its outcome in place: no reload.
      if ((await action()) === false) return;
      app.navigate(`/consultations/${id}`, true);
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  };

  const actions = h('div', { class: 'actions' });
  const me = c.participants.find((/** @type {any} */ p) => p.user_id === app.user().id);
  // An expert invited who has not answered reads the case and accepts or declines it; the
  // room, the files and the opinion open once they accept (an MDT's other experts may have
  // accepted already, so the consultation may be past `requested`).
  const unanswered = role === 'expert' && me?.status === 'invited';
  const live = !['completed', 'cancelled', 'declined', 'no_show'].includes(c.state);
  if (role === 'expert' && live && (c.state === 'requested' || unanswered)) {
    const reason = /** @type {HTMLInputElement} */ (h('input', { id: 'decline-reason', name: 'reason' }));
    if (c.addressee_kind === 'pool' && !me) {
      actions.append(h('button', { class: 'primary', onclick: () => act(() => post(`/api/v1/consultations/${id}/claim`)) }, t('expert.claim')));
    } else if (unanswered) {
      actions.append(
        h('button', { class: 'primary', onclick: () => act(() => post(`/api/v1/consultations/${id}/accept`)) }, t('expert.accept')),
        h('label', { for: 'decline-reason' }, t('expert.declineReason')), reason,
        h('button', { onclick: () => {
          if (!reason.value.trim()) { error.textContent = t('expert.reasonNeeded'); return; }
          // Having declined, the expert no longer sees the consultation: back to the list.
          error.textContent = '';
          post(`/api/v1/consultations/${id}/decline`, { reason: reason.value })
            .then(() => app.navigate('/', true), (err) => { error.textContent = /** @type {Error} */ (err).message; });
        } }, t('expert.decline')));
    }
  }
  if (role === 'community_doctor' && c.state === 'accepted' && c.assigned_expert_id) {
    actions.append(await slotPicker(c, act));
  }
  // The booked slot moved (to another free slot of the expert) or cancelled, each with a
  // reason, by the clinic's doctor or the expert; the consultation itself cancelled by the
  // doctor who asked for it, before the call.
  const bookedNow = c.appointments.find((/** @type {any} */ a) => a.status === 'booked');
  const changes = h('div', { class: 'changes' });
  if (c.state === 'scheduled' && bookedNow && me && !unanswered && ['community_doctor', 'expert'].includes(role)) {
    changes.append(
      h('button', { onclick: async () => {
        changes.replaceChildren(await reschedulePicker(c, bookedNow, act, () => app.navigate(`/consultations/${id}`, true)));
      } }, t('appointment.reschedule')),
      withReason(changes, 'appt-cancel', t('appointment.cancel'), t('appointment.cancelPrompt', { when: when(bookedNow.start) }),
        (reason) => act(() => post(`/api/v1/appointments/${bookedNow.id}/cancel`, { reason }))));
  }
  if (role === 'community_doctor' && c.requested_by === app.user().id && ['requested', 'accepted', 'scheduled'].includes(c.state)) {
    changes.append(withReason(changes, 'c-cancel', t('consultation.cancel'), t('consultation.cancelPrompt'),
      (reason) => act(() => post(`/api/v1/consultations/${id}/cancel`, { reason }))));
  }
  // Someone who did not come, recorded by the consultation's doctors once the grace after the
  // start has passed (`no_show_from`); the server refuses anyone the room's timeline shows came.
  const noShowFrom = bookedNow?.no_show_from ? Date.parse(bookedNow.no_show_from) : 0;
  if (bookedNow && noShowFrom && noShowFrom <= Date.now() && ['scheduled', 'in_progress'].includes(c.state)
    && me && !unanswered && ['community_doctor', 'expert'].includes(role)) {
    changes.append(noShowForm(bookedNow, act));
  }
  if (['scheduled', 'in_progress'].includes(c.state) && me && !unanswered) {
    // The room opens a while before the booked slot (at once for urgent requests).
    const booked = c.appointments.find((/** @type {any} */ a) => a.status === 'booked');
    const opensAt = c.state === 'scheduled' && booked?.room_opens_at ? Date.parse(booked.room_opens_at) : 0;
    if (opensAt > Date.now()) {
      actions.append(h('p', { class: 'room-opens' }, t('call.opensAt', { at: when(booked.room_opens_at) })));
    } else {
      actions.append(h('button', { class: 'primary', onclick: () => app.navigate(`/call/${id}`) }, t('call.join')));
    }
  }
  if (changes.childElementCount) actions.append(changes);
  // Declined by the expert asked: the doctor who asked sends it to someone else (or to the
  // department), and matching starts again with everything already given.
  if (role === 'community_doctor' && c.state === 'declined' && c.requested_by === app.user().id) {
    actions.append(await readdressSection(c, act));
  }

  const patient = await patientOf(c.patient_id);
  const canUpload = !!me && !unanswered && live;
  const files = await filesSection(app, c, canUpload);

  const canWrite = role === 'expert' && !!me && ['accepted', 'active'].includes(me.status);
  /** @type {HTMLElement | null} */
  let opinions = null;
  try {
    opinions = await opinionSection(app, c, canWrite);
  } catch { /* opinions not visible to this role */ }

  // The expert who took the consultation refers the patient back to the community with a care
  // plan, during it or after it is completed.
  const referDown = role === 'expert' && !!me && ['accepted', 'active'].includes(me.status)
    && ['accepted', 'scheduled', 'in_progress', 'completed'].includes(c.state) ? await referDownSection(c) : null;

  return h('div', { class: 'stack' },
    h('h1', null, t('consultation.title'), ' · ', c.patient_name),
    patient ? h('section', { class: 'card', 'aria-labelledby': 'ph-h' }, h('h2', { id: 'ph-h' }, t('header.title')), patientHeader(patient)) : null,
    h('section', { class: 'card', 'aria-labelledby': 'facts' },
      h('h2', { id: 'facts' }, h('span', { class: `badge state-${c.state}` }, t(`state.${c.state}`))),
      // The patient is told where it stands before it is booked, as on her home screen.
      role === 'patient' && ['requested', 'accepted'].includes(c.state) ? h('p', { class: 'big next-step' }, arrangingText(c)) : null,
      h('dl', { class: 'facts' },
        h('dt', null, t('wizard.specialty')), h('dd', null, t(`specialty.${c.specialty}`)),
        h('dt', null, t('wizard.urgency')), h('dd', null, t(`urgency.${c.urgency}`)),
        h('dt', null, t('wizard.mode')), h('dd', null, t(`mode.${c.mode}`)),
        h('dt', null, t('wizard.reason')), h('dd', { class: 'question' }, c.reason),
        h('dt', null, t('wizard.summary')), h('dd', { class: 'summary' }, c.record_summary || t('common.none')),
        h('dt', null, t('consultation.requestedBy')), h('dd', null, `${c.requested_by_name} · ${c.requesting_organisation_name}`),
        c.assigned_expert_name ? [h('dt', null, t('consultation.expert')), h('dd', null, c.assigned_expert_name)] : null,
        h('dt', null, t('consent.title')), h('dd', { class: 'consent' }, c.consent ? t('consent.record', {
          who: c.consent.given_by === 'guardian' ? t('consent.guardian', { name: c.consent.guardian_name }) : t('wizard.byPatient'),
          at: when(c.consent.given_at),
          how: c.consent.method === 'written' ? t('wizard.written') : t('wizard.verbal'),
          witness: c.consent.witness_name,
        }) : t('consent.none'))),
      actions, error),
    c.appointments.length ? h('section', { class: 'card', 'aria-labelledby': 'appts' },
      h('h2', { id: 'appts' }, t('consultation.appointments')),
      h('ul', { class: 'list' }, c.appointments.map((/** @type {any} */ a) =>
        h('li', null, `${when(a.start)} – ${a.expert_name}`, h('span', { class: 'badge' }, t(`appointment.${a.status}`)))))) : null,
    files,
    opinions,
    referDown,
    h('section', { class: 'card', 'aria-labelledby': 'hist' },
      h('h2', { id: 'hist' }, t('consultation.history')),
      h('ol', { class: 'list' }, c.transitions.map((/** @type {any} */ x) =>
        h('li', null, `${when(x.at)} · ${t(`state.${x.to_state}`)} · ${x.actor_name || ''} ${x.reason ? `(${x.reason})` : ''}`)))),
  );
}

/**
 * A button that asks for a reason before it acts: it opens a small form in `place` (the
 * question, the reason, confirm and back), and `go` runs once a reason is given.
 * @param {HTMLElement} place where the form opens
 * @param {string} key an id prefix for the form's fields
 * @param {string} label the button's words
 * @param {string} question what is about to happen
 * @param {(reason: string) => Promise<any>} go
 * @returns {HTMLElement}
 */
function withReason(place, key, label, question, go) {
  return h('button', { onclick: () => {
    const kept = [...place.childNodes];
    const reason = /** @type {HTMLInputElement} */ (h('input', { id: `${key}-reason`, name: 'reason', required: true, maxlength: '2000' }));
    const form = /** @type {HTMLFormElement} */ (h('form', { class: 'with-reason' },
      h('p', null, question),
      h('div', { class: 'field' }, h('label', { for: `${key}-reason` }, t('change.reason')), reason),
      h('button', { type: 'submit', class: 'primary' }, t('change.confirm', { what: label })),
      h('button', { type: 'button', onclick: () => place.replaceChildren(...kept) }, t('change.back'))));
    form.addEventListener('submit', (e) => { e.preventDefault(); go(reason.value.trim()); });
    place.replaceChildren(form);
    reason.focus();
  } }, label);
}

/**
 * For an MDT, the slot query that keeps only the hours all its experts who accepted are free.
 * @param {any} c the consultation
 * @returns {string}
 */
function mdtOf(c) {
  return c.mode === 'mdt' ? `?consultation_id=${encodeURIComponent(c.id)}` : '';
}

/**
 * Recording that a participant of the booked appointment did not come: who (the patient, the
 * expert, the clinic's doctor), then a button that records it.
 * @param {any} booked its booked appointment
 * @param {(action: () => Promise<any>) => Promise<void>} act
 * @returns {HTMLElement}
 */
function noShowForm(booked, act) {
  const who = /** @type {HTMLSelectElement} */ (h('select', { id: 'no-show-who', name: 'participant' },
    ['patient', 'expert', 'community_doctor'].map((p) => h('option', { value: p }, t(`noShow.${p}`)))));
  return h('div', { class: 'no-show', role: 'group', 'aria-labelledby': 'no-show-h' },
    h('span', { id: 'no-show-h' }, t('noShow.title', { when: when(booked.start) })), ' ',
    h('label', { for: 'no-show-who', class: 'visually-hidden' }, t('noShow.who')), who,
    h('button', { onclick: () => act(() => post(`/api/v1/appointments/${booked.id}/no-show`, { participant: who.value })) },
      t('noShow.record')));
}

/**
 * Moving a booked appointment: the reason, then the expert's free slots, each a button that
 * moves it there; `back` leaves things as they were.
 * @param {any} c the consultation
 * @param {any} booked its booked appointment
 * @param {(action: () => Promise<any>) => Promise<void>} act
 * @param {() => void} back
 * @returns {Promise<HTMLElement>}
 */
async function reschedulePicker(c, booked, act, back) {
  const slots = (await get(`/api/v1/experts/${booked.expert_id}/slots${mdtOf(c)}`)).items.slice(0, 12);
  const reason = /** @type {HTMLInputElement} */ (h('input', { id: 'resched-reason', name: 'reason', required: true, maxlength: '2000' }));
  const said = h('p', { class: 'error', role: 'alert' });
  /** @param {any} s */
  const move = async (s) => {
    if (!reason.value.trim()) { said.textContent = t('appointment.reasonNeeded'); reason.focus(); return false; }
    await post(`/api/v1/appointments/${booked.id}/reschedule`, { start: s.start, reason: reason.value.trim() });
  };
  return h('div', { class: 'slots reschedule', role: 'group', 'aria-label': t('appointment.reschedule') },
    h('h3', null, t('appointment.rescheduleFrom', { when: when(booked.start) })),
    h('div', { class: 'field' }, h('label', { for: 'resched-reason' }, t('change.reason')), reason),
    said,
    slots.length ? slots.map((/** @type {any} */ s) => h('button', { class: 'slot', onclick: () => act(() => move(s)) }, h('time', { datetime: s.start }, when(s.start))))
      : h('p', { class: 'muted' }, t('booking.noSlots')),
    h('button', { type: 'button', onclick: back }, t('change.back')));
}

/**
 * The experts ranked for the declined request's criteria, without those who declined it, each
 * with a button that sends the request to them; and the department's pool.
 * @param {any} c the consultation
 * @param {(action: () => Promise<any>) => Promise<void>} act
 * @returns {Promise<HTMLElement>}
 */
async function readdressSection(c, act) {
  const [ranked, specialties] = await Promise.all([
    post('/api/v1/consultations/candidates', { specialty: c.specialty, min_title: c.min_title, urgency: c.urgency }),
    get('/api/v1/specialties'),
  ]);
  const declined = new Set(c.participants.filter((/** @type {any} */ p) => p.status === 'declined').map((/** @type {any} */ p) => p.user_id));
  const candidates = ranked.items.filter((/** @type {any} */ x) => !declined.has(x.expert_id));
  /** @param {string} code */
  const specialtyName = (code) => {
    const s = specialties.items.find((/** @type {any} */ x) => x.code === code);
    return s ? (lang() === 'en' ? s.name_en : s.name_zh) : code;
  };
  /** @param {Record<string, any>} addressee */
  const send = (addressee) => act(() => post(`/api/v1/consultations/${c.id}/readdress`, { addressee }));
  return h('div', { class: 'readdress', role: 'group', 'aria-labelledby': 'readdress-h' },
    h('h3', { id: 'readdress-h' }, t('readdress.title')),
    h('p', null, t('readdress.hint')),
    candidates.length ? h('ol', { class: 'list candidates' }, candidates.map((/** @type {any} */ x) => h('li', null,
      h('div', null, h('strong', null, x.name), ' ',
        h('span', { class: 'muted' }, x.earliest_slot ? t('wizard.earliest', { at: when(x.earliest_slot) }) : t('wizard.noSlot')),
        h('ul', { class: 'reasons' }, candidateReasons(x, t, specialtyName).map((r) => h('li', null, r)))),
      h('button', { class: 'primary', onclick: () => send({ kind: 'expert', expert_id: x.expert_id }) }, t('wizard.sendTo', { name: x.name })))))
      : h('p', { class: 'muted' }, t('readdress.none')),
    h('button', { onclick: () => send({ kind: 'pool' }) }, t('wizard.sendPool')));
}

/**
 * The assigned expert's free slots, each a button that books it.
 * @param {any} c the consultation
 * @param {(action: () => Promise<any>) => Promise<void>} act
 * @param {string} [notice] why the list is shown again
 * @returns {Promise<HTMLElement>}
 */
async function slotPicker(c, act, notice = '') {
  const slots = (await get(`/api/v1/experts/${c.assigned_expert_id}/slots${mdtOf(c)}`)).items.slice(0, 12);
  /** @param {any} s */
  const book = async (s) => {
    try {
      await post('/api/v1/appointments', { consultation_id: c.id, expert_id: c.assigned_expert_id, start: s.start });
    } catch (err) {
      // Booked by someone else since the list was shown: the list again, as it is now, with
      // the reason beside it; nothing else to do but pick another slot.
      if (/** @type {any} */ (err).code !== 'slot_taken') throw err;
      picker.replaceWith(await slotPicker(c, act, t('booking.taken', { when: when(s.start) })));
      return false;
    }
  };
  const picker = h('div', { class: 'slots', role: 'group', 'aria-label': t('booking.title') },
    h('h3', null, t('booking.title')),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    slots.length ? slots.map((/** @type {any} */ s) => h('button', { class: 'slot', onclick: () => act(() => book(s)) }, h('time', { datetime: s.start }, when(s.start))))
      : h('p', { class: 'muted' }, t('booking.noSlots')));
  return picker;
}
