//! Helpers for live-session tests, shared by tests/signaling.rs and tests/turn.rs: a
//! scheduled consultation made through the API, a signaling client over tokio-tungstenite,
//! and a WebRTC peer (the webrtc crate) that signals through it.
#![allow(dead_code)]

use crate::common::TestApp;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::data_channel::data_channel_state::RTCDataChannelState;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;

pub mod coturn;

pub const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// A scheduled consultation, made through the API as the users would.

pub async fn patient_id_of(app: &TestApp, username: &str) -> String {
    app.patient_id(username).await
}

/// Dr. Li asks Dr. Wang for a cardiology video consultation for Zhang (with consent),
/// Dr. Wang accepts, and Dr. Li books one of Dr. Wang's free slots: the consultation is
/// scheduled. Returns its id.
pub async fn scheduled_consultation(app: &TestApp) -> String {
    app.consultation().reason("胸闷两周，心电图 ST 段改变").set("record_summary", json!("高血压十年")).booked().await.0
}

// ---------------------------------------------------------------------------------------
// A signaling client over tokio-tungstenite.

pub struct Signaler {
    pub out: mpsc::UnboundedSender<Message>,
    pub events: mpsc::UnboundedReceiver<Value>,
    pub reader: tokio::task::JoinHandle<()>,
    pub writer: tokio::task::JoinHandle<()>,
}

