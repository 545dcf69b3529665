// The signaling connection: POST join for a ticket, open the WebSocket, and resume with the
// resume token when the socket drops (see docs/signaling.md). Attempts after a drop are spaced
// by exponential backoff with full jitter (./backoff.js); when the server no longer knows the
// resume token (4004: it restarted, or the seat expired) the client joins again at once, and
// the server puts it back where it was (an admitted patient in the room, a waiting one in the
// lobby).
import { post } from '../api.js';
import { Backoff } from './backoff.js';

/** Close codes after which resuming is pointless (4005: the account's access was revoked;
 * 4020: a doctor ended the call for everyone). */
const FINAL = new Set([1000, 4003, 4005, 4010, 4011, 4013, 4020]);

export class Signaling extends EventTarget {
  /** @param {string} consultationId */
  constructor(consultationId) {
    super();
    this.consultationId = consultationId;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {string | null} */
    this.resumeToken = null;
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    this.closed = false;
    this.backoff = new Backoff();
  }

  /** Asks for a ticket and connects. @returns {Promise<any>} the join answer */
  async join() {
    const ticket = await post(`/api/v1/consultations/${this.consultationId}/join`);
    this.iceServers = ticket.ice_servers || [];
    this.open(ticket.ws_url);
    return ticket;
  }

  /** @param {string} url */
  open(url) {
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === 'joined' || msg.type === 'resumed') {
        this.resumeToken = msg.resume_token;
        this.backoff.reset();
      }
      // A resume, and every half of a TURN credential's lifetime an `ice-servers` message,
      // bring ICE servers with TURN credentials minted afresh: the join's may have expired by
      // now in a long call.
      if ((msg.type === 'resumed' || msg.type === 'ice-servers') && Array.isArray(msg.ice_servers)) this.iceServers = msg.ice_servers;
      this.dispatchEvent(new CustomEvent('message', { detail: msg }));
    };
    ws.onclose = (e) => {
      if (this.ws !== ws || this.closed) return;
      this.dispatchEvent(new CustomEvent('disconnected', { detail: e.code }));
      if (FINAL.has(e.code)) {
        this.dispatchEvent(new CustomEvent('ended', { detail: e.code }));
      } else {
        // The server answered that it does not know the resume token: it is up, join now.
        setTimeout(() => this.reconnect(e.code), e.code === 4004 ? 0 : this.backoff.next());
      }
    };
  }

  /** @param {number} code */
  async reconnect(code) {
    if (this.closed) return;
    try {
      if (this.resumeToken && code !== 4001 && code !== 4004) {
        const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
        this.open(`${scheme}//${location.host}/api/v1/rtc?resume=${encodeURIComponent(this.resumeToken)}`);
      } else {
        await this.join();
      }
    } catch (e) {
      // A join the server refused (signed out, no longer a participant, the call is over)
      // ends the call; one that failed (server down or overloaded) is tried again later.
      const status = /** @type {any} */ (e)?.status;
      if (typeof status === 'number' && status >= 400 && status < 500 && status !== 408 && status !== 429) {
        this.closed = true;
        this.dispatchEvent(new CustomEvent('ended', { detail: status }));
        return;
      }
      setTimeout(() => this.reconnect(4004), this.backoff.next());
    }
  }

  /** @param {Record<string, unknown>} msg */
  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  leave() {
    this.closed = true;
    this.send({ type: 'leave' });
    this.ws?.close(1000);
  }
}
