//! The room hub: holds the rooms of this server instance, applies room events to them, hands
//! the resulting messages to the local connections' outboxes, and carries out the effects
//! (timeline, chat record, starting the consultation) through a background recorder.
//!
//! Every change to a room travels as an [`Envelope`] through a [`RoomBus`]. The bus delivers
//! each room's events to every instance that holds members of the room, this one included,
//! in one order; each instance applies them to its replica of the [`Room`] (pure and
//! deterministic) and delivers only to the connections it holds. Effects that write to the
//! database are carried out by the instance where the event started. [`InProcessBus`] is the
//! one-instance bus: `publish` applies the event at once, in the caller's task; the NATS bus
//! (`super::nats`) carries them between instances.

use super::protocol::{close, ClientMessage, ErrorCode, IceServer, ServerMessage};
use super::room::{ChatAuthor, ConnId, Effect, Joiner, Room, RoomLimits, RoomSnapshot, TimelineEntry};
use super::tickets;
use crate::auth::{AuthUser, Role};
use crate::consultations::state::Action;
use crate::db::{new_id, Db};
use crate::error::ErrorCode as Problem;
use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// Mints the ICE servers (with fresh TURN credentials) for a user.
pub type IceSource = Arc<dyn Fn(&str) -> Vec<IceServer> + Send + Sync>;

/// Identifies a server instance on the bus.
pub type InstanceId = u64;

/// A room event as it travels on the bus (serialised as JSON on a network bus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Envelope {
    pub room: String,
    pub at: DateTime<Utc>,
    pub origin: InstanceId,
    /// When the originating instance read the frame behind this event (not sent over a
    /// network bus; used for the relay latency figure).
    #[serde(skip)]
    pub received: Option<Instant>,
    /// Which local replica of the room a network bus delivers to (not sent; 0 on the
    /// in-process bus): an event is applied only to the replica whose subscription carried it.
    #[serde(skip)]
    pub epoch: u64,
    pub event: RoomEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomEvent {
    Join {
        joiner: Joiner,
        resume_token: String,
    },
    Resume {
        resume_hash: String,
        conn: ConnId,
        new_hash: String,
        new_token: String,
        /// The seat as stored, put back when the room does not hold it (it was lost with a
        /// restart of the instance that held it); its `resume_hash` is `new_hash`.
        #[serde(default)]
        restore: Option<Joiner>,
    },
    Message {
        conn: ConnId,
        msg: ClientMessage,
        chat_id: String,
        /// A chat line or a doctor's decision already kept, at this time (see [`RoomHub::chat`],
        /// [`RoomHub::decide`]): the room takes it with that time and it is not written again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stored_at: Option<DateTime<Utc>>,
        /// The participants whose decision entries (see [`TimelineEntry::is_decision`]) were
        /// kept with it: only theirs are not written again (a participant who came between
        /// the keeping and the room taking it is written as usual).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stored_for: Vec<super::protocol::ParticipantId>,
    },
    Disconnected {
        conn: ConnId,
    },
    Expire,
    /// A reading of the patient taken during the call (see [`RoomHub::observation`]).
    Observation {
        reading: super::protocol::LiveReading,
    },
}

/// Receives the events of the rooms an instance holds.
pub trait EventSink: Send + Sync {
    fn apply(&self, envelope: Envelope);
    /// The state of the room's replica `epoch` (any replica with 0), for an instance that
    /// starts serving the room.
    fn snapshot(&self, _room: &str, _epoch: u64) -> Option<RoomSnapshot> {
        None
    }
    /// Replaces the state of the room's replica `epoch` before any event reaches it.
    fn install(&self, _room: &str, _epoch: u64, _snapshot: RoomSnapshot) {}
    /// The bus cannot serve the room's replica `epoch`: its connections are closed (to join
    /// again) and the replica is dropped.
    fn abandon(&self, _room: &str, _epoch: u64) {}
}

/// How room events reach every instance holding the room.
pub trait RoomBus: Send + Sync {
    fn publish(&self, envelope: Envelope);
    /// Connects this instance's hub as the receiver of events.
    fn attach(&self, sink: Weak<dyn EventSink>);
    /// This instance starts holding a replica of the room (numbered `epoch`): a network bus
    /// fetches the room's state and subscribes, and holds back this instance's events for
    /// the room until then.
    fn open(&self, _room: &str, _epoch: u64) {}
    /// This instance no longer holds the room.
    fn close(&self, _room: &str) {}
}

/// The bus of a single instance: events are applied at once.
#[derive(Default)]
pub struct InProcessBus {
    sink: OnceLock<Weak<dyn EventSink>>,
}

impl RoomBus for InProcessBus {
    fn publish(&self, envelope: Envelope) {
        if let Some(sink) = self.sink.get().and_then(Weak::upgrade) {
            sink.apply(envelope);
        }
    }

    fn attach(&self, sink: Weak<dyn EventSink>) {
        let _ = self.sink.set(sink);
    }
}

