// The vendored ES modules under js/vendor/ are the published packages' own builds, wrapped
// and unchanged: js/vendor/jsqr.js is npm jsqr's dist/jsQR.js between a fixed header and
// footer, with the package's licence beside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

test('js/vendor/jsqr.js is jsQR 1.4.0 as published, wrapped as an ES module', async () => {
  const pkg = JSON.parse(readFileSync(require.resolve('jsqr/package.json'), 'utf8'));
  assert.equal(pkg.version, '1.4.0');
  assert.equal(pkg.license, 'Apache-2.0');
  const dist = readFileSync(require.resolve('jsqr/dist/jsQR.js'), 'utf8');
  const vendored = readFileSync(join(here, '..', 'js', 'vendor', 'jsqr.js'), 'utf8');
  assert.ok(vendored.includes(dist), 'the published build, unchanged');
  assert.equal(vendored.length - dist.length < 1000, true, 'only a short wrapper around it');
  assert.equal(readFileSync(join(here, '..', 'js', 'vendor', 'jsqr.LICENSE.txt'), 'utf8'), readFileSync(join(dirname(require.resolve('jsqr/package.json')), 'LICENSE'), 'utf8'));
  // The wrapper exports the decoder as the module's default.
  const jsQR = (await import('../js/vendor/jsqr.js')).default;
  assert.equal(typeof jsQR, 'function');
  assert.equal(jsQR(new Uint8ClampedArray(4 * 16 * 16), 16, 16), null, 'an empty image holds no code');
});
