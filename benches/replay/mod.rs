//! A day in the life of a consortium, replayed against a running server (docs/scale.md).
//!
//! - [`generate`] writes the world that exists before the day straight into the database
//!   (hospitals with departments and experts, their weekday clinics in 30-minute slots,
//!   community centres linked to the hospitals, their doctors and patients): bulk inserts,
//!   since that world is not what is being measured.
//! - [`replay`] then plays a day's consultations through the public API and the signaling
//!   WebSocket, as the clients do, open loop: each consultation starts at its scheduled
//!   arrival (an intraday curve with a morning peak, compressed by `speed`) whether or not
//!   earlier ones have finished, and latencies count from when an operation was due, so a
//!   server that falls behind shows it (no coordinated omission).
//! - [`check`] verifies the invariants afterwards in the database.
//!
//! Shared by `benches/day_replay.rs` (the tool) and `tests/replay.rs` (a tiny run as a test).
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use teleconsult::db::{new_id, now_ts, Db};
use tokio_tungstenite::tungstenite::Message;

/// The password of every generated account.
pub const PASSWORD: &str = "load-password";

/// Share of a day's consultations arriving in each hour (local time), a weekday outpatient
/// curve: quiet night, a morning peak from 9 to 12, a smaller afternoon clinic. Sums to 1.
pub const HOURLY: [f64; 24] = [
    0.002, 0.001, 0.001, 0.001, 0.002, 0.004, 0.010, 0.030, 0.080, 0.120, 0.125, 0.115, 0.075, 0.060, 0.080, 0.080,
    0.070, 0.050, 0.030, 0.025, 0.018, 0.012, 0.006, 0.003,
];

const SPECIALTIES: [&str; 4] = ["cardiology", "endocrinology", "general_practice", "radiology"];
const TITLES: [&str; 3] = ["attending", "associate_chief", "chief"];

#[derive(Debug, Clone, serde::Serialize)]
pub struct Scale {
    pub hospitals: usize,
    pub experts: usize,
    pub centres: usize,
    pub doctors: usize,
    pub patients: usize,
    /// Completed consultations before the day (each with its requester, its expert and an
    /// attended appointment, one a day per expert and slot, up to a year back), so that the
    /// day meets a store that has served for a while.
    pub history: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// Consultations in the whole day; the replay plays the share of [`Plan::from_hour`] ..
    /// `from_hour + hours`.
    pub per_day: usize,
    pub from_hour: f64,
    pub hours: f64,
    /// Replayed seconds per wall-clock second.
    pub speed: f64,
    /// Wall-clock pause between the steps of one consultation.
    pub think_ms: u64,
    /// Wall-clock seconds both sides stay in the call after the negotiation.
    pub call_secs: f64,
    /// Share of consultations with an ECG (cardiology); the expert reads it in all of them.
    pub ecg_share: f64,
    /// Share of arrivals whose patient is registered on the spot.
    pub new_patient_share: f64,
    /// Whether the doctor and the expert open their home screens (their lists) as the web
    /// client does; off only to compare with runs made before they did.
    pub home_screens: bool,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub username: String,
    pub org: String,
}

/// The world that exists before the day.
pub struct World {
    pub run: String,
    pub doctors: Vec<Person>,
    /// Experts by specialty.
    pub experts: HashMap<&'static str, Vec<Person>>,
    /// Names of existing patients by home centre.
    pub patients: HashMap<String, Vec<String>>,
}

/// A small deterministic generator (xorshift), so a run can be repeated.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Inserts `rows` rows of `cols` values in statements of at most `per` rows. Columns named in
/// `integers` (by position) are bound as integers.
async fn bulk(db: &Db, head: &str, cols: usize, rows: Vec<Vec<String>>) {
    bulk_typed(db, head, cols, &[], rows).await
}

async fn bulk_typed(db: &Db, head: &str, cols: usize, integers: &[usize], rows: Vec<Vec<String>>) {
    let per = (30_000 / cols).min(1000);
    for chunk in rows.chunks(per) {
        let mut sql = format!("{head} VALUES ");
        let mut n = 1;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..cols {
                if c > 0 {
                    sql.push(',');
                }
                let _ = write!(sql, "${n}");
                n += 1;
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for (i, v) in row.iter().enumerate() {
                q = if integers.contains(&i) { q.bind(v.parse::<i64>().expect("an integer")) } else { q.bind(v) };
            }
        }
        q.execute(&db.pool).await.unwrap_or_else(|e| panic!("{head}: {e}"));
    }
}