impl Signaler {
    pub async fn open(url: &str) -> Signaler {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let reader = tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Message::Text(t)) => {
                        let v: Value = serde_json::from_str(t.as_str()).expect("server sends JSON");
                        let _ = ev_tx.send(v);
                    }
                    Ok(Message::Close(f)) => {
                        let code = f.map(|f| u16::from(f.code)).unwrap_or(1005);
                        let _ = ev_tx.send(json!({"type": "__closed", "code": code}));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        let _ = ev_tx.send(json!({"type": "__closed", "code": 1006}));
                        break;
                    }
                }
            }
        });
        Signaler { out, events, reader, writer }
    }

    /// Joins the consultation's room as `username`: POST join, then the WebSocket.
    pub async fn join(app: &TestApp, username: &str, consultation: &str) -> Signaler {
        let token = app.login(username).await;
        let (status, body) = app.post(&format!("/api/v1/consultations/{consultation}/join"), &token, &json!({})).await;
        assert_eq!(status, 200, "{username} joins: {body}");
        Signaler::open(body["ws_url"].as_str().unwrap()).await
    }

    pub fn send(&self, v: Value) {
        let _ = self.out.send(Message::Text(v.to_string().into()));
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<Message> {
        self.out.clone()
    }

    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.events.recv()).await.expect("a message in time").expect("connection open")
    }

    /// The next message of type `ty`, skipping others.
    pub async fn expect(&mut self, ty: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == ty {
                return v;
            }
            assert_ne!(v["type"], "__closed", "closed while waiting for {ty}: {v}");
        }
    }

    /// The close code, skipping messages before it.
    pub async fn closed(&mut self) -> u64 {
        self.expect("__closed").await["code"].as_u64().unwrap()
    }

    /// The close code of a connection closed at once, well before the server's next
    /// heartbeat check (`signaling::ws::PING_INTERVAL`, 10 s): within half of it from now.
    pub async fn closed_at_once(&mut self) -> u64 {
        self.closed_within(teleconsult::signaling::ws::PING_INTERVAL / 2, "left to the next heartbeat").await
    }

    /// The close code of a connection closed by the server's next heartbeat check: within an
    /// interval of it (`signaling::ws::PING_INTERVAL`), the gathering of its read and a margin.
    pub async fn closed_by_a_heartbeat(&mut self) -> u64 {
        let within = teleconsult::signaling::ws::PING_INTERVAL
            + teleconsult::signaling::tickets::HEARTBEAT_READS_GATHER
            + Duration::from_secs(5);
        self.closed_within(within, "no heartbeat closed it").await
    }

    /// The close code of a connection closed within `within` from now (else fails, saying `why`).
    async fn closed_within(&mut self, within: Duration, why: &str) -> u64 {
        tokio::time::timeout(within, async {
            loop {
                let v = self.events.recv().await.expect("connection open");
                if v["type"] == "__closed" {
                    break v["code"].as_u64().unwrap();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not closed within {within:?}: {why}"))
    }

    /// Nothing arrives within `d`.
    pub async fn quiet_for(&mut self, d: Duration) -> Option<Value> {
        tokio::time::timeout(d, self.events.recv()).await.ok().flatten()
    }

    /// Drops the socket without a close frame, as a lost network does.
    pub fn drop_socket(self) {
        self.reader.abort();
        self.writer.abort();
    }
}

// ---------------------------------------------------------------------------------------
// A WebRTC peer (webrtc crate) signaling through a Signaler.

pub struct Peer {
    pub pc: Arc<RTCPeerConnection>,
    /// Data-channel messages received.
    pub received: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    pub received_tx: mpsc::UnboundedSender<String>,
    pub channel: Arc<tokio::sync::Mutex<Option<Arc<RTCDataChannel>>>>,
    /// The peer this one talks to.
    pub remote: Arc<std::sync::Mutex<String>>,
    /// Where signals go (replaced after a resume).
    pub out: Arc<std::sync::Mutex<mpsc::UnboundedSender<Message>>>,
    /// Candidates that arrived before the description they belong to.
    pub pending: tokio::sync::Mutex<Vec<RTCIceCandidateInit>>,
}

/// A peer connection with host candidates on loopback over UDP, or only what `config` allows
/// (e.g. relay candidates through its TURN servers).
pub async fn new_pc(config: RTCConfiguration) -> Arc<RTCPeerConnection> {
    let mut se = SettingEngine::default();
    se.set_network_types(vec![NetworkType::Udp4]);
    se.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    se.set_include_loopback_candidate(true);
    let api = APIBuilder::new().with_setting_engine(se).build();
    Arc::new(api.new_peer_connection(config).await.expect("peer connection"))
}

pub fn description_json(d: &RTCSessionDescription) -> Value {
    json!({"type": d.sdp_type.to_string(), "sdp": d.sdp})
}

impl Peer {
    pub async fn new(sig: &Signaler, remote: &str) -> Peer {
        Peer::with_config(sig, remote, RTCConfiguration::default()).await
    }

    pub async fn with_config(sig: &Signaler, remote: &str, config: RTCConfiguration) -> Peer {
        let pc = new_pc(config).await;
        let (tx, received) = mpsc::unbounded_channel();
        let channel: Arc<tokio::sync::Mutex<Option<Arc<RTCDataChannel>>>> = Arc::default();
        let remote = Arc::new(std::sync::Mutex::new(remote.to_string()));
        let out = Arc::new(std::sync::Mutex::new(sig.sender()));
        {
            let (remote, out) = (remote.clone(), out.clone());
            pc.on_ice_candidate(Box::new(move |c| {
                let (remote, out) = (remote.clone(), out.clone());
                Box::pin(async move {
                    let Some(c) = c else { return };
                    let init = c.to_json().expect("candidate json");
                    let msg = json!({"type": "signal", "to": *remote.lock().unwrap(), "candidate": {
                        "candidate": init.candidate, "sdpMid": init.sdp_mid, "sdpMLineIndex": init.sdp_mline_index}});
                    let _ = out.lock().unwrap().send(Message::Text(msg.to_string().into()));
                })
            }));
        }
        {
            let (channel, tx) = (channel.clone(), tx.clone());
            pc.on_data_channel(Box::new(move |dc| {
                let (channel, tx) = (channel.clone(), tx.clone());
                Box::pin(async move {
                    wire_channel(&dc, tx);
                    *channel.lock().await = Some(dc);
                })
            }));
        }
        Peer {
            pc,
            received: tokio::sync::Mutex::new(received),
            received_tx: tx,
            channel,
            remote,
            out,
            pending: Default::default(),
        }
    }

    /// Opens the data channel and sends the offer (or an ICE-restart offer).
    pub async fn offer(&self, ice_restart: bool) -> String {
        if !ice_restart {
            let dc = self.pc.create_data_channel("consult", None).await.expect("data channel");
            wire_channel(&dc, self.received_tx.clone());
            *self.channel.lock().await = Some(dc);
        }
        let options = ice_restart.then(|| RTCOfferOptions { ice_restart: true, ..Default::default() });
        let offer = self.pc.create_offer(options).await.expect("offer");
        self.pc.set_local_description(offer.clone()).await.expect("local offer");
        self.signal(json!({"description": description_json(&offer)}));
        offer.sdp
    }

    pub fn signal(&self, mut body: Value) {
        body["type"] = json!("signal");
        body["to"] = json!(*self.remote.lock().unwrap());
        let _ = self.out.lock().unwrap().send(Message::Text(body.to_string().into()));
    }

    /// Applies one relayed `signal` message.
    pub async fn on_signal(&self, v: &Value) {
        if let Some(d) = v.get("description") {
            let sdp = d["sdp"].as_str().unwrap().to_string();
            if d["type"] == "offer" {
                self.pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap()).await.expect("remote offer");
                let answer = self.pc.create_answer(None).await.expect("answer");
                self.pc.set_local_description(answer.clone()).await.expect("local answer");
                self.signal(json!({"description": description_json(&answer)}));
            } else {
                self.pc
                    .set_remote_description(RTCSessionDescription::answer(sdp).unwrap())
                    .await
                    .expect("remote answer");
            }
            for c in self.pending.lock().await.drain(..) {
                self.pc.add_ice_candidate(c).await.expect("candidate");
            }
        } else if let Some(c) = v.get("candidate") {
            let init = RTCIceCandidateInit {
                candidate: c["candidate"].as_str().unwrap_or_default().to_string(),
                sdp_mid: c["sdpMid"].as_str().map(str::to_string),
                sdp_mline_index: c["sdpMLineIndex"].as_u64().map(|i| i as u16),
                username_fragment: None,
            };
            if self.pc.remote_description().await.is_none() {
                self.pending.lock().await.push(init);
            } else {
                self.pc.add_ice_candidate(init).await.expect("candidate");
            }
        }
    }

    pub async fn send_data(&self, text: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let dc = self.channel.lock().await.clone();
            if let Some(dc) = dc.filter(|d| d.ready_state() == RTCDataChannelState::Open) {
                dc.send_text(text.to_string()).await.expect("data channel send");
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the data channel never opened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn recv_data(&self) -> String {
        tokio::time::timeout(WAIT, self.received.lock().await.recv())
            .await
            .expect("data in time")
            .expect("channel open")
    }
}

pub fn wire_channel(dc: &Arc<RTCDataChannel>, tx: mpsc::UnboundedSender<String>) {
    dc.on_message(Box::new(move |m| {
        let _ = tx.send(String::from_utf8_lossy(&m.data).to_string());
        Box::pin(async {})
    }));
}

/// Feeds `signal` messages to the peer until a message of another type arrives; returns it.
pub async fn pump_until_other(sig: &mut Signaler, peer: &Peer) -> Value {
    loop {
        let v = sig.next().await;
        if v["type"] == "signal" {
            peer.on_signal(&v).await;
        } else {
            return v;
        }
    }
}

/// The ICE username fragment of an SDP (new on every ICE restart).
pub fn ice_ufrag(sdp: &str) -> String {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).unwrap_or_default().trim().to_string()
}

/// After `b` resumed: `pa` restarts ICE toward `pb` (the restart offer must carry new
/// credentials, unlike `first_offer`), waits for `pb`'s restart answer, and the data channel
/// carries a message each way again.
pub async fn restart_ice_and_exchange(a: &mut Signaler, pa: &Peer, b: &mut Signaler, pb: &Peer, first_offer: &str) {
    let old_answer = ice_ufrag(&pa.pc.remote_description().await.expect("answered").sdp);
    let restart_offer = pa.offer(true).await;
    assert_ne!(ice_ufrag(first_offer), ice_ufrag(&restart_offer), "the ICE restart offer carries new credentials");
    pump_both(a, pa, b, pb, async {
        let deadline = tokio::time::Instant::now() + WAIT;
        while pa.pc.remote_description().await.map(|d| ice_ufrag(&d.sdp)) == Some(old_answer.clone()) {
            assert!(tokio::time::Instant::now() < deadline, "no ICE restart answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pb.send_data("after resume").await;
        assert_eq!(pa.recv_data().await, "after resume");
        pa.send_data("again").await;
        assert_eq!(pb.recv_data().await, "again");
    })
    .await;
}

/// After `pa` has offered: runs both peers' signaling while `pa` sends `ask` over the data
/// channel and `pb`, once it has it, answers `reply`; returns what `pb` and then `pa` received.
pub async fn exchange(
    a: &mut Signaler,
    pa: &Peer,
    b: &mut Signaler,
    pb: &Peer,
    ask: &str,
    reply: &str,
) -> (String, String) {
    pump_both(a, pa, b, pb, async {
        pa.send_data(ask).await;
        let got = pb.recv_data().await;
        pb.send_data(reply).await;
        (got, pa.recv_data().await)
    })
    .await
}

/// Runs both peers' signaling until `done` completes.
pub async fn pump_both<F: std::future::Future>(
    a: &mut Signaler,
    pa: &Peer,
    b: &mut Signaler,
    pb: &Peer,
    done: F,
) -> F::Output {
    tokio::pin!(done);
    loop {
        tokio::select! {
            out = &mut done => return out,
            v = a.next() => if v["type"] == "signal" { pa.on_signal(&v).await },
            v = b.next() => if v["type"] == "signal" { pb.on_signal(&v).await },
        }
    }
}