/// What a connection's writer sends.
#[derive(Debug)]
pub enum Outbound {
    Text(Utf8Bytes, Option<Instant>),
    Close(u16, &'static str),
    /// Not written: follows `joined`/`resumed` to tell the connection whose seat it holds
    /// (the participant's user id), so that it refreshes that participant's TURN credentials.
    Seated {
        user_id: String,
    },
}

/// A connection's bounded outbound queue. A connection whose queue is full is killed
/// (closed with [`close::SLOW_CONSUMER`]) instead of growing without bound.
pub struct Outbox {
    queue: Mutex<VecDeque<Outbound>>,
    notify: Notify,
    capacity: usize,
    killed: AtomicU16,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox { queue: Mutex::new(VecDeque::new()), notify: Notify::new(), capacity, killed: AtomicU16::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Outbound>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an item; false (and the connection is killed) when the queue is full.
    pub fn push(&self, item: Outbound) -> bool {
        let mut q = self.lock();
        if q.len() >= self.capacity {
            drop(q);
            self.kill(close::SLOW_CONSUMER);
            return false;
        }
        q.push_back(item);
        drop(q);
        self.notify.notify_one();
        true
    }

    pub fn kill(&self, code: u16) {
        let _ = self.killed.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.notify.notify_one();
    }

    pub fn killed(&self) -> Option<u16> {
        match self.killed.load(Ordering::Acquire) {
            0 => None,
            c => Some(c),
        }
    }

    /// Moves everything queued into `into`.
    pub fn take(&self, into: &mut Vec<Outbound>) {
        let mut q = self.lock();
        into.extend(q.drain(..));
        if q.capacity() > 64 {
            q.shrink_to(8);
        }
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// Relay latency from reading a frame to writing what it caused, in microsecond buckets.
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    count: AtomicU64,
}

const LATENCY_BOUNDS_US: [u64; 14] =
    [25, 50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10_000, 50_000, 200_000, 1_000_000];

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), count: AtomicU64::new(0) }
    }
}

impl LatencyHistogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = LATENCY_BOUNDS_US.iter().position(|&b| us <= b).unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The upper bound (seconds) of the bucket holding quantile `q`; 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count.load(Ordering::Relaxed);
        if total == 0 {
            return 0.0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want {
                let us = LATENCY_BOUNDS_US.get(i).copied().unwrap_or(10_000_000);
                return us as f64 / 1e6;
            }
        }
        10.0
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Figures for `/metrics`.
#[derive(Default)]
pub struct HubStats {
    pub connections: AtomicI64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub signals_relayed: AtomicU64,
    pub violations: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub records_dropped: AtomicU64,
    pub relay_latency: LatencyHistogram,
}

struct LocalConn {
    outbox: Arc<Outbox>,
    client_addr: Arc<str>,
}

struct Slot {
    room: Room,
    conns: HashMap<ConnId, LocalConn>,
    dead: bool,
    epoch: u64,
}

/// A database write the recorder carries out.
enum Record {
    Timeline {
        room: String,
        entry: TimelineEntry,
    },
    Chat {
        room: String,
        id: String,
        participant: String,
        actor: AuthUser,
        text: String,
        at: DateTime<Utc>,
    },
    Start {
        room: String,
    },
    End {
        room: String,
        by_user: String,
    },
    /// Answered once everything queued before it is written (see [`RoomHub::shutdown`]).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The rooms of this instance.
pub struct RoomHub {
    instance: InstanceId,
    rooms: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
    bus: Arc<dyn RoomBus>,
    recorder: mpsc::Sender<Record>,
    db: Db,
    limits: RoomLimits,
    next_epoch: AtomicU64,
    ice: IceSource,
    /// Tickets to the rooms: handed out by `POST .../join`, used up by the WebSocket.
    pub tickets: tickets::TicketDesk,
    pub stats: HubStats,
}

impl RoomHub {
    /// Starts a hub on `bus`, with its recorder and its sweeper (seat expiry, old seats);
    /// `ice` mints the ICE servers a resumed participant gets in `resumed`.
    pub fn start(
        db: Db,
        key: tickets::TicketKey,
        limits: RoomLimits,
        bus: Arc<dyn RoomBus>,
        ice: IceSource,
    ) -> Arc<RoomHub> {
        let (tx, rx) = mpsc::channel(65_536);
        let hub = Arc::new(RoomHub {
            instance: rand::random(),
            rooms: Mutex::new(HashMap::new()),
            bus,
            recorder: tx,
            db: db.clone(),
            limits: limits.clone(),
            next_epoch: AtomicU64::new(1),
            ice,
            tickets: tickets::TicketDesk::start(db.clone(), key, limits.resume_window),
            stats: HubStats::default(),
        });
        let sink: Arc<dyn EventSink> = hub.clone();
        hub.bus.attach(Arc::downgrade(&sink));
        tokio::spawn(record(db.clone(), rx));
        tokio::spawn(sweep(Arc::downgrade(&hub), db));
        hub
    }

    pub fn limits(&self) -> &RoomLimits {
        &self.limits
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<Slot>>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, room: &str, create: bool) -> Option<Arc<Mutex<Slot>>> {
        let mut rooms = self.rooms();
        if let Some(s) = rooms.get(room) {
            return Some(s.clone());
        }
        if !create {
            return None;
        }
        let epoch = self.next_epoch.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Mutex::new(Slot {
            room: Room::new(self.limits.clone()),
            conns: HashMap::new(),
            dead: false,
            epoch,
        }));
        rooms.insert(room.to_string(), slot.clone());
        self.bus.open(room, epoch);
        Some(slot)
    }

