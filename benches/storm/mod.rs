//! `--mode storm`: a reconnect storm. The tool starts the server itself (`--spawn "command"`,
//! run with `sh -c "exec command"`, so it can signal and restart it), makes `--participants`
//! participants in rooms of three (Dr. Li, Dr. Wang, patient Zhang; Zhang admitted by Dr. Li
//! in every other room and left waiting in the lobby in the others), then restarts the server
//! twice: gracefully (SIGTERM) and killed (SIGKILL), each time starting it again at once (as a
//! supervisor would). Every participant reconnects as the web client does
//! (`web-client/js/call/signaling.js`): exponential backoff with full jitter (base 250 ms, cap
//! 8 s, the policy of `web-client/js/call/backoff.js`), first resuming with its resume token,
//! and when the server answers 4004 (it no longer knows the token) joining again at once.
//!
//! Reported per restart: the time from the signal until 50/90/99/100 % of the participants
//! are back (`joined` or `resumed`), how many are not back within `--duration` seconds, and
//! how many lost their admission state (an admitted patient back in the lobby, a waiting one
//! admitted, a doctor not in the room), with the server's downtime (signal until `/readyz`
//! answers again), the attempts made, and the machine's load.

use super::{cpu_secs, load_average, login, make_rooms, ws_config, Options};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use teleconsult::db::Db;
use tokio_tungstenite::tungstenite::Message;

type Ws = super::Ws;

/// Exponential backoff with full jitter: the policy of `web-client/js/call/backoff.js`.
const BASE_MS: f64 = 250.0;
const CAP_MS: f64 = 8000.0;

fn backoff(attempt: u32) -> Duration {
    let ceiling = CAP_MS.min(BASE_MS * 2f64.powi(attempt.min(30) as i32));
    Duration::from_millis((rand::random::<f64>() * ceiling) as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Doctor,
    AdmittedPatient,
    WaitingPatient,
}

/// What the clients report when they are back after a restart.
#[derive(Default)]
struct Returns {
    /// (time since the signal, admission state kept)
    back: Vec<(Duration, bool)>,
}

struct Shared {
    server: String,
    ws_base: String,
    http: reqwest::Client,
    /// The restart in progress: its number and when its signal was sent.
    restart: Mutex<(u32, Instant)>,
    returns: Mutex<Returns>,
    attempts: AtomicU64,
    join_failures: AtomicU64,
    /// Comebacks by a resume, and resumes refused with 4004 (then joined again).
    resumed: AtomicU64,
    refused: AtomicU64,
    /// Why joins failed during the restart in progress, with counts.
    failures: Mutex<std::collections::BTreeMap<String, u64>>,
}

fn spawn_server(cmd: &str) -> Child {
    Command::new("sh").arg("-c").arg(format!("exec {cmd}")).spawn().expect("--spawn command starts")
}

async fn wait_ready(http: &reqwest::Client, server: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{server}/readyz")).timeout(Duration::from_secs(2)).send().await {
            if r.status() == 200 {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Reads until `joined`/`resumed` (its `admitted` flag and resume token), or the close code.
async fn first_answer(ws: &mut Ws) -> Result<(bool, String, String), u16> {
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    if v["type"] == "joined" || v["type"] == "resumed" {
                        return Ok((
                            v["admitted"].as_bool().unwrap_or(false),
                            v["resume_token"].as_str().unwrap_or_default().to_string(),
                            v["you"]["id"].as_str().unwrap_or_default().to_string(),
                        ));
                    }
                }
                Ok(Message::Close(f)) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), async { while ws.next().await.is_some() {} })
                        .await;
                    return Err(f.map(|f| u16::from(f.code)).unwrap_or(1005));
                }
                Ok(_) => {}
                Err(_) => return Err(1006),
            }
        }
        Err(1006)
    })
    .await;
    answer.unwrap_or(Err(1006))
}

async fn connect(url: &str) -> Option<Ws> {
    let c = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true);
    match tokio::time::timeout(Duration::from_secs(30), c).await {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

/// POST join and the WebSocket with the ticket, until `joined`.
async fn join(s: &Shared, token: &str, room: &str) -> Result<(Ws, bool, String, String), String> {
    let resp = s
        .http
        .post(format!("{}/api/v1/consultations/{room}/join", s.server))
        .bearer_auth(token)
        .json(&json!({}))
        // A browser's fetch waits as long as the server takes; a join given up early would
        // still be carried out by the server, and tried again: work thrown away in a storm.
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| format!("join: {e}"))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.map_err(|e| format!("join body: {e}"))?;
    let url = body["ws_url"].as_str().ok_or_else(|| format!("join refused: {status} {body}"))?;
    let mut ws = connect(url).await.ok_or("websocket connect")?;
    match first_answer(&mut ws).await {
        Ok((admitted, token, id)) => Ok((ws, admitted, token, id)),
        Err(code) => Err(format!("closed {code} before joined")),
    }
}

