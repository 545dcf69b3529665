// Each role signs in and sees its own home screen; the language switch works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signIn, screenshot, serverAndBrowser } from './helpers.js';

const env = serverAndBrowser();

const HOMES = [
  ['dr.li', '社区医生工作台'],
  ['dr.wang', '专家工作台'],
  ['patient.zhang', '张秀英，您好'],
  ['coordinator', '医联体协调'],
  ['admin', '系统管理'],
];

for (const [username, heading] of HOMES) {
  test(`${username} signs in and sees the home screen`, async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await signIn(page, env.server.url, username);
    assert.equal((await page.textContent('main h1'))?.trim(), heading);
    await screenshot(page, `home-${username}`);
    await context.close();
  });
}

test('the English switch translates the screen and is remembered', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'dr.li');
  await page.click('nav button:has-text("English")');
  await page.waitForSelector('main h1:has-text("Community doctor")');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await page.reload();
  await page.waitForSelector('main h1:has-text("Community doctor")');
  await context.close();
});

test('a wrong password is refused with a message', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.server.url}/`);
  await page.fill('input[name=username]', 'dr.li');
  await page.fill('input[name=password]', 'wrong');
  await page.click('button[type=submit]');
  await page.waitForSelector('[role=alert]:has-text("用户名或密码错误")');
  await context.close();
});

test('a one-time password set by the admin opens only the password change', async () => {
  // The admin resets dr.zhao's password on the admin screen and reads the one-time password.
  const adminContext = await env.browser.newContext();
  const admin = await adminContext.newPage();
  await signIn(admin, env.server.url, 'admin');
  const zhaoRow = admin.locator('section:has(#users) tbody tr', { has: admin.locator('td:text-is("dr.zhao")') });
  await zhaoRow.locator('button:has-text("重置密码")').click();
  await zhaoRow.locator('button:has-text("确认")').click();
  const shown = await admin.locator('[role=status]:has-text("一次性密码")').textContent();
  const oneTime = /一次性密码：(\S+)（/.exec(shown || '')?.[1];
  assert.ok(oneTime, `no one-time password in ${shown}`);
  await adminContext.close();

  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.server.url}/login`);
  await page.fill('input[name=username]', 'dr.zhao');
  await page.fill('input[name=password]', oneTime);
  await page.click('button[type=submit]');
  await page.waitForSelector('h1:has-text("设置新密码")');
  await page.fill('input[name=new_password]', 'zhao-own-password');
  await page.fill('input[name=repeat]', 'zhao-own-passw0rd');
  await page.click('button[type=submit]');
  await page.waitForSelector('[role=alert]:has-text("两次输入的密码不一致")');
  await page.fill('input[name=repeat]', 'zhao-own-password');
  await page.click('button[type=submit]');
  await page.waitForSelector('main[data-ready="/"]:not([aria-busy])');
  assert.equal((await page.textContent('main h1'))?.trim(), '社区医生工作台');
  await context.close();

  // The new password is the one that signs in now, on the sign-in screen of another browser.
  const again = await (await env.browser.newContext()).newPage();
  await again.goto(`${env.server.url}/login`);
  await again.fill('input[name=username]', 'dr.zhao');
  await again.fill('input[name=password]', 'zhao-own-password');
  await again.click('button[type=submit]');
  await again.waitForSelector('main[data-ready="/"]:not([aria-busy])');
  assert.equal((await again.textContent('main h1'))?.trim(), '社区医生工作台');
  await again.context().close();
});