/// Writes the world into the server's database (which holds the specialties: a server
/// started with `--demo`). Account names carry `run`, so worlds of several runs can coexist.
pub async fn generate(db: &Db, scale: &Scale, run: &str) -> World {
    let now = now_ts();
    let hash = teleconsult::auth::password::hash_password(PASSWORD).expect("password hash");
    let mut orgs = Vec::new();
    let hospitals: Vec<String> = (0..scale.hospitals.max(1)).map(|_| new_id()).collect();
    let centres: Vec<String> = (0..scale.centres.max(1)).map(|_| new_id()).collect();
    for (i, h) in hospitals.iter().enumerate() {
        orgs.push(vec![h.clone(), format!("{run} hospital {i}"), "tertiary_hospital".into(), now.clone(), now.clone()]);
    }
    for (i, c) in centres.iter().enumerate() {
        let kind = if i % 3 == 2 { "medical_corner" } else { "community_health_centre" };
        orgs.push(vec![c.clone(), format!("{run} centre {i}"), kind.into(), now.clone(), now.clone()]);
    }
    bulk(db, "INSERT INTO organisations (id, name, kind, created_at, updated_at)", 5, orgs).await;
    let links = centres
        .iter()
        .enumerate()
        .map(|(i, c)| vec![new_id(), hospitals[i % hospitals.len()].clone(), c.clone(), now.clone()])
        .collect();
    bulk(db, "INSERT INTO consortium_links (id, hospital_id, centre_id, created_at)", 4, links).await;
    let mut departments = HashMap::new();
    let mut dept_rows = Vec::new();
    for h in &hospitals {
        for s in SPECIALTIES {
            let id = new_id();
            dept_rows.push(vec![id.clone(), h.clone(), format!("{s} department"), s.to_string(), now.clone()]);
            departments.insert((h.clone(), s), id);
        }
    }
    bulk(db, "INSERT INTO departments (id, organisation_id, name, specialty, created_at)", 5, dept_rows).await;

    let mut users = Vec::new();
    let mut profiles = Vec::new();
    let mut specialties = Vec::new();
    let mut rules = Vec::new();
    let mut experts: HashMap<&'static str, Vec<Person>> = HashMap::new();
    let mut expert_ids: Vec<(String, &'static str)> = Vec::new();
    for i in 0..scale.experts.max(1) {
        let id = new_id();
        let h = hospitals[i % hospitals.len()].clone();
        let s = SPECIALTIES[i % SPECIALTIES.len()];
        let username = format!("{run}-x{i}");
        users.push(vec![
            id.clone(),
            username.clone(),
            format!("专家{i}"),
            hash.clone(),
            "expert".into(),
            h.clone(),
            departments[&(h.clone(), s)].clone(),
            now.clone(),
            now.clone(),
        ]);
        profiles.push(vec![id.clone(), TITLES[i % TITLES.len()].to_string()]);
        specialties.push(vec![id.clone(), s.to_string()]);
        for weekday in 1..=5 {
            for (from, to) in [("08:00", "12:00"), ("14:00", "17:30")] {
                rules.push(vec![
                    new_id(),
                    id.clone(),
                    weekday.to_string(),
                    from.into(),
                    to.into(),
                    "30".into(),
                    "Asia/Shanghai".into(),
                    now.clone(),
                ]);
            }
        }
        expert_ids.push((id.clone(), s));
        experts.entry(s).or_default().push(Person { id, username, org: h });
    }
    let mut doctors: Vec<Person> = Vec::new();
    let mut doctor_rows = Vec::new();
    for i in 0..scale.doctors.max(1) {
        let id = new_id();
        let c = centres[i % centres.len()].clone();
        let username = format!("{run}-d{i}");
        doctor_rows.push(vec![
            id.clone(),
            username.clone(),
            format!("医生{i}"),
            hash.clone(),
            "community_doctor".into(),
            c.clone(),
            now.clone(),
            now.clone(),
        ]);
        doctors.push(Person { id, username, org: c });
    }
    bulk(
        db,
        "INSERT INTO users (id, username, display_name, password_hash, role, organisation_id, department_id, created_at, updated_at)",
        9,
        users,
    )
    .await;
    bulk(
        db,
        "INSERT INTO users (id, username, display_name, password_hash, role, organisation_id, created_at, updated_at)",
        8,
        doctor_rows,
    )
    .await;
    bulk(db, "INSERT INTO expert_profiles (user_id, title)", 2, profiles).await;
    bulk(db, "INSERT INTO expert_specialties (user_id, specialty)", 2, specialties).await;
    bulk_typed(
        db,
        "INSERT INTO availability_rules (id, expert_id, weekday, start_time, end_time, slot_minutes, time_zone, created_at)",
        8,
        &[2, 5],
        rules,
    )
    .await;
    let mut patients: HashMap<String, Vec<String>> = HashMap::new();
    let mut patient_ids = Vec::new();
    let mut rows = Vec::new();
    for i in 0..scale.patients {
        let c = centres[i % centres.len()].clone();
        let name = format!("{run} 患者{i}");
        let sex = if i % 2 == 0 { "female" } else { "male" };
        let birth = format!("{}-{:02}-{:02}", 1940 + i % 70, 1 + i % 12, 1 + i % 28);
        let id = new_id();
        rows.push(vec![id.clone(), name.clone(), sex.into(), birth, c.clone(), now.clone(), now.clone()]);
        patients.entry(c).or_default().push(name);
        patient_ids.push(id);
    }
    bulk(db, "INSERT INTO patients (id, name, sex, birth_date, home_organisation_id, created_at, updated_at)", 7, rows)
        .await;
    if scale.history > 0 && !patient_ids.is_empty() {
        history(db, scale.history, &expert_ids, &doctors, &patient_ids, centres.len()).await;
    }
    World { run: run.to_string(), doctors, experts, patients }
}

/// `n` completed consultations before the day: the i-th is expert `i % E`'s, in the time slot
/// `i / E` (slots of 30 minutes from 09:00 Beijing time, 14 a day, going back a day at a
/// time), so no expert and no patient is booked twice at one time; its patient is
/// `i % patients` and its requester a doctor of that patient's centre. Then the tables are
/// analysed, as autovacuum would after such a load (it is off on a CI database).
async fn history(
    db: &Db,
    n: usize,
    experts: &[(String, &'static str)],
    doctors: &[Person],
    patients: &[String],
    centres: usize,
) {
    let started = Instant::now();
    let today = chrono::Utc::now().date_naive().and_hms_opt(1, 0, 0).expect("01:00").and_utc();
    let (mut consultations, mut participants, mut appointments) = (Vec::new(), Vec::new(), Vec::new());
    let flush = |c: Vec<Vec<String>>, p: Vec<Vec<String>>, a: Vec<Vec<String>>| async move {
        bulk(
            db,
            "INSERT INTO consultations (id, patient_id, requesting_organisation_id, requested_by, reason, specialty, min_title, urgency, mode, addressee_kind, state, assigned_expert_id, created_at, updated_at)",
            14,
            c,
        )
        .await;
        bulk(
            db,
            "INSERT INTO consultation_participants (consultation_id, user_id, role, status, added_at, latest_start_at)",
            6,
            p,
        )
        .await;
        bulk(
            db,
            "INSERT INTO appointments (id, consultation_id, expert_id, patient_id, start_at, end_at, status, created_by, created_at)",
            9,
            a,
        )
        .await;
    };
    for i in 0..n {
        let (expert, specialty) = &experts[i % experts.len()];
        let slot = i / experts.len();
        let start =
            today - chrono::Duration::days(1 + (slot / 14) as i64) + chrono::Duration::minutes(30 * (slot % 14) as i64);
        let (start_at, end_at) =
            (teleconsult::db::ts(start), teleconsult::db::ts(start + chrono::Duration::minutes(30)));
        let requested = teleconsult::db::ts(start - chrono::Duration::days(1));
        let p = i % patients.len();
        // Doctor j works at centre j % centres, patient p belongs to centre p % centres.
        let doctor = doctors.get(p % centres).unwrap_or(&doctors[i % doctors.len()]);
        let id = new_id();
        consultations.push(vec![
            id.clone(),
            patients[p].clone(),
            doctor.org.clone(),
            doctor.id.clone(),
            "复诊".into(),
            specialty.to_string(),
            "attending".into(),
            "routine".into(),
            "video".into(),
            "expert".into(),
            "completed".into(),
            expert.clone(),
            requested.clone(),
            end_at.clone(),
        ]);
        // Each with its consultation's latest appointment's start, as booking writes it.
        for (user, role, status) in [(&doctor.id, "requester", "active"), (expert, "expert", "accepted")] {
            participants.push(vec![
                id.clone(),
                user.clone(),
                role.into(),
                status.into(),
                requested.clone(),
                start_at.clone(),
            ]);
        }
        appointments.push(vec![
            new_id(),
            id,
            expert.clone(),
            patients[p].clone(),
            start_at,
            end_at,
            "attended".into(),
            doctor.id.clone(),
            requested,
        ]);
        if consultations.len() == 20_000 {
            flush(
                std::mem::take(&mut consultations),
                std::mem::take(&mut participants),
                std::mem::take(&mut appointments),
            )
            .await;
        }
    }
    flush(consultations, participants, appointments).await;
    sqlx::query("ANALYZE").execute(&db.pool).await.expect("ANALYZE");
    println!("{n} past consultations written and analysed in {:.1} s", started.elapsed().as_secs_f64());
}

/// Arrival offsets (seconds from the start of the replayed slice, in replayed time), sorted:
/// the slice's share of the day's consultations (rounded), each arrival in an hour drawn by
/// the hour's weight and at a uniformly random moment within it (a Poisson process whose
/// rate follows [`HOURLY`], given the total).
pub fn arrivals(plan: &Plan, rng: &mut Rng) -> Vec<f64> {
    let end = plan.from_hour + plan.hours;
    // (start, end, weight) of each hour's overlap with the slice.
    let mut pieces = Vec::new();
    let mut h = plan.from_hour.floor();
    while h < end {
        let (lo, hi) = (h.max(plan.from_hour), (h + 1.0).min(end));
        pieces.push((lo, hi, HOURLY[(h as usize) % 24] * (hi - lo)));
        h += 1.0;
    }
    let total: f64 = pieces.iter().map(|p| p.2).sum();
    let n = (plan.per_day as f64 * total).round() as usize;
    let mut out: Vec<f64> = (0..n)
        .map(|_| {
            let mut u = rng.unit() * total;
            let piece = pieces.iter().find(|p| {
                u -= p.2;
                u < 0.0
            });
            let (lo, hi, _) = piece.copied().unwrap_or(*pieces.last().expect("a slice of the day"));
            (lo + rng.unit() * (hi - lo) - plan.from_hour) * 3600.0
        })
        .collect();
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram")
}

/// One 10-second window of the run, for the plot.
#[derive(Clone)]
struct Window {
    ops: u64,
    errors: u64,
    latency: Histogram<u64>,
    consultations_done: u64,
}

/// What the replay measured and what was acknowledged.
pub struct Stats {
    started: Instant,
    ops: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    stages: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Consultations that did not finish, by the step that stopped them.
    failures: Mutex<BTreeMap<String, u64>>,
    windows: Mutex<Vec<Window>>,
    pub acked: Mutex<Acked>,
    pub requests: AtomicU64,
    pub done: AtomicU64,
    pub failed: AtomicU64,
}

/// Writes the server acknowledged, checked afterwards.
#[derive(Default)]
pub struct Acked {
    pub consultations: Vec<String>,
    pub patients: Vec<String>,
    pub appointments: Vec<String>,
    pub files: Vec<String>,
    pub signed: Vec<String>,
    pub ended: Vec<String>,
    pub chats: u64,
}

const WINDOW_SECS: f64 = 10.0;

impl Stats {
    fn new() -> Stats {
        Stats {
            started: Instant::now(),
            ops: Mutex::default(),
            stages: Mutex::default(),
            errors: Mutex::default(),
            failures: Mutex::default(),
            windows: Mutex::default(),
            acked: Mutex::default(),
            requests: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    fn window<R>(&self, f: impl FnOnce(&mut Window) -> R) -> R {
        let i = (self.started.elapsed().as_secs_f64() / WINDOW_SECS) as usize;
        let mut w = self.windows.lock().unwrap();
        while w.len() <= i {
            w.push(Window { ops: 0, errors: 0, latency: histogram(), consultations_done: 0 });
        }
        f(&mut w[i])
    }

    fn op(&self, name: &'static str, due: Instant) {
        let us = (due.elapsed().as_micros() as u64).max(1);
        let _ = self.ops.lock().unwrap().entry(name).or_insert_with(histogram).record(us);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.window(|w| {
            w.ops += 1;
            let _ = w.latency.record(us);
        });
    }

    fn stage(&self, name: &'static str, due: Instant) {
        let us = (due.elapsed().as_micros() as u64).max(1);
        let _ = self.stages.lock().unwrap().entry(name).or_insert_with(histogram).record(us);
    }

    fn error(&self, what: String) {
        *self.errors.lock().unwrap().entry(what).or_default() += 1;
        self.window(|w| w.errors += 1);
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap().clone()
    }

    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().unwrap().clone()
    }
}

/// A signed-in account's access and refresh tokens and when they were issued: after 10
/// minutes (access tokens last 15) the client exchanges the refresh token for new ones, as
/// the web client does, and signs in with the password again only if that fails.
type Session = Arc<tokio::sync::Mutex<Option<(String, String, Instant)>>>;

struct Client {
    /// The instances' base URLs (`http://...`); each account talks to one of them, chosen by
    /// its name, as behind a load balancer with affinity.
    bases: Vec<String>,
    http: reqwest::Client,
    sessions: Mutex<HashMap<String, Session>>,
    stats: Arc<Stats>,
    ecg: Arc<Vec<u8>>,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A participant's signaling socket, read all the time by a task of its own, as a browser
/// reads it: pings are answered however long the consultation's other steps take (a socket
/// left unread for 20 s is closed by the server's heartbeat, 4030), and what arrives waits in
/// `inbox` for the step that expects it. Dropping it closes the socket.
struct Conn {
    sink: futures_util::stream::SplitSink<Ws, Message>,
    inbox: tokio::sync::mpsc::UnboundedReceiver<Message>,
    reader: tokio::task::JoinHandle<()>,
}

impl Conn {
    fn new(ws: Ws) -> Conn {
        let (sink, mut stream) = ws.split();
        let (tx, inbox) = tokio::sync::mpsc::unbounded_channel();
        // Reading also writes the pongs tungstenite queues for the server's pings.
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let closed = matches!(m, Message::Close(_));
                if !matches!(m, Message::Ping(_) | Message::Pong(_)) && tx.send(m).is_err() {
                    break;
                }
                if closed {
                    break;
                }
            }
        });
        Conn { sink, inbox, reader }
    }

    async fn send(&mut self, m: Message) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.sink.send(m).await
    }

    /// Leaves: a close frame (code 1000), answered by the server's.
    async fn close(mut self) {
        let _ = self.sink.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inbox.recv()).await;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The access and refresh tokens of a sign-in's answer (empty when absent).
fn tokens(v: &Value) -> (String, String) {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    (text("access_token"), text("refresh_token"))
}

/// An operation that failed: what, for the error table.
struct Failed(String);

impl Client {
    /// The instance `username` talks to.
    fn base(&self, username: &str) -> &str {
        let h = username.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        &self.bases[(h % self.bases.len() as u64) as usize]
    }

    async fn token(&self, username: &str) -> Result<String, Failed> {
        let session = self.sessions.lock().unwrap().entry(username.to_string()).or_default().clone();
        let mut s = session.lock().await;
        if let Some((access, refresh, at)) = s.as_ref() {
            if at.elapsed() < Duration::from_secs(600) {
                return Ok(access.clone());
            }
            let due = Instant::now();
            let req = self
                .http
                .post(format!("{}/api/v1/auth/refresh", self.base(username)))
                .json(&json!({"refresh_token": refresh}));
            if let Ok(v) = self.send("refresh", due, req).await {
                let access = v["access_token"].as_str().unwrap_or_default().to_string();
                let refresh = v["refresh_token"].as_str().unwrap_or_default().to_string();
                *s = Some((access.clone(), refresh, Instant::now()));
                return Ok(access);
            }
        }
        let due = Instant::now();
        let v = self.send("login", due, self.login_request(username)).await?;
        let (access, refresh) = tokens(&v);
        *s = Some((access.clone(), refresh, Instant::now()));
        Ok(access)
    }

    fn login_request(&self, username: &str) -> reqwest::RequestBuilder {
        let body = json!({"username": username, "password": PASSWORD});
        self.http.post(format!("{}/api/v1/auth/login", self.base(username))).json(&body)
    }

    /// Signs every account in before the replayed slice, `concurrency` at a time, outside the
    /// statistics: at a day's peak the staff have been signed in since the morning. Returns
    /// how many sign-ins failed.
    async fn sign_in_all(self: &Arc<Self>, usernames: Vec<String>, concurrency: usize) -> usize {
        let queue = Arc::new(Mutex::new(usernames));
        let mut workers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (c, queue) = (self.clone(), queue.clone());
            workers.push(tokio::spawn(async move {
                let mut failed = 0;
                loop {
                    let Some(username) = queue.lock().unwrap().pop() else { break };
                    let v = match c.login_request(&username).send().await {
                        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                    let (access, refresh) = tokens(&v);
                    if access.is_empty() {
                        failed += 1;
                        continue;
                    }
                    let session = c.sessions.lock().unwrap().entry(username).or_default().clone();
                    *session.lock().await = Some((access, refresh, Instant::now()));
                }
                failed
            }));
        }
        let mut failed = 0;
        for w in workers {
            failed += w.await.unwrap_or(0);
        }
        failed
    }

    /// Sends a request due at `due`; records its latency from `due` and, unless 2xx, its
    /// status and problem code.
    async fn send(&self, op: &'static str, due: Instant, req: reqwest::RequestBuilder) -> Result<Value, Failed> {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = format!("{op}: {}", if e.is_connect() { "connect" } else { "transport" });
                self.stats.error(what.clone());
                return Err(Failed(what));
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        self.stats.op(op, due);
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            let what = format!("{op}: {status} {}", v["code"].as_str().unwrap_or(""));
            self.stats.error(what.clone());
            Err(Failed(what))
        }
    }

    async fn call(
        &self,
        op: &'static str,
        user: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failed> {
        let token = self.token(user).await?;
        let due = Instant::now();
        let mut req = self.http.request(method, format!("{}{path}", self.base(user))).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(op, due, req).await
    }

    async fn join(&self, user: &str, consultation: &str) -> Result<(Conn, Value), Failed> {
        let v = self
            .call(
                "join",
                user,
                reqwest::Method::POST,
                &format!("/api/v1/consultations/{consultation}/join"),
                Some(json!({})),
            )
            .await?;
        let ticket = v["ticket"].as_str().unwrap_or_default();
        let due = Instant::now();
        let url = format!("{}/api/v1/rtc?ticket={ticket}", self.base(user).replacen("http", "ws", 1));
        // No Nagle delay, as browsers open their WebSockets: the negotiation's back-to-back
        // small frames would otherwise wait for the server's delayed ACK (40 ms on Linux).
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await.map_err(|e| {
            self.stats.error("websocket: connect".into());
            Failed(format!("websocket: {e}"))
        })?;
        let mut ws = Conn::new(ws);
        let joined =
            expect(&mut ws, "joined", Duration::from_secs(30)).await.inspect_err(|e| self.stats.error(e.0.clone()))?;
        self.stats.op("websocket_joined", due);
        Ok((ws, joined))
    }
}

/// Waits until a message of `kind` arrives.
async fn expect(ws: &mut Conn, kind: &str, within: Duration) -> Result<Value, Failed> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.inbox.recv()).await {
            Ok(Some(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == kind {
                    return Ok(v);
                }
                if v["type"] == "error" {
                    return Err(Failed(format!("signaling: error {}", v["code"].as_str().unwrap_or(""))));
                }
            }
            Ok(Some(Message::Close(f))) => {
                return Err(Failed(format!(
                    "signaling: closed {} waiting for {kind}",
                    f.map(|f| u16::from(f.code)).unwrap_or(0)
                )))
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(Failed(format!("signaling: socket ended waiting for {kind}"))),
            Err(_) => return Err(Failed(format!("signaling: no {kind} within {} s", within.as_secs()))),
        }
    }
}

/// Reads `n` messages of `kind`.
async fn expect_n(ws: &mut Conn, kind: &str, n: usize) -> Result<(), Failed> {
    for _ in 0..n {
        expect(ws, kind, Duration::from_secs(30)).await?;
    }
    Ok(())
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

const SDP: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n";

fn sdp() -> String {
    // About 3 KB, the size of a browser's audio + video offer.
    let mut s = String::from(SDP);
    while s.len() < 3000 {
        s.push_str("a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 goog-remb\r\n");
    }
    s
}

/// One consultation, end to end. `due` is its scheduled arrival.
async fn consultation(
    c: Arc<Client>,
    world: Arc<World>,
    plan: Arc<Plan>,
    seed: u64,
    due: Instant,
) -> Result<(), Failed> {
    let mut rng = Rng::new(seed);
    let doctor = &world.doctors[rng.below(world.doctors.len())];
    let ecg = rng.unit() < plan.ecg_share;
    let specialty = if ecg { "cardiology" } else { SPECIALTIES[1 + rng.below(SPECIALTIES.len() - 1)] };
    let think = Duration::from_millis(plan.think_ms);
    let d = doctor.username.as_str();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // 1. The doctor's home screen (his patients and consultations, as the web client reads
    // them); find or register the patient, ask for candidates, send the request with consent.
    // The arrival is due at `due`: a late start counts in this stage.
    if plan.home_screens {
        c.call("doctor_home_patients", d, get.clone(), "/api/v1/patients", None).await?;
        c.call("doctor_home_consultations", d, get.clone(), "/api/v1/consultations?active=true&limit=200", None)
            .await?;
        c.call("doctor_home_ended", d, get.clone(), "/api/v1/consultations?active=false&limit=20", None).await?;
    }
    let known = world.patients.get(&doctor.org).filter(|p| !p.is_empty());
    let patient_id = match known.filter(|_| rng.unit() >= plan.new_patient_share) {
        Some(names) => {
            let name = &names[rng.below(names.len())];
            let q = url_encode(name);
            let found =
                c.call("patient_search", d, get.clone(), &format!("/api/v1/patients?q={q}&limit=5"), None).await?;
            match found["items"][0]["id"].as_str() {
                Some(id) => id.to_string(),
                None => return Err(Failed("patient_search: not found".into())),
            }
        }
        None => {
            let body = json!({"name": format!("{} 新患者{}", world.run, rng.next() % 1_000_000), "sex": "female", "birth_date": "1958-03-14"});
            let p = c.call("patient_register", d, post.clone(), "/api/v1/patients", Some(body)).await?;
            let id = p["id"].as_str().unwrap_or_default().to_string();
            c.stats.acked.lock().unwrap().patients.push(id.clone());
            id
        }
    };
    let criteria = json!({"specialty": specialty, "min_title": "attending", "urgency": "routine"});
    let cands = c.call("candidates", d, post.clone(), "/api/v1/consultations/candidates", Some(criteria)).await?;
    // The demo consortium's experts may be among the candidates: the world's only.
    let ours: Vec<&Person> = cands["items"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .filter_map(|item| {
            let id = item["expert_id"].as_str()?;
            world.experts.get(specialty)?.iter().find(|x| x.id == id)
        })
        .take(5)
        .collect();
    if ours.is_empty() {
        return Err(Failed("candidates: none of the world's experts".into()));
    }
    let expert = ours[rng.below(ours.len())];
    let expert_id = expert.id.clone();
    let x = expert.username.as_str();
    let body = json!({
        "patient_id": patient_id, "reason": "胸闷两周，活动后加重", "specialty": specialty, "min_title": "attending",
        "urgency": "routine", "mode": "video", "addressee": {"kind": "expert", "expert_id": expert_id},
        "consent": {"given_by": "patient", "method": "written", "at": chrono::Utc::now().to_rfc3339()}
    });
    let created = c.call("request", d, post.clone(), "/api/v1/consultations", Some(body)).await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    c.stats.acked.lock().unwrap().consultations.push(id.clone());
    c.stats.stage("1 request", due);

    // 2. The expert sees it on his home screen (the web client's three reads), accepts; the
    // doctor books the first free slot (reading the slots again after a 409 slot_taken).
    tokio::time::sleep(think).await;
    let stage = Instant::now();
    c.call("notifications", x, get.clone(), "/api/v1/notifications?limit=20", None).await?;
    if plan.home_screens {
        let home = [
            // The requests and his open consultations, in one list.
            ("expert_home_consultations", "/api/v1/consultations?active=true&limit=200".to_string()),
            // From the start of the day, as the web client asks for the upcoming ones.
            (
                "expert_home_appointments",
                format!("/api/v1/appointments?from={}T00:00:00Z", chrono::Utc::now().date_naive()),
            ),
            ("expert_home_availability", format!("/api/v1/experts/{expert_id}/availability")),
        ];
        for (op, path) in home {
            c.call(op, x, get.clone(), &path, None).await?;
        }
    }
    c.call("accept", x, post.clone(), &format!("/api/v1/consultations/{id}/accept"), Some(json!({}))).await?;
    let mut booked = None;
    // As the web client does: the first free slot; when a concurrent booking took it since the
    // list was read (409 slot_taken), the list again as it is now, and its first slot. A slot
    // at which the patient is busy (409 patient_busy: the expert's list cannot know) is passed
    // over, as the doctor would.
    let mut patient_busy: Vec<Value> = Vec::new();
    for _attempt in 0..8 {
        let slots = c.call("slots", d, get.clone(), &format!("/api/v1/experts/{expert_id}/slots"), None).await?;
        let items = slots["items"].as_array().map(|a| a.as_slice()).unwrap_or(&[]);
        let Some(slot) = items.iter().find(|s| !patient_busy.contains(&s["start"])) else { break };
        let body = json!({"consultation_id": id, "expert_id": expert_id, "start": slot["start"]});
        let token = c.token(d).await?;
        let due_b = Instant::now();
        let resp =
            c.http.post(format!("{}/api/v1/appointments", c.base(d))).bearer_auth(token).json(&body).send().await;
        let Ok(resp) = resp else {
            c.stats.error("book: transport".into());
            return Err(Failed("book: transport".into()));
        };
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        c.stats.op("book", due_b);
        match status {
            201 => {
                booked = v["id"].as_str().map(str::to_string);
                break;
            }
            // Taken since the list was read, or the patient busy then: the list again.
            409 => {
                if v["code"] == "patient_busy" {
                    patient_busy.push(slot["start"].clone());
                }
                c.stats.error(format!("book: 409 {} (retried)", v["code"].as_str().unwrap_or("")))
            }
            _ => {
                let what = format!("book: {status} {}", v["code"].as_str().unwrap_or(""));
                c.stats.error(what.clone());
                return Err(Failed(what));
            }
        }
    }
    let Some(appointment) = booked else { return Err(Failed("book: no free slot".into())) };
    c.stats.acked.lock().unwrap().appointments.push(appointment);
    c.call("notifications", d, get.clone(), "/api/v1/notifications?limit=20", None).await?;
    c.stats.stage("2 accept and book", stage);

    // 3. Both join: tickets and WebSockets; a negotiation's worth of signaling and a chat.
    tokio::time::sleep(think).await;
    let stage = Instant::now();
    let (mut dw, _) = c.join(d, &id).await?;
    let (mut xw, xj) = c.join(x, &id).await?;
    c.stats.stage("3 join both", stage);
    let stage = Instant::now();
    let doctor_pid = xj["peers"][0]["id"].as_str().unwrap_or_default().to_string();
    let pj =
        expect(&mut dw, "peer-joined", Duration::from_secs(30)).await.inspect_err(|e| c.stats.error(e.0.clone()))?;
    let expert_pid = pj["peer"]["id"].as_str().unwrap_or_default().to_string();
    let negotiation = async {
        dw.send(text(json!({"type": "signal", "to": expert_pid, "description": {"type": "offer", "sdp": sdp()}})))
            .await
            .ok();
        expect(&mut xw, "signal", Duration::from_secs(30)).await?;
        xw.send(text(json!({"type": "signal", "to": doctor_pid, "description": {"type": "answer", "sdp": sdp()}})))
            .await
            .ok();
        expect(&mut dw, "signal", Duration::from_secs(30)).await?;
        for i in 0..10 {
            let cand = |port: u32| json!({"candidate": format!("candidate:{i} 1 udp 2122260223 192.168.1.{i} {port} typ host"), "sdpMid": "0", "sdpMLineIndex": 0});
            dw.send(text(json!({"type": "signal", "to": expert_pid, "candidate": cand(50000 + i)}))).await.ok();
            xw.send(text(json!({"type": "signal", "to": doctor_pid, "candidate": cand(60000 + i)}))).await.ok();
        }
        expect_n(&mut xw, "signal", 10).await?;
        expect_n(&mut dw, "signal", 10).await?;
        dw.send(text(json!({"type": "chat", "text": "心电图马上上传"}))).await.ok();
        expect(&mut xw, "chat", Duration::from_secs(30)).await?;
        Ok::<(), Failed>(())
    };
    negotiation.await.inspect_err(|e| c.stats.error(e.0.clone()))?;
    c.stats.acked.lock().unwrap().chats += 1;
    c.stats.op("signaling_negotiation", stage);
    c.stats.stage("4 signaling", stage);

    // 4. The doctor uploads a 10 s 12-lead ECG; the expert reads it.
    if ecg {
        let stage = Instant::now();
        let token = c.token(d).await?;
        let due_u = Instant::now();
        let req = c
            .http
            .post(format!("{}/api/v1/consultations/{id}/files?name=ecg.dcm", c.base(d)))
            .bearer_auth(token)
            .body(c.ecg.as_ref().clone());
        let f = c.send("ecg_upload", due_u, req).await?;
        let file = f["id"].as_str().unwrap_or_default().to_string();
        c.stats.acked.lock().unwrap().files.push(file.clone());
        c.call("ecg_read", x, get.clone(), &format!("/api/v1/files/{file}/ecg?max_points=2000"), None).await?;
        c.stats.stage("5 ECG", stage);
    }

    // 5. The call goes on; the expert writes and signs the opinion, then ends the call.
    tokio::time::sleep(Duration::from_secs_f64(plan.call_secs)).await;
    // The expert's screen shows the consultation (in progress once both sides were in the
    // room: the server records that in the background, so it may take a moment).
    let stage = Instant::now();
    loop {
        let v = c.call("consultation_read", x, get.clone(), &format!("/api/v1/consultations/{id}"), None).await?;
        if v["state"] == "in_progress" {
            break;
        }
        if stage.elapsed() > Duration::from_secs(30) {
            let what = format!("consultation: still {} 30 s after both joined", v["state"].as_str().unwrap_or("?"));
            c.stats.error(what.clone());
            return Err(Failed(what));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.stats.stage("in progress after the call time", stage);
    let stage = Instant::now();
    let body = json!({"impression": "窦性心律，未见明显缺血改变", "patient_summary": "心电图正常，按时复查。"});
    c.call("opinion_write", x, reqwest::Method::PUT, &format!("/api/v1/consultations/{id}/opinion"), Some(body))
        .await?;
    c.call("opinion_sign", x, post.clone(), &format!("/api/v1/consultations/{id}/opinion/sign"), Some(json!({})))
        .await?;
    c.stats.acked.lock().unwrap().signed.push(id.clone());
    c.stats.stage("6 opinion", stage);
    let stage = Instant::now();
    xw.send(text(json!({"type": "end"}))).await.ok();
    expect(&mut dw, "call-ended", Duration::from_secs(30)).await.inspect_err(|e| c.stats.error(e.0.clone()))?;
    c.stats.acked.lock().unwrap().ended.push(id.clone());
    tokio::join!(dw.close(), xw.close());
    c.stats.stage("7 end call", stage);
    c.stats.stage("consultation (arrival to end)", due);
    Ok(())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Samples of the processes' CPU (share of one core) and memory, once a second.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sample {
    pub t: f64,
    pub server_cpu: f64,
    pub server_rss_kib: u64,
    pub pg_cpu: f64,
    pub pg_rss_kib: u64,
    pub tool_cpu: f64,
}

pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The PostgreSQL server's processes that work for `database`: its connections' backends
/// and the server's own background processes (WAL writer, checkpointer, ...), not the
/// backends of other databases on the same server.
pub fn postgres_pids(database: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter(|pid| {
            // A backend's title: "postgres: <user> <database> <client>(<port>) <state>".
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let title = String::from_utf8_lossy(&title);
            let words: Vec<&str> = title.split_whitespace().collect();
            let backend = words.get(3).is_some_and(|w| w.contains('('));
            !backend || words.get(2) == Some(&database)
        })
        .collect()
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The result of a replay.
pub struct Report {
    pub plan: Plan,
    pub scheduled: usize,
    pub wall_secs: f64,
    pub stats: Arc<Stats>,
    pub samples: Vec<Sample>,
    pub db_bytes: i64,
    pub invariants: Vec<(String, bool, String)>,
    pub load_before: String,
    pub load_after: String,
    pub sign_in: Option<SignIn>,
}

/// The sign-ins made before the slice (`--signed-in`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignIn {
    pub accounts: usize,
    pub failed: usize,
    pub secs: f64,
}

/// Replays the plan against `bases` (each e.g. `http://127.0.0.1:8080`: one instance, or
/// several sharing a database and NATS) and checks the invariants. `pids`: the servers'
/// processes, for their CPU and memory (summed). `signed_in`: sign every account in before
/// the slice (outside the figures) instead of at its first request.
#[allow(clippy::too_many_arguments)]
pub async fn replay(
    bases: &[String],
    db: &Db,
    world: Arc<World>,
    plan: Plan,
    pids: &[u32],
    ecg: Vec<u8>,
    signed_in: bool,
    progress: bool,
) -> Report {
    let mut rng = Rng::new(plan.seed);
    let offsets = arrivals(&plan, &mut rng);
    let stats = Arc::new(Stats::new());
    let client = Arc::new(Client {
        bases: bases.to_vec(),
        http: reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("http client"),
        sessions: Mutex::default(),
        stats: stats.clone(),
        ecg: Arc::new(ecg),
    });
    let mut sign_in = None;
    if signed_in {
        let t = Instant::now();
        let accounts: Vec<String> =
            world.doctors.iter().chain(world.experts.values().flatten()).map(|p| p.username.clone()).collect();
        let n = accounts.len();
        let failed = client.sign_in_all(accounts, 8).await;
        let secs = t.elapsed().as_secs_f64();
        if progress {
            eprintln!("{n} accounts signed in before the slice in {secs:.1} s ({failed} failed)");
        }
        sign_in = Some(SignIn { accounts: n, failed, secs });
    }
    let pids = pids.to_vec();
    let plan = Arc::new(plan);
    let load_before = load_average();
    let start = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (stop, stats) = (stop.clone(), stats.clone());
        let scheduled = offsets.len();
        let plan = plan.clone();
        let database = db_name(db);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let own = std::process::id();
            // PostgreSQL starts a process per connection: the set is read afresh each time
            // (a process that ended takes its CPU time with it, so a delta is never negative).
            let read = || {
                (
                    pids.iter().map(|p| cpu_secs(*p)).sum::<f64>(),
                    postgres_pids(&database).iter().map(|p| cpu_secs(*p)).sum::<f64>(),
                    cpu_secs(own),
                    Instant::now(),
                )
            };
            let mut last = read();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let now = read();
                let dt = now.3.duration_since(last.3).as_secs_f64().max(1e-3);
                samples.push(Sample {
                    t: start.elapsed().as_secs_f64(),
                    server_cpu: (now.0 - last.0) / dt,
                    server_rss_kib: pids.iter().map(|p| rss_kib(*p)).sum(),
                    pg_cpu: ((now.1 - last.1) / dt).max(0.0),
                    pg_rss_kib: postgres_pids(&database).iter().map(|p| rss_kib(*p)).sum(),
                    tool_cpu: (now.2 - last.2) / dt,
                });
                last = now;
                n += 1;
                if progress && n.is_multiple_of(5) {
                    let s = samples.last().unwrap();
                    let replayed = plan.from_hour + start.elapsed().as_secs_f64() * plan.speed / 3600.0;
                    let done = stats.done.load(Ordering::Relaxed);
                    let failed = stats.failed.load(Ordering::Relaxed);
                    let bar = "#".repeat(((done + failed) * 30 / scheduled.max(1) as u64) as usize);
                    eprintln!(
                        "[{bar:<30}] {:02}:{:02} replayed | {done}/{scheduled} done, {failed} failed | {} requests | server {:.0}% cpu {} MiB | postgres {:.0}% cpu | tool {:.0}%",
                        replayed as u32 % 24,
                        (replayed.fract() * 60.0) as u32,
                        stats.requests.load(Ordering::Relaxed),
                        s.server_cpu * 100.0,
                        s.server_rss_kib / 1024,
                        s.pg_cpu * 100.0,
                        s.tool_cpu * 100.0
                    );
                }
            }
            samples
        })
    };
    let mut tasks = Vec::with_capacity(offsets.len());
    for (i, off) in offsets.iter().enumerate() {
        let due = start + Duration::from_secs_f64(off / plan.speed);
        tokio::time::sleep_until(due.into()).await;
        let (c, w, p, stats) = (client.clone(), world.clone(), plan.clone(), stats.clone());
        let seed = plan.seed.wrapping_add(i as u64 * 7919);
        tasks.push(tokio::spawn(async move {
            let result = consultation(c, w, p, seed, due).await;
            let ok = result.is_ok();
            if let Err(Failed(why)) = result {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                *stats.failures.lock().unwrap().entry(why).or_default() += 1;
            } else {
                stats.done.fetch_add(1, Ordering::Relaxed);
            }
            stats.window(|w| w.consultations_done += ok as u64);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall_secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap_or_default();
    let acked = std::mem::take(&mut *stats.acked.lock().unwrap());
    let invariants = check(db, &acked).await;
    *stats.acked.lock().unwrap() = acked;
    let db_bytes = database_bytes(db).await;
    Report {
        plan: (*plan).clone(),
        scheduled: offsets.len(),
        wall_secs,
        stats,
        samples,
        db_bytes,
        invariants,
        load_before,
        load_after: load_average(),
        sign_in,
    }
}

/// The database's name on its server (empty for SQLite).
fn db_name(db: &Db) -> String {
    let url = db.pool.connect_options().database_url.to_string();
    url.rsplit('/').next().unwrap_or("").split('?').next().unwrap_or("").to_string()
}

async fn database_bytes(db: &Db) -> i64 {
    let q = match db.backend {
        teleconsult::db::Backend::Postgres => "SELECT pg_database_size(current_database())",
        teleconsult::db::Backend::Sqlite => {
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
        }
    };
    sqlx::query_as::<_, (i64,)>(q).fetch_one(&db.pool).await.map(|r| r.0).unwrap_or(-1)
}

/// Counts the ids of `ids` found by `sql` (one `$1` list placeholder replaced by the ids).
async fn count_present(db: &Db, sql: &str, ids: &[String]) -> usize {
    let mut found = 0;
    for chunk in ids.chunks(500) {
        let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(",");
        let q = sql.replace("$LIST", &list);
        let mut query = sqlx::query_as::<_, (i64,)>(&q);
        for id in chunk {
            query = query.bind(id);
        }
        found += query.fetch_one(&db.pool).await.map(|r| r.0 as usize).unwrap_or(0);
    }
    found
}

/// The invariants after a replay: (name, holds, detail).
pub async fn check(db: &Db, acked: &Acked) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    // The end of a call is written by the server in the background: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count_present(
            db,
            "SELECT COUNT(*) FROM consultations WHERE state = 'completed' AND id IN ($LIST)",
            &acked.ended,
        )
        .await;
        if n == acked.ended.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (double,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT expert_id, start_at FROM appointments WHERE status IN ('booked', 'attended')
           GROUP BY expert_id, start_at HAVING COUNT(*) > 1) d",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap_or((-1,));
    out.push(("no expert booked twice for one slot".into(), double == 0, format!("{double} slots booked twice")));
    let (pdouble,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT patient_id, start_at FROM appointments WHERE status IN ('booked', 'attended')
           GROUP BY patient_id, start_at HAVING COUNT(*) > 1) d",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap_or((-1,));
    out.push(("no patient booked twice at one time".into(), pdouble == 0, format!("{pdouble} times booked twice")));
    let mut present = |name: &str, n: usize, of: usize| out.push((name.to_string(), n == of, format!("{n} of {of}")));
    present(
        "every acknowledged consultation request is stored",
        count_present(db, "SELECT COUNT(*) FROM consultations WHERE id IN ($LIST)", &acked.consultations).await,
        acked.consultations.len(),
    );
    present(
        "every acknowledged patient registration is stored",
        count_present(db, "SELECT COUNT(*) FROM patients WHERE id IN ($LIST)", &acked.patients).await,
        acked.patients.len(),
    );
    present(
        "every acknowledged booking is stored",
        count_present(db, "SELECT COUNT(*) FROM appointments WHERE id IN ($LIST)", &acked.appointments).await,
        acked.appointments.len(),
    );
    present(
        "every acknowledged ECG upload is stored",
        count_present(db, "SELECT COUNT(*) FROM files WHERE id IN ($LIST)", &acked.files).await,
        acked.files.len(),
    );
    present(
        "every signed opinion is present and signed",
        count_present(db, "SELECT COUNT(DISTINCT consultation_id) FROM opinions WHERE signed_at IS NOT NULL AND consultation_id IN ($LIST)", &acked.signed)
            .await,
        acked.signed.len(),
    );
    present(
        "every ended call's consultation is completed",
        count_present(
            db,
            "SELECT COUNT(*) FROM consultations WHERE state = 'completed' AND id IN ($LIST)",
            &acked.ended,
        )
        .await,
        acked.ended.len(),
    );
    present(
        "every acknowledged request has its creation audited",
        count_present(
            db,
            "SELECT COUNT(DISTINCT resource_id) FROM audit_events WHERE action = 'create' AND outcome = 'success' AND resource_id IN ($LIST)",
            &acked.consultations,
        )
        .await,
        acked.consultations.len(),
    );
    present(
        "every acknowledged registration has its creation audited",
        count_present(
            db,
            "SELECT COUNT(DISTINCT resource_id) FROM audit_events WHERE action = 'create' AND outcome = 'success' AND resource_id IN ($LIST)",
            &acked.patients,
        )
        .await,
        acked.patients.len(),
    );
    present(
        "every acknowledged upload has its creation audited",
        count_present(
            db,
            "SELECT COUNT(DISTINCT resource_id) FROM audit_events WHERE outcome = 'success' AND resource_id IN ($LIST)",
            &acked.files,
        )
        .await,
        acked.files.len(),
    );
    present(
        "every consultation's join is audited (requester and expert)",
        count_present(
            db,
            "SELECT COUNT(*) FROM (SELECT resource_id FROM audit_events WHERE action = 'join' AND outcome = 'success' AND resource_id IN ($LIST)
               GROUP BY resource_id HAVING COUNT(DISTINCT actor_id) = 2) j",
            &acked.ended,
        )
        .await,
        acked.ended.len(),
    );
    out
}

/// One line of a plot: its points (replayed hour, value), colour and label.
type Line<'a> = (&'a Vec<(f64, f64)>, &'a str, &'a str);

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Report {
    /// A row per histogram, then, with `all`, a row of them all together.
    fn table(h: &BTreeMap<&'static str, Histogram<u64>>, all: bool) -> Vec<Value> {
        let row = |k: &str, v: &Histogram<u64>| json!({"name": k, "count": v.len(), "p50_ms": ms(v.value_at_quantile(0.5)), "p99_ms": ms(v.value_at_quantile(0.99)), "max_ms": ms(v.max())});
        let mut rows: Vec<Value> = h.iter().map(|(k, v)| row(k, v)).collect();
        if all && !h.is_empty() {
            let mut all = histogram();
            for v in h.values() {
                let _ = all.add(v);
            }
            rows.push(row("all", &all));
        }
        rows
    }

    fn mean_max(&self, f: impl Fn(&Sample) -> f64) -> (f64, f64) {
        let n = self.samples.len().max(1) as f64;
        let mean = self.samples.iter().map(&f).sum::<f64>() / n;
        let max = self.samples.iter().map(&f).fold(0.0, f64::max);
        (mean, max)
    }

    pub fn json(&self) -> Value {
        let s = &self.stats;
        let done = s.done.load(Ordering::Relaxed);
        let requests = s.requests.load(Ordering::Relaxed);
        let (scpu, scpu_max) = self.mean_max(|x| x.server_cpu);
        let (pcpu, pcpu_max) = self.mean_max(|x| x.pg_cpu);
        let (tcpu, tcpu_max) = self.mean_max(|x| x.tool_cpu);
        let windows = s.windows.lock().unwrap();
        json!({
            "plan": self.plan,
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "signed_in_before": self.sign_in,
            "consultations": {"scheduled": self.scheduled, "completed": done, "failed": s.failed.load(Ordering::Relaxed)},
            "wall_secs": self.wall_secs,
            "replayed_hours": self.wall_secs * self.plan.speed / 3600.0,
            "throughput": {"consultations_per_s": done as f64 / self.wall_secs, "requests_per_s": requests as f64 / self.wall_secs},
            "operations": Self::table(&s.ops.lock().unwrap(), true),
            "stages": Self::table(&s.stages.lock().unwrap(), false),
            "errors": s.errors(),
            "failed_consultations": s.failures(),
            "resources": {
                "server_cpu_mean": scpu, "server_cpu_max": scpu_max,
                "server_rss_max_kib": self.samples.iter().map(|x| x.server_rss_kib).max().unwrap_or(0),
                "postgres_cpu_mean": pcpu, "postgres_cpu_max": pcpu_max,
                "postgres_rss_max_kib": self.samples.iter().map(|x| x.pg_rss_kib).max().unwrap_or(0),
                "tool_cpu_mean": tcpu, "tool_cpu_max": tcpu_max,
            },
            "database_bytes": self.db_bytes,
            "invariants": self.invariants.iter().map(|(n, ok, d)| json!({"name": n, "holds": ok, "detail": d})).collect::<Vec<_>>(),
            "timeline": windows.iter().enumerate().map(|(i, w)| json!({
                "wall_s": i as f64 * WINDOW_SECS,
                "replayed_hour": self.plan.from_hour + i as f64 * WINDOW_SECS * self.plan.speed / 3600.0,
                "requests_per_s": w.ops as f64 / WINDOW_SECS,
                "errors": w.errors,
                "p50_ms": ms(w.latency.value_at_quantile(0.5)),
                "p99_ms": ms(w.latency.value_at_quantile(0.99)),
                "consultations_done": w.consultations_done,
            })).collect::<Vec<_>>(),
            "samples": self.samples,
        })
    }

    pub fn markdown(&self) -> String {
        let j = self.json();
        let mut m = String::new();
        let p = &self.plan;
        let _ = writeln!(
            m,
            "Replayed {:.2} h of a {}-consultation day from {:05.2} h at {}x: {} scheduled, {} completed, {} failed in {:.0} s wall ({:.2} consultations/s, {:.1} requests/s). Load average before/after: {} / {}.\n",
            self.wall_secs * p.speed / 3600.0,
            p.per_day,
            p.from_hour,
            p.speed,
            self.scheduled,
            j["consultations"]["completed"],
            j["consultations"]["failed"],
            self.wall_secs,
            j["throughput"]["consultations_per_s"].as_f64().unwrap_or(0.0),
            j["throughput"]["requests_per_s"].as_f64().unwrap_or(0.0),
            self.load_before,
            self.load_after,
        );
        if let Some(si) = &self.sign_in {
            let _ = writeln!(
                m,
                "Before the slice, {} accounts signed in ({} failed) in {:.1} s, outside the figures.\n",
                si.accounts, si.failed, si.secs
            );
        }
        for (title, key) in [("operation", "operations"), ("stage", "stages")] {
            let _ = writeln!(m, "| {title} | count | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");
            for r in j[key].as_array().unwrap() {
                let _ = writeln!(
                    m,
                    "| {} | {} | {:.1} | {:.1} | {:.1} |",
                    r["name"].as_str().unwrap_or(""),
                    r["count"],
                    r["p50_ms"].as_f64().unwrap_or(0.0),
                    r["p99_ms"].as_f64().unwrap_or(0.0),
                    r["max_ms"].as_f64().unwrap_or(0.0)
                );
            }
            m.push('\n');
        }
        let r = &j["resources"];
        let _ = writeln!(
            m,
            "| resource | mean | max |\n|---|---|---|\n| server CPU (cores) | {:.2} | {:.2} |\n| PostgreSQL CPU (cores, all processes) | {:.2} | {:.2} |\n| load tool CPU (cores) | {:.2} | {:.2} |\n| server RSS | | {} MiB |\n| PostgreSQL RSS (sum over processes, shared memory counted in each) | | {} MiB |\n| database size at the end | | {} MiB |\n",
            r["server_cpu_mean"].as_f64().unwrap_or(0.0),
            r["server_cpu_max"].as_f64().unwrap_or(0.0),
            r["postgres_cpu_mean"].as_f64().unwrap_or(0.0),
            r["postgres_cpu_max"].as_f64().unwrap_or(0.0),
            r["tool_cpu_mean"].as_f64().unwrap_or(0.0),
            r["tool_cpu_max"].as_f64().unwrap_or(0.0),
            r["server_rss_max_kib"].as_u64().unwrap_or(0) / 1024,
            r["postgres_rss_max_kib"].as_u64().unwrap_or(0) / 1024,
            self.db_bytes / (1024 * 1024)
        );
        let errors = self.stats.errors();
        if errors.is_empty() {
            m.push_str("Errors: none.\n\n");
        } else {
            m.push_str("| error | count |\n|---|---|\n");
            for (k, v) in errors {
                let _ = writeln!(m, "| {k} | {v} |");
            }
            m.push('\n');
        }
        let failures = self.stats.failures();
        if !failures.is_empty() {
            m.push_str("| consultations stopped by | count |\n|---|---|\n");
            for (k, v) in failures {
                let _ = writeln!(m, "| {k} | {v} |");
            }
            m.push('\n');
        }
        m.push_str("| invariant | holds | detail |\n|---|---|---|\n");
        for (n, ok, d) in &self.invariants {
            let _ = writeln!(m, "| {n} | {} | {d} |", if *ok { "yes" } else { "**NO**" });
        }
        m
    }

    /// Requests per second and latency (p50, p99) over the replayed day, hand-written SVG.
    pub fn svg(&self) -> String {
        let j = self.json();
        let t = j["timeline"].as_array().cloned().unwrap_or_default();
        let (w, h, left, top, ph) = (900.0, 520.0, 70.0, 30.0, 190.0);
        let pw = w - left - 30.0;
        let x0 = self.plan.from_hour;
        let x1 = x0 + (t.len().max(1) as f64 * WINDOW_SECS * self.plan.speed / 3600.0).max(1e-6);
        let xs = |hr: f64| left + (hr - x0) / (x1 - x0) * pw;
        let series = |key: &str| {
            t.iter()
                .map(|p| (p["replayed_hour"].as_f64().unwrap_or(0.0), p[key].as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
        };
        let rps = series("requests_per_s");
        let p50 = series("p50_ms");
        let p99 = series("p99_ms");
        let max_rps = rps.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
        let max_ms = p99.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let panel = |s: &mut String, y: f64, title: &str, max: f64, unit: &str, lines: &[Line]| {
            let _ = writeln!(s, r#"<text x="{left}" y="{}" font-weight="bold">{title}</text>"#, y - 8.0);
            let _ = writeln!(s, r##"<rect x="{left}" y="{y}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##);
            for k in 0..=4 {
                let v = max * k as f64 / 4.0;
                let yy = y + ph - ph * k as f64 / 4.0;
                let _ = writeln!(
                    s,
                    r##"<line x1="{left}" x2="{}" y1="{yy}" y2="{yy}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{v:.0} {unit}</text>"##,
                    left + pw,
                    left - 4.0,
                    yy + 4.0
                );
            }
            for (k, (pts, color, label)) in lines.iter().enumerate() {
                let path: Vec<String> =
                    pts.iter().map(|(x, v)| format!("{:.1},{:.1}", xs(*x), y + ph - (v / max).min(1.0) * ph)).collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                    path.join(" ")
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{}" fill="{color}">{label}</text>"#,
                    left + pw - 120.0,
                    y + 16.0 + 14.0 * k as f64
                );
            }
        };
        panel(
            &mut s,
            top,
            "Throughput (API requests per second, 10 s windows)",
            max_rps,
            "/s",
            &[(&rps, "#1f77b4", "requests/s")],
        );
        panel(
            &mut s,
            top + ph + 50.0,
            "Latency from the due time (all API operations)",
            max_ms,
            "ms",
            &[(&p50, "#2ca02c", "p50"), (&p99, "#d62728", "p99")],
        );
        let axis_y = top + 2.0 * ph + 50.0;
        let steps = 6;
        for k in 0..=steps {
            let hr = x0 + (x1 - x0) * k as f64 / steps as f64;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{:02}:{:02}</text>"#,
                xs(hr),
                axis_y + 16.0,
                hr as u32 % 24,
                (hr.fract() * 60.0) as u32
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">replayed time of day ({}x)</text>"#,
            left + pw / 2.0,
            axis_y + 34.0,
            self.plan.speed
        );
        s.push_str("</svg>\n");
        s
    }
}
