//! The pure part of the network check: how a data-channel message is framed, how the path is
//! named from the server's selected candidate pair, the statistics of a run, and the verdict
//! with its thresholds. No sockets here; everything is unit-tested below.

use serde::{Deserialize, Serialize};

/// A binary data-channel message whose first byte is this marker is bulk (throughput) data:
/// the server counts it and does not echo it. Every other message is a probe and comes back
/// unchanged, except the text message `{"type":"bulk_end"}`.
pub const BULK_MARKER: u8 = 0x01;

/// Probes the client sends: how many, how far apart, how large.
pub const PROBE_COUNT: u32 = 40;
pub const PROBE_INTERVAL_MS: u32 = 25;
pub const PROBE_BYTES: u32 = 64;
/// Bulk data the client sends to measure its upload: for how long, in chunks of what size.
pub const BULK_DURATION_MS: u32 = 2000;
pub const BULK_CHUNK_BYTES: u32 = 16 * 1024;

/// Video needs at least this much upload, in kbit/s (one 360p stream with audio and headroom).
pub const VIDEO_MIN_KBPS: f64 = 500.0;
/// Video needs less loss than this (fraction of probes lost).
pub const VIDEO_MAX_LOSS: f64 = 0.05;
/// Video needs a median round trip below this, in milliseconds.
pub const VIDEO_MAX_RTT_MS: f64 = 400.0;
/// Audio needs at least this much upload, in kbit/s (Opus at 32 kbit/s with headroom).
pub const AUDIO_MIN_KBPS: f64 = 64.0;
/// Audio needs less loss than this.
pub const AUDIO_MAX_LOSS: f64 = 0.20;
/// Audio needs a median round trip below this, in milliseconds (a conversation breaks down
/// beyond about a second of delay).
pub const AUDIO_MAX_RTT_MS: f64 = 1000.0;
/// Most RTT samples one report may carry.
pub const MAX_SAMPLES: usize = 10_000;

/// What the server does with one data-channel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Send it back unchanged.
    Echo,
    /// Count it as bulk bytes; no answer.
    Bulk,
    /// The bulk phase is over: answer `bulk_ack`.
    BulkEnd,
}

/// Classifies one message by its framing (see [`BULK_MARKER`]).
pub fn classify(is_text: bool, data: &[u8]) -> Frame {
    if !is_text && data.first() == Some(&BULK_MARKER) {
        return Frame::Bulk;
    }
    if is_text && data.len() < 256 {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
            if v.get("type").and_then(|t| t.as_str()) == Some("bulk_end") {
                return Frame::BulkEnd;
            }
        }
    }
    Frame::Echo
}

/// The bulk bytes the server received and when the first and last of them arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkCount {
    pub bytes: u64,
    /// Milliseconds since the session started, of the first and last bulk message.
    pub first_ms: Option<u64>,
    pub last_ms: u64,
}

impl BulkCount {
    pub fn add(&mut self, bytes: usize, at_ms: u64) {
        self.bytes += bytes as u64;
        self.first_ms.get_or_insert(at_ms);
        self.last_ms = at_ms;
    }

    /// Milliseconds between the first and last bulk message, at least 1 once data arrived.
    pub fn ms(&self) -> u64 {
        match self.first_ms {
            Some(first) => self.last_ms.saturating_sub(first).max(1),
            None => 0,
        }
    }

    /// The `bulk_ack` answer.
    pub fn ack(&self) -> String {
        serde_json::json!({"type": "bulk_ack", "bytes": self.bytes, "ms": self.ms()}).to_string()
    }
}

/// The network path in use, named from the remote candidate of the server's selected pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetPath {
    /// Direct: the client's own address reached the server.
    Host,
    /// Through the client's NAT (server-reflexive).
    Srflx,
    /// Through a TURN relay.
    Relay,
    /// Never connected, or the pair was not known.
    Unknown,
}

