// Elder mode (patients, and any screen opened with ?kiosk=1): body text of at least 18px,
// headings of at least 30px, touch targets of at least 60px.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signIn, ready, screenshot, axeViolations, consultationThroughUi, requestThroughUi, onConsultation, serverAndBrowser } from './helpers.js';

const env = serverAndBrowser();

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
      headings: [...document.querySelectorAll('h1, h2, h3')].filter(visible).map(px),
      lineHeights: [...document.querySelectorAll('main p, main h1, main h2, main h3')].filter(visible)
        .map((el) => parseFloat(getComputedStyle(el).lineHeight) / px(el)),
      text: [...document.querySelectorAll('main p')].filter(visible).map(px),
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
  assert.ok(s.text.every((px) => px >= 18), `paragraph text ${s.text}`);
  assert.ok(s.lineHeights.every((lh) => lh >= 1.3), `line heights ${s.lineHeights}`);
  const small = s.targets.filter((t) => t.h < 60 || t.w < 60);
  assert.deepEqual(small, [], 'every touch target is at least 60px');
}

test('the patient home is in elder mode with one main action', async () => {
  const context = await env.browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  await signIn(page, env.server.url, 'patient.zhang');
  assert.ok(await page.evaluate(() => document.body.classList.contains('elder')));
  assertElder(await sizes(page));
  assert.ok((await page.$$('main button.primary')).length <= 1, 'at most one main action');
  await screenshot(page, 'elder-patient-home');
  await context.close();
});

test('a kiosk (?kiosk=1) shows the sign-in screen in elder mode', async () => {
  const context = await env.browser.newContext({ viewport: { width: 1080, height: 1920 } });
  const page = await context.newPage();
  await page.goto(`${env.server.url}/login?kiosk=1`);
  await ready(page, '/login');
  assertElder(await sizes(page));
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'elder-kiosk-sign-in');
  await context.close();
});

test('patient.zhang\'s home tells her where a consultation not yet booked stands', async () => {
  const context = await env.browser.newContext({ viewport: { width: 1080, height: 1920 } });
  const page = await context.newPage();
  await signIn(page, env.server.url, 'patient.zhang');
  assert.equal((await page.textContent('.elder-home p.big'))?.trim(), '今天没有会诊安排');
  // dr.li asks for a cardiology consultation in the wizard: she is told it waits for an expert.
  const id = await requestThroughUi(env.browser, env.server.url, { patient: '张秀英', reason: '活动后胸闷两周', mode: 'video' });
  await page.reload();
  await ready(page, '/');
  assert.equal((await page.textContent('.elder-home p.big'))?.trim(), '您的心血管内科会诊已申请，正在等待专家接受');
  // dr.wang accepts it on his screen: she is told who, and that her doctor books the time next.
  const wang = await onConsultation(env.browser, env.server.url, 'dr.wang', id);
  await wang.click('button:has-text("接受")');
  await wang.waitForSelector('main .badge.state-accepted');
  await wang.context().close();
  await page.reload();
  await ready(page, '/');
  assert.equal((await page.textContent('.elder-home p.big'))?.trim(), '王建国医生已接受您的心血管内科会诊，社区医生会为您预约时间');
  assert.equal(await page.$('button.huge'), null, 'nothing to join yet');
  assertElder(await sizes(page));
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'elder-patient-accepted');
  // She opens it from the notice in her notifications: the consultation says the same.
  await page.click('#topbar button:has-text("通知")');
  await ready(page, '/notifications');
  await page.click(`li:has-text("专家已接受会诊") button:has-text("查看")`);
  await ready(page, `/consultations/${id}`);
  assert.equal((await page.textContent('p.next-step'))?.trim(), '王建国医生已接受您的心血管内科会诊，社区医生会为您预约时间');
  await context.close();
});

