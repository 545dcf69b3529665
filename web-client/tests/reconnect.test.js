// The signaling client's reconnects (js/call/signaling.js) against a fake WebSocket and a fake
// fetch, with mocked timers, without a browser: a dropped socket resumes after a backoff delay,
// a server that no longer knows the resume token (4004, after a restart) is joined again at
// once, failed joins back off exponentially, and a successful join resets the backoff.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';

/** @type {FakeSocket[]} */
const sockets = [];
class FakeSocket {
  static OPEN = 1;
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    /** @type {((e: any) => void) | null} */ this.onmessage = null;
    /** @type {((e: any) => void) | null} */ this.onclose = null;
    sockets.push(this);
  }
  /** @param {any} msg */
  receive(msg) { this.onmessage?.({ data: JSON.stringify(msg) }); }
  /** @param {number} code */
  drop(code) { this.readyState = 3; this.onclose?.({ code }); }
  send() {}
  close() {}
}

/** Joins answered so far; `failing` makes the next ones fail as a stopped server does,
 * `refusing` answers them 403 as a server does to someone no longer in the consultation. */
const joins = { count: 0, failing: 0, refusing: 0 };
Object.assign(globalThis, {
  WebSocket: FakeSocket,
  location: { protocol: 'http:', host: 'clinic.example' },
  sessionStorage: { getItem: () => JSON.stringify({ access_token: 't', refresh_token: 'r' }), setItem() {}, removeItem() {} },
  fetch: async (/** @type {string} */ path) => {
    assert.match(path, /\/api\/v1\/consultations\/c1\/join$/);
    if (joins.failing > 0) {
      joins.failing--;
      throw new TypeError('fetch failed: connection refused');
    }
    if (joins.refusing > 0) {
      joins.refusing--;
      const problem = JSON.stringify({ status: 403, code: 'not_a_participant', title: 'Forbidden' });
      return { ok: false, status: 403, text: async () => problem };
    }
    joins.count++;
    const body = JSON.stringify({ ws_url: `ws://clinic.example/api/v1/rtc?ticket=t${joins.count}`, ice_servers: [] });
    return { ok: true, status: 200, text: async () => body };
  },
});
const { Signaling } = await import('../js/call/signaling.js');
const { Backoff } = await import('../js/call/backoff.js');

/** Lets the fake fetch's promises settle. */
const settle = async () => { for (let i = 0; i < 10; i++) await Promise.resolve(); };

test('drops resume after a backoff; a restarted server (4004) is joined again at once; joins back off; success resets', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const s = new Signaling('c1');
    // The highest delay of each attempt, so the test knows exactly when the next one is due.
    s.backoff = new Backoff(() => 0.999999, { baseMs: 250, capMs: 8000 });
    await s.join();
    assert.equal(sockets.length, 1);
    sockets[0].receive({ type: 'joined', resume_token: 'room.tok1', admitted: true });

    // The network blinks: resumed after the first delay (under 250 ms), not before.
    sockets[0].drop(1006);
    mock.timers.tick(248);
    assert.equal(sockets.length, 1, 'no attempt before the delay');
    mock.timers.tick(1);
    assert.equal(sockets.length, 2);
    assert.equal(sockets[1].url, 'ws://clinic.example/api/v1/rtc?resume=room.tok1');

    // That resume fails (the server is going down): the next waits longer (under 500 ms).
    sockets[1].drop(1006);
    mock.timers.tick(498);
    assert.equal(sockets.length, 2);
    mock.timers.tick(1);
    assert.equal(sockets[2].url, 'ws://clinic.example/api/v1/rtc?resume=room.tok1');

    // The restarted server does not know the token: join again at once, with a fresh ticket.
    sockets[2].drop(4004);
    mock.timers.tick(0);
    await settle();
    assert.equal(joins.count, 2);
    assert.equal(sockets[3].url, 'ws://clinic.example/api/v1/rtc?ticket=t2');

    // That socket is cut before `joined`; the server then refuses connections twice.
    joins.failing = 2;
    sockets[3].drop(1006);
    mock.timers.tick(999); // attempt 3: under 1 s, a resume with the old token...
    assert.equal(sockets[4].url, 'ws://clinic.example/api/v1/rtc?resume=room.tok1');
    sockets[4].drop(4004); // ...unknown: join at once, which fails,
    mock.timers.tick(0);
    await settle();
    assert.equal(joins.count, 2);
    mock.timers.tick(1999); // attempt 4 (under 2 s): fails too,
    await settle();
    assert.equal(joins.count, 2);
    mock.timers.tick(3999); // attempt 5 (under 4 s): joined.
    await settle();
    assert.equal(joins.count, 3);
    assert.equal(sockets.length, 6);
    sockets[5].receive({ type: 'joined', resume_token: 'room.tok2', admitted: true });
    assert.equal(s.resumeToken, 'room.tok2');

    // Back: the next drop starts from the shortest delay again.
    sockets[5].drop(1001);
    mock.timers.tick(249);
    assert.equal(sockets[6].url, 'ws://clinic.example/api/v1/rtc?resume=room.tok2');

    // A final close (the call ended) is not retried.
    sockets[6].receive({ type: 'resumed', resume_token: 'room.tok3', admitted: true });
    sockets[6].drop(4020);
    mock.timers.tick(60_000);
    await settle();
    assert.equal(sockets.length, 7);
  } finally {
    mock.timers.reset();
  }
});

test('a revoked account (4005) is not retried, and a join the server refuses ends the call', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const before = sockets.length;
    const revoked = new Signaling('c1');
    /** @type {number[]} */
    const ended = [];
    revoked.addEventListener('ended', (e) => ended.push(/** @type {CustomEvent} */ (e).detail));
    await revoked.join();
    sockets.at(-1)?.receive({ type: 'joined', resume_token: 'room.r1', admitted: true });
    sockets.at(-1)?.drop(4005);
    mock.timers.tick(60_000);
    await settle();
    assert.equal(sockets.length, before + 1, 'no attempt after 4005');
    assert.deepEqual(ended, [4005]);

    // After a restart the server does not know the token; joining again is refused (403):
    // the call ends instead of retrying for ever.
    const refused = new Signaling('c1');
    refused.backoff = new Backoff(() => 0.999999, { baseMs: 250, capMs: 8000 });
    /** @type {number[]} */
    const refusedEnded = [];
    refused.addEventListener('ended', (e) => refusedEnded.push(/** @type {CustomEvent} */ (e).detail));
    await refused.join();
    const joinsBefore = joins.count;
    sockets.at(-1)?.receive({ type: 'joined', resume_token: 'room.r2', admitted: true });
    joins.refusing = 1;
    sockets.at(-1)?.drop(4004);
    mock.timers.tick(0);
    await settle();
    assert.deepEqual(refusedEnded, [403]);
    const socketsThen = sockets.length;
    mock.timers.tick(60_000);
    await settle();
    assert.equal(sockets.length, socketsThen, 'no attempt after a refused join');
    assert.equal(joins.count, joinsBefore);
  } finally {
    mock.timers.reset();
  }
});
