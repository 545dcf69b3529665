//! The signaling protocol on the wire: JSON text frames with a `type`, version
//! [`PROTOCOL_VERSION`]. `docs/signaling.md` shows one example of each message; the close
//! codes a connection may end with are in [`close`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::marker::PhantomData;

/// The version announced in `joined` and `resumed`; clients may ask for it with `?v=1`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A participant's id within one room: opaque, random, stable across a resume.
pub type ParticipantId = String;

/// WebSocket close codes the server uses, each with a stable meaning.
pub mod close {
    /// The server is shutting down; reconnect with the resume token.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame larger than the hard cap (tungstenite refuses it before we see it).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The client asked for a protocol version the server does not speak.
    pub const UNSUPPORTED_VERSION: u16 = 4000;
    /// No ticket, or a ticket that is unknown, expired or already used.
    pub const TICKET_INVALID: u16 = 4001;
    /// The ticket's holder is no longer a participant, or the consultation is not live.
    pub const NOT_A_PARTICIPANT: u16 = 4003;
    /// The resume token is unknown, used, or its 60 s window has passed: join again.
    pub const RESUME_FAILED: u16 = 4004;
    /// The participant's account was deactivated or its access revoked: sign in again.
    pub const ACCESS_REVOKED: u16 = 4005;
    /// Too many messages broke a limit (malformed, oversized, over the rate).
    pub const POLICY_VIOLATION: u16 = 4008;
    /// A doctor removed this participant from the room or the lobby.
    pub const REMOVED: u16 = 4010;
    /// The same participant connected again elsewhere; this connection is replaced.
    pub const REPLACED: u16 = 4011;
    /// The room already holds its maximum number of participants.
    pub const ROOM_FULL: u16 = 4013;
    /// A doctor ended the call for everyone.
    pub const ENDED: u16 = 4020;
    /// The client did not read its messages fast enough; its outbound queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4029;
    /// No frame (not even a pong) arrived within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4030;
}

/// A participant's place in the room is its role in the consultation, which decides lobby and
/// admission rights ([`ParticipantRole::is_doctor`]).
pub use crate::domain::consultation::ParticipantRole as RoomRole;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    Offer,
    Answer,
    Pranswer,
    Rollback,
}

/// As the browser's `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpType,
    #[serde(default)]
    pub sdp: String,
}

/// As the browser's `RTCIceCandidateInit`; an empty `candidate` marks the end of candidates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
    #[serde(rename = "usernameFragment", default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// A signal's payload (its `description` or `candidate`): read as a `T` when it arrives, then
/// kept and relayed as the JSON text the sender wrote. A relay then neither unescapes nor
/// escapes again an SDP of several kilobytes (about 9 % of the server's CPU per 4 KB message,
/// docs/scale.md); what it relays was read as a `T` with no field unknown to `T`.
pub struct Relayed<T> {
    json: Box<RawValue>,
    kind: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Relayed<T> {
    pub fn new(value: &T) -> serde_json::Result<Relayed<T>> {
        Ok(Relayed { json: serde_json::value::to_raw_value(value)?, kind: PhantomData })
    }

    /// The payload as sent, if it reads as a `T`.
    pub fn from_json(json: &RawValue) -> serde_json::Result<Relayed<T>> {
        serde_json::from_str::<T>(json.get())?;
        Ok(Relayed { json: json.to_owned(), kind: PhantomData })
    }

    /// The payload read as a `T` (it was when it arrived).
    pub fn value(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.json.get())
    }

    /// The length of the payload's JSON text.
    pub fn json_len(&self) -> usize {
        self.json.get().len()
    }
}

impl<T> Clone for Relayed<T> {
    fn clone(&self) -> Self {
        Relayed { json: self.json.clone(), kind: PhantomData }
    }
}

impl<T> std::fmt::Debug for Relayed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.json.get())
    }
}

/// Equal when they read as equal `T`s, however the sender spaced or ordered its JSON.
impl<T: Serialize + DeserializeOwned + PartialEq> PartialEq for Relayed<T> {
    fn eq(&self, other: &Self) -> bool {
        match (self.value(), other.value()) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.json.get() == other.json.get(),
        }
    }
}

impl<T: Serialize + DeserializeOwned + Eq> Eq for Relayed<T> {}

