// Vital signs through the screens: during a call between patient.zhang (at a kiosk) and
// dr.wang, a blood pressure entered on the kiosk's large inputs appears in dr.wang's call
// view beside the video, with its time and device (the delay is logged, not asserted);
// dr.li's record of patient.zhang shows it in the timeline with the consultation and on the
// blood-pressure trend; on dr.li's worklist a reading out of target is one item, which dr.li
// acknowledges; a home device then posts an out-of-target reading twice (a retry) and it
// appears once; patient.zhang reads it all in plain words in her own record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signIn, ready, screenshot, axeViolations, consultationThroughUi, onConsultation, serverAndBrowser } from './helpers.js';
import { homeDeviceReading } from './vitals-world.js';

const env = serverAndBrowser();

/**
 * The world before the story, made on screen: an urgent consultation (its room open at once)
 * requested by dr.li and accepted by dr.wang, booked by dr.li in one of dr.wang's slots, and a
 * hypertension follow-up plan dr.li starts on the follow-ups screen. (The home monitor, lent on
 * patient.zhang's record page, sends its readings itself: `vitals-world.js`.)
 */
async function world() {
  const base = env.server.url;
  const consultation = await consultationThroughUi(env.browser, base, { patient: '张秀英', reason: '血压控制不佳，头晕一周', urgency: 'urgent', mode: 'video' });
  const page = await onConsultation(env.browser, base, 'dr.li', consultation);
  await page.waitForSelector('.slots button.slot');
  await page.locator('.slots button.slot').last().click();
  await page.waitForSelector('main .badge.state-scheduled');
  await page.goto(`${base}/follow-ups`);
  await ready(page, '/follow-ups');
  await page.selectOption('form.new-plan select[name=patient_id]', { label: '张秀英' });
  await page.fill('form.new-plan input[name=condition]', '高血压');
  await page.fill('form.new-plan input[name=interval_weeks]', '4');
  await page.fill('form.new-plan input[name=visits]', '6');
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/v1/follow-up-plans') && r.status() === 201),
    page.click('form.new-plan button:has-text("建立随访计划")'),
  ]);
  await page.context().close();
  return { consultation };
}

