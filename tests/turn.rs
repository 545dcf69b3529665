//! TURN through a real coturn (Debian package `coturn`) started on loopback with
//! turn-config/turnserver.conf: coturn accepts the credentials the server mints and refuses
//! expired or forged ones (checked with coturn's own `turnutils_uclient`), and two webrtc-crate
//! peers restricted to relay candidates connect through it with the ICE servers handed out on
//! join and exchange data-channel messages; a participant who resumes gets a freshly minted
//! credential in `resumed`, which coturn accepts too; a participant connected longer than a
//! credential lives gets fresh ones in `ice-servers` before the join's expires, and coturn
//! takes the latest after it refuses the expired one — on SQLite and PostgreSQL.
//!
//! Without the `turnserver` binary these tests skip, unless TELECONSULT_REQUIRE_SERVICES=1.

mod common;
mod rtc;

use chrono::Utc;
use common::{Backend, TestApp};
use rtc::coturn::{rtc_ice_servers, Coturn, SECRET};
use rtc::{exchange, scheduled_consultation, Peer, Signaler};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use teleconsult::signaling::turn;
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_accepts_minted_credentials_and_refuses_expired_or_forged_ones() {
    let Some(coturn) = Coturn::start() else { return };
    let user = "0190f5d2-0000-7000-8000-000000000001";
    let now = Utc::now();

    let good = turn::mint(SECRET, user, now, 600);
    let received = coturn.relay_messages(&good.username, &good.password).await;
    assert!(matches!(received, Ok(n) if n > 0), "a fresh credential is accepted: {received:?}\n{}", coturn.log());

    let expired = turn::mint(SECRET, user, now - chrono::Duration::hours(2), 3600);
    assert!(expired.expires_at < now);
    let refused = coturn.relay_messages(&expired.username, &expired.password).await;
    assert!(refused.is_err(), "an expired credential is refused: {refused:?}");

    let forged = turn::mint("a-guessed-secret", user, now, 600);
    let refused = coturn.relay_messages(&forged.username, &forged.password).await;
    assert!(refused.is_err(), "a password made with another secret is refused: {refused:?}");

    // A client that pushes its expiry out keeps the old password: refused too.
    let stretched = format!("{}:{user}", now.timestamp() + 30 * 24 * 3600);
    let refused = coturn.relay_messages(&stretched, &good.password).await;
    assert!(refused.is_err(), "a username with a changed expiry is refused: {refused:?}");
}

async fn join(app: &TestApp, username: &str, consultation: &str) -> Value {
    let token = app.login(username).await;
    let (status, body) = app.post(&format!("/api/v1/consultations/{consultation}/join"), &token, &json!({})).await;
    assert_eq!(status, 200, "{username} joins: {body}");
    body
}

