// Call figures on loopback (not run by `cargo test`: a measuring tool, see docs/web-client.md):
// - join: from the click on "进入视频会诊" to the remote video playing (frames decoded and time
//   advancing), on both sides, over TRIES joins of dr.li and dr.wang;
// - reload: from a reload mid-call to the remote video playing again;
// - first load: bytes on the wire from a fresh browser's first request to the call screen
//   ready (sign-in screen, sign-in, consultation, call), every file fetched once.
// Usage: TELECONSULT_BIN=target/release/teleconsult node tests/call-latency.js [tries]
// Writes target/call-latency.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, signIn, ready, consultationThroughUi, bookedThroughUi, REPO } from './helpers.js';

const TRIES = Number(process.argv[2] || 10);

/** @param {number[]} xs @param {number} q */
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

/**
 * In the page: the time (performance.now) at which a remote video first plays.
 * @param {import('playwright-core').Page} page
 */
const playingAt = async (page) => {
  await page.waitForFunction(() => {
    const v = /** @type {HTMLVideoElement | null} */ (document.querySelector('video.remote'));
    if (v && v.videoWidth > 0 && v.currentTime > 0) {
      /** @type {any} */ (window).playingAt ??= performance.timeOrigin + performance.now();
      return true;
    }
    return false;
  }, null, { polling: 'raf', timeout: 30000 });
  return page.evaluate(() => /** @type {any} */ (window).playingAt);
};

const server = await startServer();
const browser = await launchBrowser();
try {
  // Made on screen, before anything is measured: urgent (the room is open at once, whatever the
  // slot), requested by dr.li, accepted by dr.wang, booked in the first slot.
  const id = await consultationThroughUi(browser, server.url, { patient: '张秀英', reason: '测量', mode: 'video', urgency: 'urgent' });
  await bookedThroughUi(browser, server.url, id);

  // First load of the call path in a fresh browser context.
  const fresh = await browser.newContext();
  const first = await fresh.newPage();
  /** @type {Promise<number>[]} */
  const sizes = [];
  first.on('requestfinished', (r) => { sizes.push(r.sizes().then((s) => s.responseBodySize + s.responseHeadersSize)); });
  await signIn(first, server.url, 'dr.li');
  await first.goto(`${server.url}/consultations/${id}`);
  await ready(first, `/consultations/${id}`);
  await first.click('button:has-text("进入视频会诊")');
  await ready(first, `/call/${id}`);
  const firstLoadBytes = (await Promise.all(sizes)).reduce((a, b) => a + b, 0);
  const firstLoadRequests = sizes.length;
  await first.click('.controls button:has-text("离开")');
  await fresh.close();

  const pages = await Promise.all(['dr.li', 'dr.wang'].map(async (u) => {
    const page = await (await browser.newContext()).newPage();
    await signIn(page, server.url, u);
    return page;
  }));
  /** @type {number[]} */
  const joins = [];
  for (let i = 0; i < TRIES; i++) {
    for (const page of pages) {
      await page.goto(`${server.url}/consultations/${id}`);
      await ready(page, `/consultations/${id}`);
      await page.evaluate(() => { /** @type {any} */ (window).playingAt = undefined; });
    }
    const clicks = [];
    for (const page of pages) {
      clicks.push(await page.evaluate(() => performance.timeOrigin + performance.now()));
      await page.click('button:has-text("进入视频会诊")');
    }
    const played = await Promise.all(pages.map(playingAt));
    pages.forEach((_, k) => joins.push(played[k] - clicks[k]));
    for (const page of pages) {
      await page.click('.controls button:has-text("离开")');
      await ready(page, `/consultations/${id}`);
    }
  }

  // Reload mid-call.
  /** @type {number[]} */
  const reloads = [];
  for (const page of pages) {
    await page.goto(`${server.url}/consultations/${id}`);
    await ready(page, `/consultations/${id}`);
    await page.click('button:has-text("进入视频会诊")');
  }
  await Promise.all(pages.map(playingAt));
  for (let i = 0; i < Math.min(TRIES, 5); i++) {
    const before = Date.now();
    await pages[0].reload();
    reloads.push((await playingAt(pages[0])) - before);
    await pages[0].waitForTimeout(500);
  }

  const result = {
    tries: TRIES,
    join_to_remote_video_ms: { p50: Math.round(quantile(joins, 0.5)), p90: Math.round(quantile(joins, 0.9)), max: Math.round(Math.max(...joins)), samples: joins.map(Math.round) },
    reload_to_remote_video_ms: { p50: Math.round(quantile(reloads, 0.5)), max: Math.round(Math.max(...reloads)), samples: reloads.map(Math.round) },
    first_load_to_call_bytes: firstLoadBytes,
    first_load_to_call_requests: firstLoadRequests,
  };
  mkdirSync(join(REPO, 'target'), { recursive: true });
  writeFileSync(join(REPO, 'target', 'call-latency.json'), JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  await server.stop();
}
