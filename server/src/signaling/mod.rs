//! Live sessions: the signaling that lets the participants of a consultation set up their
//! WebRTC call. The server carries no media; it decides who may be in the room, relays
//! offers, answers and ICE candidates between named peers, keeps chat and the room's
//! timeline with the consultation, and moves the consultation to `in_progress` when the
//! inviting side and an expert are in the room together.
//!
//! - [`protocol`]: the JSON messages and close codes (documented in `docs/signaling.md`).
//! - [`room`]: the pure rules of one room: lobby, admission, removal, politeness, resume.
//! - [`hub`]: the rooms of this instance, the bus their events travel on, the recorder.
//! - [`nats`]: the bus between several instances, over NATS JetStream (`nats_url`).
//! - [`ws`]: one WebSocket connection: limits, heartbeats, the bounded outbox.
//! - [`tickets`]: signed single-use 30 s tickets, so no long-lived token appears in a URL.
//! - [`turn`]: short-lived TURN credentials (TURN REST API scheme, as coturn checks them).
//!
//! `POST /api/v1/consultations/{id}/join` checks that the caller takes part in a scheduled or
//! in-progress consultation, audits the access, and answers a ticket, the WebSocket URL and
//! the ICE servers; `GET /api/v1/rtc?ticket=...` is the WebSocket.

pub mod hub;
pub mod nats;
pub mod protocol;
pub mod room;
pub mod store;
pub mod tickets;
pub mod turn;
pub mod ws;

pub use hub::RoomHub;
pub use protocol::IceServer;

use crate::api::{Json, Path, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::config::Config;
use crate::consultations::state::State as ConsultationState;
use crate::db::{ts, Id};
use crate::error::ErrorCode as Problem;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use protocol::{RoomRole, PROTOCOL_VERSION};
use rand::RngCore;
use serde::Serialize;
use std::sync::Arc;

pub fn routes() -> Routes {
    Routes::new("live sessions")
        .post(
            "/api/v1/consultations/{id}/join",
            "Join the consultation's room: a single-use ticket (30 s), the WebSocket URL and the ICE servers",
            join,
        )
        .json::<JoinResponse>(200)
        .errors(&[409])
        .get_public(
            "/api/v1/rtc",
            "The signaling WebSocket (?ticket=... from join, or ?resume=... after a lost connection)",
            ws::rtc,
        )
        .query::<ws::RtcParams>()
        .answers(101, None, "switching to the signaling WebSocket (protocol in docs/signaling.md)")
        .errors(&[426])
}

/// Starts the signaling hub for a configuration: room limits, and the in-process bus or,
/// with a NATS client (connected from `nats_url` with [`nats::connect`]), the NATS bus
/// (start-up fails when NATS has no JetStream).
/// Starts signaling; tickets are signed with a key derived from `secret` (the access tokens'
/// signing secret, which every instance shares).
pub async fn start(
    config: &Config,
    db: crate::db::Db,
    secret: &[u8],
    nats: Option<async_nats::Client>,
) -> anyhow::Result<Arc<RoomHub>> {
    if config.turn_secret.is_empty() && config.turn_urls.iter().any(|u| u.starts_with("turn")) {
        tracing::warn!("turn_urls has TURN servers but turn_secret is empty: only STUN is handed out");
    }
    let limits = room::RoomLimits { max_participants: config.signaling_max_participants, ..Default::default() };
    let bus: Arc<dyn hub::RoomBus> = match nats {
        None => Arc::new(hub::InProcessBus::default()),
        Some(client) => {
            let bus = nats::NatsBus::new(client, &config.nats_url).await?;
            tracing::info!(nats = %crate::config::redact_url(&config.nats_url), "signaling rooms are shared over NATS");
            Arc::new(bus)
        }
    };
    // A participant who resumes gets ICE servers minted afresh (new TURN credentials) on the
    // instance holding its new socket.
    let ice_config = config.clone();
    let ice: hub::IceSource = Arc::new(move |user_id: &str| ice_servers(&ice_config, user_id, Utc::now()));
    Ok(RoomHub::start(db, tickets::TicketKey::derive(secret), limits, bus, ice))
}

/// A new participant id: 72 random bits, short enough to read in logs.
pub fn participant_id() -> String {
    let mut bytes = [0u8; 9];
    rand::thread_rng().fill_bytes(&mut bytes);
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The ICE servers handed to `user_id` on join and on resume, from `turn_urls`:
/// - `stun:` URLs as they are; with none configured, `stun:host:port` of each `turn:` server
///   (coturn answers STUN on its TURN port);
/// - `turn:`/`turns:` URLs in one entry with a credential minted for `user_id` (see [`turn`]),
///   a `turn:` URL without `?transport=` offered over both UDP and TCP. Without a
///   `turn_secret` they are left out: a browser refuses a TURN server without credentials.
///
/// The secret itself never leaves the server.
pub fn ice_servers(config: &Config, user_id: &str, now: chrono::DateTime<Utc>) -> Vec<IceServer> {
    let mut stun: Vec<String> =
        config.turn_urls.iter().filter(|u| u.starts_with("stun:") || u.starts_with("stuns:")).cloned().collect();
    if stun.is_empty() {
        for url in config.turn_urls.iter().filter(|u| u.starts_with("turn:")) {
            let derived = turn::host_port(url).map(|hp| format!("stun:{hp}"));
            if let Some(d) = derived.filter(|d| !stun.contains(d)) {
                stun.push(d);
            }
        }
    }
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer { urls: stun, username: None, credential: None });
    }
    let relays: Vec<String> = config.turn_urls.iter().filter(|u| is_turn(u)).flat_map(|u| turn::expand(u)).collect();
    if !relays.is_empty() && !config.turn_secret.is_empty() {
        let c = turn::mint(&config.turn_secret, user_id, now, config.turn_ttl_secs);
        servers.push(IceServer { urls: relays, username: Some(c.username), credential: Some(c.password) });
    }
    servers
}