    /// Runs `f` on the room's slot, creating it when asked; drops the slot once empty.
    fn with_slot<R>(&self, room: &str, create: bool, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        let mut f = Some(f);
        loop {
            let slot = self.slot(room, create)?;
            let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
            if s.dead {
                continue;
            }
            let r = (f.take().expect("called once"))(&mut s);
            if s.room.is_empty() && s.conns.is_empty() {
                s.dead = true;
                let mut rooms = self.rooms();
                if rooms.get(room).is_some_and(|x| Arc::ptr_eq(x, &slot)) {
                    rooms.remove(room);
                    self.bus.close(room);
                }
            }
            return Some(r);
        }
    }

    fn publish(&self, room: &str, received: Option<Instant>, event: RoomEvent) {
        self.bus.publish(Envelope {
            room: room.to_string(),
            at: Utc::now(),
            origin: self.instance,
            received,
            epoch: 0,
            event,
        });
    }

    fn attach(&self, room: &str, conn: ConnId, outbox: Arc<Outbox>, client_addr: &str) {
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.with_slot(room, true, |s| {
            s.conns.insert(conn, LocalConn { outbox, client_addr: client_addr.into() });
        });
    }

    /// A connection with a redeemed ticket enters the room (or its lobby), holding
    /// `resume_token` (the one whose hash was stored with the redemption).
    pub fn join(&self, room: &str, joiner: Joiner, resume_token: String, outbox: Arc<Outbox>, client_addr: &str) {
        let joiner = Joiner { resume_hash: tickets::hash(&resume_token), ..joiner };
        self.attach(room, joiner.conn, outbox, client_addr);
        self.publish(room, None, RoomEvent::Join { joiner, resume_token });
    }

    /// A connection presents a resume token, already replaced by `new_token` in the stored
    /// seat; `restore` is that seat, put back if the room no longer holds it. The connection
    /// is closed with [`close::RESUME_FAILED`] when the room does not know the token and
    /// cannot take the seat back.
    #[allow(clippy::too_many_arguments)]
    pub fn resume(
        &self,
        room: &str,
        conn: ConnId,
        resume_token: &str,
        new_token: String,
        restore: Option<Joiner>,
        outbox: Arc<Outbox>,
        client_addr: &str,
    ) {
        let new_hash = tickets::hash(&new_token);
        let restore = restore.map(|j| Joiner { conn, resume_hash: new_hash.clone(), ..j });
        self.attach(room, conn, outbox, client_addr);
        self.publish(
            room,
            None,
            RoomEvent::Resume { resume_hash: tickets::hash(resume_token), conn, new_hash, new_token, restore },
        );
    }

    /// A parsed message from a connection.
    pub fn message(&self, room: &str, conn: ConnId, msg: ClientMessage, received: Instant) {
        self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
        let chat_id = if matches!(msg, ClientMessage::Chat { .. }) { new_id() } else { String::new() };
        self.publish(
            room,
            Some(received),
            RoomEvent::Message { conn, msg, chat_id, stored_at: None, stored_for: Vec::new() },
        );
    }

    /// A chat line from a connection. It is kept with the consultation (with its audit event)
    /// before anyone is shown it, so a line the room saw is never lost to a crash; when the
    /// database does not take it within [`KEPT_WITHIN`], nobody is shown it and the sender is
    /// told (`chat_not_saved`), to send it again. A line the room would refuse as it stands
    /// (the sender in the lobby, an empty or overlong line) goes to the room unsaved, which
    /// answers it with its error.
    pub async fn chat(
        &self,
        room: &str,
        conn: ConnId,
        text: String,
        received: Instant,
    ) -> Result<(), (ErrorCode, String)> {
        self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
        let author = self
            .with_slot(room, false, |s| {
                let client_addr = s.conns.get(&conn).map(|c| c.client_addr.to_string()).unwrap_or_default();
                s.room.chat_author(conn, &text).map(|a| (a, client_addr))
            })
            .flatten();
        let Some((ChatAuthor { participant, user_id, role }, client_addr)) = author else {
            let msg = ClientMessage::Chat { text };
            self.publish(
                room,
                Some(received),
                RoomEvent::Message { conn, msg, chat_id: new_id(), stored_at: None, stored_for: Vec::new() },
            );
            return Ok(());
        };
        let (id, at) = (new_id(), Utc::now());
        let line: ChatLine = (
            room.to_string(),
            id.clone(),
            participant,
            chat_actor(user_id, role, client_addr),
            text.trim().to_string(),
            at,
        );
        if self.kept(room, &[], std::slice::from_ref(&line)).await {
            let msg = ClientMessage::Chat { text };
            self.publish(
                room,
                Some(received),
                RoomEvent::Message { conn, msg, chat_id: id, stored_at: Some(at), stored_for: Vec::new() },
            );
            return Ok(());
        }
        Err((ErrorCode::ChatNotSaved, "the chat line could not be saved: nobody saw it; send it again".into()))
    }

