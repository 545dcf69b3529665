//! The room bus over NATS JetStream, for several server instances serving the same rooms.
//!
//! - Every room event is a JSON [`Envelope`] published on `teleconsult.room.<consultation id>`.
//!   The stream `TELECONSULT_ROOMS` captures these subjects, so each event gets one stream
//!   sequence number: that is the room's single order. (Core NATS alone orders messages per
//!   publisher only; two instances publishing at once could be seen in different orders.)
//! - An instance holding a room reads the room's subject through an ordered JetStream
//!   consumer and applies every event, its own included, only as it comes back from the
//!   stream. No instance applies an event before it has a stream sequence number.
//! - An instance that starts holding a room (its first local connection to it) asks
//!   `teleconsult.room.<id>.state`. Each instance holding the room answers from the task that
//!   applies the room's events, with the room's state and the sequence number of the last
//!   event in it. The newcomer installs that state and reads the stream from the next
//!   sequence number. Nobody answering (NATS says "no responders") means nobody holds the
//!   room: it is empty, and the newcomer reads from the stream's end as it was before asking.
//!   Until then the newcomer holds back its own events for the room, so they come after the
//!   state it received.
//!
//! See `docs/signaling.md`, "Several instances".

use super::hub::{Envelope, EventSink, RoomBus};
use super::room::RoomSnapshot;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// The JetStream stream holding room events.
pub const STREAM: &str = "TELECONSULT_ROOMS";
/// Events are kept this long: long enough for an instance to catch up after a short NATS
/// outage or while it starts serving a room.
const KEEP_EVENTS: Duration = Duration::from_secs(15 * 60);
/// How long to wait for a room's state.
const STATE_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts to fetch a room's state and subscribe (500 ms apart) before giving up.
const SYNC_ATTEMPTS: u32 = 20;

/// The subject a room's events travel on.
pub fn room_subject(room: &str) -> String {
    format!("teleconsult.room.{room}")
}

/// The subject on which instances holding a room answer with its state.
pub fn state_subject(room: &str) -> String {
    format!("teleconsult.room.{room}.state")
}

/// Room ids are consultation ids (UUIDs); anything else could not be a subject token.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty() && room.len() <= 64 && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub fn encode(envelope: &Envelope) -> Result<Bytes, serde_json::Error> {
    serde_json::to_vec(envelope).map(Bytes::from)
}

pub fn decode(bytes: &[u8]) -> Result<Envelope, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// The answer on the state subject: the room as it is after stream sequence `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StateReply {
    pub seq: u64,
    pub room: RoomSnapshot,
}

enum Phase {
    /// Fetching the state; this instance's events wait here, in order.
    Syncing(Vec<(String, Bytes)>),
    Live,
}

struct Held {
    epoch: u64,
    phase: Phase,
    task: AbortHandle,
}

struct Inner {
    client: async_nats::Client,
    stream: stream::Stream,
    sink: OnceLock<Weak<dyn EventSink>>,
    rooms: Mutex<HashMap<String, Held>>,
    /// One publisher task keeps this instance's events in the order they were published.
    out: mpsc::UnboundedSender<(String, Bytes)>,
}

impl Inner {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sink(&self) -> Option<Arc<dyn EventSink>> {
        self.sink.get().and_then(Weak::upgrade)
    }
}

pub struct NatsBus {
    inner: Arc<Inner>,
}

/// Connects to NATS (`nats_url`). Fails, naming the URL, when NATS is unreachable; once
/// connected, the client reconnects by itself. The one client of an instance: the room bus
/// and the live notifications (`crate::notifications`) share it.
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("teleconsult")
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!(
                        "NATS disconnected: room events wait until it is back; live notifications reach this instance's streams only"
                    )
                }
                other => tracing::info!(event = %other, "NATS"),
            }
        })
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to NATS at {url} (nats_url): {e}"))
}

