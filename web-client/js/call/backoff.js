// When to try the signaling connection again after it dropped: exponential backoff with full
// jitter. The n-th attempt in a row waits a random time between 0 and min(cap, base × 2^n), so
// that the thousands of clients of a server that restarted do not all come back in the same
// instant (and again in the same instant after each refusal), and a client whose network
// blinked is back within a fraction of a second. The count starts again after a successful
// `joined` or `resumed`. Pure, so it is tested without a browser (tests/backoff.test.js); the
// load tool's reconnect storm (benches/signaling_load.rs, `--mode storm`) uses the same policy.

/** Base and cap of the backoff, in milliseconds. */
export const POLICY = Object.freeze({ baseMs: 250, capMs: 8000 });

/**
 * The delay before attempt `attempt` (0 for the first after a drop).
 * @param {number} attempt
 * @param {() => number} [random] uniform in [0, 1)
 * @param {{baseMs: number, capMs: number}} [policy]
 */
export function backoffDelay(attempt, random = Math.random, policy = POLICY) {
  const n = Math.max(0, Math.min(Math.floor(attempt) || 0, 30));
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** n);
  return Math.floor(Math.min(Math.max(random(), 0), 1) * ceiling);
}

/** Counts the attempts since the last success. */
export class Backoff {
  /**
   * @param {() => number} [random]
   * @param {{baseMs: number, capMs: number}} [policy]
   */
  constructor(random = Math.random, policy = POLICY) {
    this.random = random;
    this.policy = policy;
    this.attempt = 0;
  }

  /** The delay before the next attempt; each call counts one attempt. */
  next() {
    return backoffDelay(this.attempt++, this.random, this.policy);
  }

  /** Connected again: the next drop starts from the shortest delays. */
  reset() {
    this.attempt = 0;
  }
}