    /// A doctor's decision about who is in the room (`admit`, `remove`, `end`). What it
    /// records on the room's timeline (see [`TimelineEntry::is_decision`]) is kept before
    /// anyone is told of it: the timeline is what a seat coming back after a restart is read
    /// from, so a patient told it was removed cannot resume into the room after a crash of
    /// the server (a kill -9 included), and one told it was admitted does not wait in the
    /// lobby again. When the database does not take it within [`KEPT_WITHIN`], an admission
    /// is not made (it grants access: the patient keeps waiting, and the doctor is told
    /// `admission_not_saved`, to try again), while a removal or an end of the call takes
    /// effect all the same (it takes access away: never refused) and is written by the
    /// recorder once the database is back. A decision the room would refuse as it stands goes
    /// to the room unsaved, which answers it with its error.
    pub async fn decide(
        &self,
        room: &str,
        conn: ConnId,
        msg: ClientMessage,
        received: Instant,
    ) -> Result<(), (ErrorCode, String)> {
        self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
        let at = Utc::now();
        let entries = self.with_slot(room, false, |s| s.room.decision_entries(at, conn, &msg)).unwrap_or_default();
        if !entries.is_empty() {
            let stored_for = entries.iter().map(|e| e.participant.clone()).collect();
            let timeline: Vec<(String, String, TimelineEntry)> =
                entries.into_iter().map(|e| (new_id(), room.to_string(), e)).collect();
            if self.kept(room, &timeline, &[]).await {
                let event = RoomEvent::Message { conn, msg, chat_id: String::new(), stored_at: Some(at), stored_for };
                self.publish(room, Some(received), event);
                return Ok(());
            }
            if let ClientMessage::Admit { .. } = msg {
                let message = "the admission could not be saved: the participant still waits; admit again";
                return Err((ErrorCode::AdmissionNotSaved, message.into()));
            }
        }
        self.publish(
            room,
            Some(received),
            RoomEvent::Message { conn, msg, chat_id: String::new(), stored_at: None, stored_for: Vec::new() },
        );
        Ok(())
    }

    /// Writes `timeline` and `chats` in one transaction, the database unavailable retried
    /// within [`KEPT_WITHIN`]; false when the write failed or took longer.
    async fn kept(&self, room: &str, timeline: &[(String, String, TimelineEntry)], chats: &[ChatLine]) -> bool {
        let write = persisting("a chat line or a decision", || write_timeline_and_chat(&self.db, timeline, chats));
        let error = match tokio::time::timeout(KEPT_WITHIN, write).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("not stored within {} s", KEPT_WITHIN.as_secs()),
        };
        tracing::error!(consultation = %room, %error, "a chat line or a doctor's decision could not be kept");
        false
    }

    /// Shows a reading to everyone in the consultation's room, on every instance holding it
    /// (a room nobody holds drops it: nobody is in the call).
    pub fn observation(&self, room: &str, reading: super::protocol::LiveReading) {
        self.publish(room, None, RoomEvent::Observation { reading });
    }

    /// The connection's socket ended (its seat is kept for the resume window).
    pub fn detach(&self, room: &str, conn: ConnId) {
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
        self.publish(room, None, RoomEvent::Disconnected { conn });
    }

    /// The instance is stopping (graceful shutdown, after the listener stopped accepting):
    /// every local connection is closed with 1001 (going away), so its client reconnects at
    /// once (with backoff) to whichever instance answers, and the recorder's queue is written
    /// out, so that no admission, chat line or timeline entry of the rooms is lost: a patient
    /// admitted before the restart is admitted again when it rejoins (`Ticket::admitted`).
    pub async fn shutdown(&self) {
        let slots: Vec<Arc<Mutex<Slot>>> = self.rooms().values().cloned().collect();
        for slot in slots {
            let s = slot.lock().unwrap_or_else(|e| e.into_inner());
            for c in s.conns.values() {
                c.outbox.push(Outbound::Close(close::GOING_AWAY, "the server is restarting"));
            }
        }
        // The connections record their departure as they close; wait for them (bounded).
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.stats.connections.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.recorder.send(Record::Flush(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
    }

    /// Rooms with at least one lost socket, for the sweeper.
    fn rooms_with_lost_seats(&self) -> Vec<String> {
        let slots: Vec<(String, Arc<Mutex<Slot>>)> = self.rooms().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        slots
            .into_iter()
            .filter(|(_, s)| s.lock().unwrap_or_else(|e| e.into_inner()).room.counts().reconnecting > 0)
            .map(|(k, _)| k)
            .collect()
    }

    /// The participants connected to this instance (their stored seats are kept).
    fn connected_participants(&self) -> Vec<String> {
        let slots: Vec<Arc<Mutex<Slot>>> = self.rooms().values().cloned().collect();
        let mut ids = Vec::new();
        for slot in slots {
            let s = slot.lock().unwrap_or_else(|e| e.into_inner());
            ids.extend(s.room.connected_participants(|c| s.conns.contains_key(&c)));
        }
        ids
    }

    /// (rooms, participants in rooms, in lobbies, reconnecting) on this instance.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let slots: Vec<Arc<Mutex<Slot>>> = self.rooms().values().cloned().collect();
        let mut totals = (slots.len(), 0, 0, 0);
        for s in slots {
            let c = s.lock().unwrap_or_else(|e| e.into_inner()).room.counts();
            totals.1 += c.in_room;
            totals.2 += c.in_lobby;
            totals.3 += c.reconnecting;
        }
        totals
    }

    fn record(&self, r: Record) {
        if self.recorder.try_send(r).is_err() {
            self.stats.records_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("signaling recorder queue is full: a timeline or chat record was dropped");
        }
    }

    /// Registers the hub's figures on `/metrics`.
    pub fn register_metrics(self: &Arc<Self>, metrics: &crate::observability::Metrics) {
        let weak = Arc::downgrade(self);
        let read = move |f: fn(&RoomHub) -> Vec<(String, f64)>| {
            let weak = weak.clone();
            move || weak.upgrade().map(|h| f(&h)).unwrap_or_default()
        };
        metrics.register_gauge(
            "teleconsult_signaling_connections",
            "Open signaling WebSocket connections",
            read(|h| vec![(String::new(), h.stats.connections.load(Ordering::Relaxed) as f64)]),
        );
        metrics.register_gauge(
            "teleconsult_signaling_rooms",
            "Rooms with at least one participant",
            read(|h| vec![(String::new(), h.counts().0 as f64)]),
        );
        metrics.register_gauge(
            "teleconsult_signaling_participants",
            "Participants by where they are",
            read(|h| {
                let (_, room, lobby, lost) = h.counts();
                vec![
                    ("place=\"room\"".into(), room as f64),
                    ("place=\"lobby\"".into(), lobby as f64),
                    ("place=\"reconnecting\"".into(), lost as f64),
                ]
            }),
        );
        metrics.register_gauge(
            "teleconsult_signaling_messages",
            "Signaling messages since start, by direction (counter)",
            read(|h| {
                vec![
                    ("direction=\"received\"".into(), h.stats.messages_received.load(Ordering::Relaxed) as f64),
                    ("direction=\"sent\"".into(), h.stats.messages_sent.load(Ordering::Relaxed) as f64),
                    ("direction=\"relayed_signal\"".into(), h.stats.signals_relayed.load(Ordering::Relaxed) as f64),
                ]
            }),
        );
        metrics.register_gauge(
            "teleconsult_signaling_limit_violations",
            "Messages that broke a limit, and connections closed as slow consumers, since start (counter)",
            read(|h| {
                vec![
                    ("kind=\"message\"".into(), h.stats.violations.load(Ordering::Relaxed) as f64),
                    ("kind=\"slow_consumer\"".into(), h.stats.slow_consumers.load(Ordering::Relaxed) as f64),
                ]
            }),
        );
        metrics.register_gauge(
            "teleconsult_signaling_relay_latency_seconds",
            "Time from reading a frame to writing the message it caused (bucket upper bound)",
            read(|h| {
                let l = &h.stats.relay_latency;
                vec![
                    ("quantile=\"0.5\"".into(), l.quantile(0.5)),
                    ("quantile=\"0.99\"".into(), l.quantile(0.99)),
                    ("quantile=\"1\"".into(), l.quantile(1.0)),
                ]
            }),
        );
    }
}

