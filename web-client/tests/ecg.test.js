// The ECG viewer draws on ECG paper at 25 mm/s and 10 mm/mV, with the R peaks marked on the
// rhythm strip. Drawn in Chromium from a synthetic 12-lead recording (a 1 mV spike each
// second), loaded as the page loads its own modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ready, axeViolations, screenshot, SCREENSHOTS, REPO, consultationThroughUi, onConsultation, serverAndBrowser } from './helpers.js';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = serverAndBrowser();

test('twelve leads on ECG paper with computer-assisted R-peak marks', async () => {
  const page = await env.browser.newPage();
  await page.goto(`${env.server.url}/login`);
  await ready(page, '/login');
  const result = await page.evaluate(async () => {
    const { drawEcg } = await import('/js/ecg/viewer.js');
    const rate = 500;
    const names = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'];
    const samples = Array.from({ length: 10 * rate }, (_, i) => (i % rate === 0 && i > 0 ? 1000 : 0));
    const canvas = drawEcg({
      sample_rate_hz: rate, duration_s: 10, label: 'computer-assisted',
      leads: names.map((name) => ({ name, samples })),
      measurements: { heart_rate_bpm: 60, r_peaks_s: [1, 2, 3, 4, 5, 6, 7, 8, 9], rhythm: 'regular', pr_ms: null,
        qrs_ms: null, qt_ms: null, qtc_bazett_ms: null, detection_lead: 'II' },
    }, 4);
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    const pixel = (/** @type {number} */ x, /** @type {number} */ y) => [...ctx.getImageData(x, y, 1, 1).data];
    const darkest = (/** @type {number} */ x0, /** @type {number} */ x1, /** @type {number} */ y) =>
      Math.min(...Array.from({ length: x1 - x0 }, (_, i) => pixel(x0 + i, y)[0]));
    return {
      width: canvas.width, height: canvas.height,
      majorGrid: pixel(40, 2), minorGrid: pixel(4, 2), paper: pixel(6, 2),
      // 1 s = 25 mm = 100 px; the rhythm strip's baseline is 105 mm = 420 px down; 1 mV = 40 px.
      spikeMid: darkest(97, 104, 400), flat: darkest(140, 160, 400),
      mark: pixel(100, 366), noMark: pixel(150, 366),
      png: canvas.toDataURL('image/png'),
    };
  });
  assert.equal(result.width, 1000, '250 mm at 4 px/mm');
  assert.equal(result.height, 480, '4 rows of 30 mm');
  assert.deepEqual(result.majorGrid.slice(0, 3), [0xf0, 0xa0, 0xa0], '5 mm line');
  assert.notDeepEqual(result.minorGrid, result.paper, '1 mm line differs from the paper');
  assert.ok(result.spikeMid < 100, `the 1 mV spike crosses 0.5 mV (darkest ${result.spikeMid})`);
  assert.ok(result.flat > 200, 'nothing drawn at 0.5 mV between spikes');
  const blue = (/** @type {number[]} */ [r, g, b]) => b > 150 && r < 60 && g < 120;
  assert.ok(blue(result.mark), `R-peak mark above the spike (${result.mark})`);
  assert.ok(!blue(result.noMark), 'no mark between beats');
  mkdirSync(SCREENSHOTS, { recursive: true });
  writeFileSync(join(SCREENSHOTS, 'ecg-synthetic.png'), Buffer.from(result.png.split(',')[1], 'base64'));
  await page.close();
});