fn is_turn(url: &str) -> bool {
    url.starts_with("turn:") || url.starts_with("turns:")
}

/// Whether [`ice_servers`] hands out TURN credentials: a `turn:`/`turns:` URL and a secret.
pub fn hands_out_turn_credentials(config: &Config) -> bool {
    !config.turn_secret.is_empty() && config.turn_urls.iter().any(|u| is_turn(u))
}

/// How often a signaling connection sends its participant `ice-servers` with a fresh TURN
/// credential (see [`turn::refresh_period`]), counted from `joined`/`resumed`; `None` when no
/// TURN credentials are handed out, so there is nothing to refresh.
pub fn ice_refresh_period(config: &Config) -> Option<std::time::Duration> {
    hands_out_turn_credentials(config).then(|| turn::refresh_period(config.turn_ttl_secs))
}

/// The `ice-servers` message for `user_id` at `now`: the ICE servers of the join answer with a
/// TURN credential minted at `now`; `None` when no TURN credential is handed out.
pub fn ice_refresh(config: &Config, user_id: &str, now: chrono::DateTime<Utc>) -> Option<protocol::ServerMessage> {
    let ice_servers = ice_servers(config, user_id, now);
    ice_servers.iter().any(|s| s.credential.is_some()).then_some(protocol::ServerMessage::IceServers { ice_servers })
}

/// What a join checks, in one row: the patient, the state, the urgency, the caller's role in
/// the consultation (if any) and the start of its booked appointment (if any).

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct JoinResponse {
    ticket: String,
    ws_url: String,
    expires_at: String,
    protocol_version: u32,
    room_role: RoomRole,
    /// Whether the caller will wait in the lobby until a doctor admits them.
    lobby: bool,
    ice_servers: Vec<IceServer>,
}

