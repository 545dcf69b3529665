//! Load tool for the signaling relay (docs/signaling-load.md has the figures and commands).
//!
//! Against a running server (`--server`) whose database the tool can reach (`--db`), it
//! makes `--rooms` scheduled consultations of Dr. Li and Dr. Wang (demo accounts) directly in
//! the database, joins each room twice through the HTTP API and the WebSocket (2 x rooms
//! authenticated participants), then either
//! - `--mode relay`: ping-pong `signal` messages of `--size` bytes between the two peers of
//!   every room, either as fast as `--window` messages in flight per room allow, or paced at
//!   `--rate` messages per second in total; reports relayed messages/s, round-trip latency
//!   (HdrHistogram), and the server's and its own CPU time per relayed message; or
//! - `--mode idle`: holds the connections for `--duration` seconds and samples the server's
//!   resident memory, reporting memory per idle connection.
//!
//! To tell the server's share of a round trip from the machine's, the same tool also runs the
//! floor: `--mode bare-relay --listen ADDR` is the simplest possible WebSocket relay (pairs
//! two connections and forwards every frame unread, no authentication, parsing or rooms),
//! and `--mode floor --server ws://ADDR` runs the `relay` measurement through it. With
//! `--no-halt` the tool holds `/dev/cpu_dma_latency` at 0 for the run, so idle CPUs poll
//! instead of halting (as latency benchmarks such as cyclictest do).
//!
//! `--mode relay --floor ws://ADDR` measures the server and the bare relay at `ADDR` in the
//! same run, alternating (server, floor, then floor, server, ... `--rounds` times), each with its
//! own fresh connections, and reports the ratio of the server's round-trip p99 to the floor's
//! over all rounds after the first `--warmup` (default 1), which are printed but not counted.
//! With `--slice S` as well, both sides' connections are made once and held, and the sending
//! alternates between them every S seconds for `--rounds` x 2 x `--duration` seconds, so that
//! both sides meet the same host within seconds of each other (see `interleaved`).
//!
//! `--mode storm --spawn "server command" --participants N`: a reconnect storm through a
//! graceful and a kill -9 restart of the server (see `storm/mod.rs`).
//!
//! Run it with `cargo bench --bench signaling_load -- <options>`.

mod storm;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use teleconsult::db::{new_id, now_ts, Db};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone)]
struct Options {
    server: String,
    db: String,
    rooms: usize,
    mode: String,
    duration: u64,
    window: usize,
    rate: f64,
    size: usize,
    pid: Option<u32>,
    listen: String,
    no_halt: bool,
    concurrency: usize,
    floor: Option<String>,
    rounds: usize,
    warmup: usize,
    spawn: Option<String>,
    participants: usize,
    slice: Option<f64>,
}

