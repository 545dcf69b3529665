// OHIF Viewer, unchanged (the published build of npm @ohif/app 3.13.2, unpacked by .ci/run
// into TELECONSULT_OHIF_DIST), opens a CT that dr.li shared in a consultation, through the
// consultation's DICOMweb service. The viewer is served the way a hospital would put it in
// front of the platform: a reverse proxy that serves the viewer's files and passes
// /api/ on to the server with the expert's bearer token and X-Forwarded-Host (the server
// trusts it as a proxy, so the BulkDataURIs it hands out point back at the proxy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync, existsSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, extname, normalize } from 'node:path';
import { startServer, launchBrowser, apiAs, acceptedConsultation, REPO, SCREENSHOTS, PASSWORD } from './helpers.js';

const DIST = process.env.TELECONSULT_OHIF_DIST || '';
const present = DIST !== '' && existsSync(join(DIST, 'index.html'));
const required = ['1', 'true'].includes(process.env.TELECONSULT_REQUIRE_SERVICES || '');
if (!present && required) {
  throw new Error('TELECONSULT_OHIF_DIST names no OHIF build (.ci/run unpacks npm @ohif/app there)');
}

const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';

const TYPES = /** @type {Record<string, string>} */ ({
  '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
  '.woff2': 'font/woff2', '.woff': 'font/woff',
});

/**
 * The proxy: OHIF's files, its configuration, and /api/ passed on with the token.
 * @param {string} api the server's base URL
 * @param {string} consultation
 * @param {string} token
 * @returns {Promise<{url: string, close: () => void}>}
 */
function startProxy(api, consultation, token) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url || '/', 'http://proxy');
    try {
      if (url.pathname.startsWith('/api/')) {
        const headers = /** @type {Record<string, string>} */ ({
          authorization: `Bearer ${token}`,
          'x-forwarded-host': req.headers.host || '',
          'x-forwarded-proto': 'http',
        });
        for (const name of ['accept', 'content-type']) {
          const v = req.headers[name];
          if (typeof v === 'string') headers[name] = v;
        }
        const upstream = await fetch(`${api}${req.url}`, { method: req.method, headers });
        const out = /** @type {Record<string, string>} */ ({});
        for (const name of ['content-type', 'warning']) {
          const v = upstream.headers.get(name);
          if (v) out[name] = v;
        }
        res.writeHead(upstream.status, out);
        res.end(Buffer.from(await upstream.arrayBuffer()));
        return;
      }
      if (url.pathname === '/app-config.js') {
        const base = `http://${req.headers.host}/api/v1/consultations/${consultation}/dicomweb`;
        const config = {
          routerBasename: '/',
          extensions: [],
          modes: [],
          showStudyList: true,
          maxNumberOfWebWorkers: 1,
          showWarningMessageForCrossOrigin: false,
          showCPUFallbackMessage: false,
          showLoadingIndicator: true,
          defaultDataSourceName: 'teleconsult',
          dataSources: [{
            namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
            sourceName: 'teleconsult',
            configuration: {
              friendlyName: 'Teleconsult', name: 'teleconsult',
              wadoUriRoot: base, qidoRoot: base, wadoRoot: base,
              qidoSupportsIncludeField: true, imageRendering: 'wadors', thumbnailRendering: 'wadors',
              enableStudyLazyLoad: true, supportsFuzzyMatching: false, supportsWildcard: true,
              staticWado: false, bulkDataURI: { enabled: true },
            },
          }],
        };
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(`window.config = ${JSON.stringify(config)};`);
        return;
      }
      let file = normalize(join(DIST, decodeURIComponent(url.pathname)));
      if (!file.startsWith(DIST) || !existsSync(file) || statSync(file).isDirectory()) file = join(DIST, 'index.html');
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
      res.end(readFileSync(file));
    } catch (e) {
      res.writeHead(502);
      res.end(String(e));
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      resolve({ url: `http://127.0.0.1:${port}`, close: () => server.close() });
    });
  });
}

test('OHIF Viewer shows a consultation\'s CT through the DICOMweb service', { skip: present ? false : 'TELECONSULT_OHIF_DIST is not set', timeout: 180000 }, async () => {
  const server = await startServer({ TELECONSULT_TRUSTED_PROXIES: '127.0.0.1' });
  const browser = await launchBrowser(['--use-angle=swiftshader', '--enable-unsafe-swiftshader']);
  /** @type {{url: string, close: () => void} | undefined} */
  let proxy;
  try {
    const li = await apiAs(server.url, 'dr.li');
    const wang = await apiAs(server.url, 'dr.wang');
    const zhang = await apiAs(server.url, 'patient.zhang');
    const me = await zhang.call('GET', '/api/v1/me');
    const c = await acceptedConsultation(li, wang, { patient_id: me.patient_id, reason: '肺结节复查', mode: 'imaging_review' });
    const liToken = (await (await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'dr.li', password: PASSWORD }),
    })).json()).access_token;
    const up = await fetch(`${server.url}/api/v1/consultations/${c.id}/files?name=ct.dcm`, {
      method: 'POST', headers: { Authorization: `Bearer ${liToken}` },
      body: readFileSync(join(REPO, 'tests', 'fixtures', 'dicom', 'CT_small.dcm')),
    });
    assert.equal(up.status, 201);
    const wangToken = (await (await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'dr.wang', password: PASSWORD }),
    })).json()).access_token;
    proxy = await startProxy(server.url, c.id, wangToken);

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    /** @type {string[]} */
    const failed = [];
    page.on('response', (r) => { if (r.url().includes('/api/') && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
    const frame = page.waitForResponse((r) => r.url().includes('/frames/') && r.status() === 200, { timeout: 120000 });
    await page.goto(`${proxy.url}/viewer?StudyInstanceUIDs=${CT_STUDY}`);
    const frameResponse = await frame;
    assert.match(frameResponse.headers()['content-type'] || '', /multipart\/related/);
    // The image is drawn in the viewport: its canvas holds more than one grey level.
    const canvas = page.locator('.cornerstone-canvas, canvas').first();
    await canvas.waitFor({ state: 'visible', timeout: 60000 });
    await page.waitForTimeout(2000);
    const shot = await canvas.screenshot();
    mkdirSync(SCREENSHOTS, { recursive: true });
    writeFileSync(join(SCREENSHOTS, 'ohif-ct.png'), shot);
    const distinct = await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c2 = document.createElement('canvas');
      c2.width = img.width; c2.height = img.height;
      const ctx = c2.getContext('2d');
      if (!ctx) return 0;
      ctx.drawImage(img, 0, 0);
      const data = ctx.getImageData(0, 0, img.width, img.height).data;
      const levels = new Set();
      for (let i = 0; i < data.length; i += 4) levels.add(data[i]);
      return levels.size;
    }, shot.toString('base64'));
    assert.ok(distinct > 16, `the viewport shows an image (${distinct} grey levels)`);
    assert.deepEqual(failed, [], 'no DICOMweb request failed');
  } finally {
    proxy?.close();
    await browser.close();
    await server.stop();
  }
});
