// A patient's particulars are corrected on her record page by her own centre's doctor, and
// nothing the correction replaced is lost: dr.li opens 张秀英's record from his patient list,
// corrects her phone number (a new mobile) and, reading the form back, finds the old number
// in the record's corrections with his name; a wrong date of birth is refused with the
// server's words and stores nothing. An expert in her care reads the record and its
// corrections but is offered no form.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, signIn, ready, axeViolations, consultationThroughUi } from './helpers.js';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
let recordPath = '';

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('dr.li corrects a phone number on the record page; the old one stays in its corrections', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, server.url, 'dr.li');
  await page.click('li:has-text("张秀英") button:has-text("健康档案")');
  await page.waitForSelector('main[data-ready^="/patients/"]:not([aria-busy])');
  recordPath = new URL(page.url()).pathname;
  await page.waitForSelector('.particulars dd:has-text("13800000001")');
  await page.waitForSelector('text=没有修改过');

  await page.click('button:has-text("修改基本信息")');
  assert.equal(await page.inputValue('#pp-phone'), '13800000001', 'the form starts from the record');
  // A date of birth in the future: refused with the server's reason, nothing stored.
  await page.fill('#pp-birth', '2099-01-01');
  await page.click('button:has-text("保存修改")');
  await page.waitForSelector('.particulars-form [role=alert]:not(:empty)');
  await page.fill('#pp-birth', '1948-05-12');
  await page.fill('#pp-phone', '13912345678');
  await page.click('button:has-text("保存修改")');
  await page.waitForSelector('[role=status]:has-text("已保存")');
  await page.waitForSelector('.particulars dd:has-text("13912345678")');
  const rows = await page.$$eval('ol.revisions li', (li) => li.map((x) => x.textContent || ''));
  assert.equal(rows.length, 1, `one correction: ${rows}`);
  assert.match(rows[0], /李明 修改/);
  assert.match(rows[0], /电话原为“13800000001”/);
  assert.ok(!rows[0].includes('出生日期'), `the refused date changed nothing: ${rows[0]}`);
  assert.deepEqual(await axeViolations(page), []);

  // Read again after a reload: stored, not only shown.
  await page.reload();
  await page.waitForSelector('.particulars dd:has-text("13912345678")');
  await page.waitForSelector('ol.revisions li:has-text("13800000001")');
  await context.close();
});

test('an expert in her care reads the corrections, and is offered no form', async () => {
  // dr.wang takes part in one of her consultations (requested through the wizard).
  const id = await consultationThroughUi(browser, server.url, { patient: '张秀英', reason: '血压控制不佳', urgency: 'routine', mode: 'video' });
  assert.ok(id);
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, server.url, 'dr.wang');
  await page.goto(`${server.url}${recordPath}`);
  await ready(page, recordPath);
  await page.waitForSelector('ol.revisions li:has-text("13800000001")');
  assert.equal(await page.locator('button:has-text("修改基本信息")').count(), 0);
  await context.close();
});