fn options() -> Options {
    let mut o = Options {
        server: "http://127.0.0.1:8080".into(),
        db: "sqlite://data/teleconsult.db".into(),
        rooms: 100,
        mode: "relay".into(),
        duration: 10,
        window: 1,
        rate: 0.0,
        size: 200,
        pid: None,
        listen: "127.0.0.1:18090".into(),
        no_halt: false,
        concurrency: 64,
        floor: None,
        rounds: 2,
        warmup: 1,
        spawn: None,
        participants: 10_000,
        slice: None,
    };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--server" => o.server = v,
            "--db" => o.db = v,
            "--rooms" => o.rooms = v.parse().expect("--rooms N"),
            "--mode" => o.mode = v,
            "--duration" => o.duration = v.parse().expect("--duration seconds"),
            "--window" => o.window = v.parse().expect("--window N"),
            "--rate" => o.rate = v.parse().expect("--rate msgs/s"),
            "--size" => o.size = v.parse().expect("--size bytes"),
            "--pid" => o.pid = Some(v.parse().expect("--pid server process id")),
            "--listen" => o.listen = v,
            "--concurrency" => o.concurrency = v.parse().expect("--concurrency N"),
            "--floor" => o.floor = Some(v),
            "--rounds" => o.rounds = v.parse().expect("--rounds N"),
            "--warmup" => o.warmup = v.parse().expect("--warmup N"),
            "--spawn" => o.spawn = Some(v),
            "--participants" => o.participants = v.parse().expect("--participants N"),
            "--slice" => o.slice = Some(v.parse().expect("--slice seconds")),
            "--no-halt" => {
                o.no_halt = true;
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

/// CPU seconds (user + system) of a process, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Steal time of the whole machine (all CPUs), in seconds: time the hypervisor ran something
/// else while this virtual machine had work. High steal makes a run's figures unreliable.
fn steal_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or("");
    cpu.split_whitespace().nth(8).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Member {
    ws: Ws,
    id: String,
}

async fn login(http: &reqwest::Client, server: &str, username: &str) -> String {
    let v: Value = http
        .post(format!("{server}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": "demo-password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    v["access_token"].as_str().expect("access token").to_string()
}

/// Scheduled consultations of Dr. Li (requester) and Dr. Wang (expert) for Zhang; with
/// `patient`, Zhang's account takes part too (invited, so she waits in the lobby).
async fn make_rooms(db: &Db, n: usize, patient: bool) -> Vec<String> {
    let one = |sql: &'static str| async move {
        let (v,): (String,) = sqlx::query_as(sql).fetch_one(&db.pool).await.expect(sql);
        v
    };
    let li = one("SELECT id FROM users WHERE username = 'dr.li'").await;
    let li_org = one("SELECT organisation_id FROM users WHERE username = 'dr.li'").await;
    let wang = one("SELECT id FROM users WHERE username = 'dr.wang'").await;
    let zhang = one("SELECT id FROM users WHERE username = 'patient.zhang'").await;
    let zhang_record =
        one("SELECT id FROM patients WHERE user_id = (SELECT id FROM users WHERE username = 'patient.zhang')").await;
    let mut people = vec![(&li, "requester", "active"), (&wang, "expert", "accepted")];
    if patient {
        people.push((&zhang, "patient", "invited"));
    }
    let mut ids = Vec::with_capacity(n);
    let mut tx = db.pool.begin().await.unwrap();
    for _ in 0..n {
        let id = new_id();
        let now = now_ts();
        sqlx::query(
            "INSERT INTO consultations (id, patient_id, requesting_organisation_id, requested_by, reason, record_summary,
               specialty, min_title, urgency, mode, addressee_kind, state, assigned_expert_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'load test', '', 'cardiology', 'attending', 'urgent', 'video', 'expert', 'scheduled', $5, $6, $6)",
        )
        .bind(&id)
        .bind(&zhang_record)
        .bind(&li_org)
        .bind(&li)
        .bind(&wang)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .unwrap();
        for (user, role, status) in &people {
            sqlx::query(
                "INSERT INTO consultation_participants (consultation_id, user_id, role, status, reason, added_at)
                 VALUES ($1, $2, $3, $4, '', $5)",
            )
            .bind(&id)
            .bind(*user)
            .bind(*role)
            .bind(*status)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        ids.push(id);
    }
    tx.commit().await.unwrap();
    ids
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

/// POST join, open the WebSocket, wait for `joined`. Returns the member and the latency.
async fn join(http: &reqwest::Client, server: &str, token: &str, room: &str) -> (Member, Duration) {
    try_join(http, server, token, room).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn try_join(http: &reqwest::Client, server: &str, token: &str, room: &str) -> Result<(Member, Duration), String> {
    let start = Instant::now();
    let resp = http
        .post(format!("{server}/api/v1/consultations/{room}/join"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| format!("join: {e}"))?;
    let status = resp.status().as_u16();
    let resp: Value = resp.json().await.map_err(|e| format!("join body: {e}"))?;
    let url = resp["ws_url"].as_str().ok_or_else(|| format!("join refused: {status} {resp}"))?;
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)
        .await
        .map_err(|e| format!("websocket: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
                if v["type"] == "joined" {
                    let id = v["you"]["id"].as_str().unwrap_or_default().to_string();
                    return Ok((Member { ws, id }, start.elapsed()));
                }
            }
            Some(Ok(_)) => {}
            other => return Err(format!("websocket ended before joined: {other:?}")),
        }
    }
}

/// CPU seconds of every PostgreSQL process on the machine (all backends of the server).
fn postgres_cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(cpu_secs)
        .sum()
}

/// The machine's load average over 1, 5 and 15 minutes.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `--mode joins` and `--mode bare-joins`: `targets` joins, `--concurrency` at a time, as fast
/// as they complete; every joined connection is held open until the end. Reports joins per
/// second, join latency, and the CPU the server, PostgreSQL and the tool used per join.
async fn join_rate<F, Fut>(o: &Options, targets: usize, what: &str, one: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(Member, Duration), String>> + Send,
{
    let one = Arc::new(one);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let load = load_average();
    let (server0, pg0, own0, steal0) =
        (o.pid.map(cpu_secs).unwrap_or(0.0), postgres_cpu_secs(), cpu_secs(std::process::id()), steal_secs());
    let started = Instant::now();
    let workers: Vec<_> = (0..o.concurrency.max(1))
        .map(|_| {
            let (one, next, errors, first_error) = (one.clone(), next.clone(), errors.clone(), first_error.clone());
            tokio::spawn(async move {
                let mut held = Vec::new();
                let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= targets {
                        break;
                    }
                    match one(i).await {
                        Ok((m, latency)) => {
                            let _ = local.record((latency.as_micros() as u64).max(1));
                            held.push(m);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
                (held, local)
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut held = Vec::new();
    for w in workers {
        let (h, l) = w.await.expect("join worker");
        held.extend(h);
        hist.add(&l).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let (server, pg, own, steal) = (
        o.pid.map(cpu_secs).unwrap_or(0.0) - server0,
        postgres_cpu_secs() - pg0,
        cpu_secs(std::process::id()) - own0,
        steal_secs() - steal0,
    );
    let ok = held.len();
    println!(
        "{what}: {ok} joined ({} errors) in {secs:.2} s, {} at a time: {:.0} joins/s; latency p50 {} µs p99 {} µs max {} µs",
        errors.load(Ordering::Relaxed),
        o.concurrency,
        ok as f64 / secs,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max()
    );
    if o.pid.is_some() {
        println!(
            "server CPU: {:.1}% of a core, {:.0} µs per join",
            server / secs * 100.0,
            server * 1e6 / ok.max(1) as f64
        );
    }
    println!(
        "PostgreSQL CPU (all its processes): {:.1}% of a core, {:.0} µs per join",
        pg / secs * 100.0,
        pg * 1e6 / ok.max(1) as f64
    );
    println!("load tool CPU: {:.1}% of a core, {:.0} µs per join", own / secs * 100.0, own * 1e6 / ok.max(1) as f64);
    println!("steal: {:.1}% of a core; load average at the start: {load}", steal / secs * 100.0);
    if let Some(e) = first_error.lock().unwrap().take() {
        println!("first error: {e}");
    }
    drop(held);
}

fn ping(to: &str, t0: Instant, size: usize) -> Message {
    let stamp = t0.elapsed().as_nanos();
    let mut candidate = format!("{stamp}:");
    let pad = size.saturating_sub(80 + to.len()).max(1);
    candidate.extend(std::iter::repeat_n('x', pad));
    Message::Text(format!(r#"{{"type":"signal","to":"{to}","candidate":{{"candidate":"{candidate}"}}}}"#).into())
}

/// The nanosecond stamp at the start of a relayed candidate, if the text is a signal.
fn stamp_of(text: &str) -> Option<(u128, &str)> {
    let start = text.find(r#""candidate":""#)? + 13;
    let rest = &text[start..];
    let colon = rest.find(':')?;
    Some((rest[..colon].parse().ok()?, rest))
}

struct Totals {
    relayed: AtomicU64,
    errors: AtomicU64,
    /// Round trips whose ping was sent before this (ns since the rooms' `t0`) are not
    /// counted: the warm-up. Nothing is counted until it is set (a round trip of the warm-up
    /// can end before it is). Each room keeps its own histogram and adds it to the side's only
    /// when it stops, so resetting the side's histogram after the warm-up would not drop them.
    count_from_ns: AtomicU64,
}

impl Default for Totals {
    fn default() -> Totals {
        Totals { relayed: AtomicU64::new(0), errors: AtomicU64::new(0), count_from_ns: AtomicU64::new(u64::MAX) }
    }
}

impl Totals {
    /// Counts only the round trips of pings sent from now on.
    fn count_from_now(&self, t0: Instant) {
        self.count_from_ns.store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_room(
    index: usize,
    mut a: Member,
    mut b: Member,
    o: Options,
    t0: Instant,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
    hist: Arc<Mutex<Histogram<u64>>>,
    turn: Option<(Arc<AtomicU8>, u8)>,
) {
    let my_turn = || turn.as_ref().is_none_or(|(now, side)| now.load(Ordering::Relaxed) == *side);
    let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let per_room_rate = if o.rate > 0.0 { o.rate / 2.0 / o.rooms as f64 } else { 0.0 };
    // Rooms start their pacing spread over one period, so the sends do not come in bursts.
    let mut pace = (per_room_rate > 0.0).then(|| {
        let period = Duration::from_secs_f64(1.0 / per_room_rate);
        let offset = period.mul_f64(index as f64 / o.rooms as f64);
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    if pace.is_none() {
        for _ in 0..o.window {
            let _ = a.ws.send(ping(&b.id, t0, o.size)).await;
        }
    }
    let b_to_a = a.id.clone();
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = async { pace.as_mut().unwrap().tick().await }, if pace.is_some() => {
                if my_turn() && a.ws.send(ping(&b.id, t0, o.size)).await.is_err() { break }
            }
            m = b.ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    // Echo the ping back to A as a signal with the same candidate.
                    if let Some((_, cand)) = stamp_of(t.as_str()) {
                        totals.relayed.fetch_add(1, Ordering::Relaxed);
                        let cand = cand.split('"').next().unwrap_or("");
                        let back = format!(r#"{{"type":"signal","to":"{b_to_a}","candidate":{{"candidate":"{cand}"}}}}"#);
                        if b.ws.send(Message::Text(back.into())).await.is_err() { break }
                    } else if t.contains("\"error\"") {
                        totals.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            m = a.ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Some((stamp, _)) = stamp_of(t.as_str()) {
                        totals.relayed.fetch_add(1, Ordering::Relaxed);
                        let rtt_us = (t0.elapsed().as_nanos().saturating_sub(stamp) / 1000) as u64;
                        if stamp >= u128::from(totals.count_from_ns.load(Ordering::Relaxed)) {
                            let _ = local.record(rtt_us.max(1));
                        }
                        if pace.is_none() && a.ws.send(ping(&b.id, t0, o.size)).await.is_err() { break }
                    } else if t.contains("\"error\"") {
                        totals.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    hist.lock().unwrap().add(&local).unwrap();
    // Keep the sockets open until every room has stopped measuring, then leave (close 1000:
    // the server frees the seats at once instead of keeping them for a resume).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for m in [&mut a, &mut b] {
        let bye = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "done".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), m.ws.close(Some(bye))).await;
    }
}

/// Reads a joined pair's sockets from now on, so the server's pings are answered and the
/// idle connections stay alive.
fn keep_reading((mut a, mut b): (Member, Member)) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                m = a.ws.next() => if !matches!(m, Some(Ok(_))) { break },
                m = b.ws.next() => if !matches!(m, Some(Ok(_))) { break },
            }
        }
    })
}

/// `--mode bare-relay`: the simplest WebSocket relay. Each connection first sends the name of
/// its pair; both are told `paired` when the second arrives, and from then on every frame
/// from one side is written to the other unread. The floor under what the real server does.
async fn bare_relay(listen: &str) {
    type Waiting = Arc<Mutex<HashMap<String, tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>>>>;
    let listener = tokio::net::TcpListener::bind(listen).await.expect("listen address");
    println!("bare relay listening on {listen}");
    let waiting: Waiting = Arc::default();
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config())).await else { return };
            let Some(Ok(Message::Text(pair))) = ws.next().await else { return };
            if pair.as_str().starts_with("echo") {
                // `--mode bare-joins`: answer the first frame, then hold the connection.
                if ws.send(Message::Text(pair)).await.is_err() {
                    return;
                }
                while let Some(Ok(_)) = ws.next().await {}
                return;
            }
            let first = waiting.lock().unwrap().remove(pair.as_str());
            let Some(mut a) = first else {
                waiting.lock().unwrap().insert(pair.to_string(), ws);
                return;
            };
            let mut b = ws;
            // Both sides hear it: which of the two came first is a race.
            for side in [&mut a, &mut b] {
                if side.send(Message::Text("paired".into())).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    m = a.next() => match m {
                        Some(Ok(m @ Message::Text(_))) => if b.send(m).await.is_err() { break },
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    m = b.next() => match m {
                        Some(Ok(m @ Message::Text(_))) => if a.send(m).await.is_err() { break },
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
        });
    }
}

/// `--mode floor`: one pair of connections to the bare relay per room.
async fn bare_pair(url: &str, room: usize) -> (Member, Member) {
    let connect = |side: &'static str| async move {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await.expect("bare relay");
        ws.send(Message::Text(format!("room {room}").into())).await.expect("pair");
        Member { ws, id: side.into() }
    };
    let a = connect("a").await;
    let mut b = connect("b").await;
    match b.ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == "paired" => {}
        other => panic!("bare relay did not pair: {other:?}"),
    }
    (a, b)
}

/// Holds `/dev/cpu_dma_latency` at 0 while the returned file is open: the kernel then keeps
/// idle CPUs polling instead of halting.
fn hold_cpus_awake() -> std::fs::File {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/cpu_dma_latency")
        .expect("--no-halt needs write access to /dev/cpu_dma_latency (root)");
    f.write_all(&0i32.to_ne_bytes()).expect("write /dev/cpu_dma_latency");
    f
}

fn pct(h: &Histogram<u64>, q: f64) -> String {
    format!("{} µs", h.value_at_quantile(q))
}

#[tokio::main]
async fn main() {
    let o = options();
    let _awake = o.no_halt.then(|| {
        println!("idle CPUs poll instead of halting for this run (/dev/cpu_dma_latency held at 0)");
        hold_cpus_awake()
    });
    if o.mode == "bare-relay" {
        return bare_relay(&o.listen).await;
    }
    if o.mode == "bare-joins" {
        let url = o.server.clone();
        let n = o.rooms * 2;
        return join_rate(&o, n, "bare WebSocket accept (connect + one frame answered)", move |i| {
            let url = url.clone();
            async move {
                let start = Instant::now();
                let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true)
                    .await
                    .map_err(|e| e.to_string())?;
                ws.send(Message::Text(format!("echo {i}").into())).await.map_err(|e| e.to_string())?;
                match ws.next().await {
                    Some(Ok(Message::Text(_))) => Ok((Member { ws, id: String::new() }, start.elapsed())),
                    other => Err(format!("bare relay did not answer: {other:?}")),
                }
            }
        })
        .await;
    }
    if o.mode == "storm" {
        return storm::run(&o).await;
    }
    if o.mode == "floor" {
        let mut pairs = Vec::with_capacity(o.rooms);
        for room in 0..o.rooms {
            pairs.push(bare_pair(&o.server, room).await);
        }
        println!("{} pairs connected to the bare relay at {}", o.rooms, o.server);
        measure(&o, pairs).await;
        return;
    }
    let http = reqwest::Client::new();
    let db = Db::connect(&o.db).await.expect("database");
    let li = login(&http, &o.server, "dr.li").await;
    let wang = login(&http, &o.server, "dr.wang").await;
    if let Some(floor) = o.floor.clone() {
        if let Some(slice) = o.slice {
            return interleaved(&o, slice, &floor, &http, &db, &li, &wang).await;
        }
        return relay_against_floor(&o, &floor, &http, &db, &li, &wang).await;
    }
    let rooms = make_rooms(&db, o.rooms, false).await;
    let pid = o.pid;
    let rss_before = pid.map(rss_kib).unwrap_or(0);
    println!("{} rooms made; joining {} participants", rooms.len(), rooms.len() * 2);
    if o.mode == "joins" {
        let rooms = Arc::new(rooms);
        let server = o.server.clone();
        let n = rooms.len() * 2;
        return join_rate(&o, n, "authenticated joins (POST join + WebSocket + joined)", move |i| {
            let (http, server, rooms) = (http.clone(), server.clone(), rooms.clone());
            let token = if i % 2 == 0 { li.clone() } else { wang.clone() };
            async move { try_join(&http, &server, &token, &rooms[i / 2]).await }
        })
        .await;
    }

    // Join: 32 at a time.
    let join_hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()));
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(rooms.len());
    let mut readers = Vec::new();
    // Resident memory when half the connections are open: the growth over the second half is
    // what a connection costs, without the memory the process had already freed and reuses
    // (argon2 password hashing at sign-in leaves tens of MiB of freed heap behind).
    let mut rss_half = None;
    for chunk in rooms.chunks(32) {
        if rss_half.is_none() && pairs.len() + readers.len() >= rooms.len() / 2 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            rss_half = Some((pid.map(rss_kib).unwrap_or(0), (pairs.len() + readers.len()) * 2));
        }
        let mut tasks = Vec::new();
        for room in chunk {
            let (http, server, li, wang, room, jh) =
                (http.clone(), o.server.clone(), li.clone(), wang.clone(), room.clone(), join_hist.clone());
            tasks.push(tokio::spawn(async move {
                let (a, la) = join(&http, &server, &li, &room).await;
                let (b, lb) = join(&http, &server, &wang, &room).await;
                let mut h = jh.lock().unwrap();
                let _ = h.record(la.as_micros() as u64);
                let _ = h.record(lb.as_micros() as u64);
                (a, b)
            }));
        }
        for t in tasks {
            let pair = t.await.expect("join task");
            if o.mode == "idle" {
                readers.push(keep_reading(pair));
            } else {
                pairs.push(pair);
            }
        }
    }
    let join_secs = started.elapsed().as_secs_f64();
    {
        let h = join_hist.lock().unwrap();
        println!(
            "joined {} participants in {join_secs:.1} s; join latency (POST join + WebSocket + joined) p50 {} p99 {} max {} µs",
            rooms.len() * 2,
            pct(&h, 0.5),
            pct(&h, 0.99),
            h.max()
        );
    }

    if o.mode == "idle" {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let Some(pid) = pid else { panic!("--mode idle needs --pid") };
        let conns = rooms.len() * 2;
        let mut samples = Vec::new();
        let t = Instant::now();
        loop {
            let rss = rss_kib(pid);
            samples.push((t.elapsed().as_secs(), rss));
            let metrics =
                http.get(format!("{}/metrics", o.server)).send().await.expect("metrics").text().await.unwrap();
            let open = metrics
                .lines()
                .find_map(|l| l.strip_prefix("teleconsult_signaling_connections "))
                .unwrap_or("?")
                .to_string();
            println!(
                "t={:>4} s  server: {open} open connections, RSS {} KiB  (+{} KiB over {} idle connections = {:.2} KiB each)",
                t.elapsed().as_secs(),
                rss,
                rss.saturating_sub(rss_before),
                conns,
                rss.saturating_sub(rss_before) as f64 / conns as f64
            );
            if t.elapsed().as_secs() >= o.duration {
                break;
            }
            tokio::time::sleep(Duration::from_secs(o.duration.clamp(1, 30))).await;
        }
        if let Some((rss_h, conns_h)) = rss_half {
            let first = samples.first().map(|s| s.1).unwrap_or(0);
            let added = conns.saturating_sub(conns_h).max(1);
            println!(
                "marginal memory: {conns_h} -> {conns} connections: +{} KiB = {:.2} KiB per idle connection",
                first as i64 - rss_h as i64,
                (first as i64 - rss_h as i64) as f64 / added as f64
            );
        }
        let first = samples.first().map(|s| s.1).unwrap_or(0);
        let last = samples.last().map(|s| s.1).unwrap_or(0);
        println!("RSS drift over the hold: {} KiB", last as i64 - first as i64);
        for r in readers {
            r.abort();
        }
        return;
    }

    measure(&o, pairs).await;
}

/// A relay measurement's round trips, in microseconds.
#[derive(Debug, Clone)]
struct Measured {
    hist: Histogram<u64>,
    p50: u64,
    p99: u64,
    max: u64,
    rate: f64,
    /// CPU the hypervisor took from this machine during the half, in cores (all CPUs).
    steal: f64,
}

/// Above this much steal (cores) in a counted half, the p99 ratio follows the host rather
/// than the two relays (docs/scale.md: the tails followed the steal round by round).
const STEAL_NOTED: f64 = 0.05;

/// `--mode relay --floor ws://ADDR`: the server and the bare relay measured alternately in
/// one run, each round with fresh connections (rooms joined through the API for the server,
/// pairs for the floor), in the order server, floor, then floor, server, and so on, so that
/// neither side always runs just after the other's connections were made. Reports each
/// round, and the p99 of all of each side's round trips together (one histogram per side)
/// with their ratio. The first `--warmup` rounds are shown but left out of that p99: the first
/// round after the processes start has the longest tail on both sides.
async fn relay_against_floor(o: &Options, floor: &str, http: &reqwest::Client, db: &Db, li: &str, wang: &str) {
    let mut rows = Vec::new();
    let mut all_server = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut all_floor = all_server.clone();
    for round in 1..=o.warmup + o.rounds.max(1) {
        let server_first = round % 2 == 1;
        let mut server = None;
        let mut bare = None;
        for half in 0..2 {
            if (half == 0) == server_first {
                let pairs = server_pairs(o, http, db, li, wang).await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                println!("== round {round}: Teleconsult server {}", o.server);
                server = Some(measure(o, pairs).await);
            } else {
                let mut pairs = Vec::with_capacity(o.rooms);
                for room in 0..o.rooms {
                    pairs.push(bare_pair(floor, round * 1_000_000 + room).await);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                println!("== round {round}: bare relay (floor) {floor}");
                // The server's CPU is not the floor's: no --pid for this half.
                bare = Some(measure(&Options { pid: None, ..o.clone() }, pairs).await);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let (server, bare) = (server.expect("server half"), bare.expect("floor half"));
        if round > o.warmup {
            all_server.add(&server.hist).unwrap();
            all_floor.add(&bare.hist).unwrap();
        }
        rows.push((server, bare));
    }
    println!("| round | server p50 / p99 / max µs | floor p50 / p99 / max µs | p99 server / floor | steal, server / floor half (% of a core) |");
    println!("|---|---|---|---|---|");
    for (i, (a, b)) in rows.iter().enumerate() {
        println!(
            "| {}{} | {} / {} / {} | {} / {} / {} | {:.2} | {:.1} / {:.1} |",
            i + 1,
            if i < o.warmup { " (warm-up)" } else { "" },
            a.p50,
            a.p99,
            a.max,
            b.p50,
            b.p99,
            b.max,
            a.p99 as f64 / b.p99.max(1) as f64,
            a.steal * 100.0,
            b.steal * 100.0
        );
    }
    let (s99, f99) = (all_server.value_at_quantile(0.99), all_floor.value_at_quantile(0.99));
    println!(
        "rounds after the warm-up: server p50 / p99 {} / {s99} µs ({} round trips), floor {} / {f99} µs \
         ({}); p99 ratio {:.2} (target <= 1.2); rates {:?} msgs/s",
        all_server.value_at_quantile(0.5),
        all_server.len(),
        all_floor.value_at_quantile(0.5),
        all_floor.len(),
        s99 as f64 / f99.max(1) as f64,
        rows.iter().map(|r| (r.0.rate.round(), r.1.rate.round())).collect::<Vec<_>>()
    );
    let steals: Vec<f64> = rows.iter().skip(o.warmup).flat_map(|(a, b)| [a.steal, b.steal]).collect();
    let most = steals.iter().copied().fold(0.0, f64::max);
    if most > STEAL_NOTED {
        println!(
            "the hypervisor took up to {:.0} % of a core in {} of {} counted halves (over {:.0} %): \
             on such a host both sides' tails follow the steal, and this ratio says little about the relays",
            most * 100.0,
            steals.iter().filter(|&&x| x > STEAL_NOTED).count(),
            steals.len(),
            STEAL_NOTED * 100.0
        );
    }
    if let Ok(metrics) = http.get(format!("{}/metrics", o.server)).send().await {
        let text = metrics.text().await.unwrap_or_default();
        for line in text.lines().filter(|l| l.starts_with("teleconsult_signaling_relay_latency_seconds")) {
            println!("server's own relay time since it started (reading a frame to flushing what it caused): {line}");
        }
    }
}

/// Starts [`run_room`] for every pair (sending only on `turn`'s side, if given).
fn spawn_rooms(
    pairs: Vec<(Member, Member)>,
    o: &Options,
    t0: Instant,
    stop: &Arc<AtomicBool>,
    totals: &Arc<Totals>,
    hist: &SharedHistogram,
    turn: Option<(Arc<AtomicU8>, u8)>,
) -> Vec<tokio::task::JoinHandle<()>> {
    pairs
        .into_iter()
        .enumerate()
        .map(|(index, (a, b))| {
            tokio::spawn(run_room(index, a, b, o.clone(), t0, stop.clone(), totals.clone(), hist.clone(), turn.clone()))
        })
        .collect()
}

/// One side's round trips, written by all of its rooms.
type SharedHistogram = Arc<Mutex<Histogram<u64>>>;

/// `--mode relay --floor ws://ADDR --slice S`: the server's rooms and the bare relay's pairs
/// are all connected at once and held; every S seconds the sending moves from one side to the
/// other (the idle side's connections stay open, answering pings only), for 2 x `--rounds` x
/// `--duration` seconds after one warm-up second per side. Alternating every few seconds
/// instead of every `--duration` lets both sides meet the same host: on a virtual machine the
/// host's speed drifts over tens of seconds (docs/scale.md), which the alternating rounds of
/// `relay_against_floor` leave in their ratio. A round trip counts for the side whose room
/// sent its ping; CPU per message is the server's over its own slices.
async fn interleaved(o: &Options, slice: f64, floor: &str, http: &reqwest::Client, db: &Db, li: &str, wang: &str) {
    let server_pairs = server_pairs(o, http, db, li, wang).await;
    let mut floor_pairs = Vec::with_capacity(o.rooms);
    for room in 0..o.rooms {
        floor_pairs.push(bare_pair(floor, room).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let turn = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let sides: Vec<(Arc<Totals>, SharedHistogram)> = (0..2)
        .map(|_| {
            (Arc::new(Totals::default()), Arc::new(Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap())))
        })
        .collect();
    let mut handles = Vec::new();
    for (side, pairs) in [server_pairs, floor_pairs].into_iter().enumerate() {
        let (totals, hist) = &sides[side];
        let turn = Some((turn.clone(), side as u8));
        handles.extend(spawn_rooms(pairs, o, t0, &stop, totals, hist, turn));
    }
    // One warm-up second per side, not counted.
    for side in [0u8, 1] {
        turn.store(side, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let total = 2.0 * o.rounds.max(1) as f64 * o.duration as f64;
    let slices = (total / slice).round().max(2.0) as usize;
    let (mut server_cpu, mut server_idle_cpu, mut server_secs, mut floor_secs) = (0.0, 0.0, 0.0, 0.0);
    let mut steal = [0.0f64; 2];
    let relayed0 = [sides[0].0.relayed.load(Ordering::Relaxed), sides[1].0.relayed.load(Ordering::Relaxed)];
    for (totals, _) in &sides {
        totals.count_from_now(t0);
    }
    for k in 0..slices {
        let side = (k % 2) as u8;
        turn.store(side, Ordering::Relaxed);
        let cpu0 = o.pid.map(cpu_secs).unwrap_or(0.0);
        let steal0 = steal_secs();
        let m0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(slice)).await;
        let secs = m0.elapsed().as_secs_f64();
        steal[side as usize] += steal_secs() - steal0;
        if side == 0 {
            server_cpu += o.pid.map(cpu_secs).unwrap_or(0.0) - cpu0;
            server_secs += secs;
        } else {
            server_idle_cpu += o.pid.map(cpu_secs).unwrap_or(0.0) - cpu0;
            floor_secs += secs;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let relayed: Vec<u64> = (0..2).map(|i| sides[i].0.relayed.load(Ordering::Relaxed) - relayed0[i]).collect();
    let errors: u64 = sides.iter().map(|(t, _)| t.errors.load(Ordering::Relaxed)).sum();
    for h in handles {
        let _ = h.await;
    }
    let (s, f) = (sides[0].1.lock().unwrap().clone(), sides[1].1.lock().unwrap().clone());
    println!(
        "interleaved: {} rooms a side, {} B messages, paced at {:.0} msgs/s, sending alternating every {slice} s \
         over {slices} slices ({:.0} s a side)",
        o.rooms, o.size, o.rate, server_secs
    );
    for (name, h, n, secs, st) in
        [("server", &s, relayed[0], server_secs, steal[0]), ("floor", &f, relayed[1], floor_secs, steal[1])]
    {
        println!(
            "{name}: p50 / p90 / p99 / p99.9 / max {} / {} / {} / {} / {} µs ({} round trips), {:.0} relayed msgs/s in its slices, steal {:.1} % of a core",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.len(),
            n as f64 / secs.max(1e-9),
            st / secs.max(1e-9) * 100.0
        );
    }
    if o.pid.is_some() {
        println!(
            "server CPU per relayed message (its own slices): {:.2} µs; in the floor's slices, holding its idle \
             connections (pings, sweeps), {:.1} % of a core",
            server_cpu * 1e6 / relayed[0].max(1) as f64,
            server_idle_cpu / floor_secs.max(1e-9) * 100.0
        );
    }
    println!(
        "p99 ratio server / floor {:.2} (target <= 1.2); p50 ratio {:.2}; errors received {errors}",
        s.value_at_quantile(0.99) as f64 / f.value_at_quantile(0.99).max(1) as f64,
        s.value_at_quantile(0.5) as f64 / f.value_at_quantile(0.5).max(1) as f64
    );
}

/// `--rooms` fresh rooms, each joined by Dr. Li and Dr. Wang through the API and the WebSocket.
async fn server_pairs(o: &Options, http: &reqwest::Client, db: &Db, li: &str, wang: &str) -> Vec<(Member, Member)> {
    let rooms = make_rooms(db, o.rooms, false).await;
    let mut pairs = Vec::with_capacity(rooms.len());
    for chunk in rooms.chunks(32) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|room| {
                let (http, server, li, wang, room) =
                    (http.clone(), o.server.clone(), li.to_string(), wang.to_string(), room.clone());
                tokio::spawn(async move {
                    let (a, _) = join(&http, &server, &li, &room).await;
                    let (b, _) = join(&http, &server, &wang, &room).await;
                    (a, b)
                })
            })
            .collect();
        for t in tasks {
            pairs.push(t.await.expect("join task"));
        }
    }
    pairs
}

/// The `relay` measurement over joined pairs (through the server or the bare relay).
async fn measure(o: &Options, pairs: Vec<(Member, Member)>) -> Measured {
    let pid = o.pid;
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()));
    let t0 = Instant::now();
    // Warm-up second, then measure.
    let handles = spawn_rooms(pairs, o, t0, &stop, &totals, &hist, None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    totals.count_from_now(t0);
    let relayed0 = totals.relayed.load(Ordering::Relaxed);
    let server_cpu0 = pid.map(cpu_secs).unwrap_or(0.0);
    let own_cpu0 = cpu_secs(std::process::id());
    let steal0 = steal_secs();
    let m0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.duration)).await;
    let secs = m0.elapsed().as_secs_f64();
    let relayed = totals.relayed.load(Ordering::Relaxed) - relayed0;
    let server_cpu = pid.map(cpu_secs).unwrap_or(0.0) - server_cpu0;
    let own_cpu = cpu_secs(std::process::id()) - own_cpu0;
    let steal = steal_secs() - steal0;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.await;
    }
    let h = hist.lock().unwrap();
    println!(
        "relay: {} rooms, {} B messages, {}: {:.0} relayed messages/s over {secs:.1} s",
        o.rooms,
        o.size,
        if o.rate > 0.0 { format!("paced at {:.0} msgs/s", o.rate) } else { format!("window {}", o.window) },
        relayed as f64 / secs
    );
    println!(
        "round trip (A -> server -> B -> server -> A): p50 {} p99 {} max {} µs ({} samples)",
        pct(&h, 0.5),
        pct(&h, 0.99),
        h.max(),
        h.len()
    );
    if pid.is_some() {
        println!(
            "server CPU: {:.1}% of a core, {:.2} µs per relayed message",
            server_cpu / secs * 100.0,
            server_cpu * 1e6 / relayed.max(1) as f64
        );
    }
    println!("load tool CPU: {:.1}% of a core", own_cpu / secs * 100.0);
    println!("steal (CPU time the hypervisor took, all CPUs): {:.1}% of a core", steal / secs * 100.0);
    println!("errors received: {}", totals.errors.load(Ordering::Relaxed));
    Measured {
        hist: h.clone(),
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
        rate: relayed as f64 / secs,
        steal: steal / secs,
    }
}
