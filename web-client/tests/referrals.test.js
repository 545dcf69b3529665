// Referrals and follow-ups, made and handled on screen: dr.wang, having taken patient.zhang's
// consultation, refers her back to dr.li's centre with a care plan and follow-up visits from
// the consultation's page; dr.li sees it received and accepts it, rejects nothing without a
// reason, sends an up-referral from the form; he starts a follow-up plan dated ten weeks back
// (a patient followed on paper until now), its overdue visits show, and marking one done
// takes it off the list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ready, signIn, axeViolations, screenshot, consultationThroughUi, onConsultation, serverAndBrowser } from './helpers.js';

const env = serverAndBrowser();

/** A UTC calendar date `days` from today, YYYY-MM-DD. @param {number} days */
const dayFromToday = (days) => new Date(Date.now() + days * 86400000).toISOString().slice(0, 10);

test('dr.wang refers back down; dr.li handles referrals and overdue follow-ups', async () => {
  const patient = { name: '张秀英' };
  const id = await consultationThroughUi(env.browser, env.server.url, { patient: patient.name, reason: '高血压控制不佳', mode: 'video' });

  const wang = await onConsultation(env.browser, env.server.url, 'dr.wang', id);
  await wang.fill('form.refer-down textarea[name=reason]', '病情稳定，转回社区管理');
  await wang.fill('form.refer-down textarea[name=care_plan]', '氨氯地平 5 mg 每日一次，每周测血压三次');
  await wang.fill('form.refer-down input[name=condition]', '高血压');
  await wang.fill('form.refer-down input[name=interval_weeks]', '4');
  await wang.fill('form.refer-down input[name=visits]', '3');
  await wang.click('form.refer-down button:has-text("转回社区")');
  await wang.waitForSelector('form.refer-down .notice:has-text("已转至")');
  assert.equal(await wang.inputValue('form.refer-down input[name=interval_weeks]'), '4', 'the emptied form has its defaults back');
  const made = wang.locator('section[aria-labelledby=refer-down-h] ul.referrals li', { hasText: '病情稳定，转回社区管理' });
  assert.match(await made.textContent() || '', /下转.*待接收/);
  assert.deepEqual(await axeViolations(wang), []);
  await screenshot(wang, 'refer-down');
  await wang.context().close();

  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'dr.li');
  await page.click('button:has-text("双向转诊")');
  await ready(page, '/referrals');
  const received = page.locator('ul.referrals li', { hasText: '病情稳定，转回社区管理' });
  assert.match(await received.textContent() || '', /下转/);
  assert.match(await received.textContent() || '', /氨氯地平 5 mg 每日一次/);
  assert.match(await received.textContent() || '', /待接收/);
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'referrals');
  // Rejecting needs a reason; accept instead.
  await received.locator('button:has-text("拒绝")').click();
  await received.locator('.error:has-text("拒绝原因")').waitFor();
  await received.locator('button:has-text("接收")').click();
  await ready(page, '/referrals');
  await page.waitForSelector('ul.referrals li[data-status="accepted"]:has-text("病情稳定")');
  assert.match(await page.textContent('ul.referrals li[data-status="accepted"]:has-text("病情稳定")') || '', /已接收/);

  // An up-referral from the form appears among those sent.
  await page.selectOption('select[name=urgency]', 'urgent');
  await page.fill('textarea[name=reason]', '胸痛加重，需冠脉造影评估');
  await page.click('button:has-text("提交转诊")');
  await ready(page, '/referrals');
  const sent = page.locator('ul.referrals li', { hasText: '胸痛加重，需冠脉造影评估' });
  assert.match(await sent.textContent() || '', /上转/);
  assert.match(await sent.textContent() || '', /加急/);

  // Overdue follow-ups.
  await page.goto(`${env.server.url}/`);
  await ready(page, '/');
  await page.click('button:has-text("逾期随访")');
  await ready(page, '/follow-ups');
  // The plan from the down-referral has its first visit four weeks away: nothing overdue yet.
  assert.equal(await page.locator('ul.overdue li').count(), 0);
  const started = dayFromToday(-70);
  await page.selectOption('form.new-plan select[name=patient_id]', { label: patient.name });
  await page.fill('form.new-plan input[name=condition]', '高血压');
  await page.fill('form.new-plan input[name=interval_weeks]', '4');
  await page.fill('form.new-plan input[name=visits]', '3');
  await page.fill('form.new-plan input[name=start_date]', started);
  await page.click('form.new-plan button:has-text("建立随访计划")');
  await ready(page, '/follow-ups');
  // Visits one interval apart from the start: 28 and 56 days after it are past, 84 is not.
  const overdueDue = [28, 56].map((d) => ({ due_date: dayFromToday(-70 + d) }));
  await page.waitForSelector('ul.overdue li');
  const rows = page.locator('ul.overdue li');
  assert.equal(await rows.count(), overdueDue.length, 'one row per overdue visit');
  const first = await rows.first().textContent();
  assert.match(first || '', new RegExp(`${patient.name}.*高血压.*第 1 次随访`));
  assert.match(first || '', new RegExp(`应于 ${overdueDue[0].due_date} 随访，已逾期 \\d+ 天`));
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'follow-ups-overdue');
  await rows.first().locator('button:has-text("已完成随访")').click();
  await ready(page, '/follow-ups');
  await page.waitForFunction((n) => document.querySelectorAll('ul.overdue li').length === n
    || (n === 0 && !document.querySelector('ul.overdue')), overdueDue.length - 1);
  await context.close();
});
