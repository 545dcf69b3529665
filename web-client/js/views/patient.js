// Patient and kiosk (elder mode): large type, one main action per screen. The home shows the
// next consultation with its one "join" button, and the newest signed opinion in plain words.
import { h, when } from '../dom.js';
import { t } from '../i18n.js';
import { get } from '../api.js';

/** States in which a consultation may carry a signed opinion. */
const WITH_OPINION = ['accepted', 'scheduled', 'in_progress', 'awaiting_opinion', 'completed'];
/** The opinion fields a patient is shown, in reading order (the findings stay technical). */
export const PLAIN_FIELDS = /** @type {const} */ (['patient_summary', 'impression', 'recommendations', 'follow_up_advice', 'referral_advice']);

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
  // The room opens a while before the booked time: until then the time is shown, not a button.
  const opensAt = live && live.state === 'scheduled' && next?.room_opens_at ? Date.parse(next.room_opens_at) : 0;
  const opinion = await latestSignedOpinion(items);
  // A call that is over and whose opinion is still being written.
  const pending = !live && items.find((c) => c.state === 'awaiting_opinion' || c.state === 'in_progress');
  // A consultation asked for and not yet booked: she is told where it stands, not "nothing today".
  const arranging = !live && !pending && (items.find((c) => c.state === 'accepted') || items.find((c) => c.state === 'requested'));
  return h('section', { class: 'elder-home', 'aria-labelledby': 'ph' },
    h('h1', { id: 'ph' }, t('patient.hello', { name: app.user().display_name })),
    live
      ? [
        h('p', { class: 'big' }, t('patient.next', { expert: live.assigned_expert_name || '', at: next ? when(next.start) : '' })),
        opensAt > Date.now()
          ? h('p', { class: 'big room-opens' }, t('patient.opensAt', { at: when(next.room_opens_at) }))
          : h('button', { class: 'primary huge', onclick: () => app.navigate(`/call/${live.id}`) }, t('patient.join')),
      ]
      : h('p', { class: 'big', 'data-state': arranging ? arranging.state : null },
        pending ? t('patient.opinionPending') : arranging ? arrangingText(arranging) : t('patient.nothing')),
    opinion ? plainOpinion(opinion.o, opinion.c) : null,
    h('button', { class: 'my-record', onclick: () => app.navigate('/my-record') }, t('mine.open')),
  );
}

/**
 * Where a consultation that is not booked yet stands, in the patient's words: accepted by a
 * named expert (her doctor books the time next), or asked for and awaiting an expert.
 * @param {any} c
 * @returns {string}
 */
export function arrangingText(c) {
  return c.state === 'accepted' && c.assigned_expert_name
    ? t('patient.accepted', { expert: c.assigned_expert_name, specialty: t(`specialty.${c.specialty}`) })
    : t('patient.requested', { specialty: t(`specialty.${c.specialty}`) });
}

/**
 * The newest signed opinion over the patient's consultations (at most the 10 most recent
 * that can have one; one request each). A consultation whose opinions cannot be read is
 * skipped rather than failing the home screen.
 * @param {any[]} consultations
 * @returns {Promise<{o: any, c: any} | null>}
 */
async function latestSignedOpinion(consultations) {
  const candidates = consultations.filter((c) => WITH_OPINION.includes(c.state)).slice(0, 10);
  const lists = await Promise.all(candidates.map(async (c) => {
    try {
      const res = await get(`/api/v1/consultations/${c.id}/opinions`);
      return (/** @type {any[]} */ (res.items)).filter((o) => o.status === 'signed' && o.signed_at).map((o) => ({ o, c }));
    } catch {
      return [];
    }
  }));
  const all = lists.flat().sort((a, b) => String(b.o.signed_at).localeCompare(String(a.o.signed_at)));
  return all[0] || null;
}

/**
 * A signed opinion as a patient reads it: who signed and when, then the impression and the
 * advice under plain headings.
 * @param {any} o
 * @param {any} c
 * @returns {HTMLElement}
 */
export function plainOpinion(o, c) {
  const fields = PLAIN_FIELDS.filter((f) => o[f] && String(o[f]).trim());
  return h('article', { class: 'plain-opinion', 'aria-labelledby': 'po-h', 'data-version': o.version },
    h('h2', { id: 'po-h' }, t('patient.opinionTitle')),
    h('p', { class: 'po-signer' }, t('patient.opinionSigner', { name: o.signer_name, title: t(`title.${o.signer_title}`) })),
    h('p', { class: 'po-when' }, t('patient.opinionWhen', { at: when(o.signed_at), specialty: t(`specialty.${c.specialty}`) })),
    o.version > 1 ? h('p', { class: 'po-amended' }, t('patient.opinionAmended')) : null,
    fields.map((f) => h('section', { class: `po-field po-${f}`, 'aria-labelledby': `po-${f}-h` },
      h('h3', { id: `po-${f}-h` }, t(`patient.opinion.${f}`)),
      h('p', null, o[f]))),
    h('p', { class: 'po-note' }, t('patient.opinionNote')),
    h('button', { class: 'print', onclick: () => window.print() }, t('patient.print')));
}
