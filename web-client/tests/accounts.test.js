// A coordinator manages accounts through the admin screen: deactivation ends the account's
// open session at once, a password reset and a new account hand over a one-time password that
// opens only setting one's own, and the accounts the coordinator may not manage (the admin's)
// offer no action.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signIn, serverAndBrowser, ready, axeViolations } from './helpers.js';

const env = serverAndBrowser();

/** The users table row of a person. */
const row = (/** @type {import('playwright-core').Page} */ page, /** @type {string} */ username) =>
  page.locator('section:has(#users) tbody tr', { has: page.locator(`td:text-is("${username}")`) });

/**
 * Signs in with a one-time password in a browser of its own: it opens only "设置新密码", where
 * the owner sets `own`, then their home.
 * @param {string} username
 * @param {string} oneTime
 * @param {string} own
 */
async function firstSignIn(username, oneTime, own) {
  const page = await (await env.browser.newContext()).newPage();
  await page.goto(`${env.server.url}/login`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', oneTime);
  await page.click('button[type=submit]');
  await page.waitForSelector('h1:has-text("设置新密码")');
  await page.fill('input[name=new_password]', own);
  await page.fill('input[name=repeat]', own);
  await page.click('button[type=submit]');
  await ready(page, '/');
  return page;
}

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

  await firstSignIn('patient.liu', password, 'liu-own-password');
});

test('the coordinator makes an expert account; its one-time password opens only setting her own', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'coordinator');
  await page.fill('#acc-name', '孙丽');
  await page.fill('#acc-username', 'dr.sun');
  await page.selectOption('#acc-role', 'expert');
  await page.locator('fieldset.expert-fields').waitFor({ state: 'visible' });
  await page.selectOption('#acc-org', { label: '市第一人民医院' });
  await page.selectOption('#acc-title', 'attending');
  // An expert needs a specialty: the form says so before anything is sent.
  await page.click('button[type=submit]:has-text("创建账号")');
  await page.waitForSelector('.new-account [role=alert]:has-text("请至少选择一个专科")');
  await page.check('.new-account input[name=specialty][value=cardiology]');
  await page.click('button[type=submit]:has-text("创建账号")');
  const shown = await page.locator('[role=status]:has-text("已为 孙丽 创建账号 dr.sun")').textContent();
  const password = /一次性密码：(\S+)（/.exec(shown || '')?.[1];
  assert.ok(password, `no one-time password in ${shown}`);
  // The new account is in the table, and the coordinator manages it.
  await row(page, 'dr.sun').locator('td:text-is("专家 · 主治医师")').waitFor();
  assert.equal(await row(page, 'dr.sun').locator('button:has-text("重置密码")').count(), 1);
  await context.close();

  // Whoever signs in with the handed-over password gets only the password screen.
  const sun = await firstSignIn('dr.sun', password, 'sun-own-password');
  await sun.waitForSelector('h1:has-text("专家工作台")');

  // The handed-over password no longer opens the account.
  const other = await (await env.browser.newContext()).newPage();
  await other.goto(`${env.server.url}/login`);
  await other.fill('input[name=username]', 'dr.sun');
  await other.fill('input[name=password]', password);
  await other.click('button[type=submit]');
  await other.waitForSelector('[role=alert]:has-text("用户名或密码错误")');
});

test('the admin finds an expert\'s refused look-up of a patient in the audit trail', async () => {
  // The world before the story: the address of patient.zhang's record, as dr.li's browser
  // shows it when he opens her record from his home screen.
  const li = await (await env.browser.newContext()).newPage();
  await signIn(li, env.server.url, 'dr.li');
  await li.click('.list li:has-text("张秀英") button:has-text("健康档案")');
  await li.waitForURL(/\/patients\/[0-9a-f-]{36}$/);
  const record = new URL(li.url()).pathname;
  await ready(li, record);
  await li.context().close();
  // dr.chen, a radiologist not involved in her care, types the address of her record.
  const chen = await (await env.browser.newContext()).newPage();
  await signIn(chen, env.server.url, 'dr.chen');
  await chen.goto(`${env.server.url}${record}`);
  await chen.waitForSelector('main [role=alert], main .error');

  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'admin');
  await page.waitForSelector('h2:has-text("审计日志")');
  await page.check('#audit-refused');
  const refused = page.locator('section:has(#audit) tbody tr', { has: page.locator('td:has-text("陈静")') });
  await refused.first().waitFor();
  assert.ok(await refused.count() >= 1);
  assert.match(await refused.first().textContent() || '', /被拒绝/);
  assert.equal(await page.locator('section:has(#audit) tbody tr[data-outcome=success]').count(), 0, 'only refusals shown');
  assert.deepEqual(await axeViolations(page), []);
  await context.close();
});

