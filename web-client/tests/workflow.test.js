// The consultation workflow through the browser: dr.li requests a consultation for
// patient.zhang (consent, ranked candidates), dr.wang is notified live and accepts, dr.li
// books a slot; then the call: both doctors see each other's video and chat, and the
// patient waits in the lobby until admitted. Every screen passes an axe-core scan (no serious or critical violation).
import { test, before, after } from 'node:test';
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, signIn, ready, screenshot, axeViolations, requestThroughUi, consultationThroughUi, onConsultation } from './helpers.js';

/** @type {{url: string, database: string, stop: () => Promise<void>}} */
let server;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Record<string, import('playwright-core').Page>} */
const pages = {};
let consultationId = '';

before(async () => {
  // TURN is configured (on a port where nothing answers: the calls connect directly on
  // loopback) so that join, resume and the periodic `ice-servers` hand out TURN credentials
  // the tests can compare; they live 10 s, so a fresh one comes every 5 s.
  // The booked slot may be days away; the room's opening before the slot (default 15 min) is
  // widened to four weeks here, as this file is about the call itself (clinic.test.js keeps
  // the default and shows the window).
  server = await startServer({
    TELECONSULT_CALL_OPEN_BEFORE_MINS: '40320',
    TELECONSULT_TURN_URLS: 'turn:127.0.0.1:9', TELECONSULT_TURN_SECRET: 'browser-test-turn-secret', TELECONSULT_TURN_TTL_SECS: '10',
  });
  browser = await launchBrowser();
  for (const user of ['dr.li', 'dr.wang', 'patient.zhang']) {
    const context = await browser.newContext();
    // Keeps a handle on the page's WebSockets, so a test can break the signaling connection,
    // on the `ice-servers` messages they bring, and on its peer connections, so a test can
    // read their ICE servers.
    await context.addInitScript(() => {
      const Native = window.WebSocket;
      /** @type {any} */ (window).sockets = [];
      /** @type {any} */ (window).iceRefreshes = [];
      window.WebSocket = class extends Native {
        /** @param {string | URL} url @param {string | string[]} [protocols] */
        constructor(url, protocols) {
          super(url, protocols);
          /** @type {any} */ (window).sockets.push(this);
          this.addEventListener('message', (e) => {
            const msg = JSON.parse(String(e.data));
            if (msg.type === 'ice-servers') /** @type {any} */ (window).iceRefreshes.push(msg);
          });
        }
      };
      const NativePc = window.RTCPeerConnection;
      /** @type {any} */ (window).pcs = [];
      window.RTCPeerConnection = class extends NativePc {
        /** @param {RTCConfiguration} [config] */
        constructor(config) {
          super(config);
          /** @type {any} */ (window).pcs.push(this);
        }
      };
    });
    pages[user] = await context.newPage();
    pages[user].on('console', (m) => { if (process.env.DEBUG_CONSOLE) console.log(user, m.type(), m.text()); });
    pages[user].on('websocket', (ws) => { if (process.env.DEBUG_CONSOLE) { ws.on('framereceived', (f) => console.log(user, 'ws<', String(f.payload).slice(0, 100))); ws.on('framesent', (f) => console.log(user, 'ws>', String(f.payload).slice(0, 100))); } });
    pages[user].on('pageerror', (e) => { if (process.env.DEBUG_CONSOLE) console.log(user, 'pageerror', e.message); });
    await signIn(pages[user], server.url, user);
  }
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * @param {import('playwright-core').Page} page
 * @param {string} name
 */
async function accessible(page, name) {
  await screenshot(page, name);
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], `${name}: ${JSON.stringify(violations, null, 2)}`);
}

test('home screens are accessible', async () => {
  await accessible(pages['dr.li'], 'doctor-home');
  await accessible(pages['dr.wang'], 'expert-home');
  await accessible(pages['patient.zhang'], 'patient-home');
});

/**
 * The consultations dr.li's home screen lists ("我的会诊"), each as its row reads.
 * @param {import('playwright-core').Page} page
 */