/// The path from the server's selected pair: its remote candidate's type (`host`, `srflx`,
/// `prflx`, `relay` as the webrtc crate prints them) and address. A peer-reflexive candidate is
/// one the server learnt from the client's connectivity checks instead of its SDP — a browser
/// hides its host addresses behind mDNS names, so its direct path shows up as `prflx` — and is
/// named by its address: a private, loopback or link-local address is `host`, any other `srflx`.
pub fn path_of(remote_type: &str, remote_address: &str) -> NetPath {
    match remote_type {
        "host" => NetPath::Host,
        "srflx" => NetPath::Srflx,
        "relay" => NetPath::Relay,
        "prflx" => match remote_address.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) if a.is_private() || a.is_loopback() || a.is_link_local() => NetPath::Host,
            Ok(std::net::IpAddr::V6(a)) if a.is_loopback() || (a.segments()[0] & 0xfe00) == 0xfc00 => NetPath::Host,
            Ok(std::net::IpAddr::V6(a)) if (a.segments()[0] & 0xffc0) == 0xfe80 => NetPath::Host,
            Ok(_) => NetPath::Srflx,
            Err(_) => NetPath::Unknown,
        },
        _ => NetPath::Unknown,
    }
}

/// What the client reports at the end of a check (`POST /netcheck/{id}/complete`).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientReport {
    #[serde(default)]
    pub rtt_ms: Vec<f64>,
    pub sent: u64,
    pub received: u64,
    #[serde(default)]
    pub bulk_bytes: u64,
    #[serde(default)]
    pub bulk_ms: u64,
}

impl ClientReport {
    /// `Err((field, message))` for a report that cannot be true.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.received > self.sent {
            return Err(("received", "cannot exceed sent".into()));
        }
        if self.rtt_ms.len() > MAX_SAMPLES {
            return Err(("rtt_ms", format!("at most {MAX_SAMPLES} samples")));
        }
        if self.rtt_ms.iter().any(|r| !r.is_finite() || *r < 0.0 || *r > 600_000.0) {
            return Err(("rtt_ms", "samples are milliseconds between 0 and 600000".into()));
        }
        if self.rtt_ms.len() as u64 > self.received {
            return Err(("rtt_ms", "more samples than probes received".into()));
        }
        Ok(())
    }
}

/// What the server saw of the session itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerSide {
    /// The peer connection reached `connected` at some point.
    pub connected: bool,
    pub path: NetPath,
    pub bulk: BulkCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Video,
    AudioOnly,
    CannotConnect,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RttSummary {
    pub median: f64,
    pub p95: f64,
}

/// The kind of call a shortfall rules out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    Video,
    Audio,
}

/// One reason a check fell short, machine-readable: serialised as an object with a `code` and
/// its parameters, e.g. `{"code": "loss_too_high", "call": "audio", "loss": 0.5, "max_loss":
/// 0.2}`. Codes are stable; a client words them in its own language. The first three concern
/// any call; the others name the kind of call they rule out, with the measured figure and its
/// limit where there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ReasonCode {
    /// The peer connection never connected: no candidate pair worked.
    NoNetworkPath,
    /// The session ran out of time before it connected (the client never completed it).
    TimedOut,
    /// Connected, but none of the probes came back.
    NoProbeReturned,
    /// Upload in kbit/s below the call's minimum.
    UploadTooSlow { call: CallKind, throughput_kbps: f64, min_kbps: f64 },
    /// No upload figure, and the call needs one.
    UploadNotMeasured { call: CallKind },
    /// Fraction of probes lost at or above the call's maximum.
    LossTooHigh { call: CallKind, loss: f64, max_loss: f64 },
    /// Median round trip in milliseconds at or above the call's maximum.
    RttTooHigh { call: CallKind, rtt_ms: f64, max_rtt_ms: f64 },
}

impl CallKind {
    fn word(self) -> &'static str {
        match self {
            CallKind::Video => "video",
            CallKind::Audio => "audio",
        }
    }
}