impl NatsBus {
    /// The room bus on a connected client (see [`connect`]); makes sure the stream exists.
    /// Fails, naming the URL, when NATS has no JetStream.
    pub async fn new(client: async_nats::Client, url: &str) -> anyhow::Result<NatsBus> {
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: STREAM.to_string(),
                subjects: vec!["teleconsult.room.*".to_string()],
                max_age: KEEP_EVENTS,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                anyhow::anyhow!("NATS at {url} (nats_url) did not give the {STREAM} stream; is JetStream on (-js)? {e}")
            })?;
        let (out, mut rx) = mpsc::unbounded_channel::<(String, Bytes)>();
        let publisher = client.clone();
        tokio::spawn(async move {
            while let Some((subject, payload)) = rx.recv().await {
                if let Err(e) = publisher.publish(subject, payload).await {
                    tracing::error!(error = %e, "a room event could not be published on NATS");
                }
            }
        });
        Ok(NatsBus {
            inner: Arc::new(Inner { client, stream, sink: OnceLock::new(), rooms: Mutex::new(HashMap::new()), out }),
        })
    }
}

impl RoomBus for NatsBus {
    fn publish(&self, envelope: Envelope) {
        if !valid_room(&envelope.room) {
            tracing::warn!(room = %envelope.room, "not a room id; event dropped");
            return;
        }
        let payload = match encode(&envelope) {
            Ok(p) => p,
            Err(e) => return tracing::error!(error = %e, "a room event did not serialise"),
        };
        let subject = room_subject(&envelope.room);
        let mut rooms = self.inner.rooms();
        match rooms.get_mut(&envelope.room).map(|h| &mut h.phase) {
            Some(Phase::Syncing(waiting)) => waiting.push((subject, payload)),
            _ => {
                let _ = self.inner.out.send((subject, payload));
            }
        }
    }

    fn attach(&self, sink: Weak<dyn EventSink>) {
        let _ = self.inner.sink.set(sink);
    }

    fn open(&self, room: &str, epoch: u64) {
        if !valid_room(room) {
            return;
        }
        let inner = self.inner.clone();
        let mut rooms = self.inner.rooms();
        let task = tokio::spawn(serve_room(inner, room.to_string(), epoch)).abort_handle();
        if let Some(old) = rooms.insert(room.to_string(), Held { epoch, phase: Phase::Syncing(Vec::new()), task }) {
            old.task.abort();
        }
    }

    fn close(&self, room: &str) {
        if let Some(old) = self.inner.rooms().remove(room) {
            old.task.abort();
        }
    }
}

