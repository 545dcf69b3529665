// The network check in Chromium: a community doctor opens "check my network", runs the
// check against the server (the server is the other WebRTC peer), and sees the path, the
// round trip, the loss, the upload speed and the verdict in plain words; a check that falls
// short says why, in Chinese, from the server's reason codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signIn, ready, screenshot, axeViolations, serverAndBrowser } from './helpers.js';

  // The server listens on loopback only: let Chromium offer loopback candidates, unhidden by
  // mDNS names, so the check connects over 127.0.0.1.
const env = serverAndBrowser(['--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns']);

test('a community doctor checks the network and sees a verdict', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'dr.li');
  await page.click('header >> text=检查我的设备和网络');
  await ready(page, '/netcheck');
  assert.equal((await page.textContent('main h1'))?.trim(), '检查设备和网络');
  // The devices first: a live preview, the pickers, a level meter that moves with the
  // (fake) microphone's beeps, and the choice remembered for the call.
  await page.waitForFunction(() => /** @type {HTMLVideoElement} */ (document.querySelector('video.preview'))?.videoWidth > 0);
  for (const id of ['device-video', 'device-audio', 'device-output']) {
    assert.ok(await page.$$eval(`#${id} option`, (o) => o.length) >= 1, id);
  }
  await page.waitForFunction(() => /** @type {HTMLMeterElement} */ (document.querySelector('#mic-level')).value > 0.01, null, { timeout: 10000 });
  const camera = await page.$eval('#device-video option', (o) => /** @type {HTMLOptionElement} */ (o).value);
  await page.selectOption('#device-video', camera);
  assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('teleconsult.devices') || '{}').video), camera);
  await page.waitForFunction(() => /** @type {HTMLVideoElement} */ (document.querySelector('video.preview'))?.videoWidth > 0);
  await page.click('text=开始检测');
  await page.waitForSelector('[data-verdict]', { timeout: 30000 });
  assert.equal(await page.getAttribute('[data-verdict]', 'data-verdict'), 'video');
  assert.equal(await page.evaluate(() => localStorage.getItem('teleconsult.netcheck.verdict')), 'video', 'remembered for the call');
  assert.equal((await page.textContent('[data-verdict] h2'))?.trim(), '可以进行视频会诊');
  assert.equal((await page.textContent('[data-field=path]'))?.trim(), '直连');
  assert.equal((await page.textContent('[data-field=loss]'))?.trim(), '0.0 %');
  assert.match((await page.textContent('[data-field=rtt]')) ?? '', /^\d+(\.\d+)? 毫秒/);
  assert.match((await page.textContent('[data-field=throughput]')) ?? '', /^\d+ kbit\/s$/);
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'netcheck-result');
  await context.close();
});

test('the coordinator sees the clinics\' recent checks', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await signIn(page, env.server.url, 'coordinator');
  await page.click('header >> text=检查我的设备和网络');
  await ready(page, '/netcheck');
  const rows = await page.locator('#nc-recent + table tbody tr').allTextContents();
  assert.ok(rows.some((r) => r.includes('东湖社区卫生服务中心') && r.includes('可以进行视频会诊')), rows.join('\n'));
  await context.close();
});

test('a failing check explains in Chinese what fell short', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  // Half the probes go missing on the way to the server's verdict: a real check over loopback
  // whose report says 20 of its 40 probes came back, which is too much loss even for audio.
  await page.route('**/api/v1/netcheck/*/complete', async (route) => {
    const report = JSON.parse(route.request().postData() ?? '{}');
    report.received = Math.floor(report.sent / 2);
    report.rtt_ms = report.rtt_ms.slice(0, report.received);
    await route.continue({ postData: JSON.stringify(report) });
  });
  await signIn(page, env.server.url, 'dr.li');
  await page.click('header >> text=检查我的设备和网络');
  await ready(page, '/netcheck');
  await page.click('text=开始检测');
  await page.waitForSelector('[data-verdict]', { timeout: 30000 });
  assert.equal(await page.getAttribute('[data-verdict]', 'data-verdict'), 'cannot_connect');
  assert.equal((await page.textContent('[data-verdict] h2'))?.trim(), '无法连接：此处网络无法进行会诊通话');
  assert.equal((await page.textContent('[data-field=loss]'))?.trim(), '50.0 %');
  assert.deepEqual(await page.locator('[data-field=reasons] li').allTextContents(), ['丢包率 50.0 %，语音通话需要低于 20 %']);
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'netcheck-failing');
  await context.close();
});