impl<T> Serialize for Relayed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

/// Read as a `T`, then written back as JSON: the path of messages that do not come straight
/// from a socket (another instance's, over the bus). [`ClientMessage::parse`] keeps the
/// sender's text instead.
impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Relayed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = T::deserialize(d)?;
        Relayed::new(&value).map_err(serde::de::Error::custom)
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Relayed<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(g)
    }
}

/// Microphone, camera and screen share as the participant reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MediaState {
    pub mic: bool,
    pub camera: bool,
    pub screen: bool,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMessage {
    /// An offer, answer or ICE candidate for one named peer: exactly one of the two fields.
    Signal {
        to: ParticipantId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<Relayed<SessionDescription>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<Relayed<IceCandidate>>,
    },
    /// A chat line for everyone in the room; stored with the consultation.
    Chat { text: String },
    /// The sender's microphone, camera and screen-share state.
    Media { mic: bool, camera: bool, screen: bool },
    /// A doctor admits a participant waiting in the lobby.
    Admit { peer: ParticipantId },
    /// A doctor removes a participant from the lobby or the room.
    Remove { peer: ParticipantId },
    /// The sender leaves for good (its resume token stops working).
    Leave,
    /// A doctor ends the call for everyone in the room and the lobby.
    End,
}

/// One participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PeerInfo {
    pub id: ParticipantId,
    pub user_id: String,
    pub name: String,
    pub role: RoomRole,
    /// For perfect negotiation: whether the receiver of this message is the polite side
    /// toward this peer. The later arrival is polite toward those already in the room.
    pub polite: bool,
    pub media: MediaState,
    /// False while the peer's socket is lost and it may still resume.
    pub connected: bool,
}

/// Why a peer left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// It said `leave` or closed its socket normally.
    Left,
    /// Its socket was lost and it did not resume within the window.
    TimedOut,
    /// A doctor removed it.
    Removed,
    /// The same user joined again from another connection.
    Replaced,
    /// Too much was addressed to it while it was away to replay faithfully.
    Overflowed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LobbyStatus {
    Waiting,
    Admitted,
    Removed,
    Left,
}

/// Stable codes of `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not a known message, or a binary frame.
    Malformed,
    /// Larger than the message size limit (64 KiB).
    TooLarge,
    /// More messages per second than the connection may send.
    RateLimited,
    /// No admitted peer with that id is in the room.
    UnknownPeer,
    /// The sender waits in the lobby; nothing it sends reaches anyone.
    NotAdmitted,
    /// The sender's role may not do this (only doctors admit and remove).
    NotAllowed,
    /// A signal without exactly one of `description` and `candidate`, or addressed to itself.
    InvalidSignal,
    /// A chat line that is empty or longer than the limit.
    InvalidChat,
    /// A chat line that could not be kept with the consultation (the database did not take
    /// it in time): nobody was shown it, and it may be sent again.
    ChatNotSaved,
    /// An admission that could not be kept on the room's timeline (the database did not take
    /// it in time): the participant still waits in the lobby, and it may be sent again.
    AdmissionNotSaved,
}

