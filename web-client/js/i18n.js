// Every string the client shows, in Simplified Chinese (the default) and English.
import { ZH } from './strings-zh.js';
import { EN } from './strings-en.js';

/** @typedef {'zh-CN' | 'en'} Lang */

const TABLES = { 'zh-CN': ZH, en: EN };
const KEY = 'teleconsult.lang';

/** @returns {Lang} Chinese unless English was chosen (and where nothing is stored: a worker, node). */
export function lang() {
  return globalThis.localStorage?.getItem(KEY) === 'en' ? 'en' : 'zh-CN';
}

/** @param {Lang} l */
export function setLang(l) {
  localStorage.setItem(KEY, l);
  document.documentElement.lang = l;
}

/**
 * The string for `key` in the current language with `{name}` placeholders filled; falls
 * back to Chinese, then to the key's last part.
 * @param {string} key
 * @param {Record<string, string | number>} [vars]
 * @returns {string}
 */
export function t(key, vars) {
  /** @type {Record<string, string>} */
  const table = TABLES[lang()];
  /** @type {Record<string, string>} */
  const zh = ZH;
  const text = table[key] ?? zh[key] ?? key.split('.').pop() ?? key;
  return vars ? text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? '')) : text;
}

/**
 * Whether the client has a string for `key` (in the current language or in Chinese).
 * @param {string} key
 * @returns {boolean}
 */
export function known(key) {
  /** @type {Record<string, string>} */
  const zh = ZH;
  /** @type {Record<string, string>} */
  const table = TABLES[lang()];
  return key in table || key in zh;
}