async fn join(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<JoinResponse>)> {
    let row = store::join_row(&state.db, &user, &id).await?;
    let Some((patient_id, current, urgency, role, start)) = row else {
        // Not visible: refused (404) and the refusal audited, as every other access.
        crate::consultations::store::load_to_act(&state.db, &user, &id, "join").await?;
        return Err(ApiError::not_found("consultation"));
    };
    if role.as_deref() == Some("invited") {
        // An expert invited who has not answered: the room is for those who took the case.
        crate::audit::event(&user, "join", "consultation", &id)
            .patient(&patient_id)
            .outcome(crate::audit::Outcome::Denied)
            .detail("invitation not answered")
            .record(&state.db)
            .await?;
        return Err(crate::consultations::store::invitation_unanswered());
    }
    let event = crate::audit::event(&user, "join", "consultation", &id).patient(&patient_id);
    let done = async {
        let role = role.map(|r| r.parse::<RoomRole>()).transpose()?.ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                Problem::NotAParticipant,
                "Forbidden",
                "only the participants of a consultation may join its room",
            )
        })?;
        let current: ConsultationState = current.parse()?;
        if !matches!(current, ConsultationState::Scheduled | ConsultationState::InProgress) {
            return Err(ApiError::conflict(
                Problem::ConsultationNotLive,
                format!(
                    "the consultation is {}; its room is open while it is scheduled or in progress",
                    current.as_str()
                ),
            ));
        }
        let now = Utc::now();
        if current == ConsultationState::Scheduled {
            let opens = crate::scheduling::visit::room_opens_at(
                urgency.parse::<crate::consultations::state::Urgency>()?,
                start.as_deref().map(crate::db::parse_ts),
                state.config.call_open_before_mins,
            );
            if !crate::scheduling::visit::room_open(opens, now) {
                let at = opens.map(ts).unwrap_or_default();
                let mut err = ApiError::conflict(
                    Problem::RoomNotOpen,
                    format!(
                        "the room opens at {at}, {} minutes before the appointment",
                        state.config.call_open_before_mins
                    ),
                );
                err.title = "Room not open yet";
                return Err(err);
            }
        }
        Ok((role, now))
    };
    let (role, now) = event.clone().if_refused(&state.db, done.await).await?;
    // Admitted: the access is recorded before the ticket is handed out.
    event.record(&state.db).await?;
    let (ticket, expires) = state.signaling.tickets.issue(&id, &user.id, role.as_str(), user.device.as_deref(), now);
    let ws_url = format!("{}/api/v1/rtc?ticket={ticket}", ws_origin(&headers, &state.config));
    Ok((
        StatusCode::OK,
        Json(JoinResponse {
            ticket,
            ws_url,
            expires_at: ts(expires),
            protocol_version: PROTOCOL_VERSION,
            room_role: role,
            lobby: !role.is_doctor(),
            ice_servers: ice_servers(&state.config, &user.id, now),
        }),
    ))
}

