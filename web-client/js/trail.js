// The audit trail as a patient reads it: who opened their record, in plain words.

/** The roles of people (devices send readings; the server's sweeps are its own). */
const PEOPLE = ['admin', 'coordinator', 'community_doctor', 'expert', 'patient'];

/**
 * The people who opened a patient's record, one line per person and day, newest first: the
 * events of the trail (newest first, as `GET /api/v1/audit` answers) that someone else did
 * with success. The patient's own reads, devices' readings and the server's own sweeps are
 * left out.
 * @param {any[]} events
 * @param {string} me the patient's own account id
 * @param {(iso: string) => string} dayOf the local day of a time, as the patient reads it
 * @returns {{name: string, role: string, day: string, count: number}[]}
 */
export function whoLooked(events, me, dayOf) {
  /** @type {{name: string, role: string, day: string, count: number}[]} */
  const lines = [];
  const byKey = new Map();
  for (const e of events) {
    if (!e.actor_id || e.actor_id === me || e.outcome !== 'success' || !PEOPLE.includes(e.actor_role)) continue;
    const day = dayOf(e.at);
    const key = `${e.actor_id}\u0000${day}`;
    let line = byKey.get(key);
    if (!line) {
      line = { name: e.actor_name || '', role: e.actor_role, day, count: 0 };
      byKey.set(key, line);
      lines.push(line);
    }
    line.count += 1;
  }
  return lines;
}

/**
 * How many times someone else was refused the patient's record.
 * @param {any[]} events
 * @param {string} me
 */
export function refusedTimes(events, me) {
  return events.filter((e) => e.actor_id && e.actor_id !== me && e.outcome === 'denied' && PEOPLE.includes(e.actor_role)).length;
}
