// Health-card check-in at the kiosk of 东湖社区卫生服务中心: the admin issues a kiosk device
// token on the admin screen, and it is pasted into the kiosk's set-up screen; at the kiosk a
// typed unknown card gets its plain-words answer; a resident dr.li registers with her health
// card on the patient form types it at the kiosk, has nothing booked and calls the doctor on
// duty, whom dr.li's screen tells at once; then patient.zhang shows her electronic
// health card's QR code to the camera (a fake camera playing a generated QR image) and lands
// in the lobby of the consultation booked for her today, where dr.wang, already in the call,
// sees her waiting; he admits her, and the blood pressure she enters at the kiosk during the
// call appears in his call view.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import QRCode from 'qrcode';
import { startServer, launchBrowser, signIn, ready, screenshot, axeViolations, consultationThroughUi, bookedThroughUi } from './helpers.js';

/** The demo card of patient.zhang (server/src/demo.rs). */
const CARD = { id: '4401060000000001', issuer: 'DEMO-EHC', until: '20361231' };

/**
 * A health card's QR payload in the documented test format (docs/resident.md): the first 8
 * hex digits of SHA-256 over the leading fields are its check.
 * @param {{id: string, issuer: string, until: string}} card
 */
function tchc1(card) {
  const head = `TCHC1|${card.id}|${card.issuer}|${card.until}`;
  const check = createHash('sha256').update(head).digest('hex').slice(0, 8).toUpperCase();
  return `${head}|${check}`;
}

/**
 * A Y4M video (what Chromium's fake camera plays) of a QR code, black on white, centred.
 * @param {string} text
 * @returns {Buffer}
 */
function qrVideo(text) {
  const W = 640;
  const H = 480;
  const qr = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const n = qr.modules.size;
  const scale = Math.floor(360 / (n + 8));
  const size = (n + 8) * scale;
  const x0 = Math.floor((W - size) / 2);
  const y0 = Math.floor((H - size) / 2);
  const luma = Buffer.alloc(W * H, 40); // a dim room around the card
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const mx = Math.floor(x / scale) - 4;
      const my = Math.floor(y / scale) - 4;
      const dark = mx >= 0 && my >= 0 && mx < n && my < n && qr.modules.get(my, mx);
      luma[(y0 + y) * W + x0 + x] = dark ? 16 : 235;
    }
  }
  const chroma = Buffer.alloc((W / 2) * (H / 2), 128);
  const frame = Buffer.concat([Buffer.from('FRAME\n'), luma, chroma, chroma]);
  return Buffer.concat([Buffer.from(`YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\n`), ...Array(10).fill(frame)]);
}

/**
 * The zone in which it is about midday now, so that a slot booked in the next half hour is
 * "today" for the kiosk whenever the test runs.
 * @returns {string}
 */
function middayZone() {
  let offset = 12 - new Date().getUTCHours();
  if (offset < -12) offset += 24;
  if (offset > 14) offset -= 24;
  return offset === 0 ? 'Etc/GMT' : offset > 0 ? `Etc/GMT-${offset}` : `Etc/GMT+${-offset}`;
}

const zone = middayZone();
const dir = mkdtempSync(join(tmpdir(), 'teleconsult-checkin-'));
const video = join(dir, 'health-card.y4m');
/** @type {{url: string, stop: () => Promise<void>}} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('playwright-core').Browser} */
let kioskBrowser;
let consultationId = '';

/**
 * dr.wang's weekly availability, on his home screen's editor: every day from 00:00 to 23:30 in
 * `timeZone`, 30-minute slots, with no buffer, no daily cap and no notice; saved.
 * @param {string} timeZone
 */
async function wholeDaysIn(timeZone) {
  const page = await (await browser.newContext()).newPage();
  await signIn(page, server.url, 'dr.wang');
  const editor = page.locator('section:has(#avail)');
  await page.getByLabel('时区', { exact: true }).fill(timeZone);
  while (await editor.locator('tbody tr').count()) await editor.locator('tbody tr button:has-text("删除")').first().click();
  for (const day of ['1', '2', '3', '4', '5', '6', '7']) {
    await editor.locator('button:has-text("添加时段")').click();
    const row = editor.locator('tbody tr').last();
    await row.getByLabel('星期').selectOption(day);
    await row.getByLabel('开始').fill('00:00');
    await row.getByLabel('结束').fill('23:30');
    await row.getByLabel('每次时长（分钟）').fill('30');
  }
  await page.getByLabel('预约间隔（分钟）').fill('0');
  await page.getByLabel('每日上限（0 为不限）').fill('0');
  await page.getByLabel('最短提前预约（分钟）').fill('0');
  await editor.locator('button.primary:has-text("保存")').click();
  await editor.locator('[role=status]:has-text("已保存")').waitFor();
  await page.context().close();
}

