// Referrals and overdue follow-ups for the community doctor, with data made through the API:
// dr.wang refers patient.zhang's record down to dr.li's centre with a care plan; dr.li sees it
// received and accepts it, rejects nothing without a reason, sends an up-referral from the
// form; a follow-up plan started ten weeks ago shows its overdue visits, and marking one
// done takes it off the list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ready, signIn, apiAs, axeViolations, screenshot, acceptedConsultation, serverAndBrowser } from './helpers.js';

const env = serverAndBrowser();

test('dr.li handles referrals and overdue follow-ups', async () => {
  const li = await apiAs(env.server.url, 'dr.li');
  const wang = await apiAs(env.server.url, 'dr.wang');
  const patients = await li.call('GET', '/api/v1/patients');
  const patient = patients.items[0];
  const c = await acceptedConsultation(li, wang, { patient_id: patient.id, reason: '高血压控制不佳', mode: 'video' });
  const down = await wang.call('POST', '/api/v1/referrals', {
    patient_id: patient.id, consultation_id: c.id, direction: 'down', reason: '病情稳定，转回社区管理',
    urgency: 'routine', care_plan: '氨氯地平 5 mg 每日一次，每周测血压三次',
  });
  const started = new Date(Date.now() - 70 * 86400000).toISOString().slice(0, 10);
  const plan = await li.call('POST', '/api/v1/follow-up-plans', {
    patient_id: patient.id, condition: '高血压', interval_weeks: 4, visits: 3, start_date: started,
  });
  const overdueDue = plan.visits.filter((/** @type {any} */ v) => v.due_date < new Date().toISOString().slice(0, 10));
  assert.ok(overdueDue.length >= 1, 'the plan has visits in the past');

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
  const detail = await li.call('GET', `/api/v1/referrals/${down.id}`);
  assert.equal(detail.status, 'accepted');
  assert.equal(detail.history.at(-1).to_status, 'accepted');

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
