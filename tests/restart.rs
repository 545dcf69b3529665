//! A server restart in the middle of calls, with the real server process (the `teleconsult`
//! binary), on SQLite and PostgreSQL: stopped gracefully (SIGTERM) and killed (SIGKILL), then
//! started again on the same port and data. The rooms were in memory, but the seats are
//! stored: every participant resumes with its resume token (no `4004`, no new join) and is
//! where it was: a patient whom a doctor had admitted is back in the room without being
//! admitted again, and a patient who was waiting is back in the lobby. A seat does not come
//! back for a removed patient, a deactivated account, or someone who no longer takes part.

mod common;
mod rtc;

use common::{services_required, PgDatabase};
use rtc::Signaler;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    database_url: String,
    base: String,
}

impl Server {
    async fn start(data_dir: PathBuf, database_url: String) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Server { child: None, port, base: format!("http://127.0.0.1:{port}"), data_dir, database_url };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_teleconsult"))
            .arg("--demo")
            .env("TELECONSULT_BIND", format!("127.0.0.1:{}", self.port))
            .env("TELECONSULT_DATA_DIR", &self.data_dir)
            .env("TELECONSULT_DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the server did not become ready within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process: SIGTERM (graceful) or SIGKILL; waits until it has exited.
    async fn stop(&mut self, graceful: bool) {
        let mut child = self.child.take().expect("running");
        if graceful {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        } else {
            child.kill().expect("SIGKILL");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "the server did not exit within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn login(&self, username: &str) -> String {
        let v: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"username": username, "password": "demo-password"}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        v["access_token"].as_str().unwrap_or_else(|| panic!("login of {username}: {v}")).to_string()
    }

    /// POST join and open the WebSocket with the ticket.
    async fn join(&self, token: &str, consultation: &str) -> Signaler {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/consultations/{consultation}/join", self.base))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
            .expect("join");
        assert_eq!(r.status(), 200, "join");
        let body: Value = r.json().await.unwrap();
        Signaler::open(body["ws_url"].as_str().unwrap()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A scheduled consultation of Dr. Li (requester), Dr. Wang (expert) and patient Zhang, made
/// in the database as a booked one would be.
async fn consultation(db: &sqlx::AnyPool) -> String {
    let one = |sql: &'static str| async move {
        let (v,): (String,) = sqlx::query_as(sql).fetch_one(db).await.unwrap();
        v
    };
    let li = one("SELECT id FROM users WHERE username = 'dr.li'").await;
    let li_org = one("SELECT organisation_id FROM users WHERE username = 'dr.li'").await;
    let wang = one("SELECT id FROM users WHERE username = 'dr.wang'").await;
    let zhang = one("SELECT id FROM users WHERE username = 'patient.zhang'").await;
    let patient =
        one("SELECT id FROM patients WHERE user_id = (SELECT id FROM users WHERE username = 'patient.zhang')").await;
    let id = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    sqlx::query(
        "INSERT INTO consultations (id, patient_id, requesting_organisation_id, requested_by, reason, record_summary,
           specialty, min_title, urgency, mode, addressee_kind, state, assigned_expert_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, '胸闷', '', 'cardiology', 'attending', 'urgent', 'video', 'expert', 'scheduled', $5, $6, $6)",
    )
    .bind(&id)
    .bind(&patient)
    .bind(&li_org)
    .bind(&li)
    .bind(&wang)
    .bind(&now)
    .execute(db)
    .await
    .unwrap();
    for (user, role, status) in
        [(&li, "requester", "active"), (&wang, "expert", "accepted"), (&zhang, "patient", "invited")]
    {
        sqlx::query(
            "INSERT INTO consultation_participants (consultation_id, user_id, role, status, reason, added_at)
             VALUES ($1, $2, $3, $4, '', $5)",
        )
        .bind(&id)
        .bind(user)
        .bind(role)
        .bind(status)
        .bind(&now)
        .execute(db)
        .await
        .unwrap();
    }
    id
}

/// Zhang's place after joining `room` again: `joined` says whether it is admitted; a waiting
/// patient also hears `lobby`/`waiting`. With the resume token `joined` handed out.
async fn place_after_rejoin(server: &Server, token: &str, room: &str) -> (bool, Signaler, String) {
    let mut s = server.join(token, room).await;
    let joined = s.expect("joined").await;
    let admitted = joined["admitted"].as_bool().expect("admitted flag");
    if !admitted {
        assert_eq!(s.expect("lobby").await["status"], "waiting");
    }
    (admitted, s, resume_token(&joined))
}

fn resume_token(joined_or_resumed: &Value) -> String {
    joined_or_resumed["resume_token"].as_str().expect("a resume token").to_string()
}

/// Opens the WebSocket with a resume token, as the client does after losing its socket.
async fn open_resume(server: &Server, token: &str) -> Signaler {
    Signaler::open(&format!("ws://127.0.0.1:{}/api/v1/rtc?resume={token}", server.port)).await
}

/// A participant's seat as it came back: `resumed`, with the socket.
struct Back {
    resumed: Value,
    socket: Signaler,
}

async fn resume(server: &Server, token: &str) -> Back {
    let mut socket = open_resume(server, token).await;
    let resumed = socket.expect("resumed").await;
    Back { resumed, socket }
}

async fn seats_survive_restarts(database_url: String, data_dir: PathBuf) {
    let mut server = Server::start(data_dir.clone(), database_url.clone()).await;
    let db_url = if database_url.is_empty() {
        format!("sqlite://{}/teleconsult.db", data_dir.display())
    } else {
        database_url.clone()
    };
    let store = teleconsult::db::Db::connect(&db_url).await.expect("the server's database");
    let db = store.pool.clone();
    let admitted_room = consultation(&db).await;
    let waiting_room = consultation(&db).await;

    let li = server.login("dr.li").await;
    let wang = server.login("dr.wang").await;
    let zhang = server.login("patient.zhang").await;
    let mut li_a = server.join(&li, &admitted_room).await;
    let joined = li_a.expect("joined").await;
    let li_id = joined["you"]["id"].as_str().unwrap().to_string();
    let mut li_a_token = resume_token(&joined);
    let mut wang_a = server.join(&wang, &admitted_room).await;
    let joined = wang_a.expect("joined").await;
    assert_eq!(joined["admitted"], true);
    let mut wang_a_token = resume_token(&joined);
    let mut li_w = server.join(&li, &waiting_room).await;
    let mut li_w_token = resume_token(&li_w.expect("joined").await);

    // Zhang waits in both lobbies; Dr. Li admits Zhang to the first room only.
    let (admitted, mut zhang_a, mut zhang_a_token) = place_after_rejoin(&server, &zhang, &admitted_room).await;
    assert!(!admitted, "a patient's first join waits in the lobby");
    let (admitted, mut zhang_w, mut zhang_w_token) = place_after_rejoin(&server, &zhang, &waiting_room).await;
    assert!(!admitted);
    let zhang_id = li_a.expect("lobby").await["participant"]["id"].as_str().unwrap().to_string();
    li_a.send(json!({"type": "admit", "peer": zhang_id}));
    assert_eq!(zhang_a.expect("lobby").await["status"], "admitted");
    zhang_a.expect("peer-joined").await;

    // Killed first, the moment Zhang is told of the admission: it was kept before that.
    for graceful in [false, true] {
        let how = if graceful { "SIGTERM" } else { "SIGKILL" };
        server.stop(graceful).await;
        if graceful {
            // Told to go away (and come back), not just cut off.
            for s in [&mut li_a, &mut wang_a, &mut zhang_a, &mut li_w, &mut zhang_w] {
                assert_eq!(s.closed().await, 1001, "a graceful stop closes the signaling with 1001");
            }
        } else {
            for s in [&mut li_a, &mut wang_a, &mut zhang_a, &mut li_w, &mut zhang_w] {
                assert_eq!(s.closed().await, 1006, "a killed server just drops the sockets");
            }
        }
        server.spawn().await;

        // A token the server never handed out is still refused.
        let mut unknown = open_resume(&server, &format!("{admitted_room}.{}", "x".repeat(43))).await;
        assert_eq!(unknown.closed().await, 4004);

        // The seats survive the restart: every participant resumes with its token (no 4004,
        // no new join), keeps its participant id, and is where it was.
        let back = resume(&server, &li_a_token).await;
        assert_eq!(back.resumed["admitted"], true, "after a {how} restart Dr. Li resumes into the room");
        assert_eq!(back.resumed["you"]["id"], li_id.as_str(), "with the same participant id");
        (li_a, li_a_token) = (back.socket, resume_token(&back.resumed));
        let used = wang_a_token.clone();
        let back = resume(&server, &wang_a_token).await;
        assert_eq!(back.resumed["admitted"], true);
        assert_eq!(back.resumed["peers"][0]["id"], li_id.as_str(), "and meets Dr. Li again");
        (wang_a, wang_a_token) = (back.socket, resume_token(&back.resumed));
        assert_eq!(li_a.expect("peer-joined").await["peer"]["role"], "expert");
        let back = resume(&server, &li_w_token).await;
        (li_w, li_w_token) = (back.socket, resume_token(&back.resumed));

        let mut back = resume(&server, &zhang_a_token).await;
        assert_eq!(
            back.resumed["admitted"], true,
            "after a {how} restart the admitted patient resumes into the room without being admitted again"
        );
        assert_eq!(back.resumed["restart_ice"], true);
        if let Some(next) = back.socket.quiet_for(Duration::from_millis(300)).await {
            assert_ne!(next["type"], "lobby", "and is not sent to the lobby: {next}");
        }
        (zhang_a, zhang_a_token) = (back.socket, resume_token(&back.resumed));
        let mut back = resume(&server, &zhang_w_token).await;
        assert_eq!(back.resumed["admitted"], false, "after a {how} restart the waiting patient resumes into the lobby");
        assert_eq!(back.socket.expect("lobby").await["status"], "waiting");
        (zhang_w, zhang_w_token) = (back.socket, resume_token(&back.resumed));
        assert_eq!(li_w.expect("lobby").await["status"], "waiting", "and the doctor sees it waiting");

        // A resume token is used once, across the restart too.
        let mut again = open_resume(&server, &used).await;
        assert_eq!(again.closed().await, 4004, "a resume token of before the {how} restart is used up by its resume");
    }

    // A removal is remembered: removed, restarted, Zhang's seat is gone (4004) and Zhang
    // joins again into the lobby.
    let zhang_id = loop {
        let met = li_a.expect("peer-joined").await;
        if met["peer"]["role"] == "patient" {
            break met["peer"]["id"].as_str().unwrap().to_string();
        }
    };
    li_a.send(json!({"type": "remove", "peer": zhang_id}));
    assert_eq!(zhang_a.closed().await, 4010);

    // Killed the moment Zhang is told (the removal was kept before that). While the server is down, Dr. Wang's account is deactivated and Zhang no longer takes
    // part in the second consultation: their seats do not come back.
    server.stop(false).await;
    sqlx::query("UPDATE users SET active = 0 WHERE username = 'dr.wang'").execute(&db).await.unwrap();
    sqlx::query(
        "UPDATE consultation_participants SET status = 'declined'
          WHERE consultation_id = $1 AND user_id = (SELECT id FROM users WHERE username = 'patient.zhang')",
    )
    .bind(&waiting_room)
    .execute(&db)
    .await
    .unwrap();
    server.spawn().await;
    let mut s = open_resume(&server, &zhang_a_token).await;
    assert_eq!(s.closed().await, 4004, "the seat of a removed patient does not come back");
    let mut s = open_resume(&server, &wang_a_token).await;
    assert_eq!(s.closed().await, 4005, "a deactivated account cannot resume");
    let mut s = open_resume(&server, &zhang_w_token).await;
    assert_eq!(s.closed().await, 4003, "a participant no longer taking part cannot resume");
    let back = resume(&server, &li_a_token).await;
    assert_eq!(back.resumed["admitted"], true, "the others resume as before");
    let _ = li_w_token;
    let (admitted, _z, _) = place_after_rejoin(&server, &zhang, &admitted_room).await;
    assert!(!admitted, "a removed patient waits in the lobby after a restart");

    // Dr. Li is signed out everywhere while the server is down (the account's tokens end, as a
    // password reset or a role change ends them): the seat ends with them.
    let li_token = resume_token(&back.resumed);
    drop(back);
    server.stop(false).await;
    sqlx::query("UPDATE users SET token_generation = token_generation + 1 WHERE username = 'dr.li'")
        .execute(&db)
        .await
        .unwrap();
    server.spawn().await;
    let mut s = open_resume(&server, &li_token).await;
    assert_eq!(s.closed().await, 4005, "a seat does not outlive the account's tokens");
    drop(store);
    db.close().await;
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("tc-restart-{}", uuid::Uuid::new_v4()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_survive_a_restart_on_sqlite() {
    seats_survive_restarts(String::new(), temp_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seats_survive_a_restart_on_postgres() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL").map(|u| u.trim().to_string()) else {
        assert!(!services_required(), "TELECONSULT_REQUIRE_SERVICES is set but TEST_DATABASE_URL is not");
        eprintln!("skipping the PostgreSQL run: TEST_DATABASE_URL is not set");
        return;
    };
    if url.is_empty() {
        assert!(!services_required(), "TELECONSULT_REQUIRE_SERVICES is set but TEST_DATABASE_URL is empty");
        return;
    }
    let pg = PgDatabase::create(&url).await;
    seats_survive_restarts(pg.url.clone(), temp_dir()).await;
}
