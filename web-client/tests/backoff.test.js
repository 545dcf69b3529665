// The signaling client's reconnect backoff (js/call/backoff.js), without a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, POLICY, backoffDelay } from '../js/call/backoff.js';

test('the ceiling doubles from the base on each attempt up to the cap', () => {
  const top = () => 0.999999;
  const ceilings = [0, 1, 2, 3, 4, 5, 6, 10, 50].map((n) => backoffDelay(n, top));
  assert.deepEqual(ceilings, [249, 499, 999, 1999, 3999, 7999, 7999, 7999, 7999]);
  assert.deepEqual(POLICY, { baseMs: 250, capMs: 8000 });
});

test('full jitter: the delay is spread over the whole range from 0, not around the ceiling', () => {
  assert.equal(backoffDelay(4, () => 0), 0);
  assert.equal(backoffDelay(4, () => 0.5), 2000);
  // 10,000 clients on their fifth attempt: spread evenly over 0–4 s, none beyond.
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const delays = Array.from({ length: 10000 }, () => backoffDelay(4, random));
  assert.ok(Math.max(...delays) < 4000 && Math.min(...delays) >= 0);
  const quarters = [0, 0, 0, 0];
  for (const d of delays) quarters[Math.floor(d / 1000)]++;
  for (const q of quarters) assert.ok(q > 2300 && q < 2700, `each second of the range gets a quarter: ${quarters}`);
});

test('odd inputs give a delay within the policy, never NaN or negative', () => {
  assert.equal(backoffDelay(-3, () => 0.999), 249);
  assert.equal(backoffDelay(NaN, () => 0.999), 249);
  assert.equal(backoffDelay(1e9, () => 0.999), 7992);
  assert.equal(backoffDelay(2, () => 1.5), 1000, 'a random() above 1 is clamped');
  assert.equal(backoffDelay(2, () => -1), 0);
});

test('attempts count up until a success resets them', () => {
  const b = new Backoff(() => 0.999999, { baseMs: 100, capMs: 1000 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [99, 199, 399, 799, 999, 999]);
  b.reset();
  assert.equal(b.next(), 99, 'after joined/resumed the next drop starts short again');
});