/// One participant: holds its socket (answering pings), and whenever it drops, comes back as
/// the web client does, then reports how long that took and where it came back to.
async fn participant(s: Arc<Shared>, token: String, room: String, who: Who, mut ws: Ws, mut resume: String) {
    let mut reported = 0;
    loop {
        // Connected: read until the socket ends.
        let mut code = 1006;
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(f)) => {
                    code = f.map(|f| u16::from(f.code)).unwrap_or(1005);
                    // Answer the close as a browser does (the reply goes out on the next read).
                    let _ = tokio::time::timeout(Duration::from_secs(1), async { while ws.next().await.is_some() {} })
                        .await;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        drop(ws);
        // Lost: come back with backoff, resuming first; once the server says it does not know
        // the resume token (4004), joining (at once, then with backoff if a join fails).
        let mut attempt = 0u32;
        let mut joining = code == 4004 || code == 4001 || resume.is_empty();
        let mut now = code == 4004;
        let (admitted, new_ws, new_resume) = loop {
            if !now {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            now = false;
            s.attempts.fetch_add(1, Ordering::Relaxed);
            if !joining {
                let url = format!("{}/api/v1/rtc?resume={resume}", s.ws_base);
                let Some(mut w) = connect(&url).await else {
                    *s.failures
                        .lock()
                        .unwrap()
                        .entry("resume: no WebSocket (connection refused, or none within 30 s)".into())
                        .or_default() += 1;
                    continue;
                };
                match first_answer(&mut w).await {
                    Ok((admitted, token, _)) => {
                        s.resumed.fetch_add(1, Ordering::Relaxed);
                        break (admitted, w, token);
                    }
                    Err(4004) => {
                        s.refused.fetch_add(1, Ordering::Relaxed);
                        (joining, now) = (true, true)
                    }
                    Err(code) => *s.failures.lock().unwrap().entry(format!("resume: closed {code}")).or_default() += 1,
                }
                continue;
            }
            match join(&s, &token, &room).await {
                Ok((w, admitted, token, _)) => break (admitted, w, token),
                Err(e) => {
                    s.join_failures.fetch_add(1, Ordering::Relaxed);
                    // Without the consultation's id, so that alike failures count together.
                    let key: String = e.replace(&room, "{id}").chars().take(160).collect();
                    *s.failures.lock().unwrap().entry(key).or_default() += 1;
                }
            }
        };
        let (restart, signalled) = *s.restart.lock().unwrap();
        let kept = match who {
            Who::Doctor | Who::AdmittedPatient => admitted,
            Who::WaitingPatient => !admitted,
        };
        // Once per restart: a participant dropped again on its way back counts when first back.
        if restart != reported {
            reported = restart;
            s.returns.lock().unwrap().back.push((signalled.elapsed(), kept));
        }
        ws = new_ws;
        resume = new_resume;
    }
}

/// Joins one room's three participants; Dr. Li admits Zhang when `admit`.
async fn setup_room(
    s: &Shared,
    tokens: &[String; 3],
    room: &str,
    admit: bool,
) -> Result<Vec<(Who, Ws, String)>, String> {
    let (mut li, _, li_resume, _) = join(s, &tokens[0], room).await?;
    let (wang, _, wang_resume, _) = join(s, &tokens[1], room).await?;
    let (mut zhang, admitted, zhang_resume, zhang_id) = join(s, &tokens[2], room).await?;
    if admitted {
        return Err("a fresh patient skipped the lobby".into());
    }
    if admit {
        li.send(Message::Text(json!({"type": "admit", "peer": zhang_id}).to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
        let told = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(Ok(m)) = zhang.next().await {
                if let Message::Text(t) = m {
                    if t.as_str().contains(r#""status":"admitted""#) {
                        return true;
                    }
                }
            }
            false
        })
        .await;
        if !matches!(told, Ok(true)) {
            return Err("the admission did not arrive".into());
        }
    }
    let patient = if admit { Who::AdmittedPatient } else { Who::WaitingPatient };
    Ok(vec![(Who::Doctor, li, li_resume), (Who::Doctor, wang, wang_resume), (patient, zhang, zhang_resume)])
}

fn secs(d: u64) -> String {
    format!("{:.2} s", d as f64 / 1e6)
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, sig).expect("signal the server");
}

async fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

async fn admitted_rows(db: &Db) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM room_events e JOIN consultations c ON c.id = e.consultation_id
          WHERE c.reason = 'load test' AND e.kind = 'admitted'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    n
}

