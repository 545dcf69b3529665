//! Live network-check sessions: one server-side RTCPeerConnection each, at most
//! `netcheck_max_sessions` at a time and one per user, each closed `netcheck_session_secs`
//! after it started by a timer task (a session that never connected is then stored as
//! `cannot_connect`).

use super::verdict::{self, BulkCount, Frame, NetPath, ServerSide};
use super::SessionInfo;
use crate::db::Db;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::signaling::IceServer;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;

/// The longest the server waits for its own ICE gathering before answering.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// The label of the data channel the server serves.
pub const PROBE_LABEL: &str = "probe";

struct Session {
    info: SessionInfo,
    pc: Arc<RTCPeerConnection>,
    deadline: Instant,
    connected: Arc<AtomicBool>,
    bulk: Arc<Mutex<BulkCount>>,
    offered: AtomicBool,
}

/// The live sessions of this instance.
pub struct Sessions {
    db: Db,
    max: usize,
    ttl: Duration,
    /// Offer loopback host candidates (the server listens on loopback: tests, a local demo).
    loopback: bool,
    live: Mutex<HashMap<String, Arc<Session>>>,
}

fn busy(retry_after: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NetcheckBusy,
        "Service unavailable",
        format!("the server is running as many network checks as it may; retry after {retry_after} s"),
    );
    e.retry_after = Some(retry_after);
    e
}

fn invalid_sdp(detail: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable(ErrorCode::InvalidSdp, format!("the offer is not a usable SDP offer: {detail}"))
}

impl Sessions {
    pub fn new(config: &crate::config::Config, db: Db) -> Arc<Sessions> {
        Arc::new(Sessions {
            db,
            max: config.netcheck_max_sessions,
            ttl: Duration::from_secs(config.netcheck_session_secs),
            loopback: config.bind.ip().is_loopback(),
            live: Mutex::default(),
        })
    }

    /// Sessions open now.
    pub fn open_count(&self) -> usize {
        self.live.lock().expect("netcheck sessions").len()
    }

    /// `Err(netcheck_busy)` with the seconds until the first session ends when full.
    fn check_room(&self, live: &HashMap<String, Arc<Session>>) -> ApiResult<()> {
        if live.len() < self.max {
            return Ok(());
        }
        let now = Instant::now();
        let first = live.values().map(|s| s.deadline.saturating_duration_since(now)).min().unwrap_or(self.ttl);
        Err(busy(first.as_secs().max(1)))
    }