const myConsultations = (page) => page.$$eval('section[aria-labelledby=mc] li > span', (rows) => rows.map((r) => r.textContent || ''));

test('dr.li requests a consultation for patient.zhang with consent, addressed to the top candidate', async () => {
  const page = pages['dr.li'];
  const before = await myConsultations(page);
  await page.click('li:has-text("张秀英") button');
  await ready(page, '/consultations/new');
  await page.selectOption('select[name=specialty]', 'cardiology');
  await page.fill('textarea[name=reason]', '胸闷三天，心电图 ST 段改变，请协助判读');
  await accessible(page, 'wizard-1');
  await page.click('button[type=submit]');
  await page.waitForSelector('#consent-ok');
  await accessible(page, 'wizard-2-consent');
  await page.check('#consent-ok');
  await page.click('button[type=submit]');
  await page.waitForSelector('.candidates li');
  await accessible(page, 'wizard-3-candidates');
  const first = await page.textContent('.candidates li strong');
  assert.equal(first, '王建国');
  // The reasons in Chinese, from the server's reason codes.
  const reasons = await page.$$eval('.candidates li .reasons li', (items) => items.map((li) => li.textContent));
  assert.equal(reasons[0], '专科：心血管内科');
  assert.equal(reasons[1], '职称 主任医师（要求不低于主治医师）');
  assert.equal(reasons[2], '与本中心同属医联体');
  assert.match(reasons[3] || '', /^最早可约：(现在|\d+ 分钟后|\d+ 小时后|\d+ 天后)$/);
  assert.match(reasons[4] || '', /^当前(无|有 \d+ 个)进行中的会诊$/);
  // Seeing the candidates stored nothing: dr.li's home, open in another window, lists the
  // consultations it listed before she began (no draft).
  const other = await (await browser.newContext()).newPage();
  await signIn(other, server.url, 'dr.li');
  assert.deepEqual(await myConsultations(other), before, 'no request stored before sending');
  await page.click('.candidates li button.primary');
  await page.waitForURL(/\/consultations\/[0-9a-f-]{36}$/);
  await page.waitForSelector('main .badge.state-requested');
  consultationId = page.url().split('/').pop() || '';
  // Sent, the home lists exactly one more: this request, waiting for the expert (no cancelled
  // draft beside it).
  await other.reload();
  await ready(other, '/');
  const after = await myConsultations(other);
  for (const row of before) {
    assert.ok(after.includes(row), `still listed: ${row}`);
    after.splice(after.indexOf(row), 1);
  }
  assert.deepEqual(after, ['张秀英 · 心血管内科 · 待接受'], 'sending stores exactly the one request');
  await other.context().close();
  await accessible(page, 'consultation-requested');
  // dr.wang, signed in on the home screen, hears of it live (Server-Sent Events, toast).
  await pages['dr.wang'].waitForSelector('.toast', { timeout: 10000 });
});

test('dr.wang finds the request in the inbox and accepts it', async () => {
  const page = pages['dr.wang'];
  await page.reload();
  await ready(page, '/');
  // Addressed to him: the one request in his inbox.
  assert.deepEqual(await page.$$eval('section:has(#inbox) li > span', (rows) => rows.map((r) => r.textContent)), ['张秀英 · 心血管内科 · 待接受']);
  await page.click('section:has(#inbox) li:has-text("张秀英") button');
  await ready(page, `/consultations/${consultationId}`);
  await page.click('button:has-text("接受")');
  await page.waitForSelector('main .badge.state-accepted');
});

test('dr.li books one of dr.wang\'s slots', async () => {
  const page = pages['dr.li'];
  await page.reload();
  await page.waitForSelector('.slots button.slot');
  await accessible(page, 'consultation-booking');
  await page.click('.slots button.slot');
  await page.waitForSelector('main .badge.state-scheduled');
  await page.waitForSelector('section:has(#appts) li');
});

