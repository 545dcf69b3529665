// Opinions of a consultation: the signed versions as everyone sees them, the expert's editor
// (draft, save, sign; amend a signed opinion with a reason), and the community doctor's list
// of opinions received.
import { h, when, field } from '../dom.js';
import { t } from '../i18n.js';
import { get, put, post } from '../api.js';

export const FIELDS = /** @type {const} */ (['findings', 'impression', 'recommendations', 'referral_advice', 'follow_up_advice', 'patient_summary']);

/**
 * One opinion version as read by anyone: the text fields, the signer and the time.
 * @param {any} o
 * @returns {HTMLElement}
 */
export function opinionCard(o) {
  return h('article', { class: `opinion opinion-${o.status}`, 'data-version': o.version },
    h('p', null,
      h('span', { class: 'badge' }, t(`opinion.status.${o.status}`)), ' ',
      t('opinion.version', { n: o.version }),
      o.kind === 'joint' ? h('span', { class: 'badge' }, t('opinion.joint')) : null),
    o.signed_at ? h('p', { class: 'signed-by' }, t('opinion.signedBy', {
      name: o.signer_name, title: t(`title.${o.signer_title}`), at: when(o.signed_at),
    })) : null,
    o.amendment_reason ? h('p', { class: 'notice' }, t('opinion.amendmentReason', { reason: o.amendment_reason })) : null,
    h('dl', { class: 'facts' }, FIELDS.filter((f) => o[f]).map((f) => [
      h('dt', null, t(`opinion.${f}`)), h('dd', { class: `opinion-${f}` }, o[f])])),
    o.content_sha256 ? h('p', { class: 'hint' }, `SHA-256 ${o.content_sha256}`) : null);
}

/**
 * The opinions card of a consultation: signed versions (superseded ones folded away), and
 * for an expert who accepted it, the editor.
 * @param {import('../main.js').App} app
 * @param {any} c the consultation
 * @param {boolean} canWrite whether the signed-in user is an accepted expert of it
 * @returns {Promise<HTMLElement>}
 */
export async function opinionSection(app, c, canWrite) {
  const items = (await get(`/api/v1/consultations/${c.id}/opinions`)).items;
  const me = app.user().id;
  const published = items.filter((/** @type {any} */ o) => o.status !== 'draft');
  const current = published.filter((/** @type {any} */ o) => o.status === 'signed');
  const superseded = published.filter((/** @type {any} */ o) => o.status === 'superseded');
  const mine = items.filter((/** @type {any} */ o) => o.author_id === me && o.kind === 'individual')
    .sort((/** @type {any} */ a, /** @type {any} */ b) => b.version - a.version)[0];
  return h('section', { class: 'card', 'aria-labelledby': 'opinions-h' },
    h('h2', { id: 'opinions-h' }, t('opinion.title')),
    current.length ? current.map(opinionCard) : h('p', { class: 'muted' }, t('opinion.noneYet')),
    superseded.length ? h('details', null, h('summary', null, t('opinion.earlier', { n: superseded.length })), superseded.map(opinionCard)) : null,
    canWrite ? opinionEditor(app, c, mine) : null);
}

/**
 * The expert's editor: a draft is saved and signed; a signed opinion is amended (a new
 * signed version with a reason).
 * @param {import('../main.js').App} app
 * @param {any} c
 * @param {any} latest the expert's latest own version, if any
 * @returns {HTMLElement}
 */
