// A clinic day through the browser, with the server's default configuration (the room opens
// 15 minutes before the booked slot): dr.li registers a walk-in patient, requests a
// consultation with consent and attaches a 12-lead ECG and a CT series (a folder) in the
// wizard; dr.wang adds an extra session starting within minutes on his home screen; a
// referral letter dropped on the consultation survives a dropped link; dr.wang is alerted, reads the summary, the patient header and the consent, and accepts; dr.li
// books the slot of dr.wang's extra session; at the slot all three join (the patient from a
// kiosk, through the lobby, with the doctors alerted); a reload brings the chat back;
// dr.wang opens the ECG and the CT beside the video, shares his screen and stops; a dropped
// connection is announced to the others; dr.wang ends the call for everyone, signs with a
// summary for the patient; the kiosk shows it in large type and resets; the appointment is
// attended. Then the smaller rules: a routine room opens only shortly before its slot, the
// patient's "leave" goes home, and a patient left alone is told the consultation is over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, signIn, ready, screenshot, axeViolations, consultationThroughUi, bookedThroughUi, onConsultation, REPO, ctSlice, addExtraSession } from './helpers.js';

/** @type {{url: string, stop: () => Promise<void>}} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Record<string, import('playwright-core').Page>} */
const pages = {};
let consultationId = '';
/** The one-time password of the walk-in patient's login, handed over on paper. */
let zhaoPassword = '';
const files = mkdtempSync(join(tmpdir(), 'teleconsult-clinic-'));

/** A resident ID number with its GB 11643 check character. @param {string} rid17 */
function residentId(rid17) {
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = [...rid17].reduce((s, d, i) => s + Number(d) * weights[i], 0);
  return rid17 + '10X98765432'[sum % 11];
}

/** @param {import('playwright-core').Page} page @param {string} name */
async function accessible(page, name) {
  await screenshot(page, name);
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], `${name}: ${JSON.stringify(violations, null, 2)}`);
}

/**
 * Goes home by the header's name link and opens the consultation from the home screen, as a
 * person would: the row of `name` showing the badge of `state`, in the section `section`.
 * @param {import('playwright-core').Page} page
 * @param {string} section the home screen section's heading id
 * @param {string} state the consultation state the row shows
 */
async function openFromHome(page, section, state, name = '赵桂兰') {
  await page.click('a.brand');
  await ready(page, '/');
  await page.click(`section[aria-labelledby=${section}] li:has(.badge.state-${state}):has-text("${name}") button:has-text("查看")`);
  await ready(page, `/consultations/${consultationId}`);
}

/**
 * Waits until the page's remote video of `name` plays: frames decoded, time advancing.
 * @param {import('playwright-core').Page} page
 * @param {string} name the peer's display name (its video's label)
 */
async function plays(page, name) {
  const sel = `video.remote[aria-label="${name}"]`;
  await page.waitForFunction((s) => {
    const v = /** @type {HTMLVideoElement | null} */ (document.querySelector(s));
    return !!v && v.videoWidth > 0 && v.currentTime > 0;
  }, sel, { timeout: 30000 });
  const t0 = await page.$eval(sel, (v) => /** @type {HTMLVideoElement} */ (v).currentTime);
  await page.waitForTimeout(700);
  const t1 = await page.$eval(sel, (v) => /** @type {HTMLVideoElement} */ (v).currentTime);
  assert.ok(t1 > t0, `${name}'s video advances (${t0} -> ${t1})`);
}

/**
 * Waits until `name`'s video on the page has the shape of the camera (4:3, fake device) or of
 * the shared screen (16:9, fake display): the encoder may scale it, not change its shape.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 * @param {'camera' | 'screen'} what
 */
