// Live notifications: a fetch-based Server-Sent Events reader (so the bearer token goes in a
// header, never in a URL), toasts, and the inbox.
import { h, mount, when } from './dom.js';
import { known, t } from './i18n.js';
import { authHeader, get, post, refresh } from './api.js';

/**
 * @typedef {{id: string, kind: string, title: string, body: string,
 *   consultation_id: string | null, created_at: string, read_at: string | null,
 *   code?: string, params?: Record<string, string>}} Notification
 */

/**
 * What a notification says in the reader's language: from its code and parameters when this
 * client knows the code and the notification carries every parameter its text names, else
 * the title and body the server wrote (in both languages) — a notification stored before its
 * text took a new parameter still reads whole.
 * @param {Notification} n
 * @returns {{title: string, body: string}}
 */
export function noticeText(n) {
  const key = `notify.${n.code}`;
  if (!n.code || !known(`${key}.title`)) return { title: n.title, body: n.body };
  const params = n.params || {};
  const filled = (/** @type {string} */ k) =>
    ([...t(k).matchAll(/\{(\w+)\}/g)].every((m) => m[1] in params) ? t(k, params) : null);
  const title = filled(`${key}.title`);
  const body = known(`${key}.body`) ? filled(`${key}.body`) : timeOrText(n.body);
  return title === null || body === null ? { title: n.title, body: n.body } : { title, body };
}

/**
 * A body that is a time (an appointment's start, as the server sends it) as the reader reads
 * times; any other body as it is.
 * @param {string} body
 * @returns {string}
 */
function timeOrText(body) {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(body) ? when(body) : body;
}

/**
 * Splits an event-stream buffer into complete events and the unfinished rest.
 * @param {string} buffer
 * @returns {{events: {event: string, data: string}[], rest: string}}
 */
export function parseEvents(buffer) {
  const events = [];
  const blocks = buffer.replace(/\r\n/g, '\n').split('\n\n');
  const rest = blocks.pop() || '';
  for (const block of blocks) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const [name, ...value] = line.split(':');
      const v = value.join(':').replace(/^ /, '');
      if (name === 'event') event = v;
      else if (name === 'data') data.push(v);
    }
    if (data.length) events.push({ event, data: data.join('\n') });
  }
  return { events, rest };
}

/**
 * Reads the live stream until `signal` aborts, reconnecting after errors. The server ends the
 * stream when its access token expires (and when the account's access is revoked): a 401 on
 * reconnecting refreshes the session once and goes on, and stops only when that fails.
 * @param {(n: Notification) => void} onNotification
 * @param {AbortSignal} signal
 */
export async function listen(onNotification, signal) {
  let delay = 1000;
  let refreshed = false;
  while (!signal.aborted) {
    try {
      const res = await fetch('/api/v1/notifications/stream', {
        headers: { Accept: 'text/event-stream', ...authHeader() }, signal,
      });
      if (res.status === 401) {
        if (!refreshed && (await refresh())) {
          refreshed = true;
          continue;
        }
        return;
      }
      if (!res.ok || !res.body) throw new Error(`stream ${res.status}`);
      delay = 1000;
      refreshed = false;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parsed = parseEvents(buffer + value);
        buffer = parsed.rest;
        for (const e of parsed.events) {
          try { onNotification(JSON.parse(e.data)); } catch { /* not a notification */ }
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 30000);
  }
}

/**
 * Shows a short message in the corner.
 * @param {string} text
 * @param {string} [detail]
 */
export function toast(text, detail) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const el = h('div', { class: 'toast' }, h('strong', null, text), detail ? h('div', null, detail) : null);
  box.appendChild(el);
  setTimeout(() => el.remove(), 6000);
}

/**
 * The inbox panel.
 * @param {(path: string) => void} navigate
 * @returns {Promise<HTMLElement>}
 */
export async function inboxView(navigate) {
  const page = await get('/api/v1/notifications?limit=50');
  /** @type {Notification[]} */
  const items = page.items;
  const list = h('ul', { class: 'list' });
  const render = () => mount(list, items.length ? items.map((n) => h('li', { class: n.read_at ? 'read' : 'unread' },
    h('div', null, h('strong', null, noticeText(n).title), ' ', h('span', { class: 'muted' }, when(n.created_at))),
    h('div', null, noticeText(n).body),
    n.consultation_id ? h('button', { class: 'link', onclick: () => navigate(`/consultations/${n.consultation_id}`) }, t('common.open')) : null,
    !n.read_at ? h('button', { class: 'link', onclick: async () => {
      await post(`/api/v1/notifications/${n.id}/read`);
      n.read_at = new Date().toISOString();
      render();
    } }, t('notifications.markRead')) : null,
  )) : h('li', { class: 'muted' }, t('notifications.empty')));
  render();
  return h('section', { class: 'card', 'aria-labelledby': 'inbox-title' },
    h('h1', { id: 'inbox-title' }, t('notifications.title')),
    h('button', { onclick: async () => {
      await post('/api/v1/notifications/read-all');
      for (const n of items) n.read_at ||= new Date().toISOString();
      render();
    } }, t('notifications.markAllRead')),
    list);
}
