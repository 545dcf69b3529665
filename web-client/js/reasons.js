// The words for the server's reason codes, in the user's language: the expert ranking's
// (`reason_codes` of a ranked candidate) and the network check's (`reason_codes` of a
// result). Pure: the translator and the specialty names come in.

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

/**
 * One network-check reason in words, or `null` for a code this client does not know. Loss
 * comes as a fraction and is shown in per cent; speeds and round trips as whole numbers.
 * @param {ReasonCode} reason
 * @param {Translate} tr
 * @returns {string | null}
 */
export function netcheckReasonText(reason, tr) {
  const call = reason.call === 'video' || reason.call === 'audio' ? tr(`netcheck.call.${reason.call}`) : '';
  switch (reason.code) {
    case 'no_network_path':
    case 'timed_out':
    case 'no_probe_returned':
      return tr(`netcheck.reason.${reason.code}`);
    case 'upload_not_measured':
      return tr('netcheck.reason.upload_not_measured', { call });
    case 'upload_too_slow':
      return tr('netcheck.reason.upload_too_slow', { call, value: Math.round(reason.throughput_kbps), limit: Math.round(reason.min_kbps) });
    case 'loss_too_high':
      return tr('netcheck.reason.loss_too_high', { call, value: (reason.loss * 100).toFixed(1), limit: Math.round(reason.max_loss * 100) });
    case 'rtt_too_high':
      return tr('netcheck.reason.rtt_too_high', { call, value: Math.round(reason.rtt_ms), limit: Math.round(reason.max_rtt_ms) });
    default:
      return null;
  }
}

/**
 * Why a network check fell short, in words: from its codes where known, else the server's
 * English (`detail`, the codes' sentences joined by "; ") at the same place. Empty for video.
 * @param {{verdict: string, detail: string, reason_codes?: ReasonCode[]}} result
 * @param {Translate} tr
 * @returns {string[]}
 */
export function netcheckReasons(result, tr) {
  const english = result.detail ? result.detail.split('; ') : [];
  const codes = result.reason_codes;
  if (!codes) return result.verdict === 'video' ? [] : english;
  return codes.map((code, i) => netcheckReasonText(code, tr) ?? english[i] ?? code.code);
}