const shows = (page, name, what) => page.waitForFunction(([n, w]) => {
  const v = /** @type {HTMLVideoElement | null} */ (document.querySelector(`video.remote[aria-label="${n}"]`));
  if (!v || !v.videoHeight) return false;
  const ratio = v.videoWidth / v.videoHeight;
  return w === 'screen' ? Math.abs(ratio - 16 / 9) < 0.05 : Math.abs(ratio - 4 / 3) < 0.05;
}, [name, what], { timeout: 15000 });

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  for (const user of ['dr.li', 'dr.wang', 'kiosk', 'patient.zhang']) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    // A handle on the page's signaling sockets, so a test can break one, and a switch that
    // takes the page's network down for them: while `networkDown` is set, every new socket
    // goes to a port nobody listens on and fails as a dropped network does (1006).
    await context.addInitScript(() => {
      const Native = window.WebSocket;
      /** @type {any} */ (window).sockets = [];
      /** @type {any} */ (window).networkDown = false;
      window.WebSocket = class extends Native {
        /** @param {string | URL} url @param {string | string[]} [protocols] */
        constructor(url, protocols) {
          super(/** @type {any} */ (window).networkDown ? 'ws://127.0.0.1:9/' : url, protocols);
          /** @type {any} */ (window).sockets.push(this);
        }
      };
    });
    pages[user] = await context.newPage();
    pages[user].on('console', (m) => { if (process.env.DEBUG_CONSOLE) console.log(user, m.type(), m.text()); });
    pages[user].on('pageerror', (e) => { if (process.env.DEBUG_CONSOLE) console.log(user, 'pageerror', e.message); });
  }
  await signIn(pages['dr.li'], server.url, 'dr.li');
  await signIn(pages['dr.wang'], server.url, 'dr.wang');
  // The test files: a real cart's 12-lead DICOM ECG, a three-slice CT series in a folder, and
  // a referral letter (PDF) of 600 KB, three tus chunks.
  writeFileSync(join(files, 'ecg-12lead.dcm'), readFileSync(join(REPO, 'tests', 'fixtures', 'ecg', 'waveform_ecg.dcm')));
  const ct = join(files, 'CT');
  rmSync(ct, { recursive: true, force: true });
  (await import('node:fs')).mkdirSync(ct);
  for (const n of [1, 2, 3]) writeFileSync(join(ct, `IM${n}.dcm`), ctSlice(n));
});
after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(files, { recursive: true, force: true });
});

test('dr.li registers a walk-in patient', async () => {
  const page = pages['dr.li'];
  await page.fill('input[name=name]', '赵桂兰');
  await page.selectOption('select[name=sex]', 'female');
  await page.fill('input[name=birth_date]', '1949-12-31');
  await page.fill('input[name=phone]', '13900001111');
  await page.fill('input[name=resident_id]', residentId('11010519491231002'));
  await page.click('form button[type=submit]:has-text("登记新患者")');
  await page.waitForSelector('li:has-text("赵桂兰")');
  // Her own login, for the kiosk: the coordinator of the hospital her centre is linked to makes
  // it on the accounts screen, bound to the record dr.li has just registered, and the one-time
  // password is handed over in person (the system's administrator, who takes part in no care,
  // neither finds her record nor binds a login to it).
  const adminContext = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const admin = await adminContext.newPage();
  await signIn(admin, server.url, 'coordinator');
  await admin.fill('#acc-name', '赵桂兰');
  await admin.fill('#acc-username', 'patient.zhao');
  await admin.selectOption('#acc-role', 'patient');
  await admin.locator('fieldset.patient-fields').waitFor({ state: 'visible' });
  await admin.click('button[type=submit]:has-text("创建账号")');
  await admin.waitForSelector('.new-account [role=alert]:has-text("请先查找并选择患者档案")');
  await admin.fill('#acc-patient-q', '赵桂兰');
  await admin.click('button:has-text("查找档案")');
  await admin.waitForSelector('#acc-patient option:has-text("赵桂兰")', { state: 'attached' });
  assert.equal(await admin.$eval('#acc-org', (s) => /** @type {HTMLSelectElement} */ (s).selectedOptions[0]?.textContent), '东湖社区卫生服务中心',
    'the login is made at her centre');
  await admin.click('button[type=submit]:has-text("创建账号")');
  const shown = await admin.locator('[role=status]:has-text("已为 赵桂兰 创建账号 patient.zhao")').textContent();
  zhaoPassword = /一次性密码：(\S+)（/.exec(shown || '')?.[1] || '';
  assert.ok(zhaoPassword, `no one-time password in ${shown}`);
  assert.equal(await admin.locator('fieldset.patient-fields').isVisible(), false, 'the form is ready for the next account');
  await accessible(admin, 'clinic-admin-patient-login');
  await adminContext.close();
});

test('dr.wang adds an extra session starting within minutes on his home screen', async () => {
  // So that "the slot" booked later is now. Times as the browser shows them (its local zone).
  const page = pages['dr.wang'];
  await addExtraSession(page, new Date(Math.ceil((Date.now() + 2 * 60000) / 60000) * 60000));
  assert.match(await page.textContent('ul.exceptions li[data-kind=extra]') || '', /加号.*每号 30 分钟/);
  await accessible(page, 'clinic-expert-extra-session');
});

