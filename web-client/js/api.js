// The API client: JSON over fetch with the bearer token, one refresh on 401, and
// problem+json errors turned into ApiError.
import * as session from './session.js';
import { ZH } from './strings-zh.js';
import { lang } from './i18n.js';

/**
 * What a reader is told of a problem the server answered: in Chinese, the client's own words
 * for its stable `code` (`problem.<code>` of the Chinese table) when it has them; otherwise
 * (English, or a code without words yet) the server's `detail`, which is English.
 * @param {{code?: string, title?: string, detail?: string}} problem
 * @param {number} status
 * @param {string} language `zh-CN` or `en`
 * @returns {string}
 */
export function problemText(problem, status, language) {
  /** @type {Record<string, string>} */
  const zh = ZH;
  const own = problem.code ? zh[`problem.${problem.code}`] : undefined;
  if (language !== 'en' && own) return own;
  return problem.detail || problem.title || `HTTP ${status}`;
}

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {{code?: string, title?: string, detail?: string}} problem
   */
  constructor(status, problem) {
    super(problemText(problem, status, lang()));
    this.status = status;
    this.code = problem.code || 'http_error';
    /** The server's own words (English), for whoever needs the particulars. */
    this.detail = problem.detail || '';
  }
}

/** @type {Promise<boolean> | null} */
let refreshing = null;

/** @returns {Promise<boolean>} whether new tokens were obtained */
export async function refresh() {
  const s = session.current();
  if (!s) return false;
  refreshing ??= (async () => {
    const res = await fetch('/api/v1/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refresh_token: s.refresh_token }),
    });
    if (!res.ok) return false;
    const body = await res.json();
    session.save({ access_token: body.access_token, refresh_token: body.refresh_token, user: body.user });
    return true;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

/**
 * The Authorization header for the current session, if any.
 * @returns {Record<string, string>}
 */
export function authHeader() {
  const s = session.current();
  return s ? { Authorization: `Bearer ${s.access_token}` } : {};
}

/**
 * Calls the API and answers the parsed JSON body (null for 204).
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {boolean} [retry]
 * @returns {Promise<any>}
 */
export async function api(method, path, body, retry = true) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json', ...authHeader() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && retry && !path.startsWith('/api/v1/auth/') && (await refresh())) {
    return api(method, path, body, false);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith('/api/v1/auth/')) {
      session.clear();
      window.dispatchEvent(new Event('session-expired'));
    }
    throw new ApiError(res.status, data || {});
  }
  return data;
}

export const get = (/** @type {string} */ path) => api('GET', path);
export const post = (/** @type {string} */ path, /** @type {unknown} */ body = {}) => api('POST', path, body);
export const put = (/** @type {string} */ path, /** @type {unknown} */ body) => api('PUT', path, body);

/**
 * Every item of a paged list (`{"items": [...], "next": cursor-or-null}`), following `next`
 * page by page until the server answers null.
 * @param {string} path the list's path, with its filters and `limit` if any
 * @returns {Promise<any[]>}
 */
export async function getAll(path) {
  const items = [];
  /** @type {string | null} */
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    /** @type {{items: any[], next: string | null}} */
    const page = await get(cursor === null ? path : `${path}${sep}cursor=${encodeURIComponent(cursor)}`);
    items.push(...page.items);
    cursor = page.next !== cursor ? page.next : null;
  } while (cursor !== null);
  return items;
}
