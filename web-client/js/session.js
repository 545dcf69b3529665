// The signed-in session: tokens and user, kept in sessionStorage (gone with the tab).

/**
 * @typedef {{id: string, username: string, display_name: string, role: string,
 *   organisation_id: string, organisation_name: string, organisation_kind: string,
 *   patient_id?: string | null, expert?: {title: string, specialties: string[], time_zone: string} | null}} User
 * @typedef {{access_token: string, refresh_token: string, user: User, kiosk?: boolean}} Session
 *   (`kiosk`: access a kiosk check-in handed out for one consultation's call)
 */

const KEY = 'teleconsult.session';

/** @returns {Session | null} */
export function current() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/** @param {Session} s */
export function save(s) {
  sessionStorage.setItem(KEY, JSON.stringify(s));
}

export function clear() {
  sessionStorage.removeItem(KEY);
}
