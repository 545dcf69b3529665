// The DICOM image viewer: dr.li uploads a three-instance CT series (made here from the
// pydicom CT fixture: new SOP Instance UIDs, the pixel rows shifted per instance so each
// slice looks different) and a two-frame RGB file; dr.wang opens the images from the
// consultation, scrolls the series by wheel, keys and slider, changes the window by preset
// and by dragging, and zooms. Checks the frame index and the drawn pixels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ready, axeViolations, screenshot, REPO, consultationThroughUi, onConsultation, serverAndBrowser, fixture, ctSlice } from './helpers.js';

const env = serverAndBrowser();

test('a DICOM series scrolls, takes window presets and drags, and zooms', async () => {
  const id = await consultationThroughUi(env.browser, env.server.url, { patient: '张秀英', reason: '胸部 CT 结节复核', mode: 'imaging_review' });
  const c = { id };

  // dr.li, the requesting community doctor, adds the images on the consultation's page, one
  // file at a time and out of order: the viewer orders by instance number, then SOP Instance
  // UID. A DICOM ECG in the same consultation is a waveform, not an image series.
  const liPage = await onConsultation(env.browser, env.server.url, 'dr.li', c.id);
  const uploads = [
    ...[3, 1, 2].map((n) => ({ name: `ct-${n}.dcm`, buffer: ctSlice(n) })),
    { name: 'rgb-2frame.dcm', buffer: fixture('SC_rgb_rle_2frame.dcm') },
    { name: 'ecg.dcm', buffer: readFileSync(join(REPO, 'tests', 'fixtures', 'ecg', 'waveform_ecg.dcm')) },
  ];
  for (const [i, { name, buffer }] of uploads.entries()) {
    await liPage.setInputFiles('#upload-files', { name, mimeType: 'application/dicom', buffer });
    await liPage.waitForSelector(`.uploads li[data-name="${name}"][data-state=done]`, { timeout: 30000 });
    await liPage.waitForFunction((n) => document.querySelectorAll('section[aria-labelledby=files] tbody tr').length === n, i + 1);
  }
  // The files list comes in pages, newest first: the view lists every file, and the client's
  // page walker, two at a time, finds each once.
  const newestFirst = ['ecg.dcm', 'rgb-2frame.dcm', 'ct-2.dcm', 'ct-1.dcm', 'ct-3.dcm'];
  assert.deepEqual(await liPage.$$eval('section[aria-labelledby=files] tbody tr .file-name', (cells) => cells.map((td) => td.firstChild?.textContent)), newestFirst);
  const walked = await liPage.evaluate(async (path) => {
    const { getAll } = await import('/js/api.js');
    return (await getAll(path)).map((/** @type {any} */ f) => f.name);
  }, `/api/v1/consultations/${c.id}/files?limit=2`);
  assert.deepEqual(walked, newestFirst);
  await liPage.click('button:has-text("查看影像")');
  await ready(liPage, `/images/${c.id}`);
  await liPage.waitForSelector('canvas.dicom[data-frame="1"]');
  await liPage.context().close();

  const page = await onConsultation(env.browser, env.server.url, 'dr.wang', c.id);
  await page.click('button:has-text("查看影像")');
  await ready(page, `/images/${c.id}`);

  const series = await page.$$eval('.series-list li', (lis) => lis.map((li) => li.textContent));
  assert.equal(series.length, 2, `the two image series listed, not the ECG: ${series}`);
  const ctRow = series.findIndex((s) => /CT/.test(s || ''));
  assert.ok(ctRow >= 0, `the CT series is listed: ${series}`);
  await page.click(`.series-list li:nth-child(${ctRow + 1}) button`);
  await page.waitForSelector('canvas.dicom[data-src*="12321/frames/1/"]');

  /** The canvas state once the image for `frame` is drawn, and a digest of its pixels. */
  const shown = async (/** @type {number} */ frame) => {
    await page.waitForSelector(`canvas.dicom[data-frame="${frame}"]`);
    return page.$eval('canvas.dicom', (el) => {
      const canvas = /** @type {HTMLCanvasElement} */ (el);
      const data = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d')).getImageData(0, 0, canvas.width, canvas.height).data;
      let sum = 0;
      let weighted = 0;
      for (let i = 0; i < data.length; i += 4) { sum += data[i]; weighted += data[i] * ((i / 4) % 997); }
      return { src: canvas.dataset.src || '', window: canvas.dataset.window || '', sum, weighted,
        status: document.querySelector('.viewer-status')?.textContent || '' };
    });
  };
  const first = await shown(1);
  assert.ok(first.sum > 0, 'the first frame is drawn');
  assert.match(first.status, /第 1 \/ 3 帧/);
  assert.match(first.src, /1232[1]\/frames\/1\/rendered/, `instance 1 first: ${first.src}`);

  // Mouse wheel: next slice, and the picture changes (the rows are shifted).
  await page.hover('canvas.dicom');
  await page.mouse.wheel(0, 120);
  const second = await shown(2);
  assert.match(second.src, /12322\/frames\/1\/rendered/);
  assert.notEqual(second.weighted, first.weighted, 'slice 2 looks different from slice 1');
  // Keys.
  await page.focus('canvas.dicom');
  await page.keyboard.press('ArrowDown');
  const third = await shown(3);
  assert.match(third.src, /12323\/frames\/1\/rendered/);
  assert.match(third.status, /第 3 \/ 3 帧/);
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.$eval('canvas.dicom', (el) => /** @type {HTMLElement} */ (el).dataset.frame), '3', 'stops at the last frame');
  // Slider.
  await page.fill('#frame-slider', '1');
  const back = await shown(1);
  assert.equal(back.weighted, first.weighted, 'back on slice 1, the same picture');

  // Presets: the window sent to the server and the picture both change.
  await page.click('button[data-preset="soft_tissue"]');
  await page.waitForSelector('canvas.dicom[data-window="40,400"]');
  const soft = await shown(1);
  assert.match(soft.src, /window=40,400$/);
  await page.click('button[data-preset="lung"]');
  await page.waitForSelector('canvas.dicom[data-window="-600,1500"]');
  const lung = await shown(1);
  assert.match(lung.src, /window=-600,1500$/);
  assert.notEqual(lung.sum, soft.sum, 'the lung window draws the slice differently from the soft-tissue window');
  assert.match(lung.status, /窗位 -600 窗宽 1500/);

  // Dragging right widens the window, dragging down raises the level.
  const box = /** @type {{x: number, y: number, width: number, height: number}} */ (await page.locator('canvas.dicom').boundingBox());
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2 + 40, { steps: 4 });
  await page.mouse.up();
  await page.waitForFunction(() => {
    const w = document.querySelector('canvas.dicom')?.getAttribute('data-window') || '';
    return w !== '-600,1500' && w !== 'auto';
  });
  // Let the last queued request land, then read the window.
  await page.waitForFunction(() => {
    const c = document.querySelector('canvas.dicom');
    const [center, width] = (c?.getAttribute('data-window') || '0,0').split(',').map(Number);
    return center > -600 && width > 1500 && c?.getAttribute('data-src')?.endsWith(`window=${center},${width}`);
  });
  const dragged = await shown(1);
  const [center, width] = dragged.window.split(',').map(Number);
  assert.ok(center > -600 && width > 1500, `dragged window ${dragged.window}`);
  assert.notEqual(dragged.sum, lung.sum, 'the dragged window draws differently');

  // Zoom in: the status says so and the picture is enlarged.
  await page.click('button[aria-label="放大"]');
  const zoomed = await page.$eval('canvas.dicom', (el) => {
    const canvas = /** @type {HTMLCanvasElement} */ (el);
    const data = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d')).getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) sum += data[i];
    return { sum, status: document.querySelector('.viewer-status')?.textContent || '' };
  });
  assert.match(zoomed.status, /缩放 125%/);
  assert.notEqual(zoomed.sum, dragged.sum, 'zooming redraws the picture larger');

  assert.deepEqual(await axeViolations(page), []);
  await screenshot(page, 'image-viewer');

  // The two-frame RGB series scrolls too.
  await page.click(`.series-list li:nth-child(${2 - ctRow}) button`);
  await page.waitForSelector('canvas.dicom:not([data-src*="1232"])');
  const rgb1 = await shown(1);
  assert.match(rgb1.status, /第 1 \/ 2 帧/);
  await page.focus('canvas.dicom');
  await page.keyboard.press('PageDown');
  const rgb2 = await shown(2);
  assert.match(rgb2.src, /\/frames\/2\/rendered/);
  assert.notEqual(rgb2.weighted, rgb1.weighted, 'the second frame differs from the first');
  await page.context().close();
});
