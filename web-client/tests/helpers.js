// Test helpers: start the real server (demo mode, temporary data directory, free port) and a
// headless Debian Chromium driven by playwright-core.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { before, after } from 'node:test';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..');
export const SCREENSHOTS = join(REPO, 'target', 'screenshots');
export const PASSWORD = 'demo-password';
const require = createRequire(import.meta.url);
export const AXE_PATH = require.resolve('axe-core/axe.min.js');

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/**
 * Starts the server binary; resolves once /readyz answers.
 * @param {Record<string, string>} [extraEnv] further environment (e.g. TELECONSULT_TURN_*)
 * @returns {Promise<{url: string, stop: () => Promise<void>}>}
 */
export async function startServer(extraEnv = {}) {
  const bin = process.env.TELECONSULT_BIN || join(REPO, 'target', 'debug', 'teleconsult');
  const dataDir = mkdtempSync(join(tmpdir(), 'teleconsult-web-'));
  const port = await freePort();
  const env = { ...process.env, ...extraEnv, TELECONSULT_DATA_DIR: dataDir, TELECONSULT_BIND: `127.0.0.1:${port}`, RUST_LOG: 'warn' };
  delete env.TELECONSULT_DATABASE_URL;
  const child = spawn(bin, ['--demo'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited: ${stderr}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`server not ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    /** The server's SQLite database file. */
    database: join(dataDir, 'teleconsult.db'),
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => { if (child.exitCode !== null) r(null); else child.once('exit', r); });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A server and a browser for the tests of one file, started before them and stopped after.
 * @param {string[]} [extraArgs] further Chromium switches
 */
export function serverAndBrowser(extraArgs = []) {
  const env = /** @type {{server: {url: string, database: string, stop: () => Promise<void>}, browser: import('playwright-core').Browser}} */ (
    /** @type {unknown} */ ({})
  );
  before(async () => {
    env.server = await startServer();
    env.browser = await launchBrowser(extraArgs);
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  });
  return env;
}

/**
 * Launches Debian's Chromium with fake media devices. playwright-core gives every launch a
 * fresh, empty temporary profile (it refuses an explicit --user-data-dir with launch()).
 * @param {string[]} [extraArgs] further Chromium switches
 */
export async function launchBrowser(extraArgs = []) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      ...extraArgs,
    ],
  });
  if (process.env.WEB_CLIENT_FROM_DISK === '1') serveFromDisk(browser);
  return browser;
}

/**
 * With WEB_CLIENT_FROM_DISK=1 the pages get the client's files from web-client/ instead of
 * the binary, so a change to the client is tried without rebuilding the server.
 * @param {import('playwright-core').Browser} browser
 */
function serveFromDisk(browser) {
  const types = /** @type {Record<string, string>} */ ({ js: 'text/javascript', css: 'text/css', html: 'text/html' });
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (options) => {
    const context = await newContext(options);
    await context.route(/\/(js|css)\/[\w/.-]+\.(js|css)$/, (route) => {
      const path = new URL(route.request().url()).pathname;
      route.fulfill({ body: readFileSync(join(here, '..', path)), contentType: types[path.split('.').pop() || ''] });
    });
    return context;
  };
  browser.newPage = async (options) => {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    page.on('close', () => { context.close().catch(() => {}); });
    return page;
  };
}

/**
 * Signs in through the form and waits for the home screen.
 * @param {import('playwright-core').Page} page
 * @param {string} base
 * @param {string} username
 */
export async function signIn(page, base, username) {
  await page.goto(`${base}/login`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('main[data-ready="/"]:not([aria-busy])');
}

/**
 * Waits until the screen for `path` has rendered.
 * @param {import('playwright-core').Page} page
 * @param {string} path
 */
export async function ready(page, path) {
  await page.waitForSelector(`main[data-ready="${path}"]:not([aria-busy])`);
}

/**
 * Saves a full-page screenshot under target/screenshots/.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/**
 * A person signed in, in a browser context of their own, on a consultation's page (as one
 * opens it from a link). Close it with `page.context().close()`.
 * @param {import('playwright-core').Browser} browser
 * @param {string} base
 * @param {string} username
 * @param {string} consultationId
 * @returns {Promise<import('playwright-core').Page>}
 */
export async function onConsultation(browser, base, username, consultationId) {
  const page = await (await browser.newContext()).newPage();
  await signIn(page, base, username);
  await page.goto(`${base}/consultations/${consultationId}`);
  await ready(page, `/consultations/${consultationId}`);
  return page;
}

/**
 * A request made the way people make one: dr.li, on his home screen, starts a request for
 * `patient`, fills it in, attaches `files` in the wizard (they go up, through the uploader,
 * once the request exists), records consent and sends it to 王建国. In a context of its own,
 * closed after. Answers the consultation's id.
 * @param {import('playwright-core').Browser} browser
 * @param {string} base
 * @param {{patient: string, reason: string, summary?: string, urgency?: string, mode?: string,
 *   files?: (string | {name: string, mimeType: string, buffer: Buffer})[]}} request
 * @returns {Promise<string>}
 */
export async function requestThroughUi(browser, base, { patient, reason, summary, urgency = 'routine', mode = 'video', files = [] }) {
  const liContext = await browser.newContext();
  try {
    const li = await liContext.newPage();
    await signIn(li, base, 'dr.li');
    await li.click(`li:has-text("${patient}") button`);
    await ready(li, '/consultations/new');
    await li.selectOption('select[name=specialty]', 'cardiology');
    await li.fill('textarea[name=reason]', reason);
    if (summary) await li.fill('textarea[name=record_summary]', summary);
    await li.selectOption('select[name=urgency]', urgency);
    await li.selectOption('select[name=mode]', mode);
    if (files.length) {
      await li.setInputFiles('#wizard-upload-files', files);
      await li.waitForFunction((n) => document.querySelectorAll('.attachments li').length === n, files.length);
    }
    await li.click('button[type=submit]:has-text("下一步")');
    await li.check('#consent-ok');
    await li.click('button[type=submit]:has-text("下一步")');
    await li.waitForSelector('.candidates li');
    await li.click('.candidates li:has-text("王建国") button.primary');
    await li.waitForURL(/\/consultations\/[0-9a-f-]{36}$/);
    const id = li.url().split('/').pop() || '';
    if (files.length) {
      await li.waitForFunction((n) => document.querySelectorAll('.uploads li[data-state=done]').length === n, files.length, { timeout: 30000 });
    }
    return id;
  } finally {
    await liContext.close();
  }
}

/**
 * A consultation made the way people make one, for browser tests whose subject comes after it:
 * dr.li requests it (`requestThroughUi`), dr.wang opens it and accepts, in a context of his
 * own, closed after. Answers the consultation's id.
 * @param {import('playwright-core').Browser} browser
 * @param {string} base
 * @param {Parameters<typeof requestThroughUi>[2]} request
 * @returns {Promise<string>}
 */
export async function consultationThroughUi(browser, base, request) {
  const id = await requestThroughUi(browser, base, request);
  const wang = await onConsultation(browser, base, 'dr.wang', id);
  try {
    await wang.click('button:has-text("接受")');
    await wang.waitForSelector('main .badge.state-accepted');
  } finally {
    await wang.context().close();
  }
  return id;
}

/**
 * dr.li books one of the slots the accepted consultation's page offers him, in a context of
 * his own, closed after: the first, the last, or the first starting after a time (the slot
 * buttons carry their start in a <time>). Answers the slot's start (ISO).
 * @param {import('playwright-core').Browser} browser
 * @param {string} base
 * @param {string} id the consultation
 * @param {{slot?: 'first' | 'last', after?: number}} [which] `after`: epoch ms
 * @returns {Promise<string>}
 */
export async function bookedThroughUi(browser, base, id, { slot = 'first', after } = {}) {
  const page = await onConsultation(browser, base, 'dr.li', id);
  try {
    await page.waitForSelector('.slots button.slot');
    const starts = await page.$$eval('.slots button.slot time', (ts) => ts.map((t) => t.getAttribute('datetime') || ''));
    const index = after !== undefined ? starts.findIndex((s) => Date.parse(s) > after) : slot === 'last' ? starts.length - 1 : 0;
    if (index < 0) throw new Error(`no slot offered after ${new Date(after || 0).toISOString()}: ${starts}`);
    await page.locator('.slots button.slot').nth(index).click();
    await page.waitForSelector('main .badge.state-scheduled');
    return starts[index];
  } finally {
    await page.context().close();
  }
}

/**
 * An expert adds an extra session on his home screen (the form of the availability editor),
 * of 30-minute slots from `start` for an hour, and waits until it is listed. Times are typed
 * as the browser shows them (its local zone).
 * @param {import('playwright-core').Page} page the expert's home screen
 * @param {Date} start
 */
export async function addExtraSession(page, start) {
  const local = (/** @type {Date} */ d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  await page.selectOption('form.new-exception select[name=kind]', 'extra');
  await page.fill('form.new-exception input[name=start]', local(start));
  await page.fill('form.new-exception input[name=end]', local(new Date(start.getTime() + 60 * 60000)));
  await page.fill('form.new-exception input[name=slot_minutes]', '30');
  await page.fill('form.new-exception input[name=reason]', '门诊加号');
  await page.click('form.new-exception button:has-text("添加")');
  await page.waitForSelector('ul.exceptions li[data-kind=extra]:has-text("门诊加号")');
}

/**
 * Runs axe-core (from node_modules, no network) on the page and answers the serious and
 * critical violations.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{id: string, impact: string, help: string, nodes: string[]}[]>}
 */
export async function axeViolations(page) {
  // Evaluated through the DevTools protocol: the page's CSP (script-src 'self') stays on.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(readFileSync(AXE_PATH, 'utf8'));
  const result = await page.evaluate(async () => {
    // @ts-ignore injected above
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((/** @type {any} */ v) => ({
      id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((/** @type {any} */ n) => n.html),
    }));
  });
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** A DICOM test file of tests/fixtures/dicom/. */
export const fixture = (/** @type {string} */ name) => readFileSync(join(REPO, 'tests', 'fixtures', 'dicom', name));

/**
 * CT_small.dcm as instance `n` of its series: the SOP Instance UID's last digits changed
 * (same length, so no element length moves) and the 128x128 16-bit pixel rows rotated by
 * 32·n rows.
 * @param {number} n
 * @returns {Buffer}
 */
export function ctSlice(n) {
  const bytes = Buffer.from(fixture('CT_small.dcm'));
  const uid = Buffer.from('1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322');
  const replacement = Buffer.from(`1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.1232${n}`);
  let at = bytes.indexOf(uid);
  let replaced = 0;
  while (at >= 0) {
    replacement.copy(bytes, at);
    replaced++;
    at = bytes.indexOf(uid, at + 1);
  }
  if (replaced !== 2) throw new Error(`the UID in the meta header and in the data set: ${replaced}`);
  const tag = bytes.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57]));
  const start = tag + 12;
  const rowBytes = 128 * 2;
  const pixels = Buffer.from(bytes.subarray(start, start + 128 * rowBytes));
  const shift = (32 * n) % 128;
  for (let row = 0; row < 128; row++) {
    pixels.copy(bytes, start + ((row + shift) % 128) * rowBytes, row * rowBytes, (row + 1) * rowBytes);
  }
  return bytes;
}