test('dr.li requests a consultation with consent and attaches an ECG and a CT folder in the wizard', async () => {
  const page = pages['dr.li'];
  await page.click('li:has-text("赵桂兰") button');
  await ready(page, '/consultations/new');
  await page.selectOption('select[name=specialty]', 'cardiology');
  await page.fill('textarea[name=reason]', '请判读心电图并评估是否需要转上级医院');
  await page.fill('textarea[name=record_summary]', '76 岁女性，反复胸闷 2 周，活动后加重；高血压 10 年。心电图示 V4-V6 ST 段压低。');
  await page.setInputFiles('#wizard-upload-files', join(files, 'ecg-12lead.dcm'));
  await page.setInputFiles('#wizard-upload-folder', join(files, 'CT'));
  await page.waitForSelector('.attachments li:has-text("IM3.dcm")');
  assert.equal(await page.$$eval('.attachments li', (l) => l.length), 4, 'one ECG and three slices held until the request exists');
  await accessible(page, 'clinic-wizard-attachments');
  await page.click('button[type=submit]:has-text("下一步")');
  await page.check('#consent-ok');
  await page.click('button[type=submit]:has-text("下一步")');
  await page.waitForSelector('.candidates li');
  await page.click('.candidates li:has-text("王建国") button.primary');
  await page.waitForURL(/\/consultations\/[0-9a-f-]{36}$/);
  consultationId = page.url().split('/').pop() || '';
  // dr.wang, on his home screen, is alerted at once.
  await pages['dr.wang'].waitForSelector('.toast:has-text("新的会诊申请")', { timeout: 10000 });
  // The attachments go up as soon as the request exists, each with its progress bar.
  await page.waitForFunction(() => document.querySelectorAll('.uploads li[data-state=done]').length === 4, null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll('section[aria-labelledby=files] tbody tr').length === 4);
  // (The name cell's first text is the name; a warning about the DICOM patient may follow.)
  const rows = await page.$$eval('section[aria-labelledby=files] tbody tr', (trs) => trs.map((tr) =>
    [...tr.querySelectorAll('td')].slice(0, 4).map((td, i) => (i === 0 ? td.firstChild?.textContent : td.textContent))));
  const byName = Object.fromEntries(rows.map((r) => [r[0], r.slice(1)]));
  assert.deepEqual(byName['ecg-12lead.dcm']?.slice(0, 1), ['心电图']);
  for (const n of [1, 2, 3]) assert.equal(byName[`IM${n}.dcm`]?.[0], 'DICOM 影像', `IM${n}.dcm: ${JSON.stringify(rows)}`);
  assert.ok(rows.every((r) => r[3] === '李明'), `uploader named: ${JSON.stringify(rows)}`);
  assert.ok(rows.every((r) => /\d+(\.\d)? (B|KB|MB)$/.test(r[2] || '')), `sizes: ${JSON.stringify(rows)}`);
  assert.equal(await page.$$eval('section[aria-labelledby=files] tbody .file-time', (c) => c.filter((x) => /\d{2}:\d{2}/.test(x.textContent || '')).length), 4);
});