test('a kiosk reading reaches the call, the record, the trend and the worklist', async () => {
  const { consultation } = await world();

  const wang = await env.browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(wang, env.server.url, 'dr.wang');
  await wang.goto(`${env.server.url}/call/${consultation}`);
  await ready(wang, `/call/${consultation}`);

  const kiosk = await env.browser.newPage({ viewport: { width: 1080, height: 1920 } });
  await kiosk.goto(`${env.server.url}/login?kiosk=1`);
  await signIn(kiosk, env.server.url, 'patient.zhang');
  await kiosk.click('button.primary.huge');
  await ready(kiosk, `/call/${consultation}`);
  await wang.click('.lobby li:has-text("张秀英") button.primary');
  await kiosk.waitForSelector('.lobby-wait[hidden]', { state: 'attached' });

  // At the kiosk: the blood pressure on the large inputs.
  await kiosk.fill('#vital-systolic', '152');
  await kiosk.fill('#vital-diastolic', '96');
  await kiosk.fill('#vital-pulse', '78');
  const sentAt = Date.now();
  await kiosk.click('.vitals-entry button[type=submit]');
  const row = '.vitals-live-list li[data-kind="blood_pressure"]:has-text("152/96 mmHg")';
  await wang.waitForSelector(row, { timeout: 10000 });
  const receivedAt = Number(await wang.getAttribute(row, 'data-received'));
  console.log(`the kiosk's reading appeared in dr.wang's call view ${receivedAt - sentAt} ms after "send" was pressed`);
  const shown = await wang.textContent(row) || '';
  assert.match(shown, /血压/);
  assert.match(shown, /测量于 \d{1,2}:\d{2}:\d{2}/, 'marked with the time measured');
  assert.match(shown, /医务室自助机 · 手动录入/, 'marked with the source and the device');
  await kiosk.waitForSelector('.vitals-status:has-text("已发送")');
  // The kiosk's own call view shows it too (it is in the room).
  await kiosk.waitForSelector(row);
  await screenshot(wang, 'vitals-call-expert');
  await screenshot(kiosk, 'vitals-call-kiosk');
  assert.deepEqual(await axeViolations(kiosk), []);
  await kiosk.click('.controls button:has-text("离开")');
  await wang.close();
  await kiosk.close();

  // dr.li opens patient.zhang's record from the home screen.
  const li = await env.browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await signIn(li, env.server.url, 'dr.li');
  await li.click('.list li:has-text("张秀英") button:has-text("健康档案")');
  await li.waitForURL(/\/patients\/[0-9a-f-]{36}$/);
  const zhangId = new URL(li.url()).pathname.split('/').pop() || '';
  await ready(li, `/patients/${zhangId}`);
  const vital = '.timeline li[data-kind="vital"]:has-text("152/96 mmHg")';
  await li.waitForSelector(vital);
  assert.ok(await li.$(`${vital} button:has-text("查看会诊")`), 'the reading is shown with its consultation');
  assert.ok(await li.$('.timeline li[data-kind="consultation"]:has-text("血压控制不佳")'), 'the consultation is in the timeline');
  // States in words, not the API's codes.
  assert.match(await li.textContent('.timeline li[data-kind="consultation"] .tl-status') || '', /已预约/);
  assert.match(await li.textContent('.timeline li[data-kind="follow_up"] .tl-status') || '', /进行中/);
  assert.doesNotMatch(await li.textContent('.timeline') || '', /\b(scheduled|active|pulse)\b/);
  assert.match(await li.textContent('.timeline li[data-kind="vital"]') || '', /152\/96 mmHg，脉搏 78 次\/分/);
  assert.match(await li.textContent('.plans') || '', /高血压[\s\S]*血压 < 140\/90 mmHg[\s\S]*每 7 天测量/);
  assert.equal(await li.$$eval('figure[data-chart="bp"] circle', (c) => c.length), 2, 'systolic and diastolic of the one reading');
  assert.equal(await li.$$eval('figure[data-chart="bp"] line.target', (c) => c.length), 2, 'the 140 and 90 target lines');
  await screenshot(li, 'vitals-record');
  assert.deepEqual(await axeViolations(li), []);

  // dr.li lends her a home blood-pressure monitor on the same page: its token is shown once,
  // to enter on the device; the monitor is listed as never seen yet.
  assert.match(await li.textContent('.home-devices') || '', /还没有借出的家用设备/);
  assert.equal(await li.inputValue('#home-dev-label'), '张秀英家血压计');
  await li.click('.home-devices button:has-text("借出家用设备")');
  await li.waitForSelector('#home-dev-token');
  const deviceToken = await li.inputValue('#home-dev-token');
  assert.match(deviceToken, /^tcdev_[\w-]{43}$/);
  assert.match(await li.textContent('.home-devices tbody') || '', /张秀英家血压计\s*从未/);
  assert.deepEqual(await axeViolations(li), []);

  // The worklist: the reading above target is one item; dr.li acknowledges it.
  await li.click('a.brand');
  await ready(li, '/');
  await li.click('button:has-text("随访工作清单")');
  await ready(li, '/worklist');
  const items = '.worklist li[data-reason="blood_pressure_above_target"]:has-text("张秀英")';
  assert.equal((await li.$$(items)).length, 1);
  assert.match(await li.textContent(items) || '', /152\/96 mmHg，目标低于 140\/90 mmHg/);
  await li.fill(`${items} input[name=note]`, '已电话随访，调整用药');
  await li.click(`${items} button:has-text("已处理")`);
  await li.waitForSelector(items, { state: 'detached' });

  // A home device posts a reading above target twice (the link dropped before the answer).
  const first = await homeDeviceReading(env.server.url, deviceToken, { systolic_mmhg: 158, diastolic_mmhg: 98 });
  assert.equal(first.twice[0].results[0].status, 'created');
  assert.equal(first.twice[1].results[0].status, 'duplicate');
  await li.reload();
  await ready(li, '/worklist');
  assert.equal((await li.$$(items)).length, 1, 'posted twice, on the worklist once');
  const text = await li.textContent(items) || '';
  assert.match(text, /158\/98 mmHg/);
  assert.match(text, /超标读数 1 次/, 'the retry counted once');
  await screenshot(li, 'vitals-worklist');
  assert.deepEqual(await axeViolations(li), []);
  // Her record now shows when the monitor was last in contact.
  await li.click('a.brand');
  await ready(li, '/');
  await li.click('.list li:has-text("张秀英") button:has-text("健康档案")');
  await ready(li, `/patients/${zhangId}`);
  const monitor = await li.textContent('.home-devices tbody tr:has-text("张秀英家血压计")') || '';
  assert.ok(!monitor.includes('从未'), `the monitor has been seen: ${monitor}`);
  await screenshot(li, 'vitals-home-device');
  await li.close();

  // patient.zhang reads her own record in plain words, with the news sent to her.
  const zhangPage = await env.browser.newPage({ viewport: { width: 1080, height: 1600 } });
  await signIn(zhangPage, env.server.url, 'patient.zhang');
  await zhangPage.click('button:has-text("我的健康记录")');
  await ready(zhangPage, '/my-record');
  const mine = await zhangPage.textContent('.elder-record') || '';
  assert.match(mine, /您测量的血压：158\/98 mmHg/);
  assert.match(mine, /您测量的血压：152\/96 mmHg/);
  assert.match(mine, /远程会诊：血压控制不佳，头晕一周/);
  assert.match(mine, /血压高于目标/, 'the notice of the reading above target');
  assert.doesNotMatch(mine, /pulse|target|Your|Appointment|\d{4}-\d{2}-\d{2}T/, 'no English and no raw times in her Chinese record');
  assert.match(mine, /您的血压 158\/98 mmHg，目标是低于 140\/90 mmHg。/);
  await screenshot(zhangPage, 'vitals-my-record');
  assert.deepEqual(await axeViolations(zhangPage), []);
  await zhangPage.close();
});