test('dr.wang opens a real 12-lead ECG of a consultation in the viewer', async () => {
  // dr.li attaches the cart's DICOM file to the request in the wizard; dr.wang accepts.
  const id = await consultationThroughUi(env.browser, env.server.url, {
    patient: '刘德明', reason: '心电图 ST 段改变', mode: 'ecg_review', urgency: 'urgent',
    files: [join(REPO, 'tests', 'fixtures', 'ecg', 'waveform_ecg.dcm')],
  });

  const page = await onConsultation(env.browser, env.server.url, 'dr.wang', id);
  await page.click('section[aria-labelledby=files] tr:has-text("waveform_ecg.dcm") button:has-text("查看心电图")');
  await page.waitForURL(/\/ecg\/[0-9a-f-]{36}/);
  const file = { id: new URL(page.url()).pathname.split('/').pop() };
  await ready(page, `/ecg/${file.id}`);
  const canvas = await page.$eval('canvas', (el) => ({ w: /** @type {HTMLCanvasElement} */ (el).width, h: /** @type {HTMLCanvasElement} */ (el).height }));
  assert.deepEqual(canvas, { w: 1000, h: 480 }, 'a 10 s 12-lead recording in the 3x4 layout with a rhythm strip');
  const marks = await page.$eval('canvas', (el) => {
    const c = /** @type {HTMLCanvasElement} */ (el);
    const data = /** @type {CanvasRenderingContext2D} */ (c.getContext('2d')).getImageData(0, 360, c.width, 12).data;
    let columns = 0;
    for (let x = 1; x < c.width; x++) {
      const blue = (/** @type {number} */ px) => [...Array(12).keys()].some((y) => {
        const i = (y * c.width + px) * 4;
        return data[i + 2] > 150 && data[i] < 60;
      });
      if (blue(x) && !blue(x - 1)) columns++;
    }
    return columns;
  });
  assert.ok(marks >= 8 && marks <= 12, `R-peak marks on the rhythm strip: ${marks}`);
  await page.waitForSelector('.notice:has-text("计算机辅助")');
  const rate = await page.textContent('dl.facts dd');
  assert.match(rate || '', /^\d+ bpm$/);
  const facts = await page.textContent('dl.facts');
  assert.match(facts || '', /心搏正常 10 · 室性早搏 0/, `the beat counts with the measurements: ${facts}`);
  assert.equal(await page.locator('.notice:has-text("心房颤动")').count(), 0, 'no finding on a sinus rhythm');
  // Calipers: 200 canvas pixels at 4 px/mm are 50 mm, 2000 ms at 25 mm/s, 30 bpm.
  assert.match(await page.textContent('.caliper-hint') || '', /卡尺.*方向键.*Shift.*Enter/);
  assert.equal(await page.textContent('.caliper-readout'), '', 'nothing measured yet');
  const box = /** @type {{x: number, y: number, width: number, height: number}} */ (await page.locator('canvas').boundingBox());
  const css = box.width / 1000;
  await page.mouse.move(box.x + 300 * css, box.y + 300 * css);
  await page.mouse.down();
  await page.mouse.move(box.x + 400 * css, box.y + 300 * css, { steps: 3 });
  await page.mouse.move(box.x + 500 * css, box.y + 300 * css, { steps: 3 });
  await page.mouse.up();
  const reading = await page.textContent('.caliper-readout');
  const [, ms, bpm] = (reading || '').match(/间期 (\d+) ms · (\d+) 次\/分/) || [];
  assert.ok(Math.abs(Number(ms) - 2000) <= 10, `2000 ms between the calipers: ${reading}`);
  assert.ok(Math.abs(Number(bpm) - 30) <= 1, `30 bpm: ${reading}`);
  const lines = await page.$eval('canvas', (el) => {
    const c = /** @type {HTMLCanvasElement} */ (el);
    const ctx = /** @type {CanvasRenderingContext2D} */ (c.getContext('2d'));
    const green = (/** @type {number} */ x) => { const [r, g, b] = ctx.getImageData(x, 10, 1, 1).data; return g > 100 && r < 40 && b < 160 && g > b; };
    return { start: [299, 300, 301].some(green), end: [499, 500, 501].some(green), between: green(400) };
  });
  assert.deepEqual(lines, { start: true, end: true, between: false }, 'the two caliper lines are drawn where the drag began and ended');
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'ecg-viewer');

  // The same with the keyboard only: Tab to the tracing, then arrows, Shift and Enter.
  await page.reload();
  await ready(page, `/ecg/${file.id}`);
  const focusedCanvas = () => page.evaluate(() => document.activeElement?.tagName === 'CANVAS');
  for (let i = 0; i < 40 && !(await focusedCanvas()); i++) await page.keyboard.press('Tab');
  assert.ok(await focusedCanvas(), 'the tracing is reached with Tab');
  assert.equal(await page.getAttribute('canvas', 'aria-describedby'), 'caliper-hint');
  assert.equal(await page.getAttribute('.caliper-readout', 'aria-live'), 'polite');
  const scrolled = await page.evaluate(() => window.scrollY);
  /** The interval and rate the live region reports. */
  const reported = async () => {
    const text = await page.textContent('.caliper-readout') || '';
    const [, ms, bpm] = text.match(/间期 (\d+) ms · (\d+) 次\/分/) || [];
    return { ms: Number(ms), bpm: Number(bpm) };
  };
  await page.keyboard.press('ArrowRight');
  assert.deepEqual(await reported(), { ms: 1000, bpm: 60 }, 'the first arrow places a pair one second apart');
  await page.keyboard.press('ArrowRight');
  assert.deepEqual(await reported(), { ms: 1040, bpm: 58 }, 'an arrow moves the end line one small box, 40 ms');
  await page.keyboard.press('Shift+ArrowRight');
  assert.deepEqual(await reported(), { ms: 1240, bpm: 48 }, 'Shift moves it one large box, 200 ms');
  await page.keyboard.press('Enter');
  assert.match(await page.textContent('.caliper-readout') || '', /^正在移动起始线 · 间期 1240 ms/);
  await page.keyboard.press('ArrowRight');
  assert.deepEqual(await reported(), { ms: 1200, bpm: 50 }, 'now the start line moves: the interval shrinks');
  await page.keyboard.press('Shift+ArrowLeft');
  await page.keyboard.press('Shift+ArrowLeft');
  assert.deepEqual(await reported(), { ms: 1600, bpm: 38 }, 'start line 10 mm to the left');
  // The lines: start 12.5 + 1 - 10 = 3.5 mm (14 px), end 12.5 + 25 + 1 + 5 = 43.5 mm (174 px).
  const keyLines = await page.$eval('canvas', (el) => {
    const c = /** @type {HTMLCanvasElement} */ (el);
    const ctx = /** @type {CanvasRenderingContext2D} */ (c.getContext('2d'));
    const green = (/** @type {number} */ x) => { const [r, g, b] = ctx.getImageData(x, 10, 1, 1).data; return g > 100 && r < 40 && b < 160 && g > b; };
    return { start: [13, 14, 15].some(green), end: [173, 174, 175].some(green), between: green(100) };
  });
  assert.deepEqual(keyLines, { start: true, end: true, between: false }, 'the lines are drawn where the keys moved them');
  assert.equal(await page.evaluate(() => window.scrollY), scrolled, 'the arrow keys do not scroll the page');
  await page.keyboard.press('Escape');
  assert.equal(await page.textContent('.caliper-readout'), '', 'Esc clears the calipers');
  await page.context().close();
});