impl ReasonCode {
    /// The reason in plain English (the parts of `detail`).
    pub fn english(&self) -> String {
        match self {
            ReasonCode::NoNetworkPath => {
                "no network path to the server was found (blocked by a firewall, or no TURN relay reachable)".into()
            }
            ReasonCode::TimedOut => "the check timed out before a connection was made".into(),
            ReasonCode::NoProbeReturned => "the connection was set up but no probe came back".into(),
            ReasonCode::UploadTooSlow { call, throughput_kbps, min_kbps } => {
                format!("upload {throughput_kbps:.0} kbit/s, {} needs {min_kbps:.0}", call.word())
            }
            ReasonCode::UploadNotMeasured { .. } => "upload speed could not be measured".into(),
            ReasonCode::LossTooHigh { call, loss, max_loss } => {
                format!("{:.1} % of probes lost, {} needs under {:.0} %", loss * 100.0, call.word(), max_loss * 100.0)
            }
            ReasonCode::RttTooHigh { call, rtt_ms, max_rtt_ms } => {
                format!("round trip {rtt_ms:.0} ms, {} needs under {max_rtt_ms:.0}", call.word())
            }
        }
    }
}

/// The result of one check, as stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Outcome {
    pub path: NetPath,
    pub rtt_ms: Option<RttSummary>,
    pub loss: f64,
    pub throughput_kbps: Option<f64>,
    pub verdict: Verdict,
    pub verdict_text: String,
    /// The reasons in English, joined by "; " (for `video`, the figures instead).
    pub detail: String,
    /// Why the verdict is not `video`, one code per part of `detail`: for `audio_only` what
    /// rules video out, for `cannot_connect` what rules audio out; empty for `video`.
    /// Results stored before codes existed have none.
    #[serde(default)]
    pub reason_codes: Vec<ReasonCode>,
}

/// The nearest-rank percentile `p` (0..=100) of `sorted`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median and 95th percentile of the samples, `None` without any.
pub fn rtt_summary(samples: &[f64]) -> Option<RttSummary> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    Some(RttSummary { median: round2(median), p95: round2(percentile(&s, 95.0)) })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// kbit/s of `bytes` over `ms` (bits per millisecond are kbit/s).
fn kbps(bytes: u64, ms: u64) -> Option<f64> {
    (bytes > 0 && ms > 0).then(|| round2(bytes as f64 * 8.0 / ms as f64))
}

/// The outcome of a check that never connected: `reason` is [`ReasonCode::NoNetworkPath`] or,
/// for a session that ran out of time, [`ReasonCode::TimedOut`].
pub fn never_connected(reason: ReasonCode) -> Outcome {
    let detail = reason.english();
    Outcome {
        path: NetPath::Unknown,
        rtt_ms: None,
        loss: 1.0,
        throughput_kbps: None,
        verdict: Verdict::CannotConnect,
        verdict_text: format!("Cannot connect: {detail}."),
        detail,
        reason_codes: vec![reason],
    }
}

/// The verdict of a check from the client's report and what the server saw. Throughput is the
/// server's own count of bulk bytes when it has one, the client's otherwise.
pub fn evaluate(report: &ClientReport, server: &ServerSide) -> Outcome {
    if !server.connected {
        return never_connected(ReasonCode::NoNetworkPath);
    }
    let rtt = rtt_summary(&report.rtt_ms);
    let loss = if report.sent == 0 {
        1.0
    } else {
        round4(report.sent.saturating_sub(report.received) as f64 / report.sent as f64)
    };
    let throughput = kbps(server.bulk.bytes, server.bulk.ms()).or_else(|| kbps(report.bulk_bytes, report.bulk_ms));
    let base = Outcome {
        path: server.path,
        rtt_ms: rtt.clone(),
        loss,
        throughput_kbps: throughput,
        verdict: Verdict::CannotConnect,
        verdict_text: String::new(),
        detail: String::new(),
        reason_codes: Vec::new(),
    };
    let Some(rtt) = rtt.filter(|_| report.received > 0) else {
        let reason = ReasonCode::NoProbeReturned;
        let detail = reason.english();
        return Outcome {
            verdict_text: format!("Cannot connect: {detail}."),
            detail,
            reason_codes: vec![reason],
            ..base
        };
    };
    let video_blockers = blockers(&VIDEO, throughput, loss, rtt.median);
    if video_blockers.is_empty() {
        let detail = format!(
            "round trip {:.1} ms (95 % under {:.1} ms), {:.1} % loss, upload {:.0} kbit/s",
            rtt.median,
            rtt.p95,
            loss * 100.0,
            throughput.unwrap_or_default()
        );
        return Outcome { verdict: Verdict::Video, verdict_text: "Video will work.".into(), detail, ..base };
    }
    let audio_blockers = blockers(&AUDIO, throughput, loss, rtt.median);
    if audio_blockers.is_empty() {
        let detail = english(&video_blockers);
        Outcome {
            verdict: Verdict::AudioOnly,
            verdict_text: format!("Audio only: the connection is too weak for video ({detail})."),
            detail,
            reason_codes: video_blockers,
            ..base
        }
    } else {
        let detail = english(&audio_blockers);
        Outcome {
            verdict: Verdict::CannotConnect,
            verdict_text: format!("Cannot connect: the connection is too weak even for audio ({detail})."),
            detail,
            reason_codes: audio_blockers,
            ..base
        }
    }
}