test('a letter dropped on the consultation goes up in chunks, is retried after a dropped link and resumed after a reload', async () => {
  const page = pages['dr.li'];
  // The link drops after the first chunk: every later chunk fails until it comes back.
  let broken = true;
  await page.route('**/uploads/*', (route) => {
    const req = route.request();
    if (broken && req.method() === 'PATCH' && req.headers()['upload-offset'] !== '0') return route.abort('internetdisconnected');
    return route.continue();
  });
  await page.evaluate(() => {
    const body = new Uint8Array(600 * 1024).fill(0x20);
    body.set(new TextEncoder().encode('%PDF-1.4\n'));
    const dt = new DataTransfer();
    dt.items.add(new File([body], '转诊信.pdf', { type: 'application/pdf' }));
    const zone = /** @type {HTMLElement} */ (document.querySelector('section[aria-labelledby=files] .drop-zone'));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  const row = 'li.upload[data-name="转诊信.pdf"]';
  await page.waitForSelector(`${row}[data-state=failed] button.retry`, { timeout: 30000 });
  const partial = await page.$eval(`${row} progress`, (p) => [/** @type {HTMLProgressElement} */ (p).value, /** @type {HTMLProgressElement} */ (p).max]);
  assert.deepEqual(partial, [256 * 1024, 600 * 1024], 'the first chunk arrived');
  assert.match(await page.textContent(`${row} .upload-status`) || '', /^上传失败/);
  broken = false;
  await page.click(`${row} button.retry`);
  await page.waitForSelector(`${row}[data-state=done]`);
  assert.equal(await page.$eval(`${row} progress`, (p) => /** @type {HTMLProgressElement} */ (p).value), 600 * 1024);
  await page.waitForSelector('section[aria-labelledby=files] tbody tr:has-text("转诊信.pdf"):has-text("PDF 文档"):has-text("600.0 KB")');
  await page.unroute('**/uploads/*');
  await accessible(page, 'clinic-consultation-files');

  // A reload in the middle of an upload: the same file chosen again resumes where the
  // server stands instead of starting over.
  broken = true;
  let creations = 0;
  const uploadsUrl = /\/uploads(\/[^/]+)?$/;
  await page.route(uploadsUrl, (route) => {
    const req = route.request();
    if (req.method() === 'POST') creations += 1;
    if (broken && req.method() === 'PATCH' && req.headers()['upload-offset'] !== '0') return route.abort('internetdisconnected');
    return route.continue();
  });
  const drop = () => page.evaluate(() => {
    const body = new Uint8Array(400 * 1024).fill(0x20);
    body.set(new TextEncoder().encode('%PDF-1.4\n'));
    const dt = new DataTransfer();
    dt.items.add(new File([body], '检查报告.pdf', { type: 'application/pdf', lastModified: 1764806400000 }));
    const zone = /** @type {HTMLElement} */ (document.querySelector('section[aria-labelledby=files] .drop-zone'));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  });
  await drop();
  await page.waitForSelector('li.upload[data-name="检查报告.pdf"][data-state=failed]', { timeout: 30000 });
  broken = false;
  await page.reload();
  await ready(page, `/consultations/${consultationId}`);
  await drop();
  await page.waitForSelector('li.upload[data-name="检查报告.pdf"][data-state=done]');
  assert.equal(creations, 1, 'resumed: one tus upload created in all');
  await page.waitForSelector('section[aria-labelledby=files] tbody tr:has-text("检查报告.pdf")');
  assert.equal(await page.$$eval('section[aria-labelledby=files] tbody tr', (r) => r.filter((x) => x.textContent?.includes('检查报告.pdf')).length), 1);
  await page.unroute(uploadsUrl);
});

test('dr.wang is alerted, reads the summary, patient header and consent, and accepts', async () => {
  const page = pages['dr.wang'];
  await openFromHome(page, 'inbox', 'requested');
  assert.equal(await page.textContent('dd.summary'), '76 岁女性，反复胸闷 2 周，活动后加重；高血压 10 年。心电图示 V4-V6 ST 段压低。');
  assert.equal(await page.textContent('dd.question'), '请判读心电图并评估是否需要转上级医院');
  assert.equal(await page.textContent('.patient-header .ph-name'), '赵桂兰');
  assert.equal(await page.textContent('.patient-header .ph-sex'), '女');
  const now = new Date();
  const age = now.getFullYear() - 1949 - 1 + (now.getMonth() === 11 && now.getDate() === 31 ? 1 : 0);
  assert.equal(await page.textContent('.patient-header .ph-age'), `${age} 岁`);
  const shownId = await page.textContent('.patient-header .ph-id') || '';
  assert.ok(shownId.includes('*') && shownId !== residentId('11010519491231002'), `the expert sees a masked ID: ${shownId}`);
  assert.match(await page.textContent('dd.consent') || '', /^患者本人，书面签字，\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}，见证医生 李明$/);
  assert.equal(await page.$$eval('section[aria-labelledby=files] tbody tr', (r) => r.length), 6);
  await accessible(page, 'clinic-expert-reads-request');
  // The ECG opens with the patient header and a way back.
  await page.click('section[aria-labelledby=files] tr:has-text("ecg-12lead.dcm") button:has-text("查看心电图")');
  await ready(page, `/ecg/${await page.evaluate(() => location.pathname.split('/').pop())}`);
  await page.waitForSelector('canvas');
  assert.equal(await page.textContent('.patient-header .ph-name'), '赵桂兰');
  const header = await page.$$eval('.patient-header dt', (dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling?.textContent]));
  const facts = Object.fromEntries(header);
  assert.match(facts['记录时间'] || '', /^\d{4}\/\d{2}\/\d{2} \d{2}:\d{2}$/, JSON.stringify(facts));
  assert.ok(facts['设备'] && facts['设备'] !== '—', `device: ${JSON.stringify(facts)}`);
  assert.match(facts['身份证号'] || '', /\*/);
  await accessible(page, 'clinic-ecg-header');
  await page.click('button.back:has-text("返回会诊")');
  await ready(page, `/consultations/${consultationId}`);
  await page.click('button:has-text("接受")');
  await page.waitForSelector('main .badge.state-accepted');
  // dr.li's notification names him as a person, not by his login, in a sentence.
  const li = pages['dr.li'];
  await li.click('nav button:has-text("通知")');
  await ready(li, '/notifications');
  await li.waitForSelector('li:has-text("专家已接受会诊")');
  const body = await li.textContent('li:has-text("专家已接受会诊") > div:nth-child(2)');
  assert.equal(body, '王建国医生已接受会诊。');
});