async fn relay_only_peers_connect_through_coturn(app: &TestApp, coturn: &Coturn) {
    let id = scheduled_consultation(app).await;
    let li_join = join(app, "dr.li", &id).await;
    let wang_join = join(app, "dr.wang", &id).await;

    // The join response: STUN, TURN over UDP and TCP with a credential minted for the caller.
    let port = coturn.port;
    let li_servers = li_join["ice_servers"].clone();
    assert_eq!(li_servers[0], json!({"urls": [format!("stun:127.0.0.1:{port}")]}));
    assert_eq!(
        li_servers[1]["urls"],
        json!([format!("turn:127.0.0.1:{port}?transport=udp"), format!("turn:127.0.0.1:{port}?transport=tcp")])
    );
    let username = li_servers[1]["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, app.user_id("dr.li").await);
    let ttl = expiry.parse::<i64>().unwrap() - Utc::now().timestamp();
    assert!((590..=600).contains(&ttl), "the credential lives turn_ttl_secs: {ttl}");
    assert_ne!(wang_join["ice_servers"][1]["username"], li_servers[1]["username"], "one credential per participant");
    assert!(!li_join.to_string().contains(SECRET), "the secret never reaches a client");

    // coturn takes the credential the server handed out.
    let credential = li_servers[1]["credential"].as_str().unwrap();
    let relayed = coturn.relay_messages(username, credential).await;
    assert!(relayed.is_ok(), "coturn accepts the join credential: {relayed:?}\n{}", coturn.log());

    // Two peers allowed only relay candidates connect through coturn with those servers.
    let mut li = Signaler::open(li_join["ws_url"].as_str().unwrap()).await;
    let li_id = li.expect("joined").await["you"]["id"].as_str().unwrap().to_string();
    let mut wang = Signaler::open(wang_join["ws_url"].as_str().unwrap()).await;
    let resume_token = wang.expect("joined").await["resume_token"].as_str().unwrap().to_string();
    let wang_id = li.expect("peer-joined").await["peer"]["id"].as_str().unwrap().to_string();
    let relay_only = |join: &Value| RTCConfiguration {
        ice_servers: rtc_ice_servers(join),
        ice_transport_policy: RTCIceTransportPolicy::Relay,
        ..Default::default()
    };
    let peer_li = Peer::with_config(&li, &wang_id, relay_only(&li_join)).await;
    let peer_wang = Peer::with_config(&wang, &li_id, relay_only(&wang_join)).await;
    let started = Instant::now();
    peer_li.offer(false).await;
    let exchanged =
        exchange(&mut li, &peer_li, &mut wang, &peer_wang, "请看心电图 V1-V3", "已看到，建议复查肌钙蛋白").await;
    eprintln!("relay-only peers connected and exchanged a message each way in {:?}", started.elapsed());
    assert_eq!(exchanged, ("请看心电图 V1-V3".to_string(), "已看到，建议复查肌钙蛋白".to_string()));

    // Round trips over the relayed data channel.
    let mut rtts = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        peer_li.send_data(&format!("ping {i}")).await;
        let ping = peer_wang.recv_data().await;
        peer_wang.send_data(&ping.replace("ping", "pong")).await;
        assert_eq!(peer_li.recv_data().await, format!("pong {i}"));
        rtts.push(t.elapsed());
    }
    rtts.sort();
    eprintln!("relayed data-channel round trip: median {:?}, p90 {:?}, max {:?}", rtts[25], rtts[45], rtts[49]);
    // With the webrtc 0.17 line a round trip through a loopback relay takes about a millisecond.
    assert!(rtts[25] < Duration::from_millis(5), "relayed round trips: {rtts:?}");

    // The path in use runs through coturn's relay on both sides.
    for peer in [&peer_li, &peer_wang] {
        let pair = peer.pc.sctp().transport().ice_transport().get_selected_candidate_pair().await.expect("a pair");
        assert_eq!((pair.local.typ, pair.remote.typ), (RTCIceCandidateType::Relay, RTCIceCandidateType::Relay));
    }

    // Wang's socket drops and he resumes: `resumed` carries ICE servers with a credential
    // minted afresh for him (a later expiry than on join), which coturn takes, so a call that
    // outlives the join credential can still restart ICE through the relay.
    wang.drop_socket();
    li.expect("peer-reconnecting").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut wang = Signaler::open(&format!("ws://{}/api/v1/rtc?resume={resume_token}", app.addr)).await;
    let resumed = wang.expect("resumed").await;
    assert_eq!(resumed["restart_ice"], true);
    assert_eq!(resumed["ice_servers"][0], wang_join["ice_servers"][0], "the same STUN server");
    assert_eq!(resumed["ice_servers"][1]["urls"], wang_join["ice_servers"][1]["urls"], "the same relays");
    let expiry_of = |servers: &Value| -> (i64, String) {
        let (expiry, user) = servers[1]["username"].as_str().expect("a TURN username").split_once(':').unwrap();
        (expiry.parse().unwrap(), user.to_string())
    };
    let (joined_expiry, _) = expiry_of(&wang_join["ice_servers"]);
    let (resumed_expiry, resumed_user) = expiry_of(&resumed["ice_servers"]);
    assert_eq!(resumed_user, app.user_id("dr.wang").await);
    assert!(resumed_expiry > joined_expiry, "fresh credential: {resumed_expiry} after {joined_expiry}");
    let ttl = resumed_expiry - Utc::now().timestamp();
    assert!((590..=600).contains(&ttl), "the resumed credential lives turn_ttl_secs: {ttl}");
    let username = resumed["ice_servers"][1]["username"].as_str().unwrap();
    let credential = resumed["ice_servers"][1]["credential"].as_str().unwrap();
    assert_eq!(credential, turn::password(SECRET, username));
    assert!(!resumed.to_string().contains(SECRET), "the secret never reaches a client");
    let relayed = coturn.relay_messages(username, credential).await;
    assert!(relayed.is_ok(), "coturn accepts the resumed credential: {relayed:?}\n{}", coturn.log());

    let _ = peer_li.pc.close().await;
    let _ = peer_wang.pc.close().await;
}

mod relay_only_peers_connect_through_coturn {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let Some(coturn) = Coturn::start() else { return };
        let app = TestApp::spawn_with(Backend::Sqlite, None, |c| coturn.configure(c)).await;
        relay_only_peers_connect_through_coturn(&app, &coturn).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(coturn) = Coturn::start() else { return };
        if let Some(app) = TestApp::spawn_postgres_with(|c| coturn.configure(c)).await {
            relay_only_peers_connect_through_coturn(&app, &coturn).await;
        }
    }
}

