// Each role signs in and sees its own home screen; the language switch works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signIn, screenshot, serverAndBrowser, apiAs } from './helpers.js';

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
  // Setup no screen offers: the admin resets dr.zhao's password.
  const admin = await apiAs(env.server.url, 'admin');
  const users = await admin.call('GET', '/api/v1/users');
  const zhao = users.items.find((/** @type {any} */ u) => u.username === 'dr.zhao');
  await admin.call('PATCH', `/api/v1/users/${zhao.id}`, { password: 'one-time-123' });

  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.server.url}/login`);
  await page.fill('input[name=username]', 'dr.zhao');
  await page.fill('input[name=password]', 'one-time-123');
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

  // The new password is the one that signs in now.
  const res = await fetch(`${env.server.url}/api/v1/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'dr.zhao', password: 'zhao-own-password' }),
  });
  assert.equal(res.status, 200);
});