/// One entry of `RTCConfiguration.iceServers`, as handed out on join and on resume (see
/// [`super::ice_servers`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A reading as the room sees it (`observation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LiveReading {
    /// The stored reading's id.
    pub id: String,
    pub consultation_id: String,
    /// blood_pressure, glucose, spo2, weight, temperature or ecg.
    pub kind: String,
    /// When it was measured (UTC, RFC 3339).
    pub measured_at: String,
    /// When the server stored it.
    pub received_at: String,
    /// home, kiosk or clinic.
    pub source: String,
    /// The device as the sender named it (model, serial); empty when not named.
    pub device: String,
    /// The values in stored units (mmHg, bpm, mmol/L, %, kg, °C).
    pub values: crate::domain::vitals::Values,
    /// The values in a few words: `152/96 mmHg, pulse 78 bpm`.
    pub summary: String,
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ServerMessage {
    /// You are connected: your id, the others (with your politeness toward each), the
    /// lobby (doctors only), and the token to resume with if your socket is lost.
    Joined {
        version: u32,
        /// False in the lobby: `peers` is then empty until `lobby` `admitted` arrives,
        /// followed by a `peer-joined` for each peer in the room.
        admitted: bool,
        you: PeerInfo,
        peers: Vec<PeerInfo>,
        lobby: Vec<PeerInfo>,
        resume_token: String,
        resume_window_secs: u64,
    },
    /// Your socket was replaced after a loss; what was addressed to you meanwhile follows
    /// (`replayed` messages, in order). Restart ICE toward peers where `restart_ice`, with
    /// `ice_servers`: freshly minted for you (new TURN credentials) by the instance holding
    /// your new socket, so a call longer than a credential's lifetime can still restart ICE
    /// through TURN. The room's rules leave it empty; the hub fills it in on delivery.
    Resumed {
        version: u32,
        admitted: bool,
        you: PeerInfo,
        peers: Vec<PeerInfo>,
        lobby: Vec<PeerInfo>,
        resume_token: String,
        resume_window_secs: u64,
        replayed: u32,
        restart_ice: bool,
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    },
    PeerJoined {
        peer: PeerInfo,
    },
    PeerLeft {
        peer: ParticipantId,
        reason: LeaveReason,
    },
    /// The peer's socket is lost; it may resume within the window.
    PeerReconnecting {
        peer: ParticipantId,
    },
    /// The peer resumed; `restart_ice` asks you to restart ICE toward it.
    PeerReconnected {
        peer: ParticipantId,
        restart_ice: bool,
    },
    Signal {
        from: ParticipantId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<Relayed<SessionDescription>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<Relayed<IceCandidate>>,
    },
    Chat {
        id: String,
        from: ParticipantId,
        name: String,
        text: String,
        at: String,
    },
    Media {
        from: ParticipantId,
        mic: bool,
        camera: bool,
        screen: bool,
    },
    /// Lobby news: to the participant itself (`waiting`, `admitted`, `removed`) and to the
    /// doctors in the room (all statuses).
    Lobby {
        status: LobbyStatus,
        participant: PeerInfo,
    },
    /// ICE servers with a TURN credential minted afresh for you, sent periodically (every half
    /// of the credential's lifetime) on each connection of a participant who was handed TURN
    /// credentials, by the instance holding the connection. Take them for later ICE restarts
    /// (`RTCPeerConnection.setConfiguration`): in a call longer than the credential's lifetime
    /// an ICE restart without a resume would otherwise use an expired credential.
    IceServers {
        ice_servers: Vec<IceServer>,
    },
    /// A vital-sign reading of the consultation's patient taken during the call (posted with
    /// the consultation's id, or while the consultation is in progress), to everyone in the
    /// room: its values, when and where it was measured, and by which device.
    Observation {
        reading: LiveReading,
    },
    /// A doctor ended the call for everyone; the connection closes with 4020 after this.
    CallEnded {
        by: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// A `signal` as it comes off the socket, its payload borrowed as JSON text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalFrame<'a> {
    #[serde(rename = "type")]
    _kind: SignalTag,
    to: ParticipantId,
    #[serde(borrow, default)]
    description: Option<&'a RawValue>,
    #[serde(borrow, default)]
    candidate: Option<&'a RawValue>,
}

#[derive(Deserialize)]
enum SignalTag {
    #[serde(rename = "signal")]
    Signal,
}

impl ClientMessage {
    /// Reads a client's text frame. A `signal` (nearly all of the traffic) is read without
    /// serde's buffering of internally tagged messages, its payload kept as the sender's JSON
    /// ([`Relayed`]); anything else, and anything that does not read that way, goes through the
    /// derived reader, so a message means, and an error reads, the same either way.
    pub fn parse(text: &str) -> serde_json::Result<ClientMessage> {
        let signal = serde_json::from_str::<SignalFrame<'_>>(text).ok().and_then(|f| {
            Some(ClientMessage::Signal {
                to: f.to,
                description: f.description.map(Relayed::from_json).transpose().ok()?,
                candidate: f.candidate.map(Relayed::from_json).transpose().ok()?,
            })
        });
        match signal {
            Some(m) => Ok(m),
            None => serde_json::from_str(text),
        }
    }
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
        ServerMessage::Error { code, message: message.into() }
    }

    /// A cheap upper estimate of the serialised size, used to bound replay buffers.
    pub fn approx_size(&self) -> usize {
        const BASE: usize = 160;
        match self {
            ServerMessage::Signal { description, candidate, .. } => {
                BASE + description.as_ref().map_or(0, Relayed::json_len)
                    + candidate.as_ref().map_or(0, Relayed::json_len)
            }
            ServerMessage::Chat { text, name, .. } => BASE + (text.len() + name.len()) * 2,
            ServerMessage::Joined { peers, lobby, .. } | ServerMessage::Resumed { peers, lobby, .. } => {
                BASE + (peers.len() + lobby.len() + 1) * 256
            }
            ServerMessage::Error { message, .. } => BASE + message.len(),
            _ => BASE + 256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn peer(id: &str) -> PeerInfo {
        PeerInfo {
            id: id.into(),
            user_id: "0192f0e0-0000-7000-8000-000000000001".into(),
            name: "李医生".into(),
            role: RoomRole::Requester,
            polite: true,
            media: MediaState { mic: true, camera: true, screen: false },
            connected: true,
        }
    }

    fn round_trip_client(m: ClientMessage) {
        let text = serde_json::to_string(&m).unwrap();
        let back: ClientMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m, "{text}");
    }

    fn round_trip_server(m: ServerMessage) {
        let text = serde_json::to_string(&m).unwrap();
        let back: ServerMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m, "{text}");
    }

    #[test]
    fn every_client_message_round_trips() {
        round_trip_client(ClientMessage::Signal {
            to: "p2".into(),
            description: Some(
                Relayed::new(&SessionDescription { kind: SdpType::Offer, sdp: "v=0\r\n".into() }).unwrap(),
            ),
            candidate: None,
        });
        round_trip_client(ClientMessage::Signal {
            to: "p2".into(),
            description: None,
            candidate: Some(
                Relayed::new(&IceCandidate {
                    candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                    username_fragment: Some("abcd".into()),
                })
                .unwrap(),
            ),
        });
        round_trip_client(ClientMessage::Chat { text: "您好".into() });
        round_trip_client(ClientMessage::Media { mic: false, camera: true, screen: true });
        round_trip_client(ClientMessage::Admit { peer: "p3".into() });
        round_trip_client(ClientMessage::Remove { peer: "p3".into() });
        round_trip_client(ClientMessage::Leave);
    }

    #[test]
    fn every_server_message_round_trips() {
        round_trip_server(ServerMessage::Joined {
            version: PROTOCOL_VERSION,
            admitted: true,
            you: peer("p1"),
            peers: vec![peer("p2")],
            lobby: vec![peer("p3")],
            resume_token: "c.t".into(),
            resume_window_secs: 60,
        });
        round_trip_server(ServerMessage::Resumed {
            version: PROTOCOL_VERSION,
            admitted: true,
            you: peer("p1"),
            peers: vec![],
            lobby: vec![],
            resume_token: "c.u".into(),
            resume_window_secs: 60,
            replayed: 2,
            restart_ice: true,
            ice_servers: vec![
                IceServer { urls: vec!["stun:turn.example.org:3478".into()], username: None, credential: None },
                IceServer {
                    urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
                    username: Some("1795435200:0190f5d2-0000-7000-8000-000000000001".into()),
                    credential: Some("doAeyBgjXpW2k0d2lyP2NIRPGMw=".into()),
                },
            ],
        });
        round_trip_server(ServerMessage::PeerJoined { peer: peer("p2") });
        round_trip_server(ServerMessage::PeerLeft { peer: "p2".into(), reason: LeaveReason::TimedOut });
        round_trip_server(ServerMessage::PeerReconnecting { peer: "p2".into() });
        round_trip_server(ServerMessage::PeerReconnected { peer: "p2".into(), restart_ice: true });
        round_trip_server(ServerMessage::Signal {
            from: "p1".into(),
            description: Some(
                Relayed::new(&SessionDescription { kind: SdpType::Answer, sdp: "v=0\r\n".into() }).unwrap(),
            ),
            candidate: None,
        });
        round_trip_server(ServerMessage::Chat {
            id: "m1".into(),
            from: "p1".into(),
            name: "李医生".into(),
            text: "血压多少？".into(),
            at: "2026-11-23T09:00:00.000000Z".into(),
        });
        round_trip_server(ServerMessage::Media { from: "p1".into(), mic: false, camera: false, screen: true });
        round_trip_server(ServerMessage::Lobby { status: LobbyStatus::Waiting, participant: peer("p3") });
        round_trip_server(ServerMessage::IceServers {
            ice_servers: vec![
                IceServer { urls: vec!["stun:turn.example.org:3478".into()], username: None, credential: None },
                IceServer {
                    urls: vec![
                        "turn:turn.example.org:3478?transport=udp".into(),
                        "turn:turn.example.org:3478?transport=tcp".into(),
                    ],
                    username: Some("1795437000:0190f5d2-0000-7000-8000-000000000001".into()),
                    credential: Some("cGFzc3dvcmQ=".into()),
                },
            ],
        });
        round_trip_server(ServerMessage::error(ErrorCode::UnknownPeer, "no peer p9"));
    }

    /// Frames a client may send, signals read by the fast reader or not, well formed or not.
    const FRAMES: &[&str] = &[
        r#"{"type":"signal","to":"p2","description":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}}"#,
        r#"{ "to" : "p2", "candidate" : { "sdpMLineIndex" : 0, "candidate" : "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host", "sdpMid" : "0" }, "type" : "signal" }"#,
        r#"{"type":"signal","to":"p2","candidate":{"candidate":"","usernameFragment":"\u00e9\"x\\"}}"#,
        r#"{"type":"signal","to":"p2","description":{"type":"answer","sdp":"v=0"},"candidate":null}"#,
        r#"{"type":"signal","to":"p2","description":{"type":"answer"}}"#,
        r#"{"type":"signal","to":"p2"}"#,
        r#"{"type":"signal","to":"p2","description":{"type":"answer","sdp":"v=0"},"candidate":{"candidate":""}}"#,
        r#"{"type":"signal","to":"p2","description":{"type":"offer","sdp":"v=0","extra":1}}"#,
        r#"{"type":"signal","to":"p2","description":{"type":"bogus","sdp":"v=0"}}"#,
        r#"{"type":"signal","to":"p2","description":"v=0"}"#,
        r#"{"type":"signal","to":"p2","candidate":{"candidate":5}}"#,
        r#"{"type":"signal","to":"p2","candidate":{"candidate":""},"from":"p1"}"#,
        r#"{"type":"signal","to":"p2","to":"p3","candidate":{"candidate":""}}"#,
        r#"{"type":"signal","type":"chat","to":"p2","candidate":{"candidate":""}}"#,
        r#"{"type":"signal","to":7,"candidate":{"candidate":""}}"#,
        r#"{"type":"signal","to":"p2","candidate":{"candidate":""}"#,
        r#"{"type":"signal","to":"p2","candidate":{"candidate":""}} trailing"#,
        r#"{"type":"chat","text":"您好"}"#,
        r#"{"type":"media","mic":true,"camera":false,"screen":false}"#,
        r#"{"type":"leave"}"#,
        r#"{"type":"nonsense"}"#,
        r#"{"to":"p2","candidate":{"candidate":""}}"#,
        r#"[]"#,
        "",
    ];

    #[test]
    fn the_fast_reader_reads_every_frame_as_the_derived_one_does() {
        for text in FRAMES {
            let fast = ClientMessage::parse(text);
            let derived = serde_json::from_str::<ClientMessage>(text);
            match (&fast, &derived) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
                _ => panic!("{text}: fast {fast:?}, derived {derived:?}"),
            }
        }
        let read = FRAMES.iter().filter(|t| ClientMessage::parse(t).is_ok()).count();
        assert_eq!(read, 10, "the well-formed frames of the list (seven signals, a chat, media, leave)");
    }

    #[test]
    fn a_relayed_payload_is_the_senders_text_and_reads_as_before() {
        let sent = r#"{ "sdp" : "v=0\r\na=ice-ufrag:\u00e9x\r\n", "type" : "offer" }"#;
        let text = format!(r#"{{"type":"signal","to":"p2","description":{sent}}}"#);
        let ClientMessage::Signal { description: Some(d), .. } = ClientMessage::parse(&text).unwrap() else {
            panic!("a signal with a description")
        };
        let out =
            serde_json::to_string(&ServerMessage::Signal { from: "p1".into(), description: Some(d), candidate: None })
                .unwrap();
        assert_eq!(out, format!(r#"{{"type":"signal","from":"p1","description":{sent}}}"#));
        let typed = SessionDescription { kind: SdpType::Offer, sdp: "v=0\r\na=ice-ufrag:éx\r\n".into() };
        let back: ServerMessage = serde_json::from_str(&out).unwrap();
        let ServerMessage::Signal { description: Some(d), .. } = back else { panic!("{out}") };
        assert_eq!(d.value().unwrap(), typed);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["description"],
            serde_json::to_value(&typed).unwrap(),
            "the same JSON value as the typed payload's"
        );
    }

    #[test]
    fn wire_shapes_are_the_documented_ones() {
        let m: ClientMessage = serde_json::from_value(json!({
            "type": "signal", "to": "p2",
            "candidate": {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
        }))
        .unwrap();
        assert!(
            matches!(m, ClientMessage::Signal { candidate: Some(ref c), .. } if c.value().unwrap().candidate.is_empty())
        );
        let m: ClientMessage =
            serde_json::from_value(json!({"type": "media", "mic": true, "camera": false, "screen": false})).unwrap();
        assert_eq!(m, ClientMessage::Media { mic: true, camera: false, screen: false });
        let leave: ClientMessage = serde_json::from_str(r#"{"type":"leave"}"#).unwrap();
        assert_eq!(leave, ClientMessage::Leave);
        let text =
            serde_json::to_value(ServerMessage::PeerReconnected { peer: "p1".into(), restart_ice: true }).unwrap();
        assert_eq!(text, json!({"type": "peer-reconnected", "peer": "p1", "restart_ice": true}));
        let err = serde_json::to_value(ServerMessage::error(ErrorCode::RateLimited, "slow down")).unwrap();
        assert_eq!(err, json!({"type": "error", "code": "rate_limited", "message": "slow down"}));
        // `resumed` carries the ICE servers in the join answer's shape; a `resumed` without
        // them (as servers before the field sent it) still reads, with none.
        let mut resumed = json!({"type": "resumed", "version": 1, "admitted": true,
            "you": serde_json::to_value(peer("p1")).unwrap(), "peers": [], "lobby": [],
            "resume_token": "c.u", "resume_window_secs": 60, "replayed": 0, "restart_ice": true});
        let old: ServerMessage = serde_json::from_value(resumed.clone()).unwrap();
        assert!(matches!(old, ServerMessage::Resumed { ref ice_servers, .. } if ice_servers.is_empty()));
        resumed["ice_servers"] = json!([{"urls": ["stun:t.example.org:3478"]},
            {"urls": ["turn:t.example.org:3478?transport=udp"], "username": "1795435200:u1", "credential": "cGFzcw=="}]);
        let new: ServerMessage = serde_json::from_value(resumed.clone()).unwrap();
        assert_eq!(serde_json::to_value(&new).unwrap(), resumed);
        // `ice-servers` as documented: the type and the list, nothing else.
        let refresh = json!({"type": "ice-servers", "ice_servers": [{"urls": ["stun:t.example.org:3478"]},
            {"urls": ["turn:t.example.org:3478?transport=udp"], "username": "1795437000:u1", "credential": "cGFzcw=="}]});
        let m: ServerMessage = serde_json::from_value(refresh.clone()).unwrap();
        assert!(matches!(m, ServerMessage::IceServers { ref ice_servers } if ice_servers.len() == 2));
        assert_eq!(serde_json::to_value(&m).unwrap(), refresh);
    }

    #[test]
    fn unknown_types_and_fields_are_refused() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"teleport"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"chat","text":"x","extra":1}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"text":"x"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"[1,2]"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"signal","to":7}"#).is_err());
    }

    #[test]
    fn room_roles_parse_their_names() {
        for &r in RoomRole::ALL {
            assert_eq!(r.as_str().parse::<RoomRole>(), Ok(r));
        }
        assert!("admin".parse::<RoomRole>().is_err());

        assert!(RoomRole::Expert.is_doctor() && !RoomRole::Patient.is_doctor());
    }
}
