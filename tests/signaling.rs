//! Live sessions as their users meet them: joining a consultation's room over HTTP and the
//! signaling WebSocket, real WebRTC peers (the webrtc crate) connecting through it and
//! exchanging data-channel messages, resume after a lost socket with an ICE restart, the
//! lobby, no TURN credential refresh where none was handed out, and bad or abusive input — on
//! SQLite and PostgreSQL.

mod common;
mod rtc;

use common::TestApp;
use rtc::{
    exchange, patient_id_of, pump_both, pump_until_other, restart_ice_and_exchange, scheduled_consultation, Peer,
    Signaler, WAIT,
};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn consultation_state(app: &TestApp, id: &str) -> String {
    let (_, c) = app.get(&format!("/api/v1/consultations/{id}"), &app.login("dr.li").await).await;
    c["state"].as_str().unwrap_or_default().to_string()
}

async fn wait_for_rows(app: &TestApp, sql: &str, id: &str, at_least: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (n,): (i64,) = sqlx::query_as(sql).bind(id).fetch_one(&app.state.db.pool).await.unwrap();
        if n >= at_least || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A scheduled consultation whose requesting doctor and expert are both in its room (each
/// past `joined`, Li past Wang's `peer-joined`).
async fn li_and_wang_in_the_room(app: &TestApp) -> (String, Signaler, Signaler) {
    let id = scheduled_consultation(app).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    wang.expect("joined").await;
    li.expect("peer-joined").await;
    (id, li, wang)
}

// ---------------------------------------------------------------------------------------

async fn two_peers_exchange_data_through_the_signaling(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    assert_eq!(consultation_state(app, &id).await, "scheduled");

    let mut li = Signaler::join(app, "dr.li", &id).await;
    let joined_li = li.expect("joined").await;
    assert_eq!(joined_li["admitted"], true);
    assert_eq!(joined_li["version"], 1);
    assert!(joined_li["peers"].as_array().unwrap().is_empty());

    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    let joined_wang = wang.expect("joined").await;
    let li_id = joined_wang["peers"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(li_id, joined_li["you"]["id"]);
    assert_eq!(joined_wang["peers"][0]["polite"], true, "the later arrival is polite");
    let peer_joined = li.expect("peer-joined").await;
    let wang_id = peer_joined["peer"]["id"].as_str().unwrap().to_string();
    assert_eq!(peer_joined["peer"]["polite"], false);
    assert_eq!(peer_joined["peer"]["role"], "expert");

    // The inviting side and the expert are in the room: the consultation is in progress.
    let deadline = tokio::time::Instant::now() + WAIT;
    while consultation_state(app, &id).await != "in_progress" {
        assert!(tokio::time::Instant::now() < deadline, "consultation never moved to in_progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Real WebRTC: Li offers with a data channel, Wang answers; candidates trickle.
    let peer_li = Peer::new(&li, &wang_id).await;
    let peer_wang = Peer::new(&wang, &li_id).await;
    peer_li.offer(false).await;
    let exchanged = exchange(&mut li, &peer_li, &mut wang, &peer_wang, "心电图已上传", "收到，正在看").await;
    assert_eq!(exchanged, ("心电图已上传".to_string(), "收到，正在看".to_string()));

    // Chat and media state reach the room and the chat is kept with the consultation.
    li.send(json!({"type": "chat", "text": "请看 V2-V4 导联"}));
    let chat = wang.expect("chat").await;
    assert_eq!(chat["text"], "请看 V2-V4 导联");
    assert_eq!(chat["from"], li_id.as_str());
    wang.send(json!({"type": "media", "mic": true, "camera": false, "screen": true}));
    let media = li.expect("media").await;
    assert_eq!((media["from"].as_str().unwrap(), media["screen"].as_bool()), (wang_id.as_str(), Some(true)));
    let stored =
        wait_for_rows(app, "SELECT COUNT(*) FROM consultation_messages WHERE consultation_id = $1", &id, 1).await;
    assert_eq!(stored, 1);

    // Wang leaves; Li sees it; the timeline has joined and left with times.
    wang.send(json!({"type": "leave"}));
    let left = li.expect("peer-left").await;
    assert_eq!((left["peer"].as_str().unwrap(), left["reason"].as_str().unwrap()), (wang_id.as_str(), "left"));
    wait_for_rows(app, "SELECT COUNT(*) FROM room_events WHERE consultation_id = $1 AND kind = 'left'", &id, 1).await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT participant_id, kind, at FROM room_events WHERE consultation_id = $1 ORDER BY at, id")
            .bind(&id)
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    let kinds: Vec<(&str, &str)> = rows.iter().map(|(p, k, _)| (p.as_str(), k.as_str())).collect();
    assert_eq!(kinds, vec![(li_id.as_str(), "joined"), (wang_id.as_str(), "joined"), (wang_id.as_str(), "left")]);

    // The join was audited against the consultation's patient.
    let patient = patient_id_of(app, "patient.zhang").await;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'join' AND resource_id = $1 AND patient_id = $2",
    )
    .bind(&id)
    .bind(&patient)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(n, 2);

    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("teleconsult_signaling_connections "), "{metrics}");
    assert!(metrics.contains("teleconsult_signaling_relay_latency_seconds{quantile=\"0.99\"}"));
    let _ = peer_li.pc.close().await;
    let _ = peer_wang.pc.close().await;
}
db_test!(two_peers_exchange_data_through_the_signaling);

async fn a_lost_socket_resumes_and_ice_restarts(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    let li_id = li.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    let joined = wang.expect("joined").await;
    let wang_id = joined["you"]["id"].as_str().unwrap().to_string();
    let resume_token = joined["resume_token"].as_str().unwrap().to_string();
    assert_eq!(joined["resume_window_secs"], 60);
    li.expect("peer-joined").await;

    let peer_li = Peer::new(&li, &wang_id).await;
    let peer_wang = Peer::new(&wang, &li_id).await;
    let first_offer = peer_li.offer(false).await;
    pump_both(&mut li, &peer_li, &mut wang, &peer_wang, async {
        peer_li.send_data("before").await;
        assert_eq!(peer_wang.recv_data().await, "before");
    })
    .await;

    // Wang's network drops: Li sees "reconnecting", not a leave.
    wang.drop_socket();
    let reconnecting = li.expect("peer-reconnecting").await;
    assert_eq!(reconnecting["peer"], wang_id.as_str());
    // Meanwhile Li writes to Wang.
    li.send(json!({"type": "chat", "text": "网络断了吗？"}));
    li.expect("chat").await;

    // Wang resumes with the token: same id, the chat replayed, ICE restarted.
    let mut wang = Signaler::open(&format!("ws://{}/api/v1/rtc?resume={resume_token}", app.addr)).await;
    *peer_wang.out.lock().unwrap() = wang.sender();
    let resumed = wang.expect("resumed").await;
    assert_eq!(resumed["you"]["id"], wang_id.as_str());
    assert_eq!(resumed["replayed"], 1);
    assert_eq!(resumed["restart_ice"], true);
    assert_eq!(resumed["peers"][0]["id"], li_id.as_str());
    let replayed = wang.next().await;
    assert_eq!((replayed["type"].as_str(), replayed["text"].as_str()), (Some("chat"), Some("网络断了吗？")));
    let back = pump_until_other(&mut li, &peer_li).await;
    assert_eq!(back["type"], "peer-reconnected");
    assert_eq!(back["restart_ice"], true);

    restart_ice_and_exchange(&mut li, &peer_li, &mut wang, &peer_wang, &first_offer).await;

    // The resume token was single-use.
    let mut stale = Signaler::open(&format!("ws://{}/api/v1/rtc?resume={resume_token}", app.addr)).await;
    assert_eq!(stale.closed().await, 4004);
    wait_for_rows(app, "SELECT COUNT(*) FROM room_events WHERE consultation_id = $1 AND kind = 'reconnected'", &id, 1)
        .await;
    let kinds: Vec<(String,)> = sqlx::query_as(
        "SELECT kind FROM room_events WHERE consultation_id = $1 AND participant_id = $2 ORDER BY at, id",
    )
    .bind(&id)
    .bind(&wang_id)
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = kinds.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(kinds, vec!["joined", "disconnected", "reconnected"]);
    let _ = peer_li.pc.close().await;
    let _ = peer_wang.pc.close().await;
}
db_test!(a_lost_socket_resumes_and_ice_restarts);

async fn non_participants_are_refused(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let path = format!("/api/v1/consultations/{id}/join");
    // Another centre's doctor, another patient, an uninvolved expert and the admin (who takes
    // part in no care) cannot see it: 404.
    for who in ["dr.zhao", "patient.liu", "dr.chen", "admin"] {
        let (status, body) = app.post(&path, &app.login(who).await, &json!({})).await;
        assert_eq!(status, 404, "{who}: {body}");
        assert_eq!(body["code"], "not_found");
    }
    // The hospital's coordinator sees it but takes no part.
    let (status, body) = app.post(&path, &app.login("coordinator").await, &json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "not_a_participant");
    // Without a token: 401.
    let resp = app.http.post(app.url(&path)).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // The WebSocket without a valid ticket closes with 4001; a used ticket too.
    let mut s = Signaler::open(&format!("ws://{}/api/v1/rtc", app.addr)).await;
    assert_eq!(s.closed().await, 4001);
    let mut s = Signaler::open(&format!("ws://{}/api/v1/rtc?ticket=forged", app.addr)).await;
    assert_eq!(s.closed().await, 4001);
    let (_, body) = app.post(&path, &app.login("dr.li").await, &json!({})).await;
    let url = body["ws_url"].as_str().unwrap().to_string();
    assert!(body["ice_servers"].is_array());
    assert_eq!(body["lobby"], false);
    let mut first = Signaler::open(&url).await;
    first.expect("joined").await;
    let mut again = Signaler::open(&url).await;
    assert_eq!(again.closed().await, 4001);
    let mut s = Signaler::open(&format!("ws://{}/api/v1/rtc?resume={id}.nonsense", app.addr)).await;
    assert_eq!(s.closed().await, 4004);
    let (_, body) = app.post(&path, &app.login("dr.li").await, &json!({})).await;
    let mut s = Signaler::open(&format!("{}&v=2", body["ws_url"].as_str().unwrap())).await;
    assert_eq!(s.closed().await, 4000);

    // A consultation that is not scheduled has no open room.
    let li = app.login("dr.li").await;
    let c = app.consultation().patient("patient.liu").reason("复查").urgency("routine").requested().await;
    let (status, body) = app.post(&format!("/api/v1/consultations/{c}/join"), &li, &json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "consultation_not_live");
}
db_test!(non_participants_are_refused);

async fn the_lobby_cannot_be_bypassed(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    let li_id = li.expect("joined").await["you"]["id"].as_str().unwrap().to_string();

    let token = app.login("patient.zhang").await;
    let (status, body) = app.post(&format!("/api/v1/consultations/{id}/join"), &token, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["room_role"].as_str(), body["lobby"].as_bool()), (Some("patient"), Some(true)));
    let mut zhang = Signaler::open(body["ws_url"].as_str().unwrap()).await;
    let joined = zhang.expect("joined").await;
    assert_eq!(joined["admitted"], false);
    assert!(joined["peers"].as_array().unwrap().is_empty(), "nothing of the room reaches the lobby: {joined}");
    let zhang_id = joined["you"]["id"].as_str().unwrap().to_string();
    assert_eq!(zhang.expect("lobby").await["status"], "waiting");
    let waiting = li.expect("lobby").await;
    assert_eq!(
        (waiting["status"].as_str(), waiting["participant"]["id"].as_str()),
        (Some("waiting"), Some(zhang_id.as_str()))
    );

    // From the lobby: nothing reaches anyone.
    zhang.send(json!({"type": "signal", "to": li_id, "description": {"type": "offer", "sdp": "v=0"}}));
    assert_eq!(zhang.expect("error").await["code"], "not_admitted");
    zhang.send(json!({"type": "chat", "text": "医生您好"}));
    assert_eq!(zhang.expect("error").await["code"], "not_admitted");
    zhang.send(json!({"type": "admit", "peer": zhang_id}));
    assert_eq!(zhang.expect("error").await["code"], "not_admitted");
    // From the room: nothing reaches the lobby.
    li.send(json!({"type": "chat", "text": "内部讨论"}));
    li.expect("chat").await;
    li.send(json!({"type": "signal", "to": zhang_id, "description": {"type": "offer", "sdp": "v=0"}}));
    assert_eq!(li.expect("error").await["code"], "unknown_peer");
    assert_eq!(li.quiet_for(Duration::from_millis(300)).await, None, "the lobby's messages reached the room");
    assert_eq!(zhang.quiet_for(Duration::from_millis(300)).await, None, "the room's messages reached the lobby");

    // Admitted: now the patient meets the doctor and signals flow.
    li.send(json!({"type": "admit", "peer": zhang_id}));
    assert_eq!(zhang.expect("lobby").await["status"], "admitted");
    let met = zhang.expect("peer-joined").await;
    assert_eq!((met["peer"]["id"].as_str(), met["peer"]["polite"].as_bool()), (Some(li_id.as_str()), Some(true)));
    li.expect("peer-joined").await;
    zhang.send(json!({"type": "signal", "to": li_id, "description": {"type": "offer", "sdp": "v=0"}}));
    let sig = li.expect("signal").await;
    assert_eq!(sig["from"], zhang_id.as_str());

    // A patient may not remove; a doctor may, and the patient is told and closed.
    zhang.send(json!({"type": "remove", "peer": li_id}));
    assert_eq!(zhang.expect("error").await["code"], "not_allowed");
    li.send(json!({"type": "remove", "peer": zhang_id}));
    assert_eq!(zhang.expect("lobby").await["status"], "removed");
    assert_eq!(zhang.closed().await, 4010);
    assert_eq!(li.expect("peer-left").await["reason"], "removed");
    wait_for_rows(app, "SELECT COUNT(*) FROM room_events WHERE consultation_id = $1 AND kind = 'removed'", &id, 1)
        .await;
    let (by,): (Option<String>,) =
        sqlx::query_as("SELECT by_user_id FROM room_events WHERE consultation_id = $1 AND kind = 'admitted'")
            .bind(&id)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(by, Some(app.user_id("dr.li").await));
}
db_test!(the_lobby_cannot_be_bypassed);

async fn bad_input_is_answered_and_the_server_stays_up(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    li.expect("joined").await;

    li.send(json!({"type": "signal", "to": "nobody", "candidate": {"candidate": ""}}));
    assert_eq!(li.expect("error").await["code"], "unknown_peer");
    li.send(json!({"type": "chat", "text": "x".repeat(70 * 1024)}));
    assert_eq!(li.expect("error").await["code"], "too_large");
    let _ = li.out.send(Message::Text("{not json".into()));
    let err = li.expect("error").await;
    assert_eq!(err["code"], "malformed");
    li.send(json!({"type": "teleport", "to": "mars"}));
    assert_eq!(li.expect("error").await["code"], "malformed");
    let _ = li.out.send(Message::Binary(vec![0u8, 159, 146, 150].into()));
    assert_eq!(li.expect("error").await["code"], "malformed");
    li.send(json!({"type": "signal", "to": "x"}));
    assert_eq!(li.expect("error").await["code"], "invalid_signal");
    li.send(json!({"type": "chat", "text": "   "}));
    assert_eq!(li.expect("error").await["code"], "invalid_chat");
    // Still connected and served.
    li.send(json!({"type": "chat", "text": "仍在线"}));
    assert_eq!(li.expect("chat").await["text"], "仍在线");

    // A frame beyond the hard cap is refused with the documented close code 1009.
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    wang.expect("joined").await;
    wang.send(json!({"type": "chat", "text": "y".repeat(400 * 1024)}));
    assert_eq!(wang.closed().await, 1009);
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    li.send(json!({"type": "chat", "text": "服务器正常"}));
    assert_eq!(li.expect("chat").await["text"], "服务器正常");
}
db_test!(bad_input_is_answered_and_the_server_stays_up);

async fn a_flooding_client_is_disconnected_while_others_carry_on(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    let li_id = li.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    let wang_id = wang.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    li.expect("peer-joined").await;

    for i in 0..2000 {
        wang.send(json!({"type": "media", "mic": i % 2 == 0, "camera": true, "screen": false}));
    }
    let mut rate_limited = 0;
    let code = loop {
        let v = wang.next().await;
        match v["type"].as_str() {
            Some("error") => {
                assert_eq!(v["code"], "rate_limited");
                rate_limited += 1;
            }
            Some("__closed") => break v["code"].as_u64().unwrap(),
            _ => {}
        }
    };
    assert_eq!(code, 4008);
    assert!(rate_limited >= 1);

    // Li saw at most the allowed burst, then Wang's socket loss, and carries on.
    let mut media = 0;
    loop {
        let v = li.next().await;
        match v["type"].as_str() {
            Some("media") => media += 1,
            Some("peer-reconnecting") => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(media <= 101, "{media} media messages got through");
    li.send(json!({"type": "chat", "text": "继续"}));
    assert_eq!(li.expect("chat").await["text"], "继续");
    // Wang comes back with a fresh ticket, replacing the lost seat.
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    let back = wang.expect("joined").await;
    assert_eq!(back["peers"][0]["id"], li_id.as_str());
    let left = li.expect("peer-left").await;
    assert_eq!((left["peer"].as_str(), left["reason"].as_str()), (Some(wang_id.as_str()), Some("replaced")));
    li.expect("peer-joined").await;
}
db_test!(a_flooding_client_is_disconnected_while_others_carry_on);

/// Without a TURN secret no TURN credential is handed out, so nothing is refreshed: a
/// participant connected for several of the (short) credential lifetimes hears nothing. With
/// a secret, `ice-servers` comes every half lifetime (tests/turn.rs).
async fn without_turn_no_credentials_are_refreshed(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let (status, body) =
        app.post(&format!("/api/v1/consultations/{id}/join"), &app.login("dr.li").await, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ice_servers"], json!([{"urls": ["stun:127.0.0.1:3478"]}]), "STUN only, no credential");
    let mut li = Signaler::open(body["ws_url"].as_str().unwrap()).await;
    li.expect("joined").await;
    let heard = li.quiet_for(Duration::from_millis(3500)).await;
    assert!(heard.is_none(), "nothing to refresh without TURN credentials: {heard:?}");
    li.send(json!({"type": "chat", "text": "还在"}));
    assert_eq!(li.expect("chat").await["text"], "还在", "the connection is still open");
}

mod without_turn_no_credentials_are_refreshed {
    /// TURN URLs without a secret, and a lifetime that would refresh every second.
    fn no_turn_secret(c: &mut teleconsult::config::Config) {
        c.turn_urls = vec!["turn:127.0.0.1:3478".into()];
        c.turn_secret = String::new();
        c.turn_ttl_secs = 2;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = crate::common::TestApp::spawn_with(crate::common::Backend::Sqlite, None, no_turn_secret).await;
        super::without_turn_no_credentials_are_refreshed(&app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = crate::common::TestApp::spawn_postgres_with(no_turn_secret).await {
            super::without_turn_no_credentials_are_refreshed(&app).await;
        }
    }
}

/// A participant away while the room keeps talking gets, on resume, the whole replay buffer
/// in order, and its new connection stays open: the replay fits in its outbound queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replay_is_delivered_on_resume() {
    use teleconsult::signaling::room::REPLAY_MESSAGES;
    let app = TestApp::spawn_with(common::Backend::Sqlite, None, |c| c.signaling_messages_per_second = 10_000).await;
    let id = scheduled_consultation(&app).await;
    let mut li = Signaler::join(&app, "dr.li", &id).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(&app, "dr.wang", &id).await;
    let resume_token = wang.expect("joined").await["resume_token"].as_str().unwrap().to_string();
    li.expect("peer-joined").await;

    wang.drop_socket();
    li.expect("peer-reconnecting").await;
    for i in 0..REPLAY_MESSAGES {
        li.send(json!({"type": "chat", "text": format!("第{i}条")}));
        assert_eq!(li.expect("chat").await["text"], format!("第{i}条"));
    }

    let mut wang = Signaler::open(&format!("ws://{}/api/v1/rtc?resume={resume_token}", app.addr)).await;
    let resumed = wang.expect("resumed").await;
    assert_eq!(resumed["replayed"], REPLAY_MESSAGES);
    for i in 0..REPLAY_MESSAGES {
        let v = wang.next().await;
        assert_eq!((v["type"].as_str(), v["text"].as_str()), (Some("chat"), Some(format!("第{i}条").as_str())));
    }
    li.expect("peer-reconnected").await;
    // Still connected: the room goes on.
    li.send(json!({"type": "chat", "text": "都收到了吗？"}));
    assert_eq!(wang.expect("chat").await["text"], "都收到了吗？");
    wang.send(json!({"type": "chat", "text": "收到了"}));
    assert_eq!(li.expect("chat").await["text"], "都收到了吗？");
    assert_eq!(li.expect("chat").await["text"], "收到了");
}

/// A client whose network silently stops (no frames, not even pongs) is dropped by the
/// heartbeat with close code 4030, the others see it as reconnecting, and a client that
/// answers pings stays connected meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_by_the_heartbeat() {
    use futures_util::StreamExt;
    let app = TestApp::spawn(common::Backend::Sqlite).await;
    let id = scheduled_consultation(&app).await;
    let mut li = Signaler::join(&app, "dr.li", &id).await;
    li.expect("joined").await;

    let token = app.login("dr.wang").await;
    let (status, body) = app.post(&format!("/api/v1/consultations/{id}/join"), &token, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (mut wang, _) = tokio_tungstenite::connect_async(body["ws_url"].as_str().unwrap()).await.unwrap();
    let joined = tokio::time::timeout(WAIT, wang.next()).await.unwrap().unwrap().unwrap();
    assert!(joined.to_text().unwrap().contains("\"joined\""), "{joined:?}");
    let wang_id = li.expect("peer-joined").await["peer"]["id"].as_str().unwrap().to_string();

    // Wang's socket is no longer read (so not even a pong goes back); Li's is.
    let started = std::time::Instant::now();
    let lost = loop {
        let v = li.quiet_for(Duration::from_secs(45)).await.expect("the heartbeat dropped the silent peer");
        if v["type"] == "peer-reconnecting" {
            break v;
        }
    };
    let waited = started.elapsed();
    assert_eq!(lost["peer"], wang_id.as_str());
    assert!(waited >= Duration::from_secs(19), "dropped after {waited:?}, before the 20 s heartbeat timeout");

    let code = loop {
        match tokio::time::timeout(WAIT, wang.next()).await.expect("close frame in time") {
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 4030, "heartbeat timeout close code");
    li.send(json!({"type": "chat", "text": "还在"}));
    assert_eq!(li.expect("chat").await["text"], "还在");
}

/// A participant whose account is deactivated mid-call is closed with 4005 at once (not at
/// the next heartbeat, 10 s later) and leaves the room for good; the others see them leave.
async fn a_deactivated_participant_is_dropped_from_the_call(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    let wang_id = wang.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    li.expect("peer-joined").await;
    let admin = app.login("admin").await;
    let wang_user = app.user_id("dr.wang").await;
    let (status, _) = app.patch(&format!("/api/v1/users/{wang_user}"), &admin, &json!({"active": false})).await;
    assert_eq!(status, 200);
    assert_eq!(wang.closed_at_once().await, 4005);
    assert_eq!(peer_left(&mut li).await, wang_id);
}

/// The participant id of the next `peer-left` a connection hears.
async fn peer_left(s: &mut Signaler) -> String {
    loop {
        let v = s.next().await;
        if v["type"] == "peer-left" {
            break v["peer"].as_str().unwrap().to_string();
        }
    }
}
db_test!(a_deactivated_participant_is_dropped_from_the_call);

/// An expert of an MDT who declines during the call (the others carry on) is closed with 4003
/// at once and leaves the room; before, the open socket kept the chat, the media
/// negotiation and the live readings while every HTTP route already answered 404.
async fn an_expert_who_declines_mid_call_is_dropped_from_it(app: &TestApp) {
    let chen = app.login("dr.chen").await;
    let id = app.mdt_booked(&["dr.wang", "dr.chen"], "dr.wang").await;
    let mut li_s = Signaler::join(app, "dr.li", &id).await;
    li_s.expect("joined").await;
    let mut chen_s = Signaler::join(app, "dr.chen", &id).await;
    let chen_peer = chen_s.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    li_s.expect("peer-joined").await;
    let (status, body) =
        app.post(&format!("/api/v1/consultations/{id}/decline"), &chen, &json!({"reason": "影像科会诊冲突"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(chen_s.closed_at_once().await, 4003);
    assert_eq!(peer_left(&mut li_s).await, chen_peer);
}
db_test!(an_expert_who_declines_mid_call_is_dropped_from_it);

/// A change that reaches the database without being announced (made by another program, or
/// by an instance whose announcement was lost) still ends the call of whoever it concerns, at
/// their connection's next heartbeat: the heartbeats' reads of the moment are made together,
/// and each connection gets its own verdict. An expert struck from the consultation is closed
/// with 4003, one whose account was deactivated with 4005; the requester's call goes on.
async fn unannounced_changes_end_the_call_at_the_next_heartbeat(app: &TestApp) {
    let id = app.mdt_booked(&["dr.wang", "dr.chen"], "dr.wang").await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    let wang_peer = wang.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    li.expect("peer-joined").await;
    let mut chen = Signaler::join(app, "dr.chen", &id).await;
    let chen_peer = chen.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    li.expect("peer-joined").await;
    let (wang_user, chen_user) = (app.user_id("dr.wang").await, app.user_id("dr.chen").await);
    let pool = &app.state.db.pool;
    sqlx::query("UPDATE consultation_participants SET status = 'declined' WHERE consultation_id = $1 AND user_id = $2")
        .bind(&id)
        .bind(&wang_user)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET active = 0 WHERE id = $1").bind(&chen_user).execute(pool).await.unwrap();
    assert_eq!(wang.closed_by_a_heartbeat().await, 4003);
    assert_eq!(chen.closed_by_a_heartbeat().await, 4005);
    let mut left = [peer_left(&mut li).await, peer_left(&mut li).await];
    left.sort();
    let mut expected = [wang_peer, chen_peer];
    expected.sort();
    assert_eq!(left, expected);
    // The requester is still in the call: a chat line goes through and comes back.
    li.send(json!({"type": "chat", "text": "继续会诊"}));
    assert_eq!(li.expect("chat").await["text"], "继续会诊");
}
db_test!(unannounced_changes_end_the_call_at_the_next_heartbeat);

/// A consultation cancelled while its call goes on closes its room: everyone in it is closed
/// with 4020 at once (before, the call, its chat and its admissions went on).
async fn a_consultation_cancelled_mid_call_closes_its_room(app: &TestApp) {
    let (id, mut li, mut wang) = li_and_wang_in_the_room(app).await;
    let token = app.login("dr.li").await;
    let (status, body) =
        app.post(&format!("/api/v1/consultations/{id}/cancel"), &token, &json!({"reason": "患者已转院"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(wang.closed_at_once().await, 4020);
    assert_eq!(li.closed_at_once().await, 4020);
}
db_test!(a_consultation_cancelled_mid_call_closes_its_room);

async fn seats(app: &TestApp, consultation: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM signaling_seats WHERE consultation_id = $1";
    sqlx::query_as::<_, (i64,)>(sql).bind(consultation).fetch_one(&app.state.db.pool).await.unwrap().0
}

/// A ticket takes one seat however many sockets present it at once; an altered one takes none,
/// and neither does one whose holder was deactivated after it was handed out.
async fn a_ticket_takes_one_seat_and_only_while_its_holder_may_enter(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let path = format!("/api/v1/consultations/{id}/join");
    let (status, body) = app.post(&path, &app.login("dr.li").await, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let url = body["ws_url"].as_str().unwrap().to_string();
    let ticket = body["ticket"].as_str().unwrap().to_string();
    assert!(url.ends_with(&ticket), "{url}");

    // Altered: the signature's last character, or the consultation named in it.
    let mut altered = ticket.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let mut s = Signaler::open(&format!("ws://{}/api/v1/rtc?ticket={altered}", app.addr)).await;
    assert_eq!(s.closed().await, 4001, "a ticket with another signature");
    let other = app.consultation().booked().await.0;
    let (body_b64, sig) = ticket.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(b64.decode(body_b64).unwrap()).unwrap();
    assert!(payload.starts_with(&id), "the ticket names its consultation: {payload}");
    let moved = format!("{}.{sig}", b64.encode(payload.replace(&id, &other)));
    let mut s = Signaler::open(&format!("ws://{}/api/v1/rtc?ticket={moved}", app.addr)).await;
    assert_eq!(s.closed().await, 4001, "a ticket moved to another consultation");

    // Eight sockets with the same ticket at once: one enters, seven are refused.
    let opened = futures_util::future::join_all((0..8).map(|_| async {
        let mut s = Signaler::open(&url).await;
        let first = s.next().await;
        (first["type"].as_str().unwrap().to_string(), first["code"].as_u64(), s)
    }))
    .await;
    let joined = opened.iter().filter(|(t, ..)| t == "joined").count();
    let refused = opened.iter().filter(|(t, code, _)| t == "__closed" && *code == Some(4001)).count();
    assert_eq!((joined, refused), (1, 7), "{:?}", opened.iter().map(|(t, c, _)| (t, c)).collect::<Vec<_>>());
    assert_eq!(seats(app, &id).await, 1, "one seat stored");

    // Handed out, then the account is deactivated: the ticket no longer admits.
    let (status, body) = app.post(&path, &app.login("dr.wang").await, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let wang_url = body["ws_url"].as_str().unwrap().to_string();
    let admin = app.login("admin").await;
    let wang_user = app.user_id("dr.wang").await;
    let (status, _) = app.patch(&format!("/api/v1/users/{wang_user}"), &admin, &json!({"active": false})).await;
    assert_eq!(status, 200);
    let mut s = Signaler::open(&wang_url).await;
    assert_eq!(s.closed().await, 4001, "the holder was deactivated after the ticket was handed out");
    assert_eq!(seats(app, &id).await, 1, "no seat for the refused ticket");
}
db_test!(a_ticket_takes_one_seat_and_only_while_its_holder_may_enter);

/// A chat line is stored (with its audit event) before anyone in the room is shown it; one
/// the database cannot take in time is shown to nobody, and its sender is told.
async fn a_chat_line_is_kept_before_anyone_is_shown_it(app: &TestApp) {
    let (id, mut li, mut wang) = li_and_wang_in_the_room(app).await;
    let lines = "SELECT COUNT(*) FROM consultation_messages WHERE consultation_id = $1";

    // The database takes no chat line for now (another transaction holds the table).
    let mut holder = app.state.db.pool.begin().await.unwrap();
    let hold = match app.backend {
        common::Backend::Postgres => "LOCK TABLE consultation_messages IN EXCLUSIVE MODE",
        // SQLite has one writer: any write holds the database until the transaction ends.
        common::Backend::Sqlite => "CREATE TABLE chat_write_holder (x INTEGER)",
    };
    sqlx::query(hold).execute(&mut *holder).await.unwrap();

    // The line is not shown to anyone (not even its sender), and the sender is told.
    li.send(json!({"type": "chat", "text": "这条没有保存"}));
    let refused = li.expect("error").await;
    assert_eq!(refused["code"], "chat_not_saved", "{refused}");
    let seen = wang.quiet_for(Duration::from_millis(500)).await;
    assert!(seen.as_ref().is_none_or(|v| v["type"] != "chat"), "the expert was shown an unsaved line: {seen:?}");
    holder.rollback().await.unwrap();
    let (n,): (i64,) = sqlx::query_as(lines).bind(&id).fetch_one(&app.state.db.pool).await.unwrap();
    assert_eq!(n, 0, "the refused line was kept");

    // Once the database takes it, the line is kept by the time anyone is shown it.
    li.send(json!({"type": "chat", "text": "现在保存了"}));
    let shown = wang.expect("chat").await;
    assert_eq!(shown["text"], "现在保存了");
    let (line_id, body, sent_at): (String, String, String) =
        sqlx::query_as("SELECT id, body, sent_at FROM consultation_messages WHERE consultation_id = $1")
            .bind(&id)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(body, "现在保存了");
    assert_eq!(sent_at, shown["at"].as_str().unwrap(), "shown with the time it was kept at");
    let (audited,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'create' AND resource_type = 'consultation_message' \
         AND resource_id = $1 AND outcome = 'success'",
    )
    .bind(&line_id)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1, "its audit event commits with it");
    assert_eq!(shown["id"].as_str(), Some(line_id.as_str()));
    // The sender is shown its own line too, and the call goes on.
    assert_eq!(li.expect("chat").await["text"], "现在保存了");
}
db_test!(a_chat_line_is_kept_before_anyone_is_shown_it);

/// A doctor's admission and removal are on the room's timeline by the time the patient is
/// told of them (a seat that comes back after a crash of the server is read from it). When the
/// database cannot take them, an admission is not made (the patient keeps waiting, the doctor
/// is told) while a removal is made all the same and written once the database is back.
async fn a_doctors_decision_is_kept_before_it_takes_effect(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    li.expect("joined").await;
    let token = app.login("patient.zhang").await;
    let zhang_joins = || async {
        let (status, body) = app.post(&format!("/api/v1/consultations/{id}/join"), &token, &json!({})).await;
        assert_eq!(status, 200, "{body}");
        let mut zhang = Signaler::open(body["ws_url"].as_str().unwrap()).await;
        let zhang_id = zhang.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
        assert_eq!(zhang.expect("lobby").await["status"], "waiting");
        (zhang, zhang_id)
    };
    let decisions = |kind: &'static str| {
        let pool = app.state.db.pool.clone();
        let id = id.clone();
        async move {
            let (n,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM room_events WHERE consultation_id = $1 AND kind = $2")
                    .bind(&id)
                    .bind(kind)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            n
        }
    };
    // The database takes no timeline entry while another transaction holds the table.
    let hold = || async {
        let mut holder = app.state.db.pool.begin().await.unwrap();
        let sql = match app.backend {
            common::Backend::Postgres => "LOCK TABLE room_events IN EXCLUSIVE MODE",
            common::Backend::Sqlite => "CREATE TABLE decision_write_holder (x INTEGER)",
        };
        sqlx::query(sql).execute(&mut *holder).await.unwrap();
        holder
    };
    let (mut zhang, zhang_id) = zhang_joins().await;
    assert_eq!(li.expect("lobby").await["status"], "waiting");

    let holder = hold().await;
    li.send(json!({"type": "admit", "peer": zhang_id}));
    let refused = li.expect("error").await;
    assert_eq!(refused["code"], "admission_not_saved", "{refused}");
    let seen = zhang.quiet_for(Duration::from_millis(500)).await;
    assert!(seen.is_none(), "the patient was admitted by an admission that was not kept: {seen:?}");
    holder.rollback().await.unwrap();
    assert_eq!(decisions("admitted").await, 0, "the refused admission was kept");

    // Once the database takes it: kept by the time the patient is told (who decided is
    // checked in `the_lobby_cannot_be_bypassed`).
    li.send(json!({"type": "admit", "peer": zhang_id}));
    assert_eq!(zhang.expect("lobby").await["status"], "admitted");
    assert_eq!(decisions("admitted").await, 1, "the patient was told before the admission was kept");
    li.send(json!({"type": "remove", "peer": zhang_id}));
    assert_eq!(zhang.expect("lobby").await["status"], "removed");
    assert_eq!(decisions("removed").await, 1, "the patient was told before the removal was kept");
    assert_eq!(zhang.closed().await, 4010);
    assert_eq!(li.expect("peer-left").await["reason"], "removed");
    assert_eq!(decisions("admitted").await, 1, "and each decision is kept once");

    // A removal is never refused: with the database out of reach it is made all the same (the
    // room remembers it) and written once the database is back.
    let (mut zhang, zhang_id) = zhang_joins().await;
    assert_eq!(li.expect("lobby").await["status"], "waiting", "a removed patient waits again");
    let holder = hold().await;
    li.send(json!({"type": "remove", "peer": zhang_id}));
    assert_eq!(zhang.expect("lobby").await["status"], "removed");
    assert_eq!(zhang.closed().await, 4010);
    holder.rollback().await.unwrap();
    assert_eq!(
        wait_for_rows(app, "SELECT COUNT(*) FROM room_events WHERE consultation_id = $1 AND kind = 'removed'", &id, 2)
            .await,
        2
    );
}
db_test!(a_doctors_decision_is_kept_before_it_takes_effect);

/// A call goes on while the database is out of reach: every connection's heartbeat reads
/// whether its participant may still be in the room, and that read (waiting up to the pool's
/// 10 s for a connection) runs beside the connection's work, so signals keep flowing through
/// the heartbeats that fall in the outage.
async fn signals_flow_while_the_database_is_out_of_reach(app: &TestApp) {
    let id = scheduled_consultation(app).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    li.expect("joined").await;
    let wang = Signaler::join(app, "dr.wang", &id).await;
    let mut wang = wang;
    let li_id = wang.expect("joined").await["peers"][0]["id"].as_str().unwrap().to_string();
    li.expect("peer-joined").await;

    // Every pooled connection taken for longer than a heartbeat's interval (10 s).
    let pool = &app.state.db.pool;
    let mut held = Vec::new();
    while held.len() < pool.options().get_max_connections() as usize {
        held.push(pool.acquire().await.unwrap());
    }
    let outage = tokio::time::Instant::now();
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    while outage.elapsed() < Duration::from_secs(13) {
        n += 1;
        let candidate = format!("candidate:{n} 1 udp 2122260223 192.0.2.10 {} typ host", 50000 + n);
        let sent = tokio::time::Instant::now();
        wang.send(json!({"type": "signal", "to": li_id, "candidate": {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}}));
        let got = li.expect("signal").await;
        assert_eq!(got["candidate"]["candidate"], candidate.as_str());
        slowest = slowest.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(held);
    assert!(
        slowest < Duration::from_secs(2),
        "a signal waited {slowest:?} while the database was out of reach ({n} signals over 13 s)"
    );
}
db_test!(signals_flow_while_the_database_is_out_of_reach);

/// The signaling endpoint without an upgrade answers problem+json like every other error.
async fn a_plain_get_of_the_signaling_endpoint_is_a_problem(app: &TestApp) {
    let resp = app.http.get(app.url("/api/v1/rtc?ticket=x")).send().await.unwrap();
    assert_eq!(resp.status(), 426);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "upgrade_required");
}
db_test!(a_plain_get_of_the_signaling_endpoint_is_a_problem);
