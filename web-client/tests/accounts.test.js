// A coordinator manages accounts through the admin screen: deactivation ends the account's
// open session at once, a password reset hands over a one-time password, and the accounts the
// coordinator may not manage (the admin's) offer no action.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signIn, serverAndBrowser, ready } from './helpers.js';

const env = serverAndBrowser();

/** The users table row of a person. */
const row = (/** @type {import('playwright-core').Page} */ page, /** @type {string} */ username) =>
  page.locator('section:has(#users) tbody tr', { has: page.locator(`td:text-is("${username}")`) });

test('the coordinator deactivates a doctor, whose open session ends at once', async () => {
  const zhaoContext = await env.browser.newContext();
  const zhao = await zhaoContext.newPage();
  await signIn(zhao, env.server.url, 'dr.zhao');

  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'coordinator');
  // The admin's account offers nothing to a coordinator.
  assert.equal(await row(page, 'admin').locator('button').count(), 0);
  const zhaoRow = row(page, 'dr.zhao');
  await zhaoRow.locator('button:has-text("停用")').click();
  await zhaoRow.locator('text=确认停用 赵磊 的账号？').waitFor();
  await zhaoRow.locator('button:has-text("确认")').click();
  await zhaoRow.locator('td:text-is("已停用")').waitFor();
  await page.waitForSelector('[role=status]:has-text("已停用 赵磊")');

  // dr.zhao's browser: the next thing he does takes him to the sign-in screen.
  await zhao.reload();
  await zhao.waitForSelector('input[name=password]');
  await zhao.fill('input[name=username]', 'dr.zhao');
  await zhao.fill('input[name=password]', 'demo-password');
  await zhao.click('button[type=submit]');
  await zhao.waitForSelector('[role=alert]:has-text("用户名或密码错误")');
  await zhaoContext.close();
  await context.close();
});

test('the coordinator resets a patient password; the patient sets her own at sign-in', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'coordinator');
  const liuRow = row(page, 'patient.liu');
  await liuRow.locator('button:has-text("重置密码")').click();
  await liuRow.locator('button:has-text("取消")').click();
  await liuRow.locator('button:has-text("重置密码")').click();
  await liuRow.locator('button:has-text("确认")').click();
  const shown = await page.locator('[role=status]:has-text("一次性密码")').textContent();
  const password = /一次性密码：(\S+)（/.exec(shown || '')?.[1];
  assert.ok(password, `no one-time password in ${shown}`);
  await context.close();

  const kiosk = await (await env.browser.newContext()).newPage();
  await kiosk.goto(`${env.server.url}/login`);
  await kiosk.fill('input[name=username]', 'patient.liu');
  await kiosk.fill('input[name=password]', password);
  await kiosk.click('button[type=submit]');
  await kiosk.waitForSelector('h1:has-text("设置新密码")');
  await kiosk.fill('input[name=new_password]', 'liu-own-password');
  await kiosk.fill('input[name=repeat]', 'liu-own-password');
  await kiosk.click('button[type=submit]');
  await ready(kiosk, '/');
});