/**
 * Waits until a remote video of the page plays: frames decoded and time advancing.
 * @param {import('playwright-core').Page} page
 */
async function remoteVideoPlays(page) {
  try {
    await page.waitForFunction(() => {
      const v = /** @type {HTMLVideoElement | null} */ (document.querySelector('video.remote'));
      return !!v && v.videoWidth > 0 && v.currentTime > 0;
    }, null, { timeout: 30000 });
  } catch (err) {
    const state = await page.evaluate(() => ({
      error: document.querySelector('.call .error')?.textContent,
      tiles: [...document.querySelectorAll('.tile')].map((t) => {
        const v = /** @type {HTMLVideoElement} */ (t.querySelector('video'));
        return `${v.className} state=${/** @type {HTMLElement} */ (t).dataset.state} w=${v.videoWidth} t=${v.currentTime} src=${!!v.srcObject}`;
      }),
    }));
    throw new Error(`remote video does not play: ${JSON.stringify(state)}`, { cause: err });
  }
  const t0 = await page.$eval('video.remote', (v) => /** @type {HTMLVideoElement} */ (v).currentTime);
  await page.waitForTimeout(1000);
  const t1 = await page.$eval('video.remote', (v) => /** @type {HTMLVideoElement} */ (v).currentTime);
  assert.ok(t1 > t0, `remote video time advances (${t0} -> ${t1})`);
}

