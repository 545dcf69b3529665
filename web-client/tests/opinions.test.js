// The opinion editor and the opinions received: dr.wang drafts an opinion (invisible to
// dr.li until signed), signs it, dr.li reads it (signer, title, text) in his opinions
// received and on the consultation; dr.wang amends it with a reason and dr.li sees the new
// version with the reason and the earlier one folded away. The consultation is requested and
// accepted through the UI first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ready, axeViolations, screenshot, consultationThroughUi, onConsultation, serverAndBrowser } from './helpers.js';

const env = serverAndBrowser();

test('dr.wang drafts, signs and amends an opinion that dr.li reads', async () => {
  const c = { id: await consultationThroughUi(env.browser, env.server.url, { patient: '刘德明', reason: '反复胸闷两周，心电图 ST 段压低', mode: 'ecg_review' }) };

  const wangPage = await onConsultation(env.browser, env.server.url, 'dr.wang', c.id);
  await wangPage.waitForSelector('.opinion-editor');
  // Signing without an impression is refused in the form.
  await wangPage.click('.opinion-editor button.primary');
  await wangPage.waitForSelector('.opinion-editor .error:has-text("诊断意见")');
  await wangPage.fill('#op-findings', '窦性心律，V4-V6 导联 ST 段水平型压低 0.1 mV。');
  await wangPage.fill('#op-impression', '考虑心肌缺血，稳定型心绞痛可能。');
  await wangPage.fill('#op-recommendations', '完善运动负荷试验，加用阿司匹林与他汀。');
  await wangPage.click('.opinion-editor button:has-text("保存草稿")');
  await wangPage.waitForSelector('.opinion-status:has-text("草稿已保存")');
  assert.deepEqual(await axeViolations(wangPage), []);
  await screenshot(wangPage, 'opinion-editor');

  // dr.li, on the same consultation, sees no opinion while it is a draft.
  const liPage = await onConsultation(env.browser, env.server.url, 'dr.li', c.id);
  assert.equal(await liPage.$('article.opinion-signed'), null, 'a draft is not shown to the requesting doctor');
  assert.doesNotMatch(await liPage.textContent('main') || '', /稳定型心绞痛/, 'nor any of its text');
  await liPage.goto(`${env.server.url}/`);
  await ready(liPage, '/');

  await wangPage.click('.opinion-editor button:has-text("签署")');
  await ready(wangPage, `/consultations/${c.id}`);
  await wangPage.waitForSelector('article.opinion-signed');
  assert.match(await wangPage.textContent('article.opinion-signed .signed-by') || '', /王建国（主任医师）/);

  // dr.li: opinions received, then the consultation.
  await liPage.click('button:has-text("收到的会诊意见")');
  await ready(liPage, '/opinions');
  const received = await liPage.textContent('ul.received');
  assert.match(received || '', /王建国/);
  assert.match(received || '', /考虑心肌缺血，稳定型心绞痛可能。/);
  assert.deepEqual(await axeViolations(liPage), []);
  await screenshot(liPage, 'opinions-received');
  await liPage.click('ul.received button');
  await ready(liPage, `/consultations/${c.id}`);
  assert.match(await liPage.textContent('article.opinion-signed .signed-by') || '', /签署：王建国（主任医师）/);
  assert.equal(await liPage.textContent('article.opinion-signed .opinion-impression'), '考虑心肌缺血，稳定型心绞痛可能。');
  assert.equal(await liPage.textContent('article.opinion-signed .opinion-findings'), '窦性心律，V4-V6 导联 ST 段水平型压低 0.1 mV。');
  assert.equal(await liPage.$('.opinion-editor'), null, 'the community doctor has no editor');

  // dr.wang amends: a reason is required; the new version replaces the old one.
  await wangPage.waitForSelector('.opinion-editor:has-text("更正")');
  assert.equal(await wangPage.inputValue('#op-impression'), '考虑心肌缺血，稳定型心绞痛可能。', 'the editor starts from the signed text');
  await wangPage.fill('#op-impression', '考虑心肌缺血，建议冠脉 CTA 评估。');
  await wangPage.click('.opinion-editor button.primary');
  await wangPage.waitForSelector('.opinion-editor .error:has-text("更正原因")');
  await wangPage.fill('#op-reason', '补充影像学检查建议');
  await wangPage.click('.opinion-editor button.primary');
  await wangPage.waitForSelector('article.opinion-signed[data-version="2"]');
  await wangPage.context().close();

  await liPage.goto(`${env.server.url}/consultations/${c.id}`);
  await ready(liPage, `/consultations/${c.id}`);
  assert.equal(await liPage.textContent('article.opinion-signed .opinion-impression'), '考虑心肌缺血，建议冠脉 CTA 评估。');
  assert.match(await liPage.textContent('article.opinion-signed') || '', /更正原因：补充影像学检查建议/);
  assert.equal((await liPage.$$('details article.opinion-superseded')).length, 1, 'version 1 kept, folded away');
  assert.deepEqual(await axeViolations(liPage), []);
  await screenshot(liPage, 'opinion-amended');
  await liPage.context().close();
});