pub async fn run(o: &Options) {
    let cmd = o.spawn.clone().expect("--mode storm needs --spawn \"server command\"");
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let mut child = spawn_server(&cmd);
    assert!(wait_ready(&http, &o.server, Duration::from_secs(120)).await, "the server did not start");
    let db = Db::connect(&o.db).await.expect("database");
    let rooms = make_rooms(&db, o.participants.div_ceil(3), true).await;
    let tokens: Arc<[String; 3]> = Arc::new([
        login(&http, &o.server, "dr.li").await,
        login(&http, &o.server, "dr.wang").await,
        login(&http, &o.server, "patient.zhang").await,
    ]);
    let s = Arc::new(Shared {
        server: o.server.clone(),
        ws_base: o.server.replacen("http", "ws", 1),
        http,
        restart: Mutex::new((0, Instant::now())),
        returns: Mutex::default(),
        attempts: AtomicU64::new(0),
        join_failures: AtomicU64::new(0),
        resumed: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failures: Mutex::default(),
    });
    let total = rooms.len() * 3;
    let admitted_before = admitted_rows(&db).await;
    println!("{} rooms made; joining {total} participants, Zhang admitted in every other room", rooms.len());
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rooms = Arc::new(rooms);
    let workers: Vec<_> = (0..(o.concurrency / 3).max(1))
        .map(|_| {
            let (s, next, rooms, tokens) = (s.clone(), next.clone(), rooms.clone(), tokens.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= rooms.len() {
                        return;
                    }
                    let members = setup_room(&s, &tokens, &rooms[i], i % 2 == 0)
                        .await
                        .unwrap_or_else(|e| panic!("room {i}: {e}"));
                    for (k, (who, ws, resume)) in members.into_iter().enumerate() {
                        tokio::spawn(participant(s.clone(), tokens[k].clone(), rooms[i].clone(), who, ws, resume));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("setup worker");
    }
    let admitted_rooms = rooms.len().div_ceil(2) as i64;
    println!("{total} participants joined in {:.1} s", started.elapsed().as_secs_f64());
    // Admissions are recorded by the server's recorder shortly after they happen.
    let deadline = Instant::now() + Duration::from_secs(30);
    while admitted_rows(&db).await - admitted_before < admitted_rooms && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{} admissions on the rooms' timelines", admitted_rows(&db).await - admitted_before);
    drop(db);
    tokio::time::sleep(Duration::from_secs(2)).await;

    for (n, (how, sig)) in [
        ("graceful (SIGTERM)", nix::sys::signal::Signal::SIGTERM),
        ("kill -9 (SIGKILL)", nix::sys::signal::Signal::SIGKILL),
    ]
    .into_iter()
    .enumerate()
    {
        let load = load_average();
        let attempts0 = s.attempts.load(Ordering::Relaxed);
        let failures0 = s.join_failures.load(Ordering::Relaxed);
        let resumed0 = s.resumed.load(Ordering::Relaxed);
        let refused0 = s.refused.load(Ordering::Relaxed);
        let own0 = cpu_secs(std::process::id());
        s.returns.lock().unwrap().back.clear();
        *s.restart.lock().unwrap() = (n as u32 + 1, Instant::now());
        let t0 = Instant::now();
        signal(&child, sig);
        assert!(wait_exit(&mut child, Duration::from_secs(60)).await, "the server did not exit within 60 s");
        let exited = t0.elapsed();
        child = spawn_server(&cmd);
        assert!(wait_ready(&s.http, &o.server, Duration::from_secs(120)).await, "the server did not start again");
        let ready = t0.elapsed();
        loop {
            let back = s.returns.lock().unwrap().back.len();
            if back >= total || t0.elapsed() >= Duration::from_secs(o.duration) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let within = t0.elapsed();
        let r = std::mem::take(&mut s.returns.lock().unwrap().back);
        let mut times: Vec<u64> = r.iter().map(|(d, _)| d.as_micros() as u64).collect();
        times.sort_unstable();
        let lost = r.iter().filter(|(_, kept)| !kept).count();
        let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        for t in &times {
            let _ = hist.record((*t).max(1));
        }
        println!("--- restart {}: {how}; load average at the signal: {load}", n + 1);
        println!(
            "server exited {:.2} s after the signal, answered /readyz again {:.2} s after it",
            exited.as_secs_f64(),
            ready.as_secs_f64()
        );
        println!(
            "back (joined or resumed): {} of {total} within {:.1} s; not back: {}",
            r.len(),
            within.as_secs_f64(),
            total - r.len().min(total)
        );
        println!(
            "time from the signal until back: 50 % {}, 90 % {}, 99 % {}, 100 % {}",
            secs(quantile(&times, 0.5)),
            secs(quantile(&times, 0.9)),
            secs(quantile(&times, 0.99)),
            secs(times.last().copied().unwrap_or(0))
        );
        println!(
            "admission state lost: {lost} (admitted patients back in the lobby, waiting ones admitted, doctors outside)"
        );
        println!(
            "attempts: {} ({} joins failed and were retried); load tool CPU {:.1} s",
            s.attempts.load(Ordering::Relaxed) - attempts0,
            s.join_failures.load(Ordering::Relaxed) - failures0,
            cpu_secs(std::process::id()) - own0
        );
        println!(
            "resumed: {}; resumes refused with 4004 (joined again): {}",
            s.resumed.load(Ordering::Relaxed) - resumed0,
            s.refused.load(Ordering::Relaxed) - refused0
        );
        for (why, n) in std::mem::take(&mut *s.failures.lock().unwrap()) {
            println!("  failed {n} times: {why}");
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let _ = wait_exit(&mut child, Duration::from_secs(30)).await;
}