test('dr.li and dr.wang join the call, see each other and chat', async () => {
  const li = pages['dr.li'];
  const wang = pages['dr.wang'];
  await li.click('button:has-text("进入视频会诊")');
  await ready(li, `/call/${consultationId}`);
  await wang.goto(`${server.url}/call/${consultationId}`);
  await ready(wang, `/call/${consultationId}`);
  await remoteVideoPlays(li);
  await remoteVideoPlays(wang);
  // Each side's tile of the other shows a connection-quality level in words once stats arrive.
  // The label is a polite live region whose text changes only when the level does, so a
  // screen reader hears of a change (with whose connection it is), not every 2 s sample.
  for (const [page, other] of [[li, '王建国'], [wang, '李明']]) {
    await page.evaluate(() => {
      const label = /** @type {HTMLElement} */ (document.querySelector('.tile:has(video.remote) .quality'));
      /** @type {any} */ (window).qualityLog = { texts: [], levels: [] };
      new MutationObserver(() => {
        const log = /** @type {any} */ (window).qualityLog;
        if (log.texts.at(-1) !== label.textContent) log.texts.push(label.textContent);
        if (log.levels.at(-1) !== label.dataset.quality) log.levels.push(label.dataset.quality);
      }).observe(label, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await page.waitForSelector('.tile:has(video.remote) .quality:not([data-quality=unknown])', { timeout: 15000 });
    const label = await page.textContent('.tile:has(video.remote) .quality-level');
    assert.match(label || '', /^连接质量：(良好|一般|较差)$/);
    const level = await page.getAttribute('.tile:has(video.remote) .quality', 'data-quality');
    assert.equal(label, `连接质量：${{ good: '良好', fair: '一般', poor: '较差' }[level || '']}`, 'the words match the level');
    assert.match(await page.getAttribute('.tile:has(video.remote) .quality', 'title') || '', /往返 \d+ 毫秒/, 'the round trip is measured');
    assert.equal(await page.getAttribute('.tile:has(video.remote) .quality', 'aria-live'), 'polite');
    assert.equal(await page.getAttribute('.tile:has(video.remote) .quality', 'aria-atomic'), 'true');
    assert.equal(await page.textContent('.tile:has(video.remote) .quality'), `${other}的${label}`, 'the announcement names the peer');
    // Over two more samples the announced text changes only with the level.
    await page.waitForTimeout(4500);
    const log = await page.evaluate(() => /** @type {any} */ (window).qualityLog);
    assert.equal(log.texts.length, log.levels.length, `text changes only with the level: ${JSON.stringify(log)}`);
  }
  await li.fill('#chat-input', '请看 V2-V4 导联');
  await li.click('.chat-form button[type=submit]');
  await wang.waitForSelector('.chat-log li:has-text("请看 V2-V4 导联")');
  await accessible(wang, 'call-expert');
});

/**
 * Another process holds the server database's one write lock for 8 s (SQLite: any write
 * does); resolves once it holds it, with a promise of its release.
 * @returns {Promise<{released: Promise<unknown>}>}
 */
const holdTheDatabase = async () => {
  const holder = spawn('python3', ['-c', [
    'import sqlite3, sys, time',
    'c = sqlite3.connect(sys.argv[1], isolation_level=None)',
    'c.execute("BEGIN IMMEDIATE")',
    'print("held", flush=True)',
    'time.sleep(8)',
    'c.execute("ROLLBACK")',
  ].join('\n'), server.database], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    holder.stdout.once('data', resolve);
    holder.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
  });
  return { released: new Promise((resolve) => holder.once('exit', resolve)) };
};

test('a chat line the server cannot keep is shown to nobody and goes back into the box', async () => {
  const li = pages['dr.li'];
  const wang = pages['dr.wang'];
  const { released: exited } = await holdTheDatabase();
  await li.fill('#chat-input', '化验单稍后上传');
  await li.click('.chat-form button[type=submit]');
  // Within the server's 5 s: told in words, the line back in the box, shown to nobody.
  await li.waitForSelector('.call .error:has-text("消息未能保存")', { timeout: 12000 });
  assert.equal(await li.inputValue('#chat-input'), '化验单稍后上传');
  assert.equal(await li.locator('.chat-log li:has-text("化验单稍后上传")').count(), 0);
  assert.equal(await wang.locator('.chat-log li:has-text("化验单稍后上传")').count(), 0);
  await exited;
  // Sent again once the database takes it: the expert sees it, once.
  await li.click('.chat-form button[type=submit]');
  await wang.waitForSelector('.chat-log li:has-text("化验单稍后上传")');
  await li.waitForSelector('.chat-log li:has-text("化验单稍后上传")');
  assert.equal(await wang.locator('.chat-log li:has-text("化验单稍后上传")').count(), 1);
  assert.equal(await li.inputValue('#chat-input'), '');
  assert.equal(await li.textContent('.call .error'), '', 'the warning goes once the line is through');
});

test('the patient waits in the lobby until dr.li admits them', async () => {
  const patient = pages['patient.zhang'];
  const li = pages['dr.li'];
  await patient.reload();
  await ready(patient, '/');
  await patient.click('button.huge');
  await ready(patient, `/call/${consultationId}`);
  await patient.waitForSelector('.lobby-wait:not([hidden])');
  await accessible(patient, 'call-patient-lobby');
  assert.equal(await patient.$$eval('video.remote', (v) => v.length), 0, 'no peer is visible from the lobby');
  // An admission the server cannot keep is not made: dr.li is told, the patient still waits.
  const { released } = await holdTheDatabase();
  await li.click('.lobby li:has-text("张秀英") button.primary');
  await li.waitForSelector('.call .error:has-text("患者仍在候诊室等候")', { timeout: 12000 });
  assert.equal(await patient.isVisible('.lobby-wait'), true, 'the patient was let in by an admission that was not kept');
  await released;
  await li.click('.lobby li:has-text("张秀英") button.primary');
  await patient.waitForSelector('.lobby-wait[hidden]', { state: 'attached' });
  assert.equal(await li.textContent('.call .error'), '', 'the warning goes once the patient is admitted');
  await remoteVideoPlays(patient);
  await screenshot(patient, 'call-patient-admitted');
});

/**
 * The TURN username (`<expiry>:<user id>`) of each open peer connection of the page.
 * @param {import('playwright-core').Page} page
 */
const turnUsernames = (page) => page.evaluate(() => /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).pcs)
  .filter((pc) => pc.connectionState !== 'closed')
  .map((pc) => String((pc.getConfiguration().iceServers || []).find((s) => s.username)?.username)));