/// The room's state and the stream sequence it stands at; `None` when nobody holds the room.
async fn fetch_state(inner: &Inner, room: &str) -> anyhow::Result<(u64, Option<RoomSnapshot>)> {
    // Read the end of the stream before asking: if nobody holds the room, every event after
    // this point comes from an instance that started holding it after we asked.
    let end = inner.stream.get_info().await?.state.last_sequence;
    match tokio::time::timeout(STATE_TIMEOUT, inner.client.request(state_subject(room), Bytes::new())).await {
        Ok(Ok(reply)) => {
            let r: StateReply = serde_json::from_slice(&reply.payload)?;
            Ok((r.seq, Some(r.room)))
        }
        Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok((end, None)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => anyhow::bail!("no answer with the room's state within {STATE_TIMEOUT:?}"),
    }
}

/// Holds one room for this instance: fetches its state, subscribes, releases the events held
/// back, then applies the room's events in stream order and answers state requests.
async fn serve_room(inner: Arc<Inner>, room: String, epoch: u64) {
    let mut attempt = 0;
    let (seq, snapshot, mut requests, mut events) = loop {
        attempt += 1;
        let ready = async {
            let (seq, snapshot) = fetch_state(&inner, &room).await?;
            let requests = inner.client.subscribe(state_subject(&room)).await?;
            let events = inner
                .stream
                .create_consumer(consumer::push::OrderedConfig {
                    deliver_subject: inner.client.new_inbox(),
                    filter_subject: room_subject(&room),
                    deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: seq + 1 },
                    ..Default::default()
                })
                .await?
                .messages()
                .await?;
            anyhow::Ok((seq, snapshot, requests, events))
        };
        match ready.await {
            Ok(r) => break r,
            Err(e) if attempt < SYNC_ATTEMPTS => {
                tracing::warn!(room = %room, error = %e, "waiting for the room's state on NATS");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                tracing::error!(room = %room, error = %e, "gave up fetching the room's state on NATS");
                if let Some(sink) = inner.sink() {
                    sink.abandon(&room, epoch);
                }
                return;
            }
        }
    };
    if let (Some(snapshot), Some(sink)) = (snapshot, inner.sink()) {
        sink.install(&room, epoch, snapshot);
    }
    {
        let mut rooms = inner.rooms();
        match rooms.get_mut(&room) {
            Some(held) if held.epoch == epoch => {
                if let Phase::Syncing(waiting) = std::mem::replace(&mut held.phase, Phase::Live) {
                    for item in waiting {
                        let _ = inner.out.send(item);
                    }
                }
            }
            _ => return,
        }
    }
    let mut last = seq;
    loop {
        tokio::select! {
            msg = events.next() => match msg {
                Some(Ok(msg)) => {
                    if let Ok(info) = msg.info() {
                        last = info.stream_sequence;
                    }
                    match decode(&msg.payload) {
                        Ok(mut envelope) => {
                            envelope.epoch = epoch;
                            if let Some(sink) = inner.sink() {
                                sink.apply(envelope);
                            }
                        }
                        Err(e) => tracing::warn!(room = %room, error = %e, "an undecodable room event was skipped"),
                    }
                }
                Some(Err(e)) => tracing::warn!(room = %room, error = %e, "room events interrupted; the consumer resumes"),
                None => return tracing::error!(room = %room, "room events ended"),
            },
            req = requests.next() => {
                let Some(req) = req else { return tracing::error!(room = %room, "state requests ended") };
                let Some(reply_to) = req.reply else { continue };
                let Some(snapshot) = inner.sink().and_then(|s| s.snapshot(&room, epoch)) else { continue };
                match serde_json::to_vec(&StateReply { seq: last, room: snapshot }) {
                    Ok(body) => {
                        if let Err(e) = inner.client.publish(reply_to, body.into()).await {
                            tracing::warn!(room = %room, error = %e, "could not answer with the room's state");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "room state did not serialise"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::hub::RoomEvent;
    use crate::signaling::protocol::{ClientMessage, IceCandidate, Relayed, RoomRole};
    use crate::signaling::room::{Joiner, Room, RoomLimits};
    use chrono::{DateTime, Utc};

    fn envelope(event: RoomEvent) -> Envelope {
        Envelope {
            room: "0193c2a4-5d1e-7b0a-9a51-3c1f0f4b8e21".into(),
            at: DateTime::<Utc>::from_timestamp(1_800_000_000, 123_456_000).unwrap(),
            origin: 42,
            received: Some(std::time::Instant::now()),
            epoch: 7,
            event,
        }
    }

    #[test]
    fn every_room_event_survives_the_wire() {
        let events = vec![
            RoomEvent::Join {
                joiner: Joiner {
                    id: "k3J9xQ0aLm2B".into(),
                    conn: u64::MAX - 3,
                    user_id: "0193c2a4-0000-7000-8000-000000000001".into(),
                    name: "王建国".into(),
                    role: RoomRole::Expert,
                    may_enter: true,
                    resume_hash: "ab".repeat(32),
                },
                resume_token: "room.secret".into(),
            },
            RoomEvent::Resume {
                resume_hash: "h1".into(),
                conn: 9,
                new_hash: "h2".into(),
                new_token: "t2".into(),
                restore: None,
            },
            RoomEvent::Message {
                conn: 9,
                msg: ClientMessage::Signal {
                    to: "Hq7tR2mZpL0c".into(),
                    description: None,
                    candidate: Some(
                        Relayed::new(&IceCandidate {
                            candidate: "candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host".into(),
                            sdp_mid: Some("0".into()),
                            sdp_mline_index: Some(0),
                            username_fragment: None,
                        })
                        .unwrap(),
                    ),
                },
                chat_id: String::new(),
                stored_at: None,
                stored_for: Vec::new(),
            },
            RoomEvent::Message {
                conn: 9,
                msg: ClientMessage::Chat { text: "请看 V2-V4 导联".into() },
                chat_id: "c1".into(),
                stored_at: chrono::DateTime::from_timestamp(1_765_000_000, 123_000_000),
                stored_for: Vec::new(),
            },
            RoomEvent::Message {
                conn: 9,
                msg: ClientMessage::Admit { peer: "Zp1u8wQy0cTe".into() },
                chat_id: String::new(),
                stored_at: chrono::DateTime::from_timestamp(1_765_000_001, 0),
                stored_for: vec!["Zp1u8wQy0cTe".into()],
            },
            RoomEvent::Disconnected { conn: 9 },
            RoomEvent::Expire,
            RoomEvent::Observation {
                reading: crate::signaling::protocol::LiveReading {
                    id: "0192f0c4-7b1e-7cc3-a000-0123456789ab".into(),
                    consultation_id: "0192f0c4-7b1e-7cc3-a000-0123456789ac".into(),
                    kind: "blood_pressure".into(),
                    measured_at: "2026-12-01T00:00:00.000000Z".into(),
                    received_at: "2026-12-01T00:00:01.000000Z".into(),
                    source: "kiosk".into(),
                    device: "Omron HEM-7136".into(),
                    values: crate::vitals::reading::Values {
                        systolic_mmhg: Some(152.0),
                        diastolic_mmhg: Some(96.0),
                        pulse_bpm: Some(78.0),
                        ..Default::default()
                    },
                    summary: "152/96 mmHg, pulse 78 bpm".into(),
                },
            },
        ];
        for event in events {
            let sent = envelope(event);
            let got = decode(&encode(&sent).unwrap()).unwrap();
            // What only means something on the sending instance does not travel.
            assert_eq!((got.received, got.epoch), (None, 0));
            assert_eq!(got, Envelope { received: None, epoch: 0, ..sent });
        }
        assert!(decode(b"{\"room\":\"r\"}").is_err());
        assert!(decode(b"not json").is_err());
    }

    #[test]
    fn the_state_reply_carries_the_room_and_its_sequence() {
        let mut room = Room::new(RoomLimits::default());
        let joiner = Joiner {
            id: "li".into(),
            conn: 1,
            user_id: "u-li".into(),
            name: "李医生".into(),
            role: RoomRole::Requester,
            may_enter: true,
            resume_hash: "h".into(),
        };
        room.join(DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap(), joiner, "t");
        let reply = StateReply { seq: 1234, room: room.snapshot() };
        let back: StateReply = serde_json::from_slice(&serde_json::to_vec(&reply).unwrap()).unwrap();
        assert_eq!(back, reply);
    }

    #[test]
    fn only_consultation_ids_become_subjects() {
        assert!(valid_room("0193c2a4-5d1e-7b0a-9a51-3c1f0f4b8e21"));
        assert_eq!(room_subject("abc"), "teleconsult.room.abc");
        assert_eq!(state_subject("abc"), "teleconsult.room.abc.state");
        for bad in ["", "a.b", "*", ">", "a b", "{0193c2a4-5d1e-7b0a-9a51-3c1f0f4b8e21}", "urn:uuid:x"] {
            assert!(!valid_room(bad), "{bad}");
        }
    }
}
