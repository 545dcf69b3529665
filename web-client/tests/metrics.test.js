// First-load transfer size (compressed, as it crossed the wire) and time to interactive of the
// sign-in screen and of signing in, on loopback. Written to target/web-client-metrics.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ready, PASSWORD, REPO, serverAndBrowser } from './helpers.js';

const env = serverAndBrowser();

test('first load is small and sign-in is quick', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  /** @type {Promise<{url: string, bytes: number, encoding: string}>[]} */
  const transfers = [];
  page.on('requestfinished', (request) => {
    transfers.push((async () => {
      const sizes = await request.sizes();
      const response = await request.response();
      return {
        url: new URL(request.url()).pathname,
        bytes: sizes.responseBodySize + sizes.responseHeadersSize,
        encoding: (await response?.headerValue('content-encoding')) || 'identity',
      };
    })());
  });
  await page.goto(`${env.server.url}/login`);
  await ready(page, '/login');
  const loginReadyMs = await page.evaluate(() => performance.now());
  const firstLoad = await Promise.all(transfers);
  const firstLoadBytes = firstLoad.reduce((sum, t) => sum + t.bytes, 0);

  await page.fill('input[name=username]', 'dr.li');
  await page.fill('input[name=password]', PASSWORD);
  const t0 = await page.evaluate(() => performance.now());
  await page.click('button[type=submit]');
  await ready(page, '/');
  const signInMs = (await page.evaluate(() => performance.now())) - t0;

  const metrics = {
    first_load_bytes: firstLoadBytes,
    first_load_requests: firstLoad.length,
    first_load: firstLoad,
    sign_in_screen_interactive_ms: Math.round(loginReadyMs),
    sign_in_to_home_interactive_ms: Math.round(signInMs),
  };
  mkdirSync(join(REPO, 'target'), { recursive: true });
  writeFileSync(join(REPO, 'target', 'web-client-metrics.json'), JSON.stringify(metrics, null, 2));
  console.log(JSON.stringify({ ...metrics, first_load: undefined }));
  assert.ok(firstLoad.filter((t) => /\.(js|css|html)$|\/login$/.test(t.url)).every((t) => t.encoding === 'gzip'), JSON.stringify(firstLoad));
  assert.ok(firstLoadBytes < 100_000, `first load ${firstLoadBytes} bytes`);
  assert.ok(signInMs < 5000, `sign-in took ${signInMs} ms`);
  await context.close();
});