test('fresh TURN credentials from ice-servers reach the call\'s peer connections on the open connection', async () => {
  const li = pages['dr.li'];
  const sockets = await li.evaluate(() => /** @type {any} */ (window).sockets.length);
  const before = await turnUsernames(li);
  assert.ok(before.length > 0 && before.every((u) => /^\d+:/.test(u)), `current credentials: ${before}`);
  // Every peer connection takes a credential that expires later than the one it has now.
  await li.waitForFunction((prev) => {
    const now = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).pcs)
      .filter((pc) => pc.connectionState !== 'closed')
      .map((pc) => String((pc.getConfiguration().iceServers || []).find((s) => s.username)?.username));
    return now.length === prev.length && now.every((u, i) => Number(u.split(':')[0]) > Number(prev[i].split(':')[0]));
  }, before, { timeout: 20000 });
  // It is the one the latest `ice-servers` brought, on the signaling connection that was
  // already open (no reconnect, no resume), and the call's ICE servers are otherwise the same.
  const seen = await li.evaluate(() => {
    const refreshes = /** @type {any} */ (window).iceRefreshes;
    const pcs = /** @type {RTCPeerConnection[]} */ (/** @type {any} */ (window).pcs).filter((pc) => pc.connectionState !== 'closed');
    return { latest: refreshes.at(-1)?.ice_servers, pcs: pcs.map((pc) => pc.getConfiguration().iceServers), states: pcs.map((pc) => pc.connectionState) };
  });
  assert.ok(seen.latest, 'an ice-servers message arrived');
  const fresh = seen.latest.find((/** @type {RTCIceServer} */ s) => s.username);
  for (const servers of seen.pcs) {
    const turn = (servers || []).find((s) => s.username);
    assert.equal(turn?.username, fresh.username, 'the peer connection holds the refreshed credential');
    assert.equal(turn?.credential, fresh.credential);
    assert.deepEqual(turn?.urls, fresh.urls);
  }
  assert.equal(fresh.username.split(':')[1], before[0].split(':')[1], 'minted for the same user');
  assert.equal(await li.evaluate(() => /** @type {any} */ (window).sockets.length), sockets, 'no new signaling connection');
  assert.equal(await li.evaluate(() => /** @type {any} */ (window).sockets.at(-1).readyState), 1, 'the signaling connection is open');
  assert.ok(seen.states.every((s) => s === 'connected'), `the call goes on: ${seen.states}`);
});

test('a dropped signaling connection shows the banner, resumes, and the call goes on', async () => {
  const li = pages['dr.li'];
  const wang = pages['dr.wang'];
  const before = await turnUsernames(li);
  assert.ok(before.length > 0 && before.every((u) => /^\d+:/.test(u)), `join credentials: ${before}`);
  await new Promise((r) => setTimeout(r, 1100)); // a later second, so a fresh expiry differs
  // The client may resume within a few milliseconds (its first retry waits a random 0 to
  // 250 ms), faster than a screenshot-based wait can see: every text the banners show is kept.
  await li.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.bannersShown = [];
    const note = () => {
      for (const b of document.querySelectorAll('.banner')) if (!b.hidden) w.bannersShown.push(b.textContent);
    };
    new MutationObserver(note).observe(document.body, { attributes: true, attributeFilter: ['hidden'], childList: true, subtree: true, characterData: true });
  });
  await li.evaluate(() => /** @type {any} */ (window).sockets.at(-1).close(3000, 'network change'));
  await li.waitForFunction(() => /** @type {any} */ (window).bannersShown.some((t) => t.includes('正在重新连接')));
  await li.waitForSelector('.banner[hidden]', { state: 'attached' });
  assert.match(await li.evaluate(() => /** @type {any} */ (window).sockets.at(-1).url), /\/api\/v1\/rtc\?resume=/);
  // The ICE restart ran with the credential the resume brought, fresher than the join's.
  const after = await turnUsernames(li);
  assert.equal(after.length, before.length);
  after.forEach((u, i) => {
    const [expiry, user] = u.split(':');
    assert.equal(user, before[i].split(':')[1], 'minted for the same user');
    assert.ok(Number(expiry) > Number(before[i].split(':')[0]), `fresh expiry: ${u} after ${before[i]}`);
  });
  await wang.fill('#chat-input', '听得到吗？');
  await wang.click('.chat-form button[type=submit]');
  await li.waitForSelector('.chat-log li:has-text("听得到吗？")');
  await remoteVideoPlays(li);
  await remoteVideoPlays(wang);
});