test('dr.li books the slot of dr.wang\'s session, which opens the room now', async () => {
  const page = pages['dr.li'];
  await openFromHome(page, 'mc', 'accepted');
  await page.click('.slots button.slot');
  await page.waitForSelector('main .badge.state-scheduled');
  await page.waitForSelector('section:has(#appts) li:has-text("已预约")');
  await page.waitForSelector('button:has-text("进入视频会诊")');
});

test('at the slot all three join: the kiosk patient through the lobby, the doctors alerted', async () => {
  const li = pages['dr.li'];
  const wang = pages['dr.wang'];
  const kiosk = pages.kiosk;
  await li.click('button:has-text("进入视频会诊")');
  await ready(li, `/call/${consultationId}`);
  await openFromHome(wang, 'open', 'scheduled');
  await wang.click('button:has-text("进入视频会诊")');
  await ready(wang, `/call/${consultationId}`);
  await plays(li, '王建国');
  await plays(wang, '李明');
  // The call timer runs.
  const t1 = await li.textContent('.call-timer');
  await li.waitForFunction((before) => document.querySelector('.call-timer')?.textContent !== before, t1);
  assert.match(await li.textContent('.call-timer') || '', /^通话时长 \d{2}:\d{2}$/);
  // A chat line before anyone reloads.
  await wang.fill('#chat-input', '请看 V4-V6 导联');
  await wang.click('.chat-form button[type=submit]');
  await li.waitForSelector('.chat-log li:has-text("请看 V4-V6 导联")');

  // The kiosk: set up once with ?kiosk=1 (elder mode, resets after 25 s without input).
  await kiosk.goto(`${server.url}/login?kiosk=1&idle=25`);
  await kiosk.fill('input[name=username]', 'patient.zhao');
  await kiosk.fill('input[name=password]', zhaoPassword);
  await kiosk.click('button[type=submit]');
  // The password the admin handed her is one-time: she sets her own before anything opens.
  await kiosk.waitForSelector('input[name=new_password]');
  await kiosk.fill('input[name=new_password]', 'zhao-own-password');
  await kiosk.fill('input[name=repeat]', 'zhao-own-password');
  await kiosk.click('button[type=submit]');
  await ready(kiosk, '/');
  await kiosk.click('button.huge:has-text("进入视频会诊")');
  await ready(kiosk, `/call/${consultationId}`);
  await kiosk.waitForSelector('.lobby-wait:not([hidden])');
  assert.match(await kiosk.textContent('.lobby-wait .wait-detail') || '', /^预约时间 .+，预计还需等待约 \d+ 分钟$|^预约时间已到/);
  await accessible(kiosk, 'clinic-kiosk-lobby');
  // Both doctors hear of her: a toast (with a chime).
  await li.waitForSelector('.toast:has-text("赵桂兰 已进入候诊室")');
  await wang.waitForSelector('.toast:has-text("赵桂兰 已进入候诊室")');
  await li.click('.lobby li:has-text("赵桂兰") button.primary');
  await kiosk.waitForSelector('.lobby-wait[hidden]', { state: 'attached' });
  await plays(kiosk, '王建国');
  await plays(kiosk, '李明');
  await plays(wang, '赵桂兰');
});

