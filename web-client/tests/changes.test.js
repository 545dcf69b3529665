// Plans change: dr.li moves a booked appointment to another of dr.wang's slots, then cancels
// it, then cancels the request itself — each with a reason, on the consultation's page, as a
// clinic's doctor would; dr.wang sees what happened and why. And when the one expert asked
// declines, dr.li sends the same request on, without entering it again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, axeViolations, consultationThroughUi, bookedThroughUi, onConsultation, requestThroughUi } from './helpers.js';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
let id = '';
let first = '';

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  id = await consultationThroughUi(browser, server.url, { patient: '张秀英', reason: '血压控制不佳，调整用药', urgency: 'routine', mode: 'video' });
  first = await bookedThroughUi(browser, server.url, id);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The appointments card's rows: [start, status] as the page shows them. */
async function appointments(/** @type {import('playwright-core').Page} */ page) {
  return page.$$eval('section:has(#appts) li', (rows) => rows.map((r) => r.textContent || ''));
}

test('dr.li moves the appointment to another slot, giving the reason', async () => {
  const page = await onConsultation(browser, server.url, 'dr.li', id);
  await page.click('button:has-text("改约")');
  await page.waitForSelector('.reschedule button.slot');
  // A slot picked before the reason is given moves nothing.
  await page.locator('.reschedule button.slot').nth(1).click();
  await page.waitForSelector('.reschedule [role=alert]:has-text("请先填写改约原因")');
  const starts = await page.$$eval('.reschedule button.slot time', (ts) => ts.map((t) => t.getAttribute('datetime') || ''));
  assert.ok(!starts.includes(first), 'the booked slot is not offered again');
  await page.fill('#resched-reason', '患者当天需复查血常规');
  await page.locator('.reschedule button.slot').nth(1).click();
  await page.waitForSelector('section:has(#appts) li:has-text("已改约")');
  const rows = await appointments(page);
  assert.equal(rows.length, 2, `${rows}`);
  assert.equal(rows.filter((r) => r.includes('已预约')).length, 1, `${rows}`);
  await page.waitForSelector('main .badge.state-scheduled');
  assert.deepEqual(await axeViolations(page), []);
  await page.context().close();
});

test('dr.li cancels the appointment; the consultation waits to be booked again', async () => {
  const page = await onConsultation(browser, server.url, 'dr.li', id);
  await page.click('button:has-text("取消预约")');
  await page.waitForSelector('form.with-reason >> text=时段将释放给其他患者');
  // Back leaves it as it was.
  await page.click('form.with-reason button:has-text("返回")');
  await page.waitForSelector('button:has-text("取消预约")');
  await page.click('button:has-text("取消预约")');
  await page.fill('#appt-cancel-reason', '患者住院');
  await page.click('form.with-reason button[type=submit]');
  await page.waitForSelector('main .badge.state-accepted');
  await page.waitForSelector('.slots button.slot');
  assert.equal((await appointments(page)).filter((r) => r.includes('已预约')).length, 0);
  await page.context().close();
});

test('dr.li cancels the request with a reason, and dr.wang reads it in the history', async () => {
  const page = await onConsultation(browser, server.url, 'dr.li', id);
  await page.click('button:has-text("取消会诊")');
  // The reason is required: without one nothing is sent.
  await page.click('form.with-reason button[type=submit]');
  assert.equal(await page.locator('#c-cancel-reason:invalid').count(), 1);
  await page.fill('#c-cancel-reason', '患者已转上级医院住院');
  await page.click('form.with-reason button[type=submit]');
  await page.waitForSelector('main .badge.state-cancelled');
  assert.equal(await page.locator('button:has-text("取消会诊"), button:has-text("改约"), .slots button.slot').count(), 0);
  await page.context().close();

  const wang = await onConsultation(browser, server.url, 'dr.wang', id);
  await wang.waitForSelector('main .badge.state-cancelled');
  await wang.waitForSelector('section:has(#hist) li:has-text("患者已转上级医院住院")');
  await wang.context().close();
});

test('dr.wang declines; dr.li sends the same request to the department, nothing entered again', async () => {
  const declinedId = await requestThroughUi(browser, server.url, { patient: '张秀英', reason: '心悸伴胸闷，动态心电图待解读', urgency: 'routine', mode: 'video' });
  const wang = await onConsultation(browser, server.url, 'dr.wang', declinedId);
  await wang.fill('#decline-reason', '本周外出学习');
  await wang.click('button:has-text("拒绝")');
  await wang.waitForURL(`${server.url}/`);
  await wang.context().close();

  const page = await onConsultation(browser, server.url, 'dr.li', declinedId);
  await page.waitForSelector('main .badge.state-declined');
  await page.waitForSelector('.readdress h3:has-text("改请其他专家")');
  // The expert who declined is not offered again; he was the only cardiologist.
  assert.equal(await page.locator('.readdress .candidates li:has-text("王建国")').count(), 0);
  await page.waitForSelector('.readdress:has-text("没有其他符合条件的专家")');
  assert.deepEqual(await axeViolations(page), []);
  await page.click('.readdress button:has-text("发送给科室，由专家认领")');
  await page.waitForSelector('main .badge.state-requested');
  await page.waitForSelector('section:has(#hist) li:has-text("本周外出学习")');
  assert.equal(await page.locator('dd.question').textContent(), '心悸伴胸闷，动态心电图待解读');
  assert.equal(await page.locator('.readdress').count(), 0);
  await page.context().close();
});