test('patient.zhang reads the signed opinion in plain words on her kiosk home', async () => {
  // The consultation is requested and accepted on screen; dr.wang writes and signs the opinion
  // in the editor, plain words for the patient in their own boxes.
  const id = await consultationThroughUi(env.browser, env.server.url, { patient: '张秀英', reason: '血压控制不佳，头晕一周', mode: 'video' });
  const wang = await onConsultation(env.browser, env.server.url, 'dr.wang', id);
  await wang.fill('#op-findings', '动态血压 24 小时均值 152/94 mmHg，左心室轻度肥厚。');
  await wang.fill('#op-impression', '高血压二级，血压还没有控制好。');
  await wang.fill('#op-recommendations', '每天早上吃一片氨氯地平，少吃盐，每天量血压并记下来。');
  await wang.fill('#op-follow_up_advice', '两周后回社区医生那里复查血压。');
  await wang.click('.opinion-editor button:has-text("签署")');
  await wang.waitForSelector('article.opinion-signed');
  await wang.context().close();

  const context = await env.browser.newContext({ viewport: { width: 1080, height: 1920 } });
  const page = await context.newPage();
  await signIn(page, env.server.url, 'patient.zhang');
  await page.waitForSelector('article.plain-opinion');
  const text = await page.textContent('article.plain-opinion') || '';
  assert.match(text, /签署医生：王建国（主任医师）/);
  assert.match(text, /签署时间：\d{4}/);
  assert.equal((await page.textContent('.po-impression p'))?.trim(), '高血压二级，血压还没有控制好。');
  assert.equal((await page.textContent('.po-recommendations p'))?.trim(), '每天早上吃一片氨氯地平，少吃盐，每天量血压并记下来。');
  assert.equal((await page.textContent('.po-follow_up_advice p'))?.trim(), '两周后回社区医生那里复查血压。');
  assert.ok(!text.includes('左心室轻度肥厚'), 'the technical findings are left to the doctors');
  assertElder(await sizes(page));
  assert.ok((await page.$$('main button.primary')).length <= 1, 'at most one main action');
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'elder-patient-opinion');

  // The English switch: the same opinion under English headings.
  await page.evaluate(() => localStorage.setItem('teleconsult.lang', 'en'));
  await page.reload();
  await page.waitForSelector('article.plain-opinion');
  assert.match(await page.textContent('article.plain-opinion') || '', /Signed by 王建国 \(Chief\)[\s\S]*What the doctor thinks/);
  await context.close();
});

test('patient.zhang sees on her record who opened it, and that a doctor of another centre was refused', async () => {
  // dr.li opens her record from his home screen.
  const li = await env.browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await signIn(li, env.server.url, 'dr.li');
  await li.click('.list li:has-text("张秀英") button:has-text("健康档案")');
  await li.waitForURL(/\/patients\/[0-9a-f-]{36}$/);
  const record = new URL(li.url()).pathname;
  await ready(li, record);
  await li.close();
  // dr.zhao, of another centre, types the address of her record: it does not exist for him.
  const zhao = await env.browser.newPage();
  await signIn(zhao, env.server.url, 'dr.zhao');
  await zhao.goto(`${env.server.url}${record}`);
  await zhao.waitForSelector('main [role=alert], main .error, main:has-text("不存在"), main:has-text("未找到")');
  await zhao.close();

  const context = await env.browser.newContext({ viewport: { width: 1080, height: 1920 } });
  const page = await context.newPage();
  await signIn(page, env.server.url, 'patient.zhang');
  await page.click('button:has-text("我的健康记录")');
  await ready(page, '/my-record');
  await page.waitForSelector('h2:has-text("谁看过我的记录")');
  const line = await page.locator('.looked li:has-text("李明（社区医生）")').first().textContent();
  assert.match(line || '', /月\d+日，李明（社区医生）查看或处理了您的记录 \d+ 次/);
  assert.equal(await page.locator('.looked li:has-text("赵")').count(), 0, 'a refused doctor did not open her record');
  assert.match(await page.textContent('p.refused') || '', /另有 \d+ 次未被允许的查看/);
  assertElder(await sizes(page));
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'elder-who-opened-my-record');
  await context.close();
});