test('a reload mid-call brings the video and the chat history back', async () => {
  const li = pages['dr.li'];
  await li.reload();
  await ready(li, `/call/${consultationId}`);
  await li.waitForSelector('.chat-log li:has-text("请看 V4-V6 导联")');
  assert.equal(await li.$$eval('.chat-log li', (l) => l.filter((x) => x.textContent?.includes('请看 V4-V6 导联')).length), 1, 'once');
  await plays(li, '王建国');
  await plays(pages['dr.wang'], '李明');
  // A file shared from the chat is stored with the consultation and announced.
  await li.setInputFiles('#chat-file', { name: '血常规.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n血常规 WBC 6.2\n') });
  await pages['dr.wang'].waitForSelector('.chat-log li:has-text("已发送文件：血常规.pdf")');
  // dr.wang, opening the consultation in another window, finds it among its files, from 李明.
  const files = await onConsultation(browser, server.url, 'dr.wang', consultationId);
  await files.waitForSelector('section[aria-labelledby=files] tbody tr:has-text("血常规.pdf"):has-text("PDF 文档"):has-text("李明")');
  await files.context().close();
});

test('dr.wang opens the ECG and the CT beside the video without leaving the call', async () => {
  const wang = pages['dr.wang'];
  await wang.click('.material button:has-text("在通话旁查看心电图")');
  await wang.waitForSelector('.beside canvas');
  assert.equal(new URL(wang.url()).pathname, `/call/${consultationId}`);
  assert.equal(await wang.textContent('.beside .patient-header .ph-name'), '赵桂兰');
  assert.ok(await wang.$('.beside .patient-header dt:has-text("记录时间")'), 'recording time in the header');
  assert.ok(await wang.$('.beside .patient-header dt:has-text("设备")'), 'device in the header');
  // Side by side: the video tiles are left of the tracing and keep playing.
  const [video, ecg] = await Promise.all([wang.$eval('.call-video', (e) => e.getBoundingClientRect().toJSON()), wang.$eval('.beside', (e) => e.getBoundingClientRect().toJSON())]);
  assert.ok(video.right <= ecg.left + 1 && video.top < ecg.bottom, `split: ${JSON.stringify({ video, ecg })}`);
  await plays(wang, '赵桂兰');
  // The header's values wrap inside the narrow panel rather than run out of it.
  const outside = await wang.$eval('.beside .patient-header', (header) => {
    const edge = /** @type {HTMLElement} */ (header.parentElement).getBoundingClientRect().right;
    return [...header.querySelectorAll('dd')].filter((d) => d.getBoundingClientRect().right > edge + 1).map((d) => d.textContent);
  });
  assert.deepEqual(outside, [], 'the header stays inside the panel');
  await screenshot(wang, 'clinic-call-ecg-beside');
  await wang.click('.material button:has-text("在通话旁查看影像")');
  await wang.waitForSelector('.beside canvas.dicom[data-frame="1"]');
  await wang.keyboard.press('Tab');
  await plays(wang, '李明');
  await accessible(wang, 'clinic-call-images-beside');
  await wang.click('.beside button:has-text("关闭资料")');
  await wang.waitForSelector('.beside', { state: 'hidden' });
});

test('dr.wang shares his screen and stops: the others see it start and end', async () => {
  const wang = pages['dr.wang'];
  const li = pages['dr.li'];
  const kiosk = pages.kiosk;
  await shows(li, '王建国', 'camera');
  await wang.click('.controls button:has-text("共享屏幕")');
  await wang.waitForSelector('.controls button[aria-pressed=true]:has-text("停止共享")');
  await li.waitForSelector('.tile figcaption:text-is("王建国 · 正在共享屏幕")');
  await shows(li, '王建国', 'screen');
  await shows(kiosk, '王建国', 'screen');
  // Someone arriving during the share (the kiosk reloads: a new connection) gets the screen too.
  await kiosk.reload();
  await ready(kiosk, `/call/${consultationId}`);
  await shows(kiosk, '王建国', 'screen');
  await kiosk.waitForSelector('.tile figcaption:text-is("王建国 · 正在共享屏幕")');
  await wang.click('.controls button:has-text("停止共享")');
  await wang.waitForSelector('.controls button[aria-pressed=false]:has-text("共享屏幕")');
  await li.waitForSelector('.tile figcaption:text-is("王建国")');
  await shows(li, '王建国', 'camera');
  await shows(kiosk, '王建国', 'camera');
  assert.equal(await wang.evaluate(() => /** @type {MediaStream} */ (/** @type {HTMLVideoElement} */ (document.querySelector('video.local')).srcObject).getVideoTracks()[0].readyState), 'live', 'the camera is on again');
  // Sharing again works too (the second click is not dead).
  await wang.click('.controls button:has-text("共享屏幕")');
  await li.waitForSelector('.tile figcaption:text-is("王建国 · 正在共享屏幕")');
  await wang.click('.controls button:has-text("停止共享")');
  await li.waitForSelector('.tile figcaption:text-is("王建国")');
});

