// Elder mode (patients, and any screen opened with ?kiosk=1): body text of at least 18px,
// headings of at least 30px, touch targets of at least 60px.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, signIn, ready, screenshot, axeViolations } from './helpers.js';

/** @type {{url: string, stop: () => Promise<void>}} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * The sizes that elder mode promises, measured on the rendered page.
 * @param {import('playwright-core').Page} page
 */
async function sizes(page) {
  return page.evaluate(() => {
    const px = (/** @type {Element} */ el) => parseFloat(getComputedStyle(el).fontSize);
    const visible = (/** @type {Element} */ el) => {
      const r = el.getBoundingClientRect();
      return r.width > 0 && r.right > 0 && r.bottom > 0; // the skip link waits off-screen until focused
    };
    return {
      body: px(document.body),
      headings: [...document.querySelectorAll('h1')].filter(visible).map(px),
      targets: [...document.querySelectorAll('button, input, select, a[href]')].filter(visible).map((el) => {
        const r = el.getBoundingClientRect();
        return { text: (el.textContent || el.getAttribute('name') || '').trim(), w: r.width, h: r.height };
      }),
    };
  });
}

/** @param {Awaited<ReturnType<typeof sizes>>} s */
function assertElder(s) {
  assert.ok(s.body >= 18, `body text ${s.body}px`);
  assert.ok(s.headings.length > 0 && s.headings.every((h) => h >= 30), `headings ${s.headings}`);
  const small = s.targets.filter((t) => t.h < 60 || t.w < 60);
  assert.deepEqual(small, [], 'every touch target is at least 60px');
}

test('the patient home is in elder mode with one main action', async () => {
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  await signIn(page, server.url, 'patient.zhang');
  assert.ok(await page.evaluate(() => document.body.classList.contains('elder')));
  assertElder(await sizes(page));
  assert.ok((await page.$$('main button.primary')).length <= 1, 'at most one main action');
  await screenshot(page, 'elder-patient-home');
  await context.close();
});

test('a kiosk (?kiosk=1) shows the sign-in screen in elder mode', async () => {
  const context = await browser.newContext({ viewport: { width: 1080, height: 1920 } });
  const page = await context.newPage();
  await page.goto(`${server.url}/login?kiosk=1`);
  await ready(page, '/login');
  assertElder(await sizes(page));
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'elder-kiosk-sign-in');
  await context.close();
});