test('muting and turning the camera off show on the other side', async () => {
  const li = pages['dr.li'];
  const wang = pages['dr.wang'];
  await li.click('.controls button:has-text("静音")');
  await li.click('.controls button:has-text("关闭摄像头")');
  await wang.waitForSelector('.tile figcaption:has-text("李明 · 已静音 · 摄像头已关闭")');
  assert.deepEqual(await li.evaluate(() => {
    const v = /** @type {HTMLVideoElement} */ (document.querySelector('video.local'));
    return /** @type {MediaStream} */ (v.srcObject).getTracks().map((t) => `${t.kind}:${t.enabled}`).sort();
  }), ['audio:false', 'video:false']);
  await li.click('.controls button:has-text("取消静音")');
  await li.click('.controls button:has-text("打开摄像头")');
  await wang.waitForSelector('.tile figcaption:text-is("李明")');
});

test('dr.li removes the patient from the call', async () => {
  const li = pages['dr.li'];
  const patient = pages['patient.zhang'];
  await li.click('.tile button:has-text("请 张秀英 离开")');
  // One click only asks: the patient is still there until the doctor confirms.
  await li.waitForSelector('.tile button:has-text("确认请 张秀英 离开")');
  await li.waitForTimeout(500);
  assert.ok(await li.$$eval('.tile figcaption', (cs) => cs.some((c) => c.textContent?.startsWith('张秀英'))), 'not removed before confirming');
  await li.click('.tile button:has-text("确认请 张秀英 离开")');
  await patient.waitForSelector('[role=alert]:has-text("您已被移出会诊")');
  await li.waitForFunction(() => ![...document.querySelectorAll('.tile figcaption')].some((c) => c.textContent?.startsWith('张秀英')));
});

test('dr.wang declines a second request only with a reason', async () => {
  // dr.li sends an urgent request for 刘德明 to 王建国 in the wizard; dr.wang opens it from his inbox.
  const id = await requestThroughUi(browser, server.url, { patient: '刘德明', reason: '血糖控制不佳', urgency: 'urgent', mode: 'video' });
  const page = pages['dr.wang'];
  await page.goto(`${server.url}/`);
  await ready(page, '/');
  await page.click('section:has(#inbox) li:has-text("刘德明") button');
  await ready(page, `/consultations/${id}`);
  await page.click('button:has-text("拒绝")');
  await page.waitForSelector('[role=alert]:has-text("请填写拒绝理由")');
  await page.fill('#decline-reason', '建议转内分泌科');
  await page.click('button:has-text("拒绝")');
  // Having declined, dr.wang is back on his list and the consultation is no longer his to open.
  await page.waitForURL(`${server.url}/`);
  await page.goto(`${server.url}/consultations/${id}`);
  await page.waitForSelector('[role=alert]');
  const doctor = pages['dr.li'];
  await doctor.goto(`${server.url}/consultations/${id}`);
  await ready(doctor, `/consultations/${id}`);
  await doctor.waitForSelector('main .badge.state-declined');
  await doctor.waitForSelector('li:has-text("建议转内分泌科")');
});