test('a participant whose connection drops is announced to the others until it is back', async () => {
  const li = pages['dr.li'];
  const wang = pages['dr.wang'];
  // dr.li's network stays down until dr.wang has seen the notice: a client that is back within
  // a few milliseconds (its first retry waits 0–250 ms) would show it for less than a frame.
  await li.evaluate(() => {
    /** @type {any} */ (window).networkDown = true;
    /** @type {any} */ (window).sockets.at(-1).close(3000, 'network change');
  });
  await wang.waitForSelector('.peer-notice:not([hidden]):has-text("李明 的网络中断，正在重新连接…")');
  await li.evaluate(() => { /** @type {any} */ (window).networkDown = false; });
  await wang.waitForSelector('.peer-notice[hidden]', { state: 'attached', timeout: 20000 });
  await plays(wang, '李明');
});

test('dr.wang ends the call for everyone; the kiosk goes home and the opinion is awaited', async () => {
  const li = pages['dr.li'];
  const wang = pages['dr.wang'];
  const kiosk = pages.kiosk;
  assert.equal(await li.$('.controls button:has-text("确认为所有人结束会诊")'), null);
  await wang.click('.controls button:has-text("结束会诊（所有人）")');
  await wang.click('.controls button:has-text("确认为所有人结束会诊")');
  await li.waitForSelector('.call-ended:not([hidden]):has-text("王建国 已结束会诊")');
  // What happens next, on the end screen.
  await li.waitForSelector('.call-ended .next-steps:has-text("下一步：专家撰写并签署会诊意见")');
  await accessible(li, 'clinic-call-ended');
  await kiosk.waitForSelector('.call-ended:not([hidden]):has-text("王建国 已结束会诊")');
  await ready(kiosk, '/');
  await kiosk.waitForSelector('.elder-home:has-text("会诊已结束，医生正在撰写会诊意见")');
  assert.equal(await kiosk.$('button.huge:has-text("进入视频会诊")'), null, 'no join button for a finished call');
  // Both doctors find it on their home screens, awaiting the opinion (not gone until signed).
  await openFromHome(li, 'mc', 'awaiting_opinion');
  await li.waitForSelector('main .badge.state-awaiting_opinion:text-is("待出具意见")');
  await wang.click('.call-ended button:has-text("返回会诊页面")');
  await ready(wang, `/consultations/${consultationId}`);
  await openFromHome(wang, 'open', 'awaiting_opinion');
  await wang.waitForSelector('main .badge.state-awaiting_opinion:text-is("待出具意见")');
});