test('dr.wang reads where a five-minute Holter strip was in atrial fibrillation', async () => {
  // Minutes 5 to 10 of MIT-BIH record 201, zipped as a clinic's Holter export would be: the
  // reference has atrial fibrillation at 0-78 s and 177-214 s, sinus rhythm between and after.
  const dir = mkdtempSync(join(tmpdir(), 'holter-'));
  const zip = join(dir, 'holter_201.zip');
  const excerpt = join(REPO, 'tests', 'fixtures', 'ecg', 'mitdb-excerpts', '201_0300');
  execFileSync('python3', ['-c', 'import sys, zipfile, os\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n  [z.write(f, os.path.basename(f)) for f in sys.argv[2:]]',
    zip, `${excerpt}.hea`, `${excerpt}.dat`, `${excerpt}.atr`]);
  const id = await consultationThroughUi(env.browser, env.server.url, {
    patient: '刘德明', reason: '心悸，动态心电图片段', mode: 'ecg_review', urgency: 'routine', files: [zip],
  });
  const page = await onConsultation(env.browser, env.server.url, 'dr.wang', id);
  await page.click('section[aria-labelledby=files] tr:has-text("holter_201.zip") button:has-text("查看心电图")');
  await page.waitForURL(/\/ecg\/[0-9a-f-]{36}/);
  await ready(page, new URL(page.url()).pathname);
  const finding = await page.textContent('.notice:has-text("心房颤动")');
  assert.match(finding || '', /计算机辅助/, `labelled computer-assisted: ${finding}`);
  // Two episodes, 0:00:00-0:01:30 and 0:03:00-0:03:50 (judged 30 s at a time, every 10 s).
  assert.match(finding || '', /共 2 段.*累计 0:02:20.*占记录的 47%.*最长一段 0:00:00–0:01:30/, finding || '');
  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'ecg-holter-atrial-fibrillation');
  await page.context().close();
});
