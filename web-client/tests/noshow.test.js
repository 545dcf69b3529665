// A no-show is recorded on the consultation's page by its doctors once the appointment has
// started (the server's grace set to none here, so the test waits minutes, not tens of
// minutes), and never of someone who came: dr.wang adds a session starting in a minute or
// two, dr.li books it; before it starts there is nothing to record; dr.wang waits in the call;
// after the start dr.li's "record the no-show" refuses dr.wang (he came: the room says so)
// and records the patient, whose appointment then reads 未到诊.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, signIn, ready, axeViolations, consultationThroughUi, bookedThroughUi, onConsultation, addExtraSession } from './helpers.js';

/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
let id = '';
let start = 0;

before(async () => {
  server = await startServer({ TELECONSULT_NO_SHOW_AFTER_MINS: '0' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('dr.wang adds a session starting shortly; dr.li books it, and has no no-show to record yet', async () => {
  const wang = await browser.newPage();
  await signIn(wang, server.url, 'dr.wang');
  const at = new Date(Math.ceil((Date.now() + 90000) / 60000) * 60000);
  start = at.getTime();
  await addExtraSession(wang, at);
  await wang.context().close();

  id = await consultationThroughUi(browser, server.url, { patient: '张秀英', reason: '头晕伴血压升高', urgency: 'urgent', mode: 'video' });
  const booked = await bookedThroughUi(browser, server.url, id, { after: start - 1 });
  assert.equal(Date.parse(booked), start, 'the session\'s first slot');
  const li = await onConsultation(browser, server.url, 'dr.li', id);
  assert.ok(Date.now() < start, 'checked before the start');
  assert.equal(await li.locator('button:has-text("记录未到")').count(), 0, 'nothing to record before the start');
  await li.context().close();
});

test('after the start, dr.wang who waits in the call is no no-show; the patient who never came is', async () => {
  const wang = await onConsultation(browser, server.url, 'dr.wang', id);
  await wang.click('button:has-text("进入视频会诊")');
  await ready(wang, `/call/${id}`);
  // The slot starts.
  await new Promise((r) => setTimeout(r, Math.max(0, start - Date.now()) + 1000));

  const li = await onConsultation(browser, server.url, 'dr.li', id);
  await li.waitForSelector('.no-show button:has-text("记录未到")');
  await li.selectOption('#no-show-who', 'expert');
  await li.click('.no-show button:has-text("记录未到")');
  await li.waitForSelector('[role=alert]:has-text("会诊室记录显示此人已到")');
  assert.deepEqual(await axeViolations(li), []);
  await li.selectOption('#no-show-who', 'patient');
  await li.click('.no-show button:has-text("记录未到")');
  await li.waitForSelector('section:has(#appts) li .badge:has-text("未到诊")');
  await li.waitForSelector('main .badge.state-no_show');
  assert.equal(await li.locator('.no-show').count(), 0, 'nothing left to record');
  await li.context().close();
  await wang.context().close();
});