test('dr.wang signs with a patient summary; the kiosk shows it in large type, then resets; the appointment is attended', async () => {
  const wang = pages['dr.wang'];
  const kiosk = pages.kiosk;
  await wang.fill('#op-findings', '窦性心律，V4-V6 导联 ST 段水平型压低 0.1 mV。');
  await wang.fill('#op-impression', '心肌缺血可能，建议进一步评估。');
  await wang.fill('#op-follow_up_advice', '两周后社区复查心电图。');
  await wang.fill('#op-patient_summary', '您的心脏供血有些不足，不用太紧张。请按时吃药，两周后回社区复查心电图。');
  await wang.click('button:has-text("签署")');
  await wang.waitForSelector('main .badge.state-completed');
  await kiosk.waitForSelector('.plain-opinion .po-patient_summary p', { timeout: 15000 });
  assert.equal(await kiosk.textContent('.plain-opinion .po-patient_summary p'), '您的心脏供血有些不足，不用太紧张。请按时吃药，两周后回社区复查心电图。');
  const px = await kiosk.$eval('.plain-opinion .po-patient_summary p', (p) => parseFloat(getComputedStyle(p).fontSize));
  assert.ok(px >= 24, `large type: ${px}px`);
  assert.equal(await kiosk.$('.plain-opinion .po-findings'), null, 'the findings stay on the doctors\' screens');
  await accessible(kiosk, 'clinic-kiosk-opinion');
  // Nobody touches the kiosk: it signs out and forgets the patient.
  await kiosk.waitForURL(/\/login$/, { timeout: 40000 });
  assert.equal(await kiosk.evaluate(() => sessionStorage.length), 0);
  assert.equal(await kiosk.evaluate(() => localStorage.getItem('teleconsult.kiosk')), '1', 'still a kiosk');
  assert.ok(await kiosk.$('body.elder'));
  // The consultation is completed, and its one appointment closed as attended, derived from
  // the room's timeline: what dr.li's page says.
  const li = pages['dr.li'];
  await openFromHome(li, 'mc', 'completed');
  assert.equal(await li.textContent('main .badge.state-completed'), '已完成');
  assert.deepEqual(await li.$$eval('section:has(#appts) li .badge', (b) => b.map((x) => x.textContent)), ['已就诊']);
});

test('a routine consultation\'s room opens only shortly before its slot, on every screen', async () => {
  // Requested and accepted on screen; dr.li books a regular weekday slot, hours or days away
  // (the extra session's are taken or past).
  const c = await consultationThroughUi(browser, server.url, { patient: '张秀英', reason: '复查', urgency: 'routine', mode: 'video' });
  const start = await bookedThroughUi(browser, server.url, c, { after: Date.now() + 3600000 });
  const page = pages['dr.li'];
  await page.goto(`${server.url}/consultations/${c}`);
  await ready(page, `/consultations/${c}`);
  await page.waitForSelector('.room-opens:has-text("视频会诊室将于")');
  assert.equal(await page.$('button:has-text("进入视频会诊")'), null);
  // It names the time the room opens: 15 minutes before the slot (the default).
  const opens = await page.evaluate((at) => new Date(at).toLocaleString('zh-CN', {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }), Date.parse(start) - 15 * 60000);
  assert.equal(await page.textContent('.room-opens'), `视频会诊室将于 ${opens} 开放`);
  // The patient's home shows the time, without a join button that would not work.
  const patient = pages['patient.zhang'];
  await signIn(patient, server.url, 'patient.zhang');
  await patient.waitForSelector('.room-opens');
  assert.equal(await patient.$('button.huge'), null);
});

test('the patient\'s "leave" goes home, and a patient left alone is told the consultation is over', async () => {
  // Urgent: the room opens at once, even in the last slot dr.li is offered.
  const id = await consultationThroughUi(browser, server.url, { patient: '张秀英', reason: '急性胸痛', urgency: 'urgent', mode: 'video' });
  await bookedThroughUi(browser, server.url, id, { slot: 'last' });
  const doctor = pages['dr.li'];
  const patient = pages['patient.zhang'];
  await doctor.goto(`${server.url}/consultations/${id}`);
  await ready(doctor, `/consultations/${id}`);
  await doctor.click('button:has-text("进入视频会诊")');
  await ready(doctor, `/call/${id}`);
  await patient.goto(`${server.url}/`);
  await ready(patient, '/');
  await patient.click('button.huge');
  await ready(patient, `/call/${id}`);
  await doctor.click('.lobby li:has-text("张秀英") button.primary');
  await plays(patient, '李明');
  // Audio only: no video goes out, the others see the camera off, and it comes back.
  await doctor.click('.controls button:has-text("仅语音")');
  await patient.waitForSelector('.tile figcaption:text-is("李明 · 摄像头已关闭")');
  assert.equal(await doctor.$('.controls button:has-text("共享屏幕")'), null);
  await doctor.click('.controls button:has-text("恢复视频")');
  await patient.waitForSelector('.tile figcaption:text-is("李明")');
  await patient.click('.controls button:has-text("离开")');
  await ready(patient, '/');
  assert.ok(await patient.$('.elder-home'), 'the patient\'s own home, not the doctors\' consultation page');
  await patient.click('button.huge');
  await ready(patient, `/call/${id}`);
  await plays(patient, '李明');
  await doctor.click('.controls button:has-text("离开")');
  await patient.waitForSelector('.call-ended:not([hidden]):has-text("会诊已结束")');
  await ready(patient, '/');
});