test('dr.wang adds a Saturday session in the availability editor, in his time zone', async () => {
  const page = pages['dr.wang'];
  await page.goto(`${server.url}/`);
  await ready(page, '/');
  const before = await page.$$eval('section:has(#avail) tbody tr', (rows) => rows.length);
  await page.click('button:has-text("添加时段")');
  const row = page.locator('section:has(#avail) tbody tr').last();
  await row.locator('select').selectOption('6');
  await row.locator('input[type=time]').first().fill('08:00');
  await row.locator('input[type=time]').last().fill('10:00');
  // The week is kept in one time zone, his own until he changes it; a name that is no zone is
  // refused on the form, and one typed in other letter case is spelt as the zone database does.
  const zone = page.getByLabel('时区', { exact: true });
  assert.equal(await zone.inputValue(), 'Asia/Shanghai');
  await zone.fill('Asia/Beijing');
  await page.click('section:has(#avail) button.primary');
  await page.waitForSelector('section:has(#avail) [role=alert]:has-text("请填写有效的时区名称，例如 Asia/Shanghai。")');
  assert.equal(await zone.getAttribute('aria-invalid'), 'true');
  assert.equal(await page.$('section:has(#avail) [role=status]:has-text("已保存")'), null);
  await zone.fill('asia/shanghai');
  await page.click('section:has(#avail) button.primary');
  await page.waitForSelector('section:has(#avail) [role=status]:has-text("已保存")');
  // Saved, not just on screen: the page opened again shows the new session among the others.
  await page.reload();
  await ready(page, '/');
  const rows = await page.$$eval('section:has(#avail) tbody tr', (trs) => trs.map((tr) =>
    [/** @type {HTMLSelectElement} */ (tr.querySelector('select')).value, ...[...tr.querySelectorAll('input[type=time]')].map((i) => /** @type {HTMLInputElement} */ (i).value)]));
  assert.equal(rows.length, before + 1);
  assert.ok(rows.some(([day, start, end]) => day === '6' && start === '08:00' && end === '10:00'), JSON.stringify(rows));
  assert.equal(await page.getByLabel('时区', { exact: true }).inputValue(), 'Asia/Shanghai');
  await accessible(page, 'expert-availability-saved');
});

test('a slot booked by someone else meanwhile: dr.li is told, sees the free slots as they are now and books another', async () => {
  // Two consultations requested by dr.li and accepted by dr.wang, on screen.
  const ours = await consultationThroughUi(browser, server.url, { patient: '刘德明', reason: '心悸一月' });
  const theirs = await consultationThroughUi(browser, server.url, { patient: '张秀英', reason: '胸闷复查' });
  const page = pages['dr.li'];
  await page.goto(`${server.url}/consultations/${ours}`);
  await ready(page, `/consultations/${ours}`);
  await page.waitForSelector('.slots button.slot');
  const shown = await page.locator('.slots button.slot').first().textContent();
  // While the list is on dr.li's screen, the same slot of dr.wang's goes to the other
  // consultation, booked in another window.
  const elsewhere = await onConsultation(browser, server.url, 'dr.li', theirs);
  await elsewhere.waitForSelector('.slots button.slot');
  assert.equal(await elsewhere.locator('.slots button.slot').first().textContent(), shown);
  await elsewhere.locator('.slots button.slot').first().click();
  await elsewhere.waitForSelector('main .badge.state-scheduled');
  await elsewhere.context().close();
  await page.locator('.slots button.slot').first().click();
  await page.waitForSelector(`.slots [role=status]:has-text("刚被他人预约")`);
  assert.ok((await page.textContent('.slots [role=status]'))?.includes(String(shown)), 'the notice names the slot that was taken');
  const now = await page.locator('.slots button.slot').allTextContents();
  assert.ok(!now.includes(String(shown)), `the taken slot ${shown} is still offered: ${now}`);
  await page.waitForSelector('main .badge.state-accepted');
  await accessible(page, 'consultation-slot-taken');
  await page.locator('.slots button.slot').first().click();
  await page.waitForSelector('main .badge.state-scheduled');
  await page.waitForSelector(`section:has(#appts) li:has-text("${now[0]}")`);
});