before(async () => {
  writeFileSync(video, qrVideo(tchc1(CARD)));
  server = await startServer({ TELECONSULT_KIOSK_TIME_ZONE: zone });
  browser = await launchBrowser();
  // The kiosk's camera sees the card.
  kioskBrowser = await launchBrowser([`--use-file-for-fake-video-capture=${video}`]);

  // The world before the story, made on screen: dr.wang, seeing patients from the zone where
  // it is midday, sets his week there in the availability editor (every day 00:00–23:30,
  // no buffer, no daily cap, no notice); dr.li requests an urgent video consultation for
  // patient.zhang, dr.wang accepts it, and dr.li books it in the next free slot, today.
  await wholeDaysIn(zone);
  consultationId = await consultationThroughUi(browser, server.url, { patient: '张秀英', reason: '胸闷气短三天', urgency: 'urgent', mode: 'video' });
  await bookedThroughUi(browser, server.url, consultationId);
});

after(async () => {
  await kioskBrowser?.close();
  await browser?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** @type {string} */
let token = '';

test('the admin issues a kiosk device token on the admin screen, shown once', async () => {
  const page = await browser.newPage();
  await signIn(page, server.url, 'admin');
  await page.selectOption('#dev-kind', 'kiosk');
  await page.selectOption('#dev-org', { label: '东湖社区卫生服务中心' });
  await page.fill('#dev-label', '东湖中心大厅自助机');
  await page.click('form.device-issue button[type=submit]');
  await page.waitForSelector('#dev-token');
  token = await page.inputValue('#dev-token');
  assert.match(token, /^tcdev_[\w-]{43}$/);
  await page.waitForSelector('table.devices td:has-text("东湖中心大厅自助机")');
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'checkin-admin-device-issued');
  // Shown once: the admin screen opened again lists the kiosk without its token.
  await page.reload();
  await ready(page, '/');
  await page.waitForSelector('table.devices td:has-text("东湖中心大厅自助机")');
  assert.equal(await page.$('#dev-token'), null);
  assert.ok(!(await page.content()).includes(token));
  await page.close();
});

/** @type {import('playwright-core').Page} */
let kiosk;

test('the kiosk is set up by pasting the token; an unknown card typed on the keypad gets plain words', async () => {
  const context = await kioskBrowser.newContext({ viewport: { width: 1080, height: 1700 } });
  kiosk = await context.newPage();
  await kiosk.goto(`${server.url}/login?kiosk=1`);
  await ready(kiosk, '/login');
  await kiosk.click('a:has-text("将本机设为自助签到机")');
  await ready(kiosk, '/kiosk/setup');
  await kiosk.fill('input[name=device_token]', token);
  await kiosk.click('button:has-text("保存并开始签到")');
  await ready(kiosk, '/checkin');
  await kiosk.waitForSelector('h1:has-text("您好，请签到")');
  assert.equal(await kiosk.textContent('.kiosk-site'), '东湖社区卫生服务中心');
  assert.deepEqual(await axeViolations(kiosk), []);
  await screenshot(kiosk, 'checkin-kiosk-idle');

  await kiosk.click('button:has-text("输入卡号或身份证号")');
  for (const key of '4401069999999999') await kiosk.click(`.keypad button.key:text-is("${key}")`);
  await kiosk.click('.kp-field:has(#kp-birth)');
  for (const key of '19480512') await kiosk.click(`.keypad button.key:text-is("${key}")`);
  assert.equal(await kiosk.inputValue('#kp-birth'), '1948-05-12');
  await kiosk.click('button:has-text("确认签到")');
  const message = await kiosk.waitForSelector('.kiosk-message[data-code="card_unknown"]');
  assert.equal(await message.textContent(), '没有找到您的信息。请核对号码和出生日期，或到服务台咨询。');
  await screenshot(kiosk, 'checkin-kiosk-unknown-card');
  await kiosk.click('button:has-text("重新签到")');
  await kiosk.waitForSelector('h1:has-text("您好，请签到")');
});

test('dr.li registers a resident with her health card; with nothing booked the kiosk calls the doctor on duty', async () => {
  const li = await browser.newPage();
  await signIn(li, server.url, 'dr.li');
  await li.fill('input[name=name]', '王桂芳');
  await li.selectOption('select[name=sex]', 'female');
  await li.fill('input[name=birth_date]', '1950-02-03');
  await li.fill('input[name=card_number]', '4401 0655 5555 5555');
  await li.fill('input[name=card_issuer]', 'GD-EHC');
  await li.click('button:has-text("登记新患者")');
  await li.waitForSelector('ul.list li:has-text("王桂芳")');
  // Her record shows the card, masked.
  await li.click('ul.list li:has-text("王桂芳") button:has-text("健康档案")');
  const card = await li.waitForSelector('.patient-header dd.ph-health_card');
  assert.equal(await card.textContent(), '4401********5555');
  await li.goBack();
  await li.waitForSelector('ul.list li:has-text("王桂芳")');

  await kiosk.click('button:has-text("输入卡号或身份证号")');
  for (const key of '4401065555555555') await kiosk.click(`.keypad button.key:text-is("${key}")`);
  await kiosk.click('.kp-field:has(#kp-birth)');
  for (const key of '19500203') await kiosk.click(`.keypad button.key:text-is("${key}")`);
  await kiosk.click('button:has-text("确认签到")');
  await kiosk.waitForSelector('.kiosk-message[data-code="none_booked_today"]');
  assert.equal(await kiosk.textContent('h1'), '王*芳，您好');
  assert.equal(await kiosk.textContent('.kiosk-message'), '您今天在这里没有预约的问诊。');
  await kiosk.click('button:has-text("请值班医生来帮忙")');
  await kiosk.waitForSelector('p[role=status]:has-text("已通知值班医生，请在这里稍候")');
  await screenshot(kiosk, 'checkin-kiosk-duty-called');
  await li.waitForSelector('.toast:has-text("王桂芳 在自助机签到，今日无预约")');
  await li.close();
  await kiosk.click('button:has-text("返回首页")');
  await kiosk.waitForSelector('h1:has-text("您好，请签到")');
});

test('patient.zhang scans her health card and waits in the lobby, where dr.wang sees her', async () => {
  // dr.wang is in the call already.
  const wang = await browser.newPage();
  await signIn(wang, server.url, 'dr.wang');
  await wang.goto(`${server.url}/consultations/${consultationId}`);
  await ready(wang, `/consultations/${consultationId}`);
  await wang.click('button:has-text("进入视频会诊")');
  await ready(wang, `/call/${consultationId}`);

  await kiosk.click('button:has-text("扫描健康卡二维码")');
  await kiosk.waitForSelector('.kiosk-message[data-code="in_lobby"]');
  assert.match(await kiosk.textContent('h1') || '', /^张\*英，您好$/);
  await ready(kiosk, `/call/${consultationId}`);
  await kiosk.waitForSelector('.lobby-wait:not([hidden])');
  await screenshot(kiosk, 'checkin-kiosk-lobby');

  await wang.waitForSelector('.toast:has-text("张秀英 已进入候诊室")');
  await wang.waitForSelector('.lobby li:has-text("张秀英")');
  await screenshot(wang, 'checkin-expert-sees-lobby');

  // dr.wang admits her; the blood pressure she takes at the kiosk during the call reaches him.
  await wang.click('.lobby li:has-text("张秀英") button.primary');
  await kiosk.waitForSelector('.lobby-wait[hidden]', { state: 'attached' });
  await kiosk.fill('#vital-systolic', '146');
  await kiosk.fill('#vital-diastolic', '91');
  await kiosk.fill('#vital-pulse', '74');
  await kiosk.click('.vitals-entry button[type=submit]');
  const row = '.vitals-live-list li[data-kind="blood_pressure"]:has-text("146/91 mmHg")';
  await wang.waitForSelector(row, { timeout: 10000 });
  await kiosk.waitForSelector('.vitals-status:has-text("已发送")');
  await screenshot(wang, 'checkin-expert-sees-kiosk-reading');
  await wang.close();
});
