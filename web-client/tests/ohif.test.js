// OHIF Viewer, unchanged (the published build of npm @ohif/app 3.13.2, unpacked by .ci/run
// into TELECONSULT_OHIF_DIST), opens a CT that dr.li attached in the request wizard, through the
// consultation's DICOMweb service. The viewer is served from its own origin (a static file
// server here, with the viewer's configuration naming the consultation's DICOMweb base) and
// speaks to the server across origins (cors_allow_origins), sending the expert's bearer
// token itself (OHIF's `token` URL parameter).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync, existsSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, extname, normalize } from 'node:path';
import { startServer, launchBrowser, consultationThroughUi, REPO, SCREENSHOTS, PASSWORD } from './helpers.js';

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
 * The viewer's origin: OHIF's files, and its configuration naming the DICOMweb base that
 * `dicomweb()` answers once the consultation exists.
 * @param {() => string} dicomweb
 * @returns {Promise<{url: string, close: () => void}>}
 */
function serveViewer(dicomweb) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url || '/', 'http://viewer');
    if (url.pathname === '/app-config.js') {
      const base = dicomweb();
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
  let dicomweb = '';
  const viewer = await serveViewer(() => dicomweb);
  const server = await startServer({ TELECONSULT_CORS_ALLOW_ORIGINS: viewer.url });
  const browser = await launchBrowser(['--use-angle=swiftshader', '--enable-unsafe-swiftshader']);
  try {
    // dr.li requests an imaging review for patient.zhang and attaches the CT in the wizard's
    // file picker; dr.wang accepts it, on screen.
    const c = await consultationThroughUi(browser, server.url, {
      patient: '张秀英', reason: '肺结节复查', mode: 'imaging_review',
      files: [{ name: 'ct.dcm', mimeType: 'application/dicom', buffer: readFileSync(join(REPO, 'tests', 'fixtures', 'dicom', 'CT_small.dcm')) }],
    });
    // The viewer, another program, is given dr.wang's bearer token in its address: no screen of
    // ours hands one out, so it comes from signing in through the API.
    const token = async (/** @type {string} */ username) => (await (await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }),
    })).json()).access_token;
    dicomweb = `${server.url}/api/v1/consultations/${c}/dicomweb`;

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    /** @type {string[]} */
    const failed = [];
    page.on('response', (r) => { if (r.url().includes('/api/') && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
    const frame = page.waitForResponse((r) => r.url().startsWith(dicomweb) && r.url().includes('/frames/') && r.status() === 200, { timeout: 120000 });
    await page.goto(`${viewer.url}/viewer?StudyInstanceUIDs=${CT_STUDY}&token=${await token('dr.wang')}`);
    const frameResponse = await frame;
    assert.match(frameResponse.headers()['content-type'] || '', /multipart\/related/);
    assert.match(await frameResponse.request().headerValue('authorization') || '', /^Bearer /, 'the viewer sent the token');
    // The image is drawn in the viewport: the middle of its canvas holds many grey levels.
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
      // The middle of the viewport, clear of the viewer's overlays and hints.
      const [x, y, w, h] = [img.width * 0.3, img.height * 0.4, img.width * 0.4, img.height * 0.2].map(Math.round);
      const data = ctx.getImageData(x, y, w, h).data;
      const levels = new Set();
      for (let i = 0; i < data.length; i += 4) levels.add(data[i]);
      return levels.size;
    }, shot.toString('base64'));
    assert.ok(distinct > 16, `the viewport shows an image (${distinct} grey levels)`);
    assert.deepEqual(failed, [], 'no DICOMweb request failed');
  } finally {
    viewer.close();
    await browser.close();
    await server.stop();
  }
});
