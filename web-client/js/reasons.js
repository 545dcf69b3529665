// The words for the server's expert-ranking reason codes (`reason_codes` of a ranked
// candidate), in the user's language. Pure: the translator and the specialty names come in.

/**
 * @typedef {{code: string, [param: string]: any}} ReasonCode
 * @typedef {(key: string, vars?: Record<string, string | number>) => string} Translate
 */

/**
 * How long until a free slot, in words: now, minutes, hours (under two days) or days.
 * @param {number} minutes
 * @param {Translate} tr
 * @returns {string}
 */
export function waitText(minutes, tr) {
  if (minutes < 1) return tr('reason.wait.now');
  if (minutes < 60) return tr('reason.wait.minutes', { n: minutes });
  if (minutes < 48 * 60) return tr('reason.wait.hours', { n: Math.floor(minutes / 60) });
  return tr('reason.wait.days', { n: Math.floor(minutes / (24 * 60)) });
}

/**
 * One reason in words, or `null` for a code this client does not know (the caller then
 * shows the server's English sentence).
 * @param {ReasonCode} reason
 * @param {Translate} tr
 * @param {(code: string) => string} specialtyName the name of a specialty code
 * @returns {string | null}
 */
export function reasonText(reason, tr, specialtyName) {
  switch (reason.code) {
    case 'availability_first':
      return tr('reason.availability_first', { urgency: tr(`urgency.${reason.urgency}`) });
    case 'specialty_match':
    case 'specialty_secondary':
      return tr(`reason.${reason.code}`, { specialty: specialtyName(reason.specialty) });
    case 'title_meets_minimum':
      return tr('reason.title_meets_minimum', { title: tr(`title.${reason.title}`), min: tr(`title.${reason.min_title}`) });
    case 'consortium_partner':
    case 'no_consortium_link':
    case 'no_free_slot':
      return tr(`reason.${reason.code}`);
    case 'earliest_slot':
      return tr('reason.earliest_slot', { wait: waitText(Number(reason.wait_minutes), tr) });
    case 'open_consultations': {
      const n = Number(reason.count);
      return tr(n === 0 ? 'reason.open.none' : n === 1 ? 'reason.open.one' : 'reason.open.many', { n });
    }
    default:
      return null;
  }
}

/**
 * A ranked candidate's reasons in words: from its codes where known, else the server's
 * English sentence at the same place.
 * @param {{reasons: string[], reason_codes?: ReasonCode[]}} candidate
 * @param {Translate} tr
 * @param {(code: string) => string} specialtyName
 * @returns {string[]}
 */
export function candidateReasons(candidate, tr, specialtyName) {
  const codes = candidate.reason_codes;
  if (!codes) return candidate.reasons;
  return codes.map((code, i) => reasonText(code, tr, specialtyName) ?? candidate.reasons[i] ?? code.code);
}
