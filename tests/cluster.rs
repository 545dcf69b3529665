//! Several server instances serving the same rooms over NATS: two instances in this process
//! share one fresh PostgreSQL database (`TEST_DATABASE_URL`) and the NATS server at
//! `TEST_NATS_URL` (default `nats://127.0.0.1:4222`, with JetStream). A WebRTC peer signalling
//! through instance A and one through instance B meet in one room, connect and exchange
//! data-channel messages; chat, presence and the lobby cross instances; a participant whose
//! socket dropped resumes on the OTHER instance and the call renegotiates; what is stored
//! (timeline, chat, the consultation start) is stored once, and the resumed participant gets
//! a TURN credential minted by the instance it resumed on. A chat line sent while NATS is
//! stopped arrives, once, when a restarted NATS is back. A notification made on one instance
//! reaches the user's live stream on the other, once. A vital-sign reading posted on one
//! instance reaches the call held on the other. A signaling ticket handed out by one instance
//! is used once, on either. An unreachable NATS stops start-up.
//!
//! Without PostgreSQL or NATS the test is skipped, unless TELECONSULT_REQUIRE_SERVICES=1,
//! where it fails.

mod common;
mod rtc;

use common::{services_required, Backend, PgDatabase, TestApp};
use rtc::{exchange, pump_until_other, restart_ice_and_exchange, scheduled_consultation, Peer, Signaler, WAIT};
use serde_json::{json, Value};
use std::time::Duration;

/// The instances hand out TURN credentials (no relay is needed to check them).
const TURN_SECRET: &str = "cluster-test-turn-secret";

fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "nats://127.0.0.1:4222".into())
}

async fn reachable(url: &str) -> bool {
    let hostport = url.split("://").nth(1).unwrap_or(url).rsplit('@').next().unwrap_or_default().to_string();
    matches!(tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(hostport)).await, Ok(Ok(_)))
}

/// Instances A and B on one fresh database and NATS; `None` (skipped) when a service is
/// missing and services are not required.
async fn cluster() -> Option<(TestApp, TestApp)> {
    cluster_on(nats_url()).await
}

async fn cluster_on(nats: String) -> Option<(TestApp, TestApp)> {
    let db = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty());
    let Some(db) = db else {
        assert!(!services_required(), "TELECONSULT_REQUIRE_SERVICES is set but TEST_DATABASE_URL is not");
        eprintln!("skipping the cluster test: TEST_DATABASE_URL is not set");
        return None;
    };
    if !reachable(&nats).await {
        assert!(!services_required(), "TELECONSULT_REQUIRE_SERVICES is set but NATS at {nats} is unreachable");
        eprintln!("skipping the cluster test: NATS at {nats} is unreachable");
        return None;
    }
    let pg = PgDatabase::create(&db).await;
    let url = pg.url.clone();
    let nats_a = nats.clone();
    let turn = |c: &mut teleconsult::config::Config| {
        c.turn_urls = vec!["turn:127.0.0.1:3478".into()];
        c.turn_secret = TURN_SECRET.into();
    };
    let a = TestApp::spawn_with(Backend::Postgres, Some(pg), |c| {
        c.nats_url = nats_a;
        turn(c);
    })
    .await;
    let b = TestApp::spawn_with(Backend::Postgres, None, |c| {
        c.database_url = url;
        c.nats_url = nats;
        turn(c);
    })
    .await;
    Some((a, b))
}

async fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).bind(id).fetch_one(&app.state.db.pool).await.unwrap();
    n
}