/// The TURN credential in a list of ICE servers: expiry, user, username, password.
fn turn_credential_of(servers: &Value) -> (i64, String, String, String) {
    let username = servers[1]["username"].as_str().expect("a TURN username").to_string();
    let credential = servers[1]["credential"].as_str().expect("a TURN credential").to_string();
    let (expiry, user) = username.split_once(':').unwrap();
    (expiry.parse().unwrap(), user.to_string(), username.clone(), credential)
}

/// A consultation that outlives its TURN credentials (6 s here) without any socket dropping:
/// each connected participant gets `ice-servers` with a credential minted afresh for them
/// before the join's expires; coturn accepts it; once the join's credential has expired and
/// coturn refuses it, the latest refreshed one still gets through, so an ICE restart after a
/// network change (without a WebSocket resume) still reaches the relay.
async fn connected_participants_get_fresh_turn_credentials_before_theirs_expire(app: &TestApp, coturn: &Coturn) {
    let id = scheduled_consultation(app).await;
    let li_join = join(app, "dr.li", &id).await;
    let mut li = Signaler::open(li_join["ws_url"].as_str().unwrap()).await;
    li.expect("joined").await;
    let wang_join = join(app, "dr.wang", &id).await;
    let mut wang = Signaler::open(wang_join["ws_url"].as_str().unwrap()).await;
    wang.expect("joined").await;
    let (join_expiry, li_user, join_username, join_credential) = turn_credential_of(&li_join["ice_servers"]);
    assert_eq!(li_user, app.user_id("dr.li").await);

    let refreshed = li.expect("ice-servers").await;
    assert_eq!(refreshed.as_object().unwrap().len(), 2, "the type and the list: {refreshed}");
    assert_eq!(refreshed["ice_servers"][0], li_join["ice_servers"][0], "the same STUN server");
    assert_eq!(refreshed["ice_servers"][1]["urls"], li_join["ice_servers"][1]["urls"], "the same relays");
    let (expiry, user, username, credential) = turn_credential_of(&refreshed["ice_servers"]);
    assert_eq!(user, li_user, "minted for the participant of the connection");
    assert!(expiry > join_expiry, "fresh credential: {expiry} after {join_expiry}");
    let minted_at = expiry - 6;
    assert!(minted_at < join_expiry, "minted at {minted_at}, before the join's credential expires at {join_expiry}");
    assert_eq!(credential, turn::password(SECRET, &username));
    assert!(!refreshed.to_string().contains(SECRET), "the secret never reaches a client");
    let relayed = coturn.relay_messages(&username, &credential).await;
    assert!(relayed.is_ok(), "coturn accepts the refreshed credential: {relayed:?}\n{}", coturn.log());

    // Each connection refreshes its own participant's credential.
    let (_, wang_user, _, _) = turn_credential_of(&wang.expect("ice-servers").await["ice_servers"]);
    assert_eq!(wang_user, app.user_id("dr.wang").await);

    // A refresh minted after the join's credential expired (its expiry is more than a lifetime
    // past the join's): coturn takes it, and refuses the join's.
    let latest = loop {
        let v = li.expect("ice-servers").await;
        if turn_credential_of(&v["ice_servers"]).0 > join_expiry + 6 {
            break v;
        }
    };
    let (_, user, username, credential) = turn_credential_of(&latest["ice_servers"]);
    assert_eq!(user, li_user);
    let relayed = coturn.relay_messages(&username, &credential).await;
    assert!(relayed.is_ok(), "coturn accepts the latest refreshed credential: {relayed:?}\n{}", coturn.log());
    let refused = coturn.relay_messages(&join_username, &join_credential).await;
    assert!(refused.is_err(), "the join's credential has expired: {refused:?}");
}

mod connected_participants_get_fresh_turn_credentials_before_theirs_expire {
    use super::*;

    fn short_lived(coturn: &Coturn, c: &mut teleconsult::config::Config) {
        coturn.configure(c);
        c.turn_ttl_secs = 6;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let Some(coturn) = Coturn::start() else { return };
        let app = TestApp::spawn_with(Backend::Sqlite, None, |c| short_lived(&coturn, c)).await;
        connected_participants_get_fresh_turn_credentials_before_theirs_expire(&app, &coturn).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(coturn) = Coturn::start() else { return };
        if let Some(app) = TestApp::spawn_postgres_with(|c| short_lived(&coturn, c)).await {
            connected_participants_get_fresh_turn_credentials_before_theirs_expire(&app, &coturn).await;
        }
    }
}
