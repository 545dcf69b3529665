// Connection quality of one peer connection, from RTCPeerConnection.getStats() samples taken
// every couple of seconds: the round-trip time of the selected candidate pair and the packet
// loss and jitter of the inbound video (audio when there is no video). Pure functions, so the
// thresholds are tested without a browser.

/** @typedef {'good' | 'fair' | 'poor'} Quality */

/**
 * The limits of each level: a reading is "good" when every measure is within `good`, "fair"
 * when every measure is within `fair`, otherwise "poor". A measure that is not known yet
 * does not count.
 */
export const THRESHOLDS = {
  good: { rttMs: 150, lossPct: 2, jitterMs: 30 },
  fair: { rttMs: 400, lossPct: 8, jitterMs: 75 },
};

/**
 * @typedef {{rttMs: number | null, lost: number, received: number, jitterMs: number | null, kind: string | null}} Sample
 */

/**
 * Reads one getStats() report (its values, e.g. `[...report.values()]`).
 * @param {Iterable<any>} stats
 * @returns {Sample}
 */
export function sampleOf(stats) {
  const all = [...stats];
  const byId = new Map(all.map((s) => [s.id, s]));
  const transport = all.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  const pair = (transport && byId.get(transport.selectedCandidatePairId))
    || all.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  const rtt = pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime * 1000 : null;
  const inbound = all.filter((s) => s.type === 'inbound-rtp');
  const stream = inbound.find((s) => s.kind === 'video') || inbound.find((s) => s.kind === 'audio');
  return {
    rttMs: rtt,
    lost: Math.max(0, Number(stream?.packetsLost) || 0),
    received: Number(stream?.packetsReceived) || 0,
    jitterMs: stream && typeof stream.jitter === 'number' ? stream.jitter * 1000 : null,
    kind: stream?.kind ?? null,
  };
}

/**
 * Packet loss in percent between two samples of the same stream (the counters are
 * cumulative); over the whole stream when there is no earlier sample or the stream changed.
 * @param {Sample | null} prev
 * @param {Sample} cur
 * @returns {number | null} null while no packet was expected
 */
export function lossBetween(prev, cur) {
  const same = prev && prev.kind === cur.kind && cur.received >= prev.received && cur.lost >= prev.lost;
  const lost = same ? cur.lost - prev.lost : cur.lost;
  const received = same ? cur.received - prev.received : cur.received;
  return lost + received > 0 ? (100 * lost) / (lost + received) : null;
}

/**
 * The level for one reading; null when nothing is known yet (no pair, no inbound packets).
 * @param {{rttMs: number | null, lossPct: number | null, jitterMs: number | null}} m
 * @returns {Quality | null}
 */
export function classify(m) {
  const measures = /** @type {const} */ (['rttMs', 'lossPct', 'jitterMs']).filter((k) => m[k] !== null && Number.isFinite(m[k]));
  if (measures.length === 0) return null;
  const within = (/** @type {{rttMs: number, lossPct: number, jitterMs: number}} */ limit) =>
    measures.every((k) => /** @type {number} */ (m[k]) <= limit[k]);
  if (within(THRESHOLDS.good)) return 'good';
  if (within(THRESHOLDS.fair)) return 'fair';
  return 'poor';
}

/**
 * Samples a peer connection every `intervalMs` and reports each new reading.
 * @param {RTCPeerConnection} pc
 * @param {(q: {quality: Quality | null, rttMs: number | null, lossPct: number | null, jitterMs: number | null}) => void} report
 * @param {number} [intervalMs]
 * @returns {() => void} stops the sampling
 */
export function watchQuality(pc, report, intervalMs = 2000) {
  /** @type {Sample | null} */
  let prev = null;
  let busy = false;
  const timer = setInterval(async () => {
    if (busy || pc.connectionState === 'closed') return;
    busy = true;
    try {
      const cur = sampleOf((await pc.getStats()).values());
      const lossPct = lossBetween(prev, cur);
      prev = cur;
      const m = { rttMs: cur.rttMs, lossPct, jitterMs: cur.jitterMs };
      report({ quality: classify(m), ...m });
    } catch { /* the connection closed between two samples */ } finally {
      busy = false;
    }
  }, intervalMs);
  return () => clearInterval(timer);
}