fn english(reasons: &[ReasonCode]) -> String {
    reasons.iter().map(ReasonCode::english).collect::<Vec<_>>().join("; ")
}

/// What a kind of call needs of the network.
struct Needs {
    call: CallKind,
    min_kbps: f64,
    max_loss: f64,
    max_rtt_ms: f64,
    /// Whether an unmeasured upload speed rules this kind of call out.
    needs_measured_upload: bool,
}

const VIDEO: Needs = Needs {
    call: CallKind::Video,
    min_kbps: VIDEO_MIN_KBPS,
    max_loss: VIDEO_MAX_LOSS,
    max_rtt_ms: VIDEO_MAX_RTT_MS,
    needs_measured_upload: true,
};

const AUDIO: Needs = Needs {
    call: CallKind::Audio,
    min_kbps: AUDIO_MIN_KBPS,
    max_loss: AUDIO_MAX_LOSS,
    max_rtt_ms: AUDIO_MAX_RTT_MS,
    needs_measured_upload: false,
};

/// Why the measured network falls short of `needs`, in the order upload, loss, round trip;
/// empty when it does not.
fn blockers(needs: &Needs, throughput: Option<f64>, loss: f64, rtt_median: f64) -> Vec<ReasonCode> {
    let call = needs.call;
    let mut out = Vec::new();
    match throughput {
        Some(t) if t < needs.min_kbps => {
            out.push(ReasonCode::UploadTooSlow { call, throughput_kbps: t, min_kbps: needs.min_kbps })
        }
        None if needs.needs_measured_upload => out.push(ReasonCode::UploadNotMeasured { call }),
        _ => {}
    }
    if loss >= needs.max_loss {
        out.push(ReasonCode::LossTooHigh { call, loss, max_loss: needs.max_loss });
    }
    if rtt_median >= needs.max_rtt_ms {
        out.push(ReasonCode::RttTooHigh { call, rtt_ms: rtt_median, max_rtt_ms: needs.max_rtt_ms });
    }
    out
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected(path: NetPath, bulk_bytes: u64, bulk_ms: u64) -> ServerSide {
        let bulk = if bulk_bytes > 0 {
            BulkCount { bytes: bulk_bytes, first_ms: Some(1000), last_ms: 1000 + bulk_ms }
        } else {
            BulkCount::default()
        };
        ServerSide { connected: true, path, bulk }
    }

    fn report(rtts: &[f64], sent: u64, received: u64) -> ClientReport {
        ClientReport { rtt_ms: rtts.to_vec(), sent, received, bulk_bytes: 0, bulk_ms: 0 }
    }

    #[test]
    fn framing_separates_bulk_probes_and_the_end_of_bulk() {
        assert_eq!(classify(false, &[BULK_MARKER, 0, 0, 0]), Frame::Bulk);
        assert_eq!(classify(false, &[0x02, 1, 2]), Frame::Echo);
        assert_eq!(classify(false, &[]), Frame::Echo);
        assert_eq!(classify(true, br#"{"type":"probe","seq":3}"#), Frame::Echo);
        assert_eq!(classify(true, br#"{"type": "bulk_end"}"#), Frame::BulkEnd);
        // A text message starting with the marker byte is still a probe: only binary is bulk.
        assert_eq!(classify(true, b"\x01abc"), Frame::Echo);
        assert_eq!(classify(false, br#"{"type":"bulk_end"}"#), Frame::Echo);
        assert_eq!(classify(true, b"not json"), Frame::Echo);
    }

    #[test]
    fn bulk_counts_bytes_between_first_and_last_arrival() {
        let mut b = BulkCount::default();
        assert_eq!(b.ms(), 0);
        let ack: serde_json::Value = serde_json::from_str(&b.ack()).unwrap();
        assert_eq!(ack, serde_json::json!({"type": "bulk_ack", "bytes": 0, "ms": 0}));
        b.add(16384, 500);
        assert_eq!(b.ms(), 1, "a single chunk counts as one millisecond");
        b.add(16384, 900);
        b.add(100, 2500);
        assert_eq!((b.bytes, b.ms()), (32868, 2000));
        let ack: serde_json::Value = serde_json::from_str(&b.ack()).unwrap();
        assert_eq!(ack, serde_json::json!({"type": "bulk_ack", "bytes": 32868, "ms": 2000}));
    }

    #[test]
    fn the_path_comes_from_the_remote_candidate_type() {
        assert_eq!(path_of("host", "127.0.0.1"), NetPath::Host);
        assert_eq!(path_of("srflx", "203.0.113.7"), NetPath::Srflx);
        assert_eq!(path_of("relay", "127.0.0.1"), NetPath::Relay);
        assert_eq!(path_of("prflx", "192.168.1.20"), NetPath::Host);
        assert_eq!(path_of("prflx", "fe80::1"), NetPath::Host);
        assert_eq!(path_of("prflx", "203.0.113.7"), NetPath::Srflx);
        assert_eq!(path_of("prflx", "2001:db8::1"), NetPath::Srflx);
        assert_eq!(path_of("Unspecified", ""), NetPath::Unknown);
        assert_eq!(serde_json::to_value(NetPath::Srflx).unwrap(), "srflx");
    }

    #[test]
    fn rtt_summary_is_median_and_nearest_rank_p95() {
        assert_eq!(rtt_summary(&[]), None);
        let s = rtt_summary(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.p95), (2.0, 3.0));
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = rtt_summary(&samples).unwrap();
        assert_eq!((s.median, s.p95), (50.5, 95.0));
    }

    #[test]
    fn a_good_link_gets_video() {
        // 40 probes all back around 30 ms; 2 MB in 2 s is 8000 kbit/s.
        let o = evaluate(&report(&[30.0; 40], 40, 40), &connected(NetPath::Srflx, 2_000_000, 2000));
        assert_eq!(o.verdict, Verdict::Video);
        assert_eq!((o.path, o.loss, o.throughput_kbps), (NetPath::Srflx, 0.0, Some(8000.0)));
        assert_eq!(o.verdict_text, "Video will work.");
    }

    #[test]
    fn the_servers_bulk_count_wins_over_the_clients() {
        let mut r = report(&[30.0; 40], 40, 40);
        r.bulk_bytes = 10_000_000;
        r.bulk_ms = 1000;
        let o = evaluate(&r, &connected(NetPath::Host, 50_000, 2000));
        assert_eq!(o.throughput_kbps, Some(200.0));
        assert_eq!(o.verdict, Verdict::AudioOnly, "{o:?}");
        assert!(o.detail.contains("upload 200 kbit/s, video needs 500"), "{}", o.detail);
        // Without a server count the client's figure is used.
        let o = evaluate(&r, &connected(NetPath::Host, 0, 0));
        assert_eq!((o.throughput_kbps, o.verdict), (Some(80_000.0), Verdict::Video));
    }

    #[test]
    fn thresholds_at_their_edges() {
        // 8000 kbit/s. Loss: 2 of 40 is exactly 5 %, not under 5 %, so audio only.
        let fast = connected(NetPath::Relay, 1_000_000, 1000);
        let o = evaluate(&report(&[50.0; 38], 40, 38), &fast);
        assert_eq!((o.loss, o.verdict), (0.05, Verdict::AudioOnly));
        let o = evaluate(&report(&[50.0; 39], 40, 39), &fast);
        assert_eq!(o.verdict, Verdict::Video);
        // RTT: 399 ms still video, 400 ms audio only, 1000 ms cannot connect.
        assert_eq!(evaluate(&report(&[399.0; 40], 40, 40), &fast).verdict, Verdict::Video);
        assert_eq!(evaluate(&report(&[400.0; 40], 40, 40), &fast).verdict, Verdict::AudioOnly);
        let o = evaluate(&report(&[1000.0; 40], 40, 40), &fast);
        assert_eq!(o.verdict, Verdict::CannotConnect);
        assert!(o.verdict_text.starts_with("Cannot connect: the connection is too weak even for audio"), "{o:?}");
        // Throughput: 500 kbit/s is video; 64 audio only; below 64 cannot connect.
        let at = |kbps: u64| connected(NetPath::Host, kbps * 1000 / 8, 1000);
        assert_eq!(evaluate(&report(&[20.0; 40], 40, 40), &at(500)).verdict, Verdict::Video);
        assert_eq!(evaluate(&report(&[20.0; 40], 40, 40), &at(499)).verdict, Verdict::AudioOnly);
        assert_eq!(evaluate(&report(&[20.0; 40], 40, 40), &at(64)).verdict, Verdict::AudioOnly);
        assert_eq!(evaluate(&report(&[20.0; 40], 40, 40), &at(63)).verdict, Verdict::CannotConnect);
        // Loss of a fifth or more: cannot connect.
        assert_eq!(evaluate(&report(&[20.0; 32], 40, 32), &fast).verdict, Verdict::CannotConnect);
        assert_eq!(evaluate(&report(&[20.0; 33], 40, 33), &fast).verdict, Verdict::AudioOnly);
    }

    #[test]
    fn unmeasured_upload_gives_audio_only_at_best() {
        let o = evaluate(&report(&[20.0; 40], 40, 40), &connected(NetPath::Host, 0, 0));
        assert_eq!((o.verdict, o.throughput_kbps), (Verdict::AudioOnly, None));
        assert!(o.detail.contains("could not be measured"));
    }

    #[test]
    fn never_connected_or_nothing_back_cannot_connect() {
        let never = ServerSide { connected: false, path: NetPath::Unknown, bulk: BulkCount::default() };
        let o = evaluate(&report(&[], 40, 0), &never);
        assert_eq!((o.verdict, o.path, o.loss), (Verdict::CannotConnect, NetPath::Unknown, 1.0));
        assert!(o.verdict_text.starts_with("Cannot connect: no network path"), "{}", o.verdict_text);
        let o = evaluate(&report(&[], 40, 0), &connected(NetPath::Host, 0, 0));
        assert_eq!((o.verdict, o.loss), (Verdict::CannotConnect, 1.0));
        assert!(o.detail.contains("no probe came back"));
    }

    #[test]
    fn each_shortfall_has_a_code_with_the_call_the_figure_and_the_limit() {
        use CallKind::{Audio, Video};
        let fast = connected(NetPath::Relay, 1_000_000, 1000);
        let at = |kbps: u64| connected(NetPath::Host, kbps * 1000 / 8, 1000);
        // Video: nothing fell short.
        let o = evaluate(&report(&[30.0; 40], 40, 40), &fast);
        assert_eq!((o.verdict, o.reason_codes), (Verdict::Video, vec![]));
        // Audio only: everything that rules video out, with video's limits, in the order of `detail`.
        let o = evaluate(&report(&[450.0; 37], 40, 37), &at(200));
        assert_eq!(o.verdict, Verdict::AudioOnly);
        assert_eq!(
            o.reason_codes,
            vec![
                ReasonCode::UploadTooSlow { call: Video, throughput_kbps: 200.0, min_kbps: 500.0 },
                ReasonCode::LossTooHigh { call: Video, loss: 0.075, max_loss: 0.05 },
                ReasonCode::RttTooHigh { call: Video, rtt_ms: 450.0, max_rtt_ms: 400.0 },
            ]
        );
        assert_eq!(
            o.detail,
            "upload 200 kbit/s, video needs 500; 7.5 % of probes lost, video needs under 5 %; round trip 450 ms, video needs under 400"
        );
        // An unmeasured upload rules out video only.
        let o = evaluate(&report(&[20.0; 40], 40, 40), &connected(NetPath::Host, 0, 0));
        assert_eq!(o.reason_codes, vec![ReasonCode::UploadNotMeasured { call: Video }]);
        // Too weak even for audio: what rules audio out, with audio's limits.
        let o = evaluate(&report(&[1200.0; 20], 40, 20), &fast);
        assert_eq!(o.verdict, Verdict::CannotConnect);
        assert_eq!(
            o.reason_codes,
            vec![
                ReasonCode::LossTooHigh { call: Audio, loss: 0.5, max_loss: 0.2 },
                ReasonCode::RttTooHigh { call: Audio, rtt_ms: 1200.0, max_rtt_ms: 1000.0 },
            ]
        );
        let o = evaluate(&report(&[20.0; 40], 40, 40), &at(50));
        assert_eq!(
            o.reason_codes,
            vec![ReasonCode::UploadTooSlow { call: Audio, throughput_kbps: 50.0, min_kbps: 64.0 }]
        );
        assert_eq!(o.detail, "upload 50 kbit/s, audio needs 64");
        // No connection, no time left, nothing back: one code each, for any call.
        let never = ServerSide { connected: false, path: NetPath::Unknown, bulk: BulkCount::default() };
        assert_eq!(evaluate(&report(&[], 40, 0), &never).reason_codes, vec![ReasonCode::NoNetworkPath]);
        let o = never_connected(ReasonCode::TimedOut);
        assert_eq!((o.verdict, &o.reason_codes), (Verdict::CannotConnect, &vec![ReasonCode::TimedOut]));
        assert_eq!(o.verdict_text, "Cannot connect: the check timed out before a connection was made.");
        let o = evaluate(&report(&[], 40, 0), &connected(NetPath::Host, 0, 0));
        assert_eq!(o.reason_codes, vec![ReasonCode::NoProbeReturned]);
    }

    #[test]
    fn reason_codes_serialise_as_a_code_beside_its_figures() {
        let code = ReasonCode::LossTooHigh { call: CallKind::Audio, loss: 0.5, max_loss: 0.2 };
        assert_eq!(
            serde_json::to_value(&code).unwrap(),
            serde_json::json!({"code": "loss_too_high", "call": "audio", "loss": 0.5, "max_loss": 0.2})
        );
        let code = ReasonCode::UploadTooSlow { call: CallKind::Video, throughput_kbps: 200.0, min_kbps: 500.0 };
        assert_eq!(
            serde_json::to_value(&code).unwrap(),
            serde_json::json!({"code": "upload_too_slow", "call": "video", "throughput_kbps": 200.0, "min_kbps": 500.0})
        );
        assert_eq!(
            serde_json::to_value(ReasonCode::NoProbeReturned).unwrap(),
            serde_json::json!({"code": "no_probe_returned"})
        );
        // The outcome carries them as `reason_codes`; one stored before codes existed reads with none.
        let o = evaluate(&report(&[20.0; 40], 40, 40), &connected(NetPath::Host, 0, 0));
        let mut stored = serde_json::to_value(&o).unwrap();
        assert_eq!(stored["reason_codes"], serde_json::json!([{"code": "upload_not_measured", "call": "video"}]));
        stored.as_object_mut().unwrap().remove("reason_codes");
        let old: Outcome = serde_json::from_value(stored).unwrap();
        assert!(old.reason_codes.is_empty());
    }

    #[test]
    fn impossible_reports_are_refused() {
        assert!(report(&[1.0], 1, 1).check().is_ok());
        assert_eq!(report(&[], 1, 2).check().unwrap_err().0, "received");
        assert_eq!(report(&[1.0, 2.0], 2, 1).check().unwrap_err().0, "rtt_ms");
        assert_eq!(report(&[-1.0], 1, 1).check().unwrap_err().0, "rtt_ms");
        assert_eq!(report(&[f64::NAN], 1, 1).check().unwrap_err().0, "rtt_ms");
        let many = vec![1.0; MAX_SAMPLES + 1];
        assert_eq!(report(&many, 20_000, 20_000).check().unwrap_err().0, "rtt_ms");
    }
}