/// Waits until `sql` counts at least `n`, then lets any duplicate writes land and returns
/// the count.
async fn settled_count(app: &TestApp, sql: &str, id: &str, n: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    while count(app, sql, id).await < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    count(app, sql, id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_on_two_instances_share_a_room_and_resume_across_them() {
    let Some((a, b)) = cluster().await else { return };
    let id = scheduled_consultation(&a).await;

    // Li enters on A; Wang on B, whose first connection to the room fetches its state.
    let mut li = Signaler::join(&a, "dr.li", &id).await;
    let joined_li = li.expect("joined").await;
    let li_id = joined_li["you"]["id"].as_str().unwrap().to_string();
    let mut wang = Signaler::join(&b, "dr.wang", &id).await;
    let joined_wang = wang.expect("joined").await;
    let wang_id = joined_wang["you"]["id"].as_str().unwrap().to_string();
    assert_eq!(joined_wang["peers"][0]["id"], li_id.as_str(), "B knows who is in the room on A: {joined_wang}");
    assert_eq!(joined_wang["peers"][0]["polite"], true, "the later arrival is polite");
    let resume_token = joined_wang["resume_token"].as_str().unwrap().to_string();
    let peer_joined = li.expect("peer-joined").await;
    assert_eq!(peer_joined["peer"]["id"], wang_id.as_str());
    assert_eq!(peer_joined["peer"]["polite"], false);

    // Both sides are in the room: the consultation starts, once.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, c) = a.get(&format!("/api/v1/consultations/{id}"), &a.login("dr.li").await).await;
        if c["state"] == "in_progress" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "consultation never moved to in_progress: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Real WebRTC across the instances.
    let peer_li = Peer::new(&li, &wang_id).await;
    let peer_wang = Peer::new(&wang, &li_id).await;
    let first_offer = peer_li.offer(false).await;
    let exchanged = exchange(&mut li, &peer_li, &mut wang, &peer_wang, "心电图已上传", "收到，正在看").await;
    assert_eq!(exchanged, ("心电图已上传".to_string(), "收到，正在看".to_string()));

    // Chat both ways, each echoed to its sender and seen on the other instance; media state.
    li.send(json!({"type": "chat", "text": "请看 V2-V4 导联"}));
    let chat = wang.expect("chat").await;
    assert_eq!((chat["text"].as_str(), chat["from"].as_str()), (Some("请看 V2-V4 导联"), Some(li_id.as_str())));
    assert_eq!(li.expect("chat").await["id"], chat["id"]);
    wang.send(json!({"type": "chat", "text": "ST 段压低，建议复查"}));
    assert_eq!(li.expect("chat").await["from"], wang_id.as_str());
    assert_eq!(wang.expect("chat").await["text"], "ST 段压低，建议复查");
    wang.send(json!({"type": "media", "mic": true, "camera": false, "screen": true}));
    let media = li.expect("media").await;
    assert_eq!((media["from"].as_str(), media["screen"].as_bool()), (Some(wang_id.as_str()), Some(true)));

    // The patient waits in the lobby on B; Li admits her from A; everyone meets her.
    let mut zhang = Signaler::join(&b, "patient.zhang", &id).await;
    assert_eq!(zhang.expect("joined").await["admitted"], false);
    assert_eq!(zhang.expect("lobby").await["status"], "waiting");
    let waiting = li.expect("lobby").await;
    assert_eq!(waiting["status"], "waiting");
    let zhang_id = waiting["participant"]["id"].as_str().unwrap().to_string();
    assert_eq!(wang.expect("lobby").await["participant"]["id"], zhang_id.as_str());
    li.send(json!({"type": "admit", "peer": zhang_id}));
    assert_eq!(zhang.expect("lobby").await["status"], "admitted");
    let met: Vec<String> = [zhang.expect("peer-joined").await, zhang.expect("peer-joined").await]
        .iter()
        .map(|p| p["peer"]["id"].as_str().unwrap().to_string())
        .collect();
    assert!(met.contains(&li_id) && met.contains(&wang_id), "{met:?}");
    assert_eq!(li.expect("peer-joined").await["peer"]["id"], zhang_id.as_str());
    assert_eq!(wang.expect("peer-joined").await["peer"]["id"], zhang_id.as_str());
    zhang.send(json!({"type": "leave"}));
    assert_eq!(li.expect("peer-left").await["peer"], zhang_id.as_str());
    assert_eq!(wang.expect("peer-left").await["peer"], zhang_id.as_str());

    // Wang's network drops on B; Li (on A) sees it and writes to him meanwhile.
    wang.drop_socket();
    let reconnecting = li.expect("peer-reconnecting").await;
    assert_eq!(reconnecting["peer"], wang_id.as_str());
    li.send(json!({"type": "chat", "text": "网络断了吗？"}));
    li.expect("chat").await;

    // Wang resumes on A, the other instance: same id, the chat replayed, ICE restarted.
    let mut wang = Signaler::open(&format!("ws://{}/api/v1/rtc?resume={resume_token}", a.addr)).await;
    *peer_wang.out.lock().unwrap() = wang.sender();
    let resumed = wang.expect("resumed").await;
    assert_eq!(resumed["you"]["id"], wang_id.as_str());
    assert_eq!(resumed["you"]["media"]["screen"], true, "his media state came along");
    assert_eq!((resumed["replayed"].as_u64(), resumed["restart_ice"].as_bool()), (Some(1), Some(true)));
    assert_eq!(resumed["peers"][0]["id"], li_id.as_str());
    // A, where the new socket is, minted Wang a TURN credential for the ICE restart.
    let wang_user = b.user_id("dr.wang").await;
    let relay = &resumed["ice_servers"][1];
    let username = relay["username"].as_str().expect("a TURN credential in resumed");
    assert_eq!(username.split_once(':').map(|(_, u)| u), Some(wang_user.as_str()), "{resumed}");
    assert_eq!(relay["credential"], teleconsult::signaling::turn::password(TURN_SECRET, username));
    let replayed = wang.next().await;
    assert_eq!((replayed["type"].as_str(), replayed["text"].as_str()), (Some("chat"), Some("网络断了吗？")));
    let back = pump_until_other(&mut li, &peer_li).await;
    assert_eq!((back["type"].as_str(), back["restart_ice"].as_bool()), (Some("peer-reconnected"), Some(true)));

    restart_ice_and_exchange(&mut li, &peer_li, &mut wang, &peer_wang, &first_offer).await;

    // The used resume token works on neither instance.
    for app in [&a, &b] {
        let mut stale = Signaler::open(&format!("ws://{}/api/v1/rtc?resume={resume_token}", app.addr)).await;
        assert_eq!(stale.closed().await, 4004);
    }

    // Stored once, not once per instance: three chat lines (each audited once), the
    // timeline, the start of the consultation.
    let chats = "SELECT COUNT(*) FROM consultation_messages WHERE consultation_id = $1";
    assert_eq!(settled_count(&b, chats, &id, 3).await, 3);
    let audited = "SELECT COUNT(*) FROM audit_events WHERE action = 'create' AND resource_type = 'consultation_message'
                   AND resource_id IN (SELECT id FROM consultation_messages WHERE consultation_id = $1)";
    assert_eq!(settled_count(&a, audited, &id, 3).await, 3);
    let reconnected = "SELECT COUNT(*) FROM room_events WHERE consultation_id = $1 AND kind = 'reconnected'";
    settled_count(&a, reconnected, &id, 1).await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT participant_id, kind FROM room_events WHERE consultation_id = $1 ORDER BY at, id")
            .bind(&id)
            .fetch_all(&a.state.db.pool)
            .await
            .unwrap();
    let kinds: Vec<(&str, &str)> = rows.iter().map(|(p, k)| (p.as_str(), k.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (li_id.as_str(), "joined"),
            (wang_id.as_str(), "joined"),
            (zhang_id.as_str(), "waiting"),
            (zhang_id.as_str(), "admitted"),
            (zhang_id.as_str(), "left"),
            (wang_id.as_str(), "disconnected"),
            (wang_id.as_str(), "reconnected"),
        ]
    );
    let started =
        "SELECT COUNT(*) FROM consultation_transitions WHERE consultation_id = $1 AND to_state = 'in_progress'";
    assert_eq!(count(&a, started, &id).await, 1);

    let _ = peer_li.pc.close().await;
    let _ = peer_wang.pc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reading_posted_on_one_instance_reaches_the_call_on_the_other() {
    let Some((a, b)) = cluster().await else { return };
    let id = scheduled_consultation(&a).await;
    // Both doctors are in the room on B; the reading is posted on A, which holds no one of it.
    let mut wang = Signaler::join(&b, "dr.wang", &id).await;
    wang.expect("joined").await;
    let mut li = Signaler::join(&b, "dr.li", &id).await;
    li.expect("joined").await;
    let zhang = rtc::patient_id_of(&a, "patient.zhang").await;
    let reading = json!({"kind": "blood_pressure", "systolic_mmhg": 152, "diastolic_mmhg": 96, "measured_at": chrono::Utc::now().to_rfc3339(),
        "source": "kiosk", "device": "manual entry", "client_id": uuid::Uuid::new_v4(), "consultation_id": id});
    let (status, body) =
        a.post(&format!("/api/v1/patients/{zhang}/observations"), &a.login("patient.zhang").await, &reading).await;
    assert_eq!(status, 201, "{body}");
    let live = wang.expect("observation").await;
    assert_eq!(live["reading"]["id"], body["results"][0]["id"]);
    assert_eq!(live["reading"]["summary"], "152/96 mmHg");
    assert_eq!(li.expect("observation").await["reading"]["id"], body["results"][0]["id"]);
}

#[tokio::test]
async fn an_unreachable_nats_stops_start_up_with_a_clear_message() {
    let data_dir = std::env::temp_dir().join(format!("tc-test-{}", uuid::Uuid::new_v4()));
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = common::test_config(data_dir.clone(), String::new());
    config.nats_url = format!("nats://127.0.0.1:{port}");
    let err = match teleconsult::app::Application::build(config).await {
        Ok(_) => panic!("start-up went on without NATS"),
        Err(e) => e.to_string(),
    };
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(err.contains(&format!("cannot connect to NATS at nats://127.0.0.1:{port}")), "{err}");
}

/// A nats-server of this test's own (JetStream, store in a temporary directory), so the test
/// can stop and restart it.
struct OwnNats {
    child: std::process::Child,
    port: u16,
    store: std::path::PathBuf,
}

impl OwnNats {
    fn spawn(port: u16, store: &std::path::Path) -> std::io::Result<std::process::Child> {
        std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    }

    async fn start(port: u16, store: std::path::PathBuf) -> Option<OwnNats> {
        let Ok(child) = Self::spawn(port, &store) else {
            assert!(!services_required(), "TELECONSULT_REQUIRE_SERVICES is set but nats-server cannot be started");
            eprintln!("skipping: nats-server is not installed");
            return None;
        };
        let nats = OwnNats { child, port, store };
        nats.answering().await;
        Some(nats)
    }

    async fn answering(&self) {
        for _ in 0..100 {
            if reachable(&self.url()).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nats-server on port {} did not answer", self.port);
    }

    /// Starts again on the same port and store.
    async fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.port, &self.store).expect("nats-server restarts");
        self.answering().await;
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_brief_nats_outage_delays_the_room_but_loses_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = std::env::temp_dir().join(format!("tc-nats-{}", uuid::Uuid::new_v4()));
    let Some(mut nats) = OwnNats::start(port, store.clone()).await else { return };
    let Some((a, b)) = cluster_on(nats.url()).await else { return };
    let id = scheduled_consultation(&a).await;
    let mut li = Signaler::join(&a, "dr.li", &id).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(&b, "dr.wang", &id).await;
    wang.expect("joined").await;
    li.expect("peer-joined").await;

    // NATS goes away; Li writes; NATS comes back on the same store.
    nats.stop();
    li.send(json!({"type": "chat", "text": "断网期间写的"}));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.restart().await;

    // The line reaches both sides once NATS is back, and the room carries on.
    assert_eq!(wang.expect("chat").await["text"], "断网期间写的");
    assert_eq!(li.expect("chat").await["text"], "断网期间写的");
    wang.send(json!({"type": "chat", "text": "恢复了"}));
    assert_eq!(li.expect("chat").await["text"], "恢复了");
    let chats = "SELECT COUNT(*) FROM consultation_messages WHERE consultation_id = $1";
    assert_eq!(settled_count(&a, chats, &id, 2).await, 2);
}

/// Reads a Server-Sent Events response for `d` and returns the events whose data mentions
/// `needle`, as (event name, id, data).
async fn events_mentioning(
    stream: &mut reqwest::Response,
    needle: &str,
    d: Duration,
) -> Vec<(String, String, serde_json::Value)> {
    let deadline = tokio::time::Instant::now() + d;
    let mut text = String::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, stream.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim_start().to_string()))
            };
            let data = field("data")?;
            data.contains(needle).then(|| {
                (
                    field("event").unwrap_or_default(),
                    field("id").unwrap_or_default(),
                    serde_json::from_str(&data).unwrap(),
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_made_on_one_instance_reaches_the_users_stream_on_the_other_once() {
    let Some((a, b)) = cluster().await else { return };
    let li = a.login("dr.li").await;
    let wang = b.login("dr.wang").await;
    let wang_id = a.user_id("dr.wang").await;
    let patient = rtc::patient_id_of(&a, "patient.zhang").await;

    // Dr. Wang has the notification stream open on B, and a second tab on A.
    let open = |app: &TestApp| app.http.get(app.url("/api/v1/notifications/stream")).bearer_auth(&wang).send();
    let mut on_b = open(&b).await.unwrap();
    let mut on_a = open(&a).await.unwrap();
    assert_eq!((on_b.status().as_u16(), on_a.status().as_u16()), (200, 200));
    // Give both instances' subscriptions a moment to be in place before the request is made.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Dr. Li, on A, asks Dr. Wang for a consultation: the notification is made on A.
    let (status, c) = a
        .post(
            "/api/v1/consultations",
            &li,
            &json!({
                "patient_id": patient, "reason": "胸闷两周，心电图 ST 段改变",
                "record_summary": "高血压十年", "specialty": "cardiology", "min_title": "attending",
                "urgency": "urgent", "mode": "video",
                "addressee": {"kind": "expert", "expert_id": wang_id},
                "consent": common::written_consent()
            }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();

    // Both streams get it, once each (read for a while after it came, to see any duplicate).
    let (from_b, from_a) =
        tokio::join!(events_mentioning(&mut on_b, &id, WAIT / 3), events_mentioning(&mut on_a, &id, WAIT / 3));
    assert_eq!(from_b.len(), 1, "B's stream gets the notification made on A exactly once: {from_b:?}");
    assert_eq!(from_a.len(), 1, "A's own stream gets it exactly once: {from_a:?}");
    let (kind, event_id, data) = &from_b[0];
    assert_eq!(kind, "request_matched");
    assert_eq!(data["consultation_id"], id.as_str());
    assert_eq!(from_a[0].1, *event_id, "the same notification on both instances");

    // It is the one in Dr. Wang's inbox, read through B.
    let (status, inbox) = b.get("/api/v1/notifications?unread=true", &wang).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["consultation_id"] == id.as_str())
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![event_id.as_str()]);
}

/// Deactivating an account on one instance ends its access tokens on the other at once: the
/// change is announced over NATS, well before the other instance's cached account state
/// would expire by itself (`auth::accounts::CACHE_TTL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deactivation_on_one_instance_ends_access_on_the_other() {
    let Some((a, b)) = cluster().await else { return };
    let token = b.login("dr.zhao").await;
    let admin = a.login("admin").await;
    let zhao = a.user_id("dr.zhao").await;
    // B has the account's state cached as active, just now.
    assert_eq!(b.get("/api/v1/patients", &token).await.0, 200);
    let (status, _) = a.patch(&format!("/api/v1/users/{zhao}"), &admin, &json!({"active": false})).await;
    assert_eq!(status, 200);
    let started = tokio::time::Instant::now();
    let within = teleconsult::auth::accounts::CACHE_TTL / 2;
    loop {
        let (status, body) = b.get("/api/v1/patients", &token).await;
        if status == 401 {
            assert_eq!(body["code"], "token_revoked");
            break;
        }
        assert!(
            started.elapsed() < within,
            "B still served a deactivated account's token after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A call held on one instance ends at once for whom a change on the other instance shuts
/// out: the deactivated expert (4005), then, the consultation cancelled, everyone (4020); the
/// change travels over NATS, not at the call's next heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_made_on_one_instance_end_the_call_on_the_other_at_once() {
    let Some((a, b)) = cluster().await else { return };
    let id = scheduled_consultation(&a).await;
    let mut li = Signaler::join(&b, "dr.li", &id).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(&b, "dr.wang", &id).await;
    let wang_peer = wang.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    li.expect("peer-joined").await;

    let admin = a.login("admin").await;
    let wang_id = a.user_id("dr.wang").await;
    let (status, body) = a.patch(&format!("/api/v1/users/{wang_id}"), &admin, &json!({"active": false})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(wang.closed_at_once().await, 4005);
    assert_eq!(li.expect("peer-left").await["peer"], wang_peer.as_str());

    let token = a.login("dr.li").await;
    let (status, body) =
        a.post(&format!("/api/v1/consultations/{id}/cancel"), &token, &json!({"reason": "患者已转院"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(li.closed_at_once().await, 4020);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ticket_handed_out_by_one_instance_is_used_once_on_any() {
    let Some((a, b)) = cluster().await else { return };
    let id = scheduled_consultation(&a).await;
    let (status, body) = a.post(&format!("/api/v1/consultations/{id}/join"), &a.login("dr.li").await, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let ticket = body["ticket"].as_str().unwrap();
    // Presented on B and on A at once: one of them admits it.
    let on = |app: &TestApp| format!("ws://{}/api/v1/rtc?ticket={ticket}", app.addr);
    let (mut on_b, mut on_a) = (Signaler::open(&on(&b)).await, Signaler::open(&on(&a)).await);
    let (first_b, first_a) = tokio::join!(on_b.next(), on_a.next());
    let mut kinds = [first_b["type"].as_str().unwrap(), first_a["type"].as_str().unwrap()];
    kinds.sort();
    assert_eq!(kinds, ["__closed", "joined"], "{first_b} {first_a}");
    let refused = if first_b["type"] == "__closed" { &first_b } else { &first_a };
    assert_eq!(refused["code"], 4001);
    // And again on either, later.
    for app in [&a, &b] {
        let mut s = Signaler::open(&on(app)).await;
        assert_eq!(s.closed().await, 4001);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_hours_stored_on_one_instance_rank_on_the_other_before_its_roster_is_old() {
    let Some((a, b)) = cluster().await else { return };
    let admin = a.login("admin").await;
    let li = b.login("dr.li").await;
    let hospital = a.get("/api/v1/me", &a.login("dr.wang").await).await.1["organisation_id"].clone();
    let body = json!({"username": "dr.new-hours", "display_name": "dr.new-hours", "password": "demo-password",
        "role": "expert", "organisation_id": hospital,
        "expert": {"title": "attending", "specialties": ["cardiology"], "time_zone": "Asia/Shanghai"}});
    let (status, user) = a.post("/api/v1/users", &admin, &body).await;
    assert_eq!(status, 201, "{user}");
    let expert = user["id"].as_str().unwrap().to_string();
    let criteria = json!({"specialty": "cardiology", "min_title": "attending", "urgency": "routine"});
    let earliest = |cands: &Value| -> Value {
        let items = cands["items"].as_array().unwrap_or_else(|| panic!("{cands}"));
        items
            .iter()
            .find(|c| c["expert_id"] == expert.as_str())
            .map(|c| c["earliest_slot"].clone())
            .unwrap_or(Value::Null)
    };
    // B ranks the new expert without hours, and keeps that roster.
    let (status, cands) = b.post("/api/v1/consultations/candidates", &li, &criteria).await;
    assert_eq!(status, 200, "{cands}");
    assert!(earliest(&cands).is_null(), "no hours yet: {cands}");
    let every_day: Vec<Value> = (1..=7)
        .map(|d| json!({"weekday": d, "start": "00:00", "end": "23:30", "slot_minutes": 30, "time_zone": "Asia/Shanghai"}))
        .collect();
    let hours = json!({"rules": every_day, "policy": {"buffer_minutes": 0, "max_per_day": 0, "min_notice_minutes": 0}});
    let (status, body) = a.put(&format!("/api/v1/experts/{expert}/availability"), &admin, &hours).await;
    assert_eq!(status, 200, "{body}");
    let started = tokio::time::Instant::now();
    let within = teleconsult::scheduling::roster::ROSTER_TTL / 4;
    loop {
        let (status, cands) = b.post("/api/v1/consultations/candidates", &li, &criteria).await;
        assert_eq!(status, 200, "{cands}");
        if earliest(&cands).is_string() {
            break;
        }
        assert!(started.elapsed() < within, "B still ranked without the new hours after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