test('the admin ends a centre\'s consortium link: the hospital\'s coordinator loses its accounts, and gets them back when it is linked again', async () => {
  const coordinator = await (await env.browser.newContext()).newPage();
  await signIn(coordinator, env.server.url, 'coordinator');
  await row(coordinator, 'dr.li').waitFor();

  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'admin');
  const links = page.locator('section:has(#links)');
  const donghu = links.locator('tbody tr', { has: page.locator('td:text-is("东湖社区卫生服务中心")') });
  await donghu.locator('td:text-is("市第一人民医院")').waitFor();
  await donghu.locator('button:has-text("结束关系")').click();
  await donghu.locator('text=市第一人民医院的协调员将立即无法查看东湖社区卫生服务中心的患者、会诊和账号').waitFor();
  // The reason is required: without one, nothing is sent and the link stays.
  await donghu.locator('button:has-text("确认结束")').click();
  assert.equal(await donghu.locator('input[name=reason]:invalid').count(), 1);
  await donghu.locator('input[name=reason]').fill('合作协议到期');
  await donghu.locator('button:has-text("确认结束")').click();
  await links.locator('[role=status]:has-text("已结束市第一人民医院与东湖社区卫生服务中心的医联体关系。")').waitFor();
  assert.equal(await donghu.count(), 0, 'the ended link leaves the list');
  assert.deepEqual(await axeViolations(page), []);

  // The coordinator's next look: dr.li's account, at that centre, is no longer theirs.
  await coordinator.reload();
  await ready(coordinator, '/');
  await row(coordinator, 'dr.zhao').waitFor();
  assert.equal(await row(coordinator, 'dr.li').count(), 0);
  assert.equal(await coordinator.locator('section:has(#links) td:text-is("东湖社区卫生服务中心")').count(), 0);

  // Linked again by the admin, through the same section.
  await links.locator('select[name=hospital_id]').selectOption({ label: '市第一人民医院' });
  await links.locator('select[name=centre_id]').selectOption({ label: '东湖社区卫生服务中心' });
  await links.locator('button:has-text("建立医联体关系")').click();
  await links.locator('[role=status]:has-text("已将东湖社区卫生服务中心纳入市第一人民医院的医联体。")').waitFor();
  await coordinator.reload();
  await ready(coordinator, '/');
  await row(coordinator, 'dr.li').waitFor();
  await coordinator.context().close();
  await context.close();
});

test('the coordinator promotes an expert and adds a specialty; the change stays', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'coordinator');
  const chen = row(page, 'dr.chen');
  await chen.locator('td:text-is("专家 · 副主任医师")').waitFor();
  await chen.locator('button:has-text("职称与专科")').click();
  // No specialty at all is refused in place.
  for (const box of await chen.locator('input[name=specialty]:checked').all()) await box.uncheck();
  await chen.locator('button:has-text("保存职称与专科")').click();
  await chen.locator('[role=alert]:has-text("请至少选择一个专科")').waitFor();
  await chen.locator('select[name=title]').selectOption({ label: '主任医师' });
  await chen.locator('label:has-text("放射科") input').check();
  await chen.locator('label:has-text("心血管内科") input').check();
  await chen.locator('button:has-text("保存职称与专科")').click();
  await chen.locator('[role=status]:has-text("已更新陈静的职称与专科，立即生效。")').waitFor();
  await chen.locator('td:text-is("专家 · 主任医师")').waitFor();
  assert.deepEqual(await axeViolations(page), []);
  // As stored: the screen read again shows it, with both specialties ticked.
  await page.reload();
  await ready(page, '/');
  await chen.locator('td:text-is("专家 · 主任医师")').waitFor();
  await chen.locator('button:has-text("职称与专科")').click();
  assert.deepEqual(
    (await chen.locator('input[name=specialty]:checked').evaluateAll((bs) => bs.map((b) => b.parentElement?.textContent?.trim()))).sort(),
    ['放射科', '心血管内科'].sort());
  await context.close();
});