impl EventSink for RoomHub {
    fn apply(&self, env: Envelope) {
        // A network bus only delivers to replicas it opened: it never creates one.
        let create = env.epoch == 0 && matches!(env.event, RoomEvent::Join { .. } | RoomEvent::Resume { .. });
        let local_origin = env.origin == self.instance;
        let Envelope { room, at, received, event, epoch, .. } = env;
        let mut records = Vec::new();
        self.with_slot(&room, create, |s| {
            if epoch != 0 && s.epoch != epoch {
                return;
            }
            let mut source_conn = None;
            let mut stored = false;
            let mut kept_for: Vec<super::protocol::ParticipantId> = Vec::new();
            let outcome = match event {
                RoomEvent::Join { joiner, resume_token } => s.room.join(at, joiner, &resume_token),
                RoomEvent::Resume { resume_hash, conn, new_hash, new_token, restore } => {
                    let resumed =
                        s.room.resume(at, &resume_hash, conn, new_hash, &new_token).or_else(|refused| match restore {
                            Some(joiner) => s.room.restore(at, joiner, &new_token),
                            None => Err(refused),
                        });
                    match resumed {
                        Ok(o) => o,
                        Err(_) => {
                            if let Some(c) = s.conns.remove(&conn) {
                                c.outbox.push(Outbound::Close(close::RESUME_FAILED, "resume failed: join again"));
                            }
                            return;
                        }
                    }
                }
                RoomEvent::Message { conn, msg, chat_id, stored_at, stored_for } => {
                    source_conn = Some(conn);
                    stored = stored_at.is_some();
                    kept_for = stored_for;
                    let is_signal = matches!(msg, ClientMessage::Signal { .. });
                    let o = s.room.handle(stored_at.unwrap_or(at), conn, msg, || chat_id);
                    if is_signal {
                        let relayed =
                            o.deliveries.iter().filter(|d| matches!(*d.msg, ServerMessage::Signal { .. })).count();
                        self.stats.signals_relayed.fetch_add(relayed as u64, Ordering::Relaxed);
                    }
                    o
                }
                RoomEvent::Disconnected { conn } => {
                    s.conns.remove(&conn);
                    s.room.disconnected(at, conn)
                }
                RoomEvent::Expire => s.room.expire(at),
                RoomEvent::Observation { reading } => s.room.observation(reading),
            };
            for d in &outcome.deliveries {
                let mut text: Option<Utf8Bytes> = None;
                for c in &d.to {
                    let Some(local) = s.conns.get(c) else { continue };
                    let t = match &*d.msg {
                        // Only the instance holding the resumed socket mints its credentials.
                        ServerMessage::Resumed { .. } => serialize(&with_ice_servers(&d.msg, &self.ice)),
                        _ => text.get_or_insert_with(|| serialize(&d.msg)).clone(),
                    };
                    if local.outbox.push(Outbound::Text(t, received)) {
                        self.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(user_id) = seated(&d.msg) {
                        local.outbox.push(Outbound::Seated { user_id: user_id.to_string() });
                    }
                }
            }
            for e in outcome.effects {
                match e {
                    Effect::Close { conn, code, reason } => {
                        if let Some(local) = s.conns.get(&conn) {
                            local.outbox.push(Outbound::Close(code, reason));
                        }
                    }
                    _ if !local_origin => {}
                    // Kept before the room saw it (`RoomHub::decide`, `RoomHub::chat`).
                    Effect::Record(entry) if !written_behind(&entry, &kept_for) => {}
                    Effect::Record(entry) => records.push(Record::Timeline { room: room.clone(), entry }),
                    Effect::StoreChat { .. } if stored => {}
                    // A line the room took after the sender's check found it would not (the
                    // sender admitted meanwhile): kept now, after the fact.
                    Effect::StoreChat { id, participant, user_id, role, text, at } => {
                        let client_addr = source_conn
                            .and_then(|c| s.conns.get(&c))
                            .map(|c| c.client_addr.to_string())
                            .unwrap_or_default();
                        let actor = chat_actor(user_id, role, client_addr);
                        records.push(Record::Chat { room: room.clone(), id, participant, actor, text, at });
                    }
                    Effect::BothSidesPresent => records.push(Record::Start { room: room.clone() }),
                    Effect::CallEnded { by_user } => records.push(Record::End { room: room.clone(), by_user }),
                }
            }
            if s.room.is_empty() {
                // An emptied room starts afresh on every replica alike, whether or not a
                // connection of this instance is about to join it.
                s.room = Room::new(self.limits.clone());
            }
        });
        for r in records {
            self.record(r);
        }
    }

    fn snapshot(&self, room: &str, epoch: u64) -> Option<RoomSnapshot> {
        let slot = self.slot(room, false)?;
        let s = slot.lock().unwrap_or_else(|e| e.into_inner());
        (!s.dead && (epoch == 0 || s.epoch == epoch)).then(|| s.room.snapshot())
    }

    fn abandon(&self, room: &str, epoch: u64) {
        let Some(slot) = self.slot(room, false) else { return };
        let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
        if s.dead || s.epoch != epoch {
            return;
        }
        for c in s.conns.values() {
            c.outbox.push(Outbound::Close(close::GOING_AWAY, "the room is unavailable: join again"));
        }
        s.conns.clear();
        s.dead = true;
        let mut rooms = self.rooms();
        if rooms.get(room).is_some_and(|x| Arc::ptr_eq(x, &slot)) {
            rooms.remove(room);
            self.bus.close(room);
        }
    }

    fn install(&self, room: &str, epoch: u64, snapshot: RoomSnapshot) {
        let Some(slot) = self.slot(room, false) else { return };
        let mut s = slot.lock().unwrap_or_else(|e| e.into_inner());
        if !s.dead && s.epoch == epoch {
            s.room = Room::from_snapshot(self.limits.clone(), snapshot);
        }
    }
}

/// Whether the room's recorder writes `entry`: everything but the decisions already kept for
/// the participants in `kept_for` (see [`RoomHub::decide`]).
fn written_behind(entry: &TimelineEntry, kept_for: &[super::protocol::ParticipantId]) -> bool {
    !(entry.is_decision() && kept_for.contains(&entry.participant))
}

/// `resumed` with the ICE servers minted for its participant.
fn with_ice_servers(msg: &ServerMessage, ice: &IceSource) -> ServerMessage {
    let mut msg = msg.clone();
    if let ServerMessage::Resumed { you, ice_servers, .. } = &mut msg {
        *ice_servers = ice(&you.user_id);
    }
    msg
}

/// The participant whose seat a connection holds from this message on: `joined` and
/// `resumed` name it; other messages do not.
fn seated(msg: &ServerMessage) -> Option<&str> {
    match msg {
        ServerMessage::Joined { you, .. } | ServerMessage::Resumed { you, .. } => Some(&you.user_id),
        _ => None,
    }
}

fn serialize(msg: &ServerMessage) -> Utf8Bytes {
    match serde_json::to_string(msg) {
        Ok(s) => Utf8Bytes::from(s),
        Err(e) => {
            tracing::error!(error = %e, "a signaling message did not serialise");
            Utf8Bytes::from(
                serde_json::to_string(&ServerMessage::error(ErrorCode::Malformed, "internal error"))
                    .unwrap_or_default(),
            )
        }
    }
}

/// Writes timeline entries, chat lines (with their audit events) and the consultation start,
/// in batches, in the order they happened.
async fn record(db: Db, mut rx: mpsc::Receiver<Record>) {
    let mut batch = Vec::with_capacity(256);
    let mut flushed = Vec::new();
    let mut records = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for r in batch.drain(..) {
            match r {
                Record::Flush(done) => flushed.push(done),
                r => records.push(r),
            }
        }
        if !records.is_empty() {
            if let Err(e) = write_batch(&db, &mut records).await {
                tracing::error!(error = %e, "signaling records could not be written");
            }
        }
        records.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// How long the recorder keeps trying a write that the database cannot take for now
/// (`503 database_unavailable`: the pool timed out, the connection was lost) before it gives
/// the write up with an error in the log.
const RECORD_RETRY_FOR: Duration = Duration::from_secs(600);
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs `op` until it succeeds or fails otherwise than with the database unavailable, waiting
/// 0.1 s, then twice as long each time (at most 5 s), for at most [`RECORD_RETRY_FOR`]: a call
/// ended, a chat line said or a consultation started while the database is out of reach is
/// written once it is back, not dropped. Later records wait behind it, so the order holds.
async fn persisting<T, F, Fut>(what: &'static str, mut op: F) -> Result<T, crate::error::ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::error::ApiError>>,
{
    let deadline = Instant::now() + RECORD_RETRY_FOR;
    let mut wait = RECORD_RETRY_FIRST;
    loop {
        match op().await {
            Err(e) if e.code == Problem::DatabaseUnavailable && Instant::now() + wait < deadline => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "{what}: the database is unavailable; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECORD_RETRY_MAX);
            }
            r => return r,
        }
    }
}

async fn write_batch(db: &Db, batch: &mut Vec<Record>) -> Result<(), crate::error::ApiError> {
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut chats = Vec::new();
    let mut timeline = Vec::new();
    for r in batch.drain(..) {
        match r {
            // Ids given once, so a retried write cannot store an entry twice.
            Record::Timeline { room, entry } => timeline.push((new_id(), room, entry)),
            Record::Chat { room, id, participant, actor, text, at } => {
                chats.push((room, id, participant, actor, text, at))
            }
            Record::Start { room } => starts.push(room),
            Record::End { room, by_user } => ends.push((room, by_user)),
            Record::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
    persisting("signaling timeline and chat", || write_timeline_and_chat(db, &timeline, &chats)).await?;
    // The batch's starts in one transaction (a busy instance starts hundreds of consultations
    // a second); those already in progress, as every room is after a restart when its
    // participants come back, are only read. If the batch cannot be written (on PostgreSQL, a
    // deadlock with another instance's batch over the same rooms), each room is started on
    // its own, as an action through the API is.
    match persisting("consultation starts", || crate::consultations::store::start_many(db, &starts)).await {
        Ok(started) => {
            for room in started {
                tracing::info!(consultation = %room, "consultation in progress: both sides are in the room");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, rooms = starts.len(), "the batch of consultation starts failed; starting them one by one");
            futures_util::future::join_all(starts.iter().map(|room| async move {
                let started = persisting("a consultation start", || {
                    crate::consultations::store::apply_action(db, room, None, &Action::Start)
                })
                .await;
                match started {
                    Ok(_) => {
                        tracing::info!(consultation = %room, "consultation in progress: both sides are in the room")
                    }
                    Err(e) if e.code == Problem::InvalidTransition => {}
                    Err(e) => tracing::error!(consultation = %room, error = %e, "could not start the consultation"),
                }
            }))
            .await;
        }
    }
    futures_util::future::join_all(ends.iter().map(|(room, by_user)| async move {
        match persisting("the end of a call", || crate::scheduling::visit::end_call(db, room, by_user)).await {
            Ok(()) => tracing::info!(consultation = %room, "the call was ended for everyone"),
            Err(e) => tracing::error!(consultation = %room, error = %e, "could not end the consultation's call"),
        }
    }))
    .await;
    Ok(())
}

type ChatLine = (String, String, String, AuthUser, String, DateTime<Utc>);

/// How long a chat line or a doctor's decision may take to be kept (see [`RoomHub::chat`],
/// [`RoomHub::decide`]); the database unavailable is retried within it.
const KEPT_WITHIN: Duration = Duration::from_secs(5);

/// The account a chat line's audit event names.
fn chat_actor(user_id: String, role: super::protocol::RoomRole, client_addr: String) -> AuthUser {
    AuthUser {
        id: user_id,
        username: String::new(),
        role: match role {
            super::protocol::RoomRole::Requester => Role::CommunityDoctor,
            super::protocol::RoomRole::Expert => Role::Expert,
            super::protocol::RoomRole::Patient => Role::Patient,
        },
        org: String::new(),
        client_addr,
        family: String::new(),
        device: None,
    }
}

/// The batch's timeline entries and chat lines, in one transaction.
async fn write_timeline_and_chat(
    db: &Db,
    timeline: &[(String, String, TimelineEntry)],
    chats: &[ChatLine],
) -> Result<(), crate::error::ApiError> {
    if timeline.is_empty() && chats.is_empty() {
        return Ok(());
    }
    // Each chat line is a write to the consultation's record: its audit event, with the
    // patient, commits with it (read first: the rooms' patients never change).
    let mut patients: HashMap<&str, Option<String>> = HashMap::new();
    for (room, ..) in chats {
        if !patients.contains_key(room.as_str()) {
            patients.insert(room.as_str(), super::store::patient_of(db, room).await?);
        }
    }
    let events: Vec<crate::audit::AuditEvent> = chats
        .iter()
        .map(|(room, id, _, actor, _, _)| {
            let patient = patients.get(room.as_str()).cloned().flatten();
            crate::audit::event(actor, "create", "consultation_message", id).maybe_patient(patient)
        })
        .collect();
    // The writer turn like every other write transaction (nothing below takes it again
    // before the commit releases it).
    let mut tx = db.begin_write().await?;
    for (room, id, participant, actor, text, at) in chats {
        super::store::insert_message(&mut tx, id, room, &actor.id, participant, text, *at).await?;
    }
    if !events.is_empty() {
        crate::audit::store::write_all(&mut tx, &events, &crate::db::now_ts()).await?;
    }
    // The timeline in multi-row statements (in the order the entries happened).
    for chunk in timeline.chunks(100) {
        super::store::insert_timeline(&mut tx, chunk).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Ends expired seats every second, moves the expiry of the stored seats connected here
/// forward every [`tickets::SEAT_KEEP_EVERY`], and deletes old seats every minute,
/// while the hub lives.
async fn sweep(hub: Weak<RoomHub>, db: Db) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    let keep_every = tickets::SEAT_KEEP_EVERY.as_secs().max(1);
    loop {
        tick.tick().await;
        let Some(h) = hub.upgrade() else { return };
        for room in h.rooms_with_lost_seats() {
            h.publish(&room, None, RoomEvent::Expire);
        }
        if n % keep_every == keep_every - 1 {
            let connected = h.connected_participants();
            if let Err(e) = h.tickets.keep_seats(&connected).await {
                tracing::warn!(error = %e, "the expiry of stored signaling seats could not be moved forward");
            }
        }
        drop(h);
        n += 1;
        if n.is_multiple_of(60) {
            if let Err(e) = super::store::sweep_seats(&db, Utc::now()).await {
                tracing::warn!(error = %e, "old signaling seats could not be deleted");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_outbox_kills_its_connection() {
        let o = Outbox::new(2);
        assert!(o.push(Outbound::Close(1000, "a")));
        assert!(o.push(Outbound::Close(1000, "b")));
        assert_eq!(o.killed(), None);
        assert!(!o.push(Outbound::Close(1000, "c")));
        assert_eq!(o.killed(), Some(close::SLOW_CONSUMER));
        let mut v = Vec::new();
        o.take(&mut v);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn resumed_gets_ice_servers_minted_for_its_participant() {
        use crate::signaling::protocol::{MediaState, PeerInfo, RoomRole};
        let ice: IceSource = Arc::new(|user: &str| {
            vec![IceServer {
                urls: vec!["turn:t.example.org:3478?transport=udp".into()],
                username: Some(format!("1795435200:{user}")),
                credential: Some("pw".into()),
            }]
        });
        let you = PeerInfo {
            id: "k3J9xQ0aLm2B".into(),
            user_id: "u-wang".into(),
            name: "王建国".into(),
            role: RoomRole::Expert,
            polite: false,
            media: MediaState::default(),
            connected: true,
        };
        let resumed = ServerMessage::Resumed {
            version: 1,
            admitted: true,
            you,
            peers: vec![],
            lobby: vec![],
            resume_token: "r.t".into(),
            resume_window_secs: 60,
            replayed: 0,
            restart_ice: true,
            ice_servers: vec![],
        };
        let ServerMessage::Resumed { ice_servers, .. } = with_ice_servers(&resumed, &ice) else { unreachable!() };
        assert_eq!(ice_servers[0].username.as_deref(), Some("1795435200:u-wang"));
        let chat = ServerMessage::error(ErrorCode::Malformed, "x");
        assert_eq!(with_ice_servers(&chat, &ice), chat, "other messages are left as they are");
        assert_eq!(seated(&resumed), Some("u-wang"), "the resumed connection refreshes Wang's credentials");
        assert_eq!(seated(&chat), None);
    }

    /// A decision kept for some participants is not written again for them; a participant who
    /// came between the keeping and the room taking it is recorded as usual.
    #[test]
    fn only_the_decisions_kept_are_left_to_the_keeping() {
        use crate::signaling::protocol::RoomRole;
        use crate::signaling::room::Effect;
        let joiner = |id: &str, conn: ConnId, role: RoomRole| Joiner {
            id: id.into(),
            conn,
            user_id: format!("user-{id}"),
            name: id.into(),
            role,
            may_enter: true,
            resume_hash: String::new(),
        };
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut room = Room::new(RoomLimits::default());
        room.join(at, joiner("li", 1, RoomRole::Requester), "t1");
        room.join(at, joiner("wang", 2, RoomRole::Expert), "t2");
        let kept: Vec<String> =
            room.decision_entries(at, 1, &ClientMessage::End).into_iter().map(|e| e.participant).collect();
        assert_eq!(kept.len(), 2);
        // Zhang comes in while the end is being kept.
        room.join(at, joiner("zhang", 3, RoomRole::Patient), "t3");
        let outcome = room.handle(at, 1, ClientMessage::End, String::new);
        let written: Vec<String> = outcome
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Record(entry) if written_behind(entry, &kept) => Some(entry.participant.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(written, ["zhang"]);
    }

    #[test]
    fn latency_quantiles_come_from_buckets() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), 0.0);
        for _ in 0..98 {
            h.record(Duration::from_micros(80));
        }
        h.record(Duration::from_micros(900));
        h.record(Duration::from_millis(30));
        assert_eq!(h.quantile(0.5), 100e-6);
        assert_eq!(h.quantile(0.99), 1000e-6);
        assert_eq!(h.quantile(1.0), 0.05);
        assert_eq!(h.count(), 100);
    }
}