function opinionEditor(app, c, latest) {
  const amending = latest && latest.status === 'signed';
  const status = h('p', { role: 'status', class: 'opinion-status' },
    latest?.status === 'draft' ? t('opinion.draftSaved', { at: when(latest.updated_at) }) : '');
  const error = h('p', { class: 'error', role: 'alert' });
  /** @type {Record<string, HTMLTextAreaElement>} */
  const boxes = {};
  for (const f of FIELDS) {
    boxes[f] = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: `op-${f}`, name: f, rows: f === 'findings' || f === 'impression' ? 4 : 2 }));
    boxes[f].value = latest?.[f] || '';
  }
  const reason = /** @type {HTMLInputElement} */ (h('input', { id: 'op-reason', name: 'reason' }));
  const content = () => Object.fromEntries(FIELDS.map((f) => [f, boxes[f].value]));
  /** @param {() => Promise<any>} action @param {boolean} reload */
  const run = async (action, reload) => {
    error.textContent = '';
    try {
      const saved = await action();
      if (reload) app.navigate(`/consultations/${c.id}`, true);
      else status.textContent = t('opinion.draftSaved', { at: when(saved.updated_at) });
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  };
  const save = () => put(`/api/v1/consultations/${c.id}/opinion`, content());
  const buttons = amending
    ? [h('button', { class: 'primary', type: 'button', onclick: () => {
        if (!reason.value.trim()) { error.textContent = t('opinion.reasonNeeded'); return; }
        run(() => post(`/api/v1/consultations/${c.id}/opinion/amend`, { ...content(), reason: reason.value }), true);
      } }, t('opinion.signAmendment'))]
    : [
        h('button', { type: 'button', onclick: () => run(save, false) }, t('opinion.saveDraft')),
        h('button', { class: 'primary', type: 'button', onclick: () => {
          if (!boxes.impression.value.trim()) { error.textContent = t('opinion.impressionNeeded'); return; }
          run(async () => { await save(); return post(`/api/v1/consultations/${c.id}/opinion/sign`, {}); }, true);
        } }, t('opinion.sign')),
      ];
  return h('form', { class: 'opinion-editor stack', 'aria-labelledby': 'editor-h', onsubmit: (/** @type {Event} */ e) => e.preventDefault() },
    h('h3', { id: 'editor-h' }, amending ? t('opinion.amendTitle') : t('opinion.editorTitle')),
    amending ? h('p', { class: 'hint' }, t('opinion.amendHint')) : null,
    FIELDS.map((f) => field(t(`opinion.${f}`), boxes[f])),
    amending ? field(t('opinion.reason'), reason) : null,
    h('div', { class: 'actions' }, buttons), status, error);
}

/**
 * The community doctor's opinions received: the signed opinions on the consultations they
 * requested, newest first.
 * @param {import('../main.js').App} app
 * @returns {Promise<HTMLElement>}
 */
export async function opinionsReceived(app) {
  const consultations = (await get('/api/v1/consultations')).items
    .filter((/** @type {any} */ c) => ['accepted', 'scheduled', 'in_progress', 'completed'].includes(c.state))
    .slice(0, 50);
  const lists = await Promise.all(consultations.map(async (/** @type {any} */ c) =>
    (await get(`/api/v1/consultations/${c.id}/opinions`)).items
      .filter((/** @type {any} */ o) => o.status === 'signed')
      .map((/** @type {any} */ o) => ({ c, o }))));
  const rows = lists.flat().sort((a, b) => String(b.o.signed_at).localeCompare(String(a.o.signed_at)));
  return h('div', { class: 'stack' },
    h('h1', null, t('opinion.received')),
    h('section', { class: 'card', 'aria-labelledby': 'recv-h' }, h('h2', { id: 'recv-h' }, t('opinion.receivedList')),
      rows.length ? h('ul', { class: 'list received' }, rows.map(({ c, o }) => h('li', null,
        h('div', null,
          h('p', null, h('strong', null, c.patient_name), ' · ', t(`specialty.${c.specialty}`), ' · ',
            t('opinion.signedBy', { name: o.signer_name, title: t(`title.${o.signer_title}`), at: when(o.signed_at) }),
            o.version > 1 ? h('span', { class: 'badge' }, t('opinion.version', { n: o.version })) : null),
          h('p', { class: 'opinion-impression' }, o.impression)),
        h('button', { onclick: () => app.navigate(`/consultations/${c.id}`) }, t('common.open')))))
        : h('p', { class: 'muted' }, t('opinion.noneReceived'))));
}