    /// Opens a session for `user_id` with a server-side peer connection using `ice_servers`.
    /// Answers its id and when it ends.
    pub async fn start(
        self: &Arc<Self>,
        user_id: &str,
        organisation_id: &str,
        ice_servers: &[IceServer],
    ) -> ApiResult<(String, DateTime<Utc>)> {
        // One check at a time per user: a new start ends the caller's open one (no result is
        // kept for it), so a reload or a double click does not hold two slots.
        let replaced: Vec<Arc<Session>> = {
            let mut live = self.live.lock().expect("netcheck sessions");
            let mine: Vec<String> =
                live.values().filter(|s| s.info.user_id == user_id).map(|s| s.info.id.clone()).collect();
            mine.iter().filter_map(|id| live.remove(id)).collect()
        };
        for old in replaced {
            close(old.pc.clone());
        }
        self.check_room(&self.live.lock().expect("netcheck sessions"))?;
        let pc = self.peer_connection(ice_servers).await?;
        let connected = Arc::new(AtomicBool::new(false));
        let bulk = Arc::new(Mutex::new(BulkCount::default()));
        let started = Instant::now();
        wire(&pc, connected.clone(), bulk.clone(), started);
        let id = crate::db::new_id();
        let now = Utc::now();
        let session = Arc::new(Session {
            info: SessionInfo {
                id: id.clone(),
                user_id: user_id.to_string(),
                organisation_id: organisation_id.to_string(),
                started_at: now,
            },
            pc: pc.clone(),
            deadline: started + self.ttl,
            connected,
            bulk,
            offered: AtomicBool::new(false),
        });
        let admitted = {
            let mut live = self.live.lock().expect("netcheck sessions");
            self.check_room(&live).map(|()| live.insert(id.clone(), session.clone()))
        };
        if let Err(e) = admitted {
            let _ = pc.close().await;
            return Err(e);
        }
        let sessions = Arc::downgrade(self);
        let (deadline, expiring) = (session.deadline, id.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            if let Some(sessions) = sessions.upgrade() {
                sessions.expire(&expiring).await;
            }
        });
        let expires = now + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        Ok((id, expires))
    }

    async fn peer_connection(&self, ice_servers: &[IceServer]) -> ApiResult<Arc<RTCPeerConnection>> {
        let mut se = SettingEngine::default();
        se.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        se.set_include_loopback_candidate(self.loopback);
        let api = APIBuilder::new().with_setting_engine(se).build();
        let config = RTCConfiguration {
            ice_servers: ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
            ..Default::default()
        };
        let pc = api.new_peer_connection(config).await.map_err(ApiError::internal)?;
        Ok(Arc::new(pc))
    }

    /// The session `id` if `user_id` opened it (anyone else: 404, as if it did not exist).
    fn owned(&self, id: &str, user_id: &str) -> ApiResult<Arc<Session>> {
        let live = self.live.lock().expect("netcheck sessions");
        match live.get(id) {
            Some(s) if s.info.user_id == user_id => Ok(s.clone()),
            _ => Err(ApiError::not_found("network check session")),
        }
    }

    /// Applies the client's complete offer and answers the server's complete answer (its ICE
    /// gathering finished, bounded by [`GATHER_TIMEOUT`]).
    pub async fn answer(&self, id: &str, user_id: &str, sdp: String) -> ApiResult<String> {
        let session = self.owned(id, user_id)?;
        if sdp.trim().is_empty() {
            return Err(invalid_sdp("it is empty"));
        }
        let offer = RTCSessionDescription::offer(sdp).map_err(invalid_sdp)?;
        if session.offered.swap(true, Ordering::SeqCst) {
            return Err(ApiError::conflict(ErrorCode::OfferAlreadyMade, "this network check already has its offer"));
        }
        let pc = &session.pc;
        if let Err(e) = pc.set_remote_description(offer).await {
            session.offered.store(false, Ordering::SeqCst);
            return Err(invalid_sdp(e));
        }
        let answer = match pc.create_answer(None).await {
            Ok(a) => a,
            Err(e) => return Err(invalid_sdp(e)),
        };
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(answer).await.map_err(ApiError::internal)?;
        if tokio::time::timeout(GATHER_TIMEOUT, gathered.recv()).await.is_err() {
            tracing::warn!(netcheck = %id, "ICE gathering did not finish in time: answering the candidates so far");
        }
        let local = pc.local_description().await.ok_or_else(|| ApiError::internal("no local description"))?;
        Ok(local.sdp)
    }

    /// Ends the session `id` of `user_id`: what the server saw of it, and its peer connection
    /// closed.
    pub async fn finish(&self, id: &str, user_id: &str) -> ApiResult<(SessionInfo, ServerSide)> {
        self.owned(id, user_id)?;
        let session = self
            .live
            .lock()
            .expect("netcheck sessions")
            .remove(id)
            .ok_or_else(|| ApiError::not_found("network check session"))?;
        let pair = session.pc.sctp().transport().ice_transport().get_selected_candidate_pair().await;
        let path = pair.map(|p| verdict::path_of(&p.remote.typ.to_string(), &p.remote.address));
        let connected = session.connected.load(Ordering::SeqCst);
        let server = ServerSide {
            connected,
            path: path.filter(|_| connected).unwrap_or(NetPath::Unknown),
            bulk: *session.bulk.lock().expect("bulk count"),
        };
        close(session.pc.clone());
        Ok((session.info.clone(), server))
    }

    /// The timer's end of a session still open: its peer connection closed; stored as
    /// `cannot_connect` when it never connected. A session that connected but was never
    /// completed (the client went away) leaves no result.
    async fn expire(&self, id: &str) {
        let Some(session) = self.live.lock().expect("netcheck sessions").remove(id) else { return };
        close(session.pc.clone());
        if !session.connected.load(Ordering::SeqCst) {
            let outcome = verdict::never_connected(verdict::ReasonCode::TimedOut);
            if let Err(e) = super::store::insert(&self.db, &session.info, &outcome).await {
                tracing::warn!(netcheck = %id, error = %e, "could not store an expired network check");
            }
        }
        tracing::info!(netcheck = %id, "network check session expired");
    }
}

/// Closes a peer connection without holding up the caller.
fn close(pc: Arc<RTCPeerConnection>) {
    tokio::spawn(async move {
        let _ = pc.close().await;
    });
}

/// Marks the session connected, and serves the `probe` data channel: echo probes, count bulk,
/// answer `bulk_end` with `bulk_ack`.
fn wire(pc: &Arc<RTCPeerConnection>, connected: Arc<AtomicBool>, bulk: Arc<Mutex<BulkCount>>, started: Instant) {
    pc.on_peer_connection_state_change(Box::new(move |s| {
        if s == RTCPeerConnectionState::Connected {
            connected.store(true, Ordering::SeqCst);
        }
        Box::pin(async {})
    }));
    pc.on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
        if dc.label() == PROBE_LABEL {
            serve_probe(&dc, bulk.clone(), started);
        }
        Box::pin(async {})
    }));
}

fn serve_probe(dc: &Arc<RTCDataChannel>, bulk: Arc<Mutex<BulkCount>>, started: Instant) {
    let weak: Weak<RTCDataChannel> = Arc::downgrade(dc);
    dc.on_message(Box::new(move |m| {
        let (weak, bulk) = (weak.clone(), bulk.clone());
        Box::pin(async move {
            let Some(dc) = weak.upgrade() else { return };
            match verdict::classify(m.is_string, &m.data) {
                Frame::Bulk => {
                    let at = started.elapsed().as_millis() as u64;
                    bulk.lock().expect("bulk count").add(m.data.len(), at);
                }
                Frame::BulkEnd => {
                    let ack = bulk.lock().expect("bulk count").ack();
                    let _ = dc.send_text(ack).await;
                }
                Frame::Echo if m.is_string => {
                    let _ = dc.send_text(String::from_utf8_lossy(&m.data).into_owned()).await;
                }
                Frame::Echo => {
                    let _ = dc.send(&m.data).await;
                }
            }
        })
    }));
}