/// `ws://host` or `wss://host` as the client reached us (Host, X-Forwarded-Proto).
fn ws_origin(headers: &HeaderMap, config: &Config) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .map(str::to_string)
        .unwrap_or_else(|| config.bind.to_string());
    let https = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).is_some_and(|p| p == "https");
    format!("{}://{host}", if https { "wss" } else { "ws" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stun_urls_are_handed_out_without_credentials() {
        let config = Config {
            turn_urls: vec!["stun:stun.example.org:3478".into(), "turn:turn.example.org:3478?transport=udp".into()],
            ..Config::default()
        };
        let servers = ice_servers(&config, "u", Utc::now());
        assert_eq!(
            servers,
            vec![IceServer { urls: vec!["stun:stun.example.org:3478".into()], username: None, credential: None }]
        );
        assert!(ice_servers(&Config::default(), "u", Utc::now()).is_empty());
    }

    #[test]
    fn turn_servers_come_with_a_credential_minted_for_the_user() {
        let config = Config {
            turn_urls: vec!["turn:turn.example.org:3478".into(), "turns:turn.example.org:443?transport=tcp".into()],
            turn_secret: "north-clinic-turn-secret".into(),
            turn_ttl_secs: 3600,
            ..Config::default()
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T11:00:00Z").unwrap().with_timezone(&Utc);
        let servers = ice_servers(&config, "0190f5d2-0000-7000-8000-000000000001", now);
        assert_eq!(
            servers,
            vec![
                IceServer { urls: vec!["stun:turn.example.org:3478".into()], username: None, credential: None },
                IceServer {
                    urls: vec![
                        "turn:turn.example.org:3478?transport=udp".into(),
                        "turn:turn.example.org:3478?transport=tcp".into(),
                        "turns:turn.example.org:443?transport=tcp".into(),
                    ],
                    username: Some("1795435200:0190f5d2-0000-7000-8000-000000000001".into()),
                    credential: Some("doAeyBgjXpW2k0d2lyP2NIRPGMw=".into()),
                },
            ]
        );
        let shown = serde_json::to_string(&servers).unwrap();
        assert!(!shown.contains("north-clinic-turn-secret"), "{shown}");
    }

    #[test]
    fn turn_credentials_are_refreshed_only_where_they_are_handed_out() {
        let stun_only = Config {
            turn_urls: vec!["stun:stun.example.org:3478".into(), "turn:turn.example.org:3478".into()],
            turn_ttl_secs: 6,
            ..Config::default()
        };
        assert_eq!(ice_refresh_period(&stun_only), None, "TURN URLs without a secret: no credential to refresh");
        assert_eq!(ice_refresh(&stun_only, "u", Utc::now()), None);
        assert_eq!(ice_refresh_period(&Config::default()), None, "nothing configured");
        let secret_without_relay = Config {
            turn_urls: vec!["stun:stun.example.org:3478".into()],
            turn_secret: "s".into(),
            ..Config::default()
        };
        assert_eq!(ice_refresh_period(&secret_without_relay), None);
        assert_eq!(ice_refresh(&secret_without_relay, "u", Utc::now()), None);

        let config = Config {
            turn_urls: vec!["turn:turn.example.org:3478".into()],
            turn_secret: "north-clinic-turn-secret".into(),
            turn_ttl_secs: 6,
            ..Config::default()
        };
        assert_eq!(ice_refresh_period(&config), Some(std::time::Duration::from_secs(3)));
        assert_eq!(
            ice_refresh_period(&Config { turn_ttl_secs: 3600, ..config.clone() }),
            Some(std::time::Duration::from_secs(1800))
        );
        // The refresh is the join answer's list, minted at the refresh.
        let user = "0190f5d2-0000-7000-8000-000000000001";
        let joined_at = chrono::DateTime::parse_from_rfc3339("2026-11-23T11:00:00Z").unwrap().with_timezone(&Utc);
        let later = joined_at + chrono::Duration::seconds(3);
        let Some(protocol::ServerMessage::IceServers { ice_servers: fresh }) = ice_refresh(&config, user, later) else {
            panic!("a refresh where TURN credentials are handed out")
        };
        assert_eq!(fresh, ice_servers(&config, user, later));
        let joined = ice_servers(&config, user, joined_at);
        assert_eq!(fresh[0], joined[0], "the same STUN server");
        assert_eq!(fresh[1].urls, joined[1].urls, "the same relays");
        assert_eq!(fresh[1].username.as_deref(), Some("1795431609:0190f5d2-0000-7000-8000-000000000001"));
        assert_eq!(joined[1].username.as_deref(), Some("1795431606:0190f5d2-0000-7000-8000-000000000001"));
        assert_eq!(
            fresh[1].credential.as_deref(),
            Some(turn::password("north-clinic-turn-secret", fresh[1].username.as_deref().unwrap()).as_str())
        );
    }

    #[test]
    fn the_websocket_origin_follows_the_request() {
        let mut h = HeaderMap::new();
        h.insert("host", "clinic.example.org:8443".parse().unwrap());
        assert_eq!(ws_origin(&h, &Config::default()), "ws://clinic.example.org:8443");
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(ws_origin(&h, &Config::default()), "wss://clinic.example.org:8443");
        h.insert("host", "evil\"<script>".parse().unwrap());
        assert_eq!(ws_origin(&h, &Config::default()), "wss://127.0.0.1:8080");
    }

    #[test]
    fn participant_ids_are_short_and_distinct() {
        let a = participant_id();
        assert_eq!(a.len(), 12);
        assert_ne!(a, participant_id());
    }
}
