//! One consultation's room, as pure rules: who is in the room and who waits in the lobby,
//! admission and removal, what each message reaches, politeness for perfect negotiation,
//! the seat kept for a participant whose socket was lost (with the messages addressed to it
//! meanwhile, bounded), and the timeline entries and other effects the I/O layer carries out.
//!
//! Nothing here touches a socket, a clock or a database: every operation takes `now` and
//! returns an [`Outcome`] (messages for connections, effects for the hub). The same events
//! applied in the same order give the same outcome, which is what lets several server
//! instances keep replicas of a room in step over a bus.

use super::protocol::{
    close, ClientMessage, ErrorCode, LeaveReason, LobbyStatus, MediaState, ParticipantId, PeerInfo, RoomRole,
    ServerMessage, PROTOCOL_VERSION,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// A connection's id: distinguishes a participant's old socket from its resumed one.
pub type ConnId = u64;

/// Messages kept for a participant whose socket is lost. Smaller than the outbound queue
/// of a connection (`ws::OUTBOX_CAPACITY`), so that a full replay, the `resumed` before it
/// and what the room sends meanwhile fit in the resumed connection's queue.
pub const REPLAY_MESSAGES: usize = 192;

#[derive(Debug, Clone)]
pub struct RoomLimits {
    pub max_participants: usize,
    pub resume_window: TimeDelta,
    /// Messages kept for a participant whose socket is lost...
    pub replay_messages: usize,
    /// ...and their approximate size; beyond either the seat is given up.
    pub replay_bytes: usize,
    pub chat_max_chars: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits {
            max_participants: 8,
            resume_window: TimeDelta::seconds(60),
            replay_messages: REPLAY_MESSAGES,
            replay_bytes: 512 * 1024,
            chat_max_chars: 2000,
        }
    }
}

/// The participant who says a chat line (see [`Room::chat_author`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatAuthor {
    pub participant: ParticipantId,
    pub user_id: String,
    pub role: RoomRole,
}

/// Someone entering the room with a fresh ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Joiner {
    pub id: ParticipantId,
    pub conn: ConnId,
    pub user_id: String,
    pub name: String,
    pub role: RoomRole,
    /// Enters the room directly (the requester, accepted experts); otherwise the lobby.
    pub may_enter: bool,
    /// Hash of the resume token handed to this participant.
    pub resume_hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    Lobby,
    Room,
}

#[derive(Debug, Clone)]
enum Link {
    Connected(ConnId),
    Lost { since: DateTime<Utc>, buffer: VecDeque<Arc<ServerMessage>>, bytes: usize },
}

#[derive(Debug, Clone)]
struct Participant {
    id: ParticipantId,
    user_id: String,
    name: String,
    role: RoomRole,
    place: Place,
    link: Link,
    media: MediaState,
    resume_hash: String,
    /// Order of entering the room; the later arrival is the polite side.
    seq: u64,
    overflowed: bool,
}

impl Participant {
    fn conn(&self) -> Option<ConnId> {
        match self.link {
            Link::Connected(c) => Some(c),
            Link::Lost { .. } => None,
        }
    }

    fn info(&self, viewer_seq: u64) -> PeerInfo {
        PeerInfo {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            name: self.name.clone(),
            role: self.role,
            polite: viewer_seq > self.seq,
            media: self.media,
            connected: matches!(self.link, Link::Connected(_)),
        }
    }
}

crate::domain::named_enum! {
    /// What happened to a participant, as the room's timeline (`room_events.kind`) records it.
    TimelineKind, "room event kind" {
        Waiting => "waiting",
        Joined => "joined",
        Admitted => "admitted",
        Removed => "removed",
        Disconnected => "disconnected",
        Reconnected => "reconnected",
        Left => "left",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    pub kind: TimelineKind,
    pub participant: ParticipantId,
    pub user_id: String,
    pub role: RoomRole,
    /// The doctor who admitted or removed.
    pub by: Option<String>,
    pub detail: String,
    pub at: DateTime<Utc>,
}

impl TimelineEntry {
    /// A doctor's decision about who may be in the room: an admission, a removal, or a seat
    /// ended by a doctor ending the call for everyone (which forgets the admissions). These
    /// decide whether a seat may come back after a restart and whether a patient enters
    /// without waiting, so they are kept before they take effect (see [`Room::decision_entries`]).
    pub fn is_decision(&self) -> bool {
        match self.kind {
            TimelineKind::Admitted | TimelineKind::Removed => true,
            TimelineKind::Left => self.detail == "ended",
            _ => false,
        }
    }
}

/// Work for the I/O layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Record(TimelineEntry),
    StoreChat {
        id: String,
        participant: ParticipantId,
        user_id: String,
        role: RoomRole,
        text: String,
        at: DateTime<Utc>,
    },
    Close {
        conn: ConnId,
        code: u16,
        reason: &'static str,
    },
    /// The inviting side and an expert are in the room together for the first time.
    BothSidesPresent,
    /// A doctor (this user) ended the call for everyone.
    CallEnded {
        by_user: String,
    },
}

/// One message for some connections, serialised once.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub to: Vec<ConnId>,
    pub msg: Arc<ServerMessage>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub deliveries: Vec<Delivery>,
    pub effects: Vec<Effect>,
}

impl Outcome {
    fn deliver(&mut self, conn: ConnId, msg: ServerMessage) {
        self.deliveries.push(Delivery { to: vec![conn], msg: Arc::new(msg) });
    }

    fn error(&mut self, conn: Option<ConnId>, code: ErrorCode, message: impl Into<String>) {
        if let Some(c) = conn {
            self.deliver(c, ServerMessage::error(code, message));
        }
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &'static str) {
        self.effects.push(Effect::Close { conn, code, reason });
    }

    /// The connections messages are addressed to, for tests and assertions.
    pub fn messages_to(&self, conn: ConnId) -> Vec<&ServerMessage> {
        self.deliveries.iter().filter(|d| d.to.contains(&conn)).map(|d| d.msg.as_ref()).collect()
    }

    pub fn timeline(&self) -> Vec<TimelineKind> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Record(t) => Some(t.kind),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeRefused {
    UnknownToken,
}

/// Counts for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomCounts {
    pub in_room: usize,
    pub in_lobby: usize,
    pub reconnecting: usize,
}

#[derive(Debug, Clone)]
pub struct Room {
    limits: RoomLimits,
    participants: Vec<Participant>,
    /// Users admitted once keep their admission until removed, so a patient whose seat
    /// expired does not wait in the lobby a second time.
    admitted_users: HashSet<String>,
    /// Participants whose seat ended here (left, removed, timed out, replaced): their stored
    /// seat is not put back, even before the room's recorder has written their departure.
    ended: HashSet<ParticipantId>,
    next_seq: u64,
    both_sides_seen: bool,
}

impl Room {
    pub fn new(limits: RoomLimits) -> Room {
        Room {
            limits,
            participants: Vec::new(),
            admitted_users: HashSet::new(),
            ended: HashSet::new(),
            next_seq: 1,
            both_sides_seen: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    pub fn counts(&self) -> RoomCounts {
        let mut c = RoomCounts::default();
        for p in &self.participants {
            match (p.place, &p.link) {
                (_, Link::Lost { .. }) => c.reconnecting += 1,
                (Place::Room, _) => c.in_room += 1,
                (Place::Lobby, _) => c.in_lobby += 1,
            }
        }
        c
    }

    pub fn resume_window_secs(&self) -> u64 {
        self.limits.resume_window.num_seconds().max(0) as u64
    }

    /// The participant a resume token hash belongs to.
    pub fn participant_for_resume(&self, resume_hash: &str) -> Option<&str> {
        self.participants.iter().find(|p| p.resume_hash == resume_hash).map(|p| p.id.as_str())
    }

    /// Where a participant is, if present.
    pub fn place_of(&self, id: &str) -> Option<Place> {
        self.find(id).map(|i| self.participants[i].place)
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.participants.iter().position(|p| p.id == id)
    }

    fn find_conn(&self, conn: ConnId) -> Option<usize> {
        self.participants.iter().position(|p| p.conn() == Some(conn))
    }

    fn record(
        &self,
        out: &mut Outcome,
        now: DateTime<Utc>,
        kind: TimelineKind,
        i: usize,
        by: Option<&str>,
        detail: &str,
    ) {
        let p = &self.participants[i];
        out.effects.push(Effect::Record(TimelineEntry {
            kind,
            participant: p.id.clone(),
            user_id: p.user_id.clone(),
            role: p.role,
            by: by.map(str::to_string),
            detail: detail.to_string(),
            at: now,
        }));
    }

    /// Sends `msg` to the participants at `targets`: at once to connected ones, into the
    /// replay buffer of those whose socket is lost.
    fn send(&mut self, out: &mut Outcome, targets: &[usize], msg: ServerMessage) {
        if targets.is_empty() {
            return;
        }
        let msg = Arc::new(msg);
        let size = msg.approx_size();
        let mut to = Vec::with_capacity(targets.len());
        for &i in targets {
            let limits = &self.limits;
            let p = &mut self.participants[i];
            match &mut p.link {
                Link::Connected(c) => to.push(*c),
                Link::Lost { buffer, bytes, .. } => {
                    if buffer.len() >= limits.replay_messages || *bytes + size > limits.replay_bytes {
                        p.overflowed = true;
                        buffer.clear();
                        *bytes = 0;
                    } else if !p.overflowed {
                        buffer.push_back(msg.clone());
                        *bytes += size;
                    }
                }
            }
        }
        if !to.is_empty() {
            out.deliveries.push(Delivery { to, msg });
        }
    }

    fn in_room_except(&self, except: usize) -> Vec<usize> {
        (0..self.participants.len()).filter(|&i| i != except && self.participants[i].place == Place::Room).collect()
    }

    fn doctors_in_room_except(&self, except: usize) -> Vec<usize> {
        (0..self.participants.len())
            .filter(|&i| {
                i != except && self.participants[i].place == Place::Room && self.participants[i].role.is_doctor()
            })
            .collect()
    }

    fn peers_for(&self, i: usize) -> (Vec<PeerInfo>, Vec<PeerInfo>) {
        let me = &self.participants[i];
        if me.place == Place::Lobby {
            return (Vec::new(), Vec::new());
        }
        let peers = self.in_room_except(i).into_iter().map(|j| self.participants[j].info(me.seq)).collect();
        let lobby = if me.role.is_doctor() {
            self.participants.iter().filter(|p| p.place == Place::Lobby).map(|p| p.info(me.seq)).collect()
        } else {
            Vec::new()
        };
        (peers, lobby)
    }

    fn joined_message(&self, i: usize, resume_token: &str) -> ServerMessage {
        let (peers, lobby) = self.peers_for(i);
        let me = &self.participants[i];
        ServerMessage::Joined {
            version: PROTOCOL_VERSION,
            admitted: me.place == Place::Room,
            you: me.info(me.seq),
            peers,
            lobby,
            resume_token: resume_token.to_string(),
            resume_window_secs: self.resume_window_secs(),
        }
    }

    /// A participant arrives with a fresh ticket. `resume_token` is the clear token whose
    /// hash is in `joiner`; it is handed to the participant in `joined`.
    pub fn join(&mut self, now: DateTime<Utc>, joiner: Joiner, resume_token: &str) -> Outcome {
        let mut out = Outcome::default();
        if let Some(old) = self.participants.iter().position(|p| p.user_id == joiner.user_id) {
            self.depart(&mut out, now, old, LeaveReason::Replaced, None);
        }
        if self.participants.len() >= self.limits.max_participants {
            out.error(
                Some(joiner.conn),
                ErrorCode::NotAllowed,
                format!("the room holds at most {} participants", self.limits.max_participants),
            );
            out.close(joiner.conn, close::ROOM_FULL, "room full");
            return out;
        }
        let enters = joiner.may_enter || self.admitted_users.contains(&joiner.user_id);
        let conn = joiner.conn;
        self.participants.push(Participant {
            id: joiner.id,
            user_id: joiner.user_id,
            name: joiner.name,
            role: joiner.role,
            place: Place::Lobby,
            link: Link::Connected(conn),
            media: MediaState::default(),
            resume_hash: joiner.resume_hash,
            seq: 0,
            overflowed: false,
        });
        let i = self.participants.len() - 1;
        if enters {
            self.enter(&mut out, now, i, None);
            out.deliveries.insert(0, Delivery { to: vec![conn], msg: Arc::new(self.joined_message(i, resume_token)) });
        } else {
            self.record(&mut out, now, TimelineKind::Waiting, i, None, "");
            out.deliver(conn, self.joined_message(i, resume_token));
            let me = self.participants[i].info(0);
            out.deliver(conn, ServerMessage::Lobby { status: LobbyStatus::Waiting, participant: me });
            self.tell_doctors_about_lobby(&mut out, i, LobbyStatus::Waiting);
        }
        self.finish(&mut out, now);
        out
    }

    fn tell_doctors_about_lobby(&mut self, out: &mut Outcome, i: usize, status: LobbyStatus) {
        let doctors = self.doctors_in_room_except(i);
        for d in doctors {
            let seq = self.participants[d].seq;
            let info = self.participants[i].info(seq);
            self.send(out, &[d], ServerMessage::Lobby { status, participant: info });
        }
    }

    /// Moves participant `i` into the room: directly (`by` is None; the caller sends
    /// `joined`) or admitted by the doctor `by` (the participant is told `admitted` and
    /// then meets each peer with `peer-joined`).
    fn enter(&mut self, out: &mut Outcome, now: DateTime<Utc>, i: usize, by: Option<&str>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let p = &mut self.participants[i];
        p.place = Place::Room;
        p.seq = seq;
        self.admitted_users.insert(p.user_id.clone());
        match by {
            Some(doctor) => self.record(out, now, TimelineKind::Admitted, i, Some(doctor), ""),
            None => self.record(out, now, TimelineKind::Joined, i, None, ""),
        }
        if by.is_some() {
            let me = self.participants[i].info(seq);
            self.send(out, &[i], ServerMessage::Lobby { status: LobbyStatus::Admitted, participant: me });
            for j in self.in_room_except(i) {
                let info = self.participants[j].info(seq);
                self.send(out, &[i], ServerMessage::PeerJoined { peer: info });
            }
        }
        for j in self.in_room_except(i) {
            let viewer = self.participants[j].seq;
            let info = self.participants[i].info(viewer);
            self.send(out, &[j], ServerMessage::PeerJoined { peer: info });
        }
        if by.is_some() {
            self.tell_doctors_about_lobby(out, i, LobbyStatus::Admitted);
        }
        let in_room = |r: RoomRole| self.participants.iter().any(|p| p.place == Place::Room && p.role == r);
        if !self.both_sides_seen && in_room(RoomRole::Requester) && in_room(RoomRole::Expert) {
            self.both_sides_seen = true;
            out.effects.push(Effect::BothSidesPresent);
        }
    }

    /// Participant `i` leaves for good.
    fn depart(&mut self, out: &mut Outcome, now: DateTime<Utc>, i: usize, reason: LeaveReason, by: Option<&str>) {
        let place = self.participants[i].place;
        let conn = self.participants[i].conn();
        if let Some(c) = conn {
            match reason {
                LeaveReason::Removed => {
                    let info = self.participants[i].info(0);
                    out.deliver(c, ServerMessage::Lobby { status: LobbyStatus::Removed, participant: info });
                    out.close(c, close::REMOVED, "removed by a doctor");
                }
                LeaveReason::Replaced => out.close(c, close::REPLACED, "joined again from another connection"),
                LeaveReason::Left => out.close(c, 1000, "left"),
                LeaveReason::TimedOut | LeaveReason::Overflowed => {}
            }
        }
        if reason == LeaveReason::Removed {
            let user = self.participants[i].user_id.clone();
            self.admitted_users.remove(&user);
            self.record(out, now, TimelineKind::Removed, i, by, "");
        } else {
            let detail = match reason {
                LeaveReason::Left => "",
                LeaveReason::TimedOut => "timed_out",
                LeaveReason::Replaced => "replaced",
                LeaveReason::Overflowed => "overflowed",
                LeaveReason::Removed => "removed",
            };
            self.record(out, now, TimelineKind::Left, i, None, detail);
        }
        match place {
            Place::Room => {
                let id = self.participants[i].id.clone();
                let others = self.in_room_except(i);
                self.send(out, &others, ServerMessage::PeerLeft { peer: id, reason });
            }
            Place::Lobby => {
                let status = if reason == LeaveReason::Removed { LobbyStatus::Removed } else { LobbyStatus::Left };
                self.tell_doctors_about_lobby(out, i, status);
            }
        }
        let gone = self.participants.remove(i);
        self.ended.insert(gone.id);
    }

    /// Participant `i` leaves because the call was ended for everyone: closed and recorded,
    /// without telling the others (they leave with it).
    fn depart_quietly(&mut self, out: &mut Outcome, now: DateTime<Utc>, i: usize) {
        if let Some(c) = self.participants[i].conn() {
            out.close(c, close::ENDED, "ended for everyone");
        }
        self.record(out, now, TimelineKind::Left, i, None, "ended");
        let gone = self.participants.remove(i);
        self.ended.insert(gone.id);
    }

    /// Gives up the seats of participants whose replay buffer overflowed.
    fn finish(&mut self, out: &mut Outcome, now: DateTime<Utc>) {
        while let Some(i) = self.participants.iter().position(|p| p.overflowed) {
            self.depart(out, now, i, LeaveReason::Overflowed, None);
        }
    }

    /// A socket closed or stopped answering; the seat is kept for the resume window.
    pub fn disconnected(&mut self, now: DateTime<Utc>, conn: ConnId) -> Outcome {
        let mut out = Outcome::default();
        let Some(i) = self.find_conn(conn) else { return out };
        self.participants[i].link = Link::Lost { since: now, buffer: VecDeque::new(), bytes: 0 };
        self.record(&mut out, now, TimelineKind::Disconnected, i, None, "");
        if self.participants[i].place == Place::Room {
            let id = self.participants[i].id.clone();
            let others = self.in_room_except(i);
            self.send(&mut out, &others, ServerMessage::PeerReconnecting { peer: id });
        }
        self.finish(&mut out, now);
        out
    }

    /// A new socket presents a resume token: the participant keeps its id, receives what
    /// was addressed to it meanwhile, and everyone restarts ICE toward it.
    pub fn resume(
        &mut self,
        now: DateTime<Utc>,
        resume_hash: &str,
        conn: ConnId,
        new_hash: String,
        new_token: &str,
    ) -> Result<Outcome, ResumeRefused> {
        let i =
            self.participants.iter().position(|p| p.resume_hash == resume_hash).ok_or(ResumeRefused::UnknownToken)?;
        let mut out = Outcome::default();
        let old = std::mem::replace(&mut self.participants[i].link, Link::Connected(conn));
        let replay: Vec<Arc<ServerMessage>> = match old {
            Link::Connected(old_conn) => {
                out.close(old_conn, close::REPLACED, "resumed on another connection");
                Vec::new()
            }
            Link::Lost { buffer, .. } => buffer.into(),
        };
        self.participants[i].resume_hash = new_hash;
        self.record(&mut out, now, TimelineKind::Reconnected, i, None, "");
        let in_room = self.participants[i].place == Place::Room;
        let (peers, lobby) = self.peers_for(i);
        out.deliver(
            conn,
            ServerMessage::Resumed {
                version: PROTOCOL_VERSION,
                admitted: in_room,
                you: self.participants[i].info(self.participants[i].seq),
                peers,
                lobby,
                resume_token: new_token.to_string(),
                resume_window_secs: self.resume_window_secs(),
                replayed: replay.len() as u32,
                restart_ice: in_room,
                // Minted per participant by the instance that delivers it (see the hub):
                // credentials are not part of the replicated room.
                ice_servers: Vec::new(),
            },
        );
        for msg in replay {
            out.deliveries.push(Delivery { to: vec![conn], msg });
        }
        if in_room {
            let id = self.participants[i].id.clone();
            let others = self.in_room_except(i);
            self.send(&mut out, &others, ServerMessage::PeerReconnected { peer: id, restart_ice: true });
        } else {
            let info = self.participants[i].info(0);
            out.deliver(conn, ServerMessage::Lobby { status: LobbyStatus::Waiting, participant: info });
        }
        self.finish(&mut out, now);
        Ok(out)
    }

    /// A stored seat comes back after its room was lost (a restart of the instance that held
    /// it): `joiner` keeps the participant id it had, and enters as a join with a ticket would
    /// (doctors and patients admitted before into the room, others into the lobby), but is
    /// answered `resumed` (nothing to replay; ICE restarted when in the room). Refused when
    /// this room knows the participant: present (its token is not the one presented) or
    /// ended here.
    pub fn restore(
        &mut self,
        now: DateTime<Utc>,
        joiner: Joiner,
        resume_token: &str,
    ) -> Result<Outcome, ResumeRefused> {
        if self.ended.contains(&joiner.id) || self.find(&joiner.id).is_some() {
            return Err(ResumeRefused::UnknownToken);
        }
        let conn = joiner.conn;
        let mut out = self.join(now, joiner, resume_token);
        for d in out.deliveries.iter_mut().filter(|d| d.to == [conn]) {
            if let ServerMessage::Joined { version, admitted, you, peers, lobby, resume_token, resume_window_secs } =
                &*d.msg
            {
                d.msg = Arc::new(ServerMessage::Resumed {
                    version: *version,
                    admitted: *admitted,
                    you: you.clone(),
                    peers: peers.clone(),
                    lobby: lobby.clone(),
                    resume_token: resume_token.clone(),
                    resume_window_secs: *resume_window_secs,
                    replayed: 0,
                    restart_ice: *admitted,
                    ice_servers: Vec::new(),
                });
            }
        }
        Ok(out)
    }

    /// The participants connected through one of `local` connections (whose stored seats this
    /// instance keeps).
    pub fn connected_participants(&self, local: impl Fn(ConnId) -> bool) -> Vec<ParticipantId> {
        self.participants.iter().filter(|p| p.conn().is_some_and(&local)).map(|p| p.id.clone()).collect()
    }

    /// A reading of the patient taken during the call: to everyone in the room (into the
    /// replay buffer of those reconnecting), not to the lobby.
    pub fn observation(&mut self, reading: super::protocol::LiveReading) -> Outcome {
        let mut out = Outcome::default();
        let targets: Vec<usize> =
            (0..self.participants.len()).filter(|&i| self.participants[i].place == Place::Room).collect();
        self.send(&mut out, &targets, ServerMessage::Observation { reading });
        out
    }

    /// Ends the seats whose resume window has passed.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Outcome {
        let mut out = Outcome::default();
        let window = self.limits.resume_window;
        while let Some(i) =
            self.participants.iter().position(|p| matches!(p.link, Link::Lost { since, .. } if now - since >= window))
        {
            self.depart(&mut out, now, i, LeaveReason::TimedOut, None);
        }
        self.finish(&mut out, now);
        out
    }

    /// A message from the participant on connection `conn`. `new_id` names a stored chat line.
    /// Whether a chat line (trimmed) is of an allowed length.
    fn chat_text_fits(&self, text: &str) -> Result<(), String> {
        let chars = text.chars().count();
        if chars == 0 || chars > self.limits.chat_max_chars {
            return Err(format!("a chat line holds 1 to {} characters", self.limits.chat_max_chars));
        }
        Ok(())
    }

    /// Who says a chat line sent by `conn`, if the room would take it as it stands: the sender
    /// is in the room (not the lobby) and the line (trimmed) is of an allowed length. `None`
    /// otherwise (the room's answer to the line, once sent, is the error).
    pub fn chat_author(&self, conn: ConnId, text: &str) -> Option<ChatAuthor> {
        let i = self.find_conn(conn)?;
        let p = &self.participants[i];
        (p.place == Place::Room && self.chat_text_fits(text.trim()).is_ok()).then(|| ChatAuthor {
            participant: p.id.clone(),
            user_id: p.user_id.clone(),
            role: p.role,
        })
    }

    /// The decisions (see [`TimelineEntry::is_decision`]) that `msg` from `conn` records if
    /// the room takes it as it stands now: what must be kept before it takes effect. Empty
    /// for any other message, and for a decision the room refuses (the sender not a doctor,
    /// no such peer: the room's answer, once the message is sent, is the error).
    pub fn decision_entries(&self, now: DateTime<Utc>, conn: ConnId, msg: &ClientMessage) -> Vec<TimelineEntry> {
        if !matches!(msg, ClientMessage::Admit { .. } | ClientMessage::Remove { .. } | ClientMessage::End) {
            return Vec::new();
        }
        // The same rules as taking it: on a copy (rare messages, rooms of a few participants).
        let outcome = self.clone().handle(now, conn, msg.clone(), String::new);
        outcome
            .effects
            .into_iter()
            .filter_map(|e| match e {
                Effect::Record(entry) if entry.is_decision() => Some(entry),
                _ => None,
            })
            .collect()
    }

    pub fn handle(
        &mut self,
        now: DateTime<Utc>,
        conn: ConnId,
        msg: ClientMessage,
        new_id: impl FnOnce() -> String,
    ) -> Outcome {
        let mut out = Outcome::default();
        let Some(i) = self.find_conn(conn) else { return out };
        let from_room = self.participants[i].place == Place::Room;
        match msg {
            ClientMessage::Leave => {
                self.depart(&mut out, now, i, LeaveReason::Left, None);
            }
            ClientMessage::Media { mic, camera, screen } => {
                self.participants[i].media = MediaState { mic, camera, screen };
                if from_room {
                    let id = self.participants[i].id.clone();
                    let others = self.in_room_except(i);
                    self.send(&mut out, &others, ServerMessage::Media { from: id, mic, camera, screen });
                }
            }
            _ if !from_room => {
                out.error(Some(conn), ErrorCode::NotAdmitted, "you are waiting in the lobby until a doctor admits you");
            }
            ClientMessage::Signal { to, description, candidate } => {
                if description.is_some() == candidate.is_some() {
                    out.error(
                        Some(conn),
                        ErrorCode::InvalidSignal,
                        "a signal carries exactly one of description and candidate",
                    );
                } else if to == self.participants[i].id {
                    out.error(Some(conn), ErrorCode::InvalidSignal, "a signal cannot be addressed to its sender");
                } else {
                    match self.find(&to).filter(|&j| self.participants[j].place == Place::Room) {
                        Some(j) => {
                            let from = self.participants[i].id.clone();
                            self.send(&mut out, &[j], ServerMessage::Signal { from, description, candidate });
                        }
                        None => out.error(Some(conn), ErrorCode::UnknownPeer, format!("no peer {to} in the room")),
                    }
                }
            }
            ClientMessage::Chat { text } => {
                let text = text.trim().to_string();
                if let Err(message) = self.chat_text_fits(&text) {
                    out.error(Some(conn), ErrorCode::InvalidChat, message);
                } else {
                    let id = new_id();
                    let p = &self.participants[i];
                    out.effects.push(Effect::StoreChat {
                        id: id.clone(),
                        participant: p.id.clone(),
                        user_id: p.user_id.clone(),
                        role: p.role,
                        text: text.clone(),
                        at: now,
                    });
                    let msg = ServerMessage::Chat {
                        id,
                        from: p.id.clone(),
                        name: p.name.clone(),
                        text,
                        at: crate::db::ts(now),
                    };
                    let everyone: Vec<usize> =
                        (0..self.participants.len()).filter(|&j| self.participants[j].place == Place::Room).collect();
                    self.send(&mut out, &everyone, msg);
                }
            }
            ClientMessage::Admit { peer } | ClientMessage::Remove { peer }
                if !self.participants[i].role.is_doctor() =>
            {
                out.error(Some(conn), ErrorCode::NotAllowed, format!("only a doctor may admit or remove {peer}"));
            }
            ClientMessage::End if !self.participants[i].role.is_doctor() => {
                out.error(Some(conn), ErrorCode::NotAllowed, "only a doctor may end the call for everyone");
            }
            ClientMessage::End => {
                let by = self.participants[i].name.clone();
                let by_user = self.participants[i].user_id.clone();
                // Everyone, in the room, in the lobby or reconnecting, hears it and leaves;
                // the ender last, so the others still learn who ended it.
                let mut order: Vec<usize> = (0..self.participants.len()).filter(|&j| j != i).collect();
                order.push(i);
                for j in &order {
                    if let Some(c) = self.participants[*j].conn() {
                        out.deliver(c, ServerMessage::CallEnded { by: by.clone() });
                    }
                }
                while !self.participants.is_empty() {
                    self.depart_quietly(&mut out, now, 0);
                }
                self.admitted_users.clear();
                out.effects.push(Effect::CallEnded { by_user });
            }
            ClientMessage::Admit { peer } => match self.find(&peer) {
                Some(j) if self.participants[j].place == Place::Lobby => {
                    let by = self.participants[i].user_id.clone();
                    self.enter(&mut out, now, j, Some(&by));
                }
                _ => out.error(Some(conn), ErrorCode::UnknownPeer, format!("no participant {peer} waits in the lobby")),
            },
            ClientMessage::Remove { peer } => match self.find(&peer) {
                Some(j) if self.participants[j].place == Place::Room && self.participants[j].role.is_doctor() => {
                    out.error(Some(conn), ErrorCode::NotAllowed, "a doctor in the room cannot be removed");
                }
                Some(j) => {
                    let by = self.participants[i].user_id.clone();
                    self.depart(&mut out, now, j, LeaveReason::Removed, Some(&by));
                }
                None => out.error(Some(conn), ErrorCode::UnknownPeer, format!("no participant {peer}")),
            },
        }
        self.finish(&mut out, now);
        out
    }
}

/// A room's whole state, as one instance hands it to another that starts serving the room
/// (see `docs/signaling.md`, "Several instances"). [`Room::from_snapshot`] of
/// [`Room::snapshot`] behaves exactly as the original for every later event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RoomSnapshot {
    pub participants: Vec<ParticipantSnapshot>,
    pub admitted_users: Vec<String>,
    /// Participants whose seat ended in this room.
    #[serde(default)]
    pub ended: Vec<ParticipantId>,
    pub next_seq: u64,
    pub both_sides_seen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ParticipantSnapshot {
    pub id: ParticipantId,
    pub user_id: String,
    pub name: String,
    pub role: RoomRole,
    pub place: Place,
    /// The connection while connected.
    pub conn: Option<ConnId>,
    /// Since when the socket is lost, with what was addressed to it meanwhile.
    pub lost_since: Option<DateTime<Utc>>,
    pub replay: Vec<ServerMessage>,
    pub media: MediaState,
    pub resume_hash: String,
    pub seq: u64,
    pub overflowed: bool,
}

impl Room {
    pub fn snapshot(&self) -> RoomSnapshot {
        let mut admitted_users: Vec<String> = self.admitted_users.iter().cloned().collect();
        admitted_users.sort();
        let mut ended: Vec<ParticipantId> = self.ended.iter().cloned().collect();
        ended.sort();
        RoomSnapshot {
            ended,
            participants: self
                .participants
                .iter()
                .map(|p| {
                    let (conn, lost_since, replay) = match &p.link {
                        Link::Connected(c) => (Some(*c), None, Vec::new()),
                        Link::Lost { since, buffer, .. } => {
                            (None, Some(*since), buffer.iter().map(|m| m.as_ref().clone()).collect())
                        }
                    };
                    ParticipantSnapshot {
                        id: p.id.clone(),
                        user_id: p.user_id.clone(),
                        name: p.name.clone(),
                        role: p.role,
                        place: p.place,
                        conn,
                        lost_since,
                        replay,
                        media: p.media,
                        resume_hash: p.resume_hash.clone(),
                        seq: p.seq,
                        overflowed: p.overflowed,
                    }
                })
                .collect(),
            admitted_users,
            next_seq: self.next_seq,
            both_sides_seen: self.both_sides_seen,
        }
    }

    pub fn from_snapshot(limits: RoomLimits, snap: RoomSnapshot) -> Room {
        let participants = snap
            .participants
            .into_iter()
            .map(|p| {
                let link = match (p.conn, p.lost_since) {
                    (Some(c), _) => Link::Connected(c),
                    (None, since) => {
                        let buffer: VecDeque<Arc<ServerMessage>> = p.replay.into_iter().map(Arc::new).collect();
                        let bytes = buffer.iter().map(|m| m.approx_size()).sum();
                        Link::Lost { since: since.unwrap_or(DateTime::<Utc>::MIN_UTC), buffer, bytes }
                    }
                };
                Participant {
                    id: p.id,
                    user_id: p.user_id,
                    name: p.name,
                    role: p.role,
                    place: p.place,
                    link,
                    media: p.media,
                    resume_hash: p.resume_hash,
                    seq: p.seq,
                    overflowed: p.overflowed,
                }
            })
            .collect();
        Room {
            limits,
            participants,
            admitted_users: snap.admitted_users.into_iter().collect(),
            ended: snap.ended.into_iter().collect(),
            next_seq: snap.next_seq,
            both_sides_seen: snap.both_sides_seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::protocol::{IceCandidate, Relayed, SdpType, SessionDescription};

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn joiner(id: &str, conn: ConnId, role: RoomRole) -> Joiner {
        Joiner {
            id: id.into(),
            conn,
            user_id: format!("user-{id}"),
            name: id.to_uppercase(),
            role,
            may_enter: role.is_doctor(),
            resume_hash: format!("hash-{id}-{conn}"),
        }
    }

    fn offer(to: &str) -> ClientMessage {
        ClientMessage::Signal {
            to: to.into(),
            description: Some(Relayed::new(&SessionDescription { kind: SdpType::Offer, sdp: "v=0".into() }).unwrap()),
            candidate: None,
        }
    }

    fn doctors_room() -> Room {
        let mut room = Room::new(RoomLimits::default());
        room.join(t(0), joiner("li", 1, RoomRole::Requester), "tok-li");
        room
    }

    #[test]
    fn doctors_enter_directly_and_learn_each_other_with_politeness() {
        let mut room = doctors_room();
        let out = room.join(t(1), joiner("wang", 2, RoomRole::Expert), "tok-wang");
        let to_wang = out.messages_to(2);
        let ServerMessage::Joined { you, peers, resume_token, .. } = to_wang[0] else { panic!("{to_wang:?}") };
        assert_eq!(you.id, "wang");
        assert_eq!(resume_token, "tok-wang");
        assert_eq!(peers.len(), 1);
        assert!(peers[0].polite, "the later arrival is polite toward those already there");
        let to_li = out.messages_to(1);
        assert!(matches!(to_li[0], ServerMessage::PeerJoined { peer } if peer.id == "wang" && !peer.polite));
        assert!(out.effects.contains(&Effect::BothSidesPresent));
        assert_eq!(out.timeline(), vec![TimelineKind::Joined]);
        // Only once.
        room.handle(t(2), 2, ClientMessage::Leave, || "x".into());
        let again = room.join(t(3), joiner("wang", 3, RoomRole::Expert), "tok-wang2");
        assert!(!again.effects.contains(&Effect::BothSidesPresent));
    }

    #[test]
    fn a_doctors_decisions_are_known_before_the_room_takes_them() {
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "tok-wang");
        room.join(t(2), joiner("zhang", 9, RoomRole::Patient), "tok-zhang");
        let admit = ClientMessage::Admit { peer: "zhang".into() };
        let kinds = |entries: Vec<TimelineEntry>| {
            entries.into_iter().map(|e| (e.kind, e.participant, e.by, e.detail)).collect::<Vec<_>>()
        };
        // Only doctors' admissions, removals and ends, of a peer the room has.
        assert!(room.decision_entries(t(3), 9, &admit).is_empty(), "a patient's own admit is refused");
        assert!(room.decision_entries(t(3), 1, &ClientMessage::Admit { peer: "nobody".into() }).is_empty());
        assert!(room.decision_entries(t(3), 1, &ClientMessage::Chat { text: "好".into() }).is_empty());
        assert!(room.decision_entries(t(3), 1, &ClientMessage::Leave).is_empty());
        let entries = room.decision_entries(t(3), 1, &admit);
        assert_eq!(
            kinds(entries.clone()),
            vec![(TimelineKind::Admitted, "zhang".into(), Some("user-li".into()), String::new())]
        );
        assert_eq!(entries[0].at, t(3));
        // Asking changes nothing; taking it records exactly what was asked.
        assert_eq!(room.place_of("zhang"), Some(Place::Lobby));
        let out = room.handle(t(3), 1, admit, String::new);
        let taken: Vec<TimelineEntry> =
            out.effects.into_iter().filter_map(|e| if let Effect::Record(e) = e { Some(e) } else { None }).collect();
        assert_eq!(taken, entries);
        let remove = ClientMessage::Remove { peer: "zhang".into() };
        assert_eq!(
            kinds(room.decision_entries(t(4), 2, &remove)),
            vec![(TimelineKind::Removed, "zhang".into(), Some("user-wang".into()), String::new())]
        );
        assert!(
            room.decision_entries(t(4), 2, &ClientMessage::Remove { peer: "li".into() }).is_empty(),
            "a doctor in the room stays"
        );
        // Ending the call ends every seat.
        let ended = kinds(room.decision_entries(t(5), 1, &ClientMessage::End));
        let mut who: Vec<&str> = ended.iter().map(|(_, p, _, _)| p.as_str()).collect();
        who.sort();
        assert_eq!(who, ["li", "wang", "zhang"]);
        assert!(ended.iter().all(|(k, _, _, d)| *k == TimelineKind::Left && d == "ended"));
        assert!(room.decision_entries(t(5), 9, &ClientMessage::End).is_empty(), "only a doctor ends the call");
    }

    #[test]
    fn signals_reach_exactly_the_named_peer() {
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "t");
        room.join(t(1), joiner("chen", 3, RoomRole::Expert), "t");
        let out = room.handle(t(2), 1, offer("wang"), || unreachable!());
        assert_eq!(out.deliveries.len(), 1);
        assert_eq!(out.deliveries[0].to, vec![2]);
        assert!(matches!(out.deliveries[0].msg.as_ref(), ServerMessage::Signal { from, .. } if from == "li"));
        let out = room.handle(t(2), 1, offer("nobody"), || unreachable!());
        assert!(matches!(out.messages_to(1)[0], ServerMessage::Error { code: ErrorCode::UnknownPeer, .. }));
        let out = room.handle(t(2), 1, offer("li"), || unreachable!());
        assert!(matches!(out.messages_to(1)[0], ServerMessage::Error { code: ErrorCode::InvalidSignal, .. }));
        let both = ClientMessage::Signal {
            to: "wang".into(),
            description: Some(Relayed::new(&SessionDescription { kind: SdpType::Answer, sdp: String::new() }).unwrap()),
            candidate: Some(
                Relayed::new(&IceCandidate {
                    candidate: String::new(),
                    sdp_mid: None,
                    sdp_mline_index: None,
                    username_fragment: None,
                })
                .unwrap(),
            ),
        };
        let out = room.handle(t(2), 1, both, || unreachable!());
        assert_eq!(out.messages_to(2).len(), 0);
        assert!(matches!(out.messages_to(1)[0], ServerMessage::Error { code: ErrorCode::InvalidSignal, .. }));
    }

    #[test]
    fn the_lobby_hears_nothing_from_the_room_and_reaches_nobody() {
        let mut room = doctors_room();
        let out = room.join(t(1), joiner("zhang", 9, RoomRole::Patient), "tok-zhang");
        let to_patient = out.messages_to(9);
        assert!(matches!(to_patient[0], ServerMessage::Joined { admitted: false, peers, lobby, resume_token, .. }
            if peers.is_empty() && lobby.is_empty() && resume_token == "tok-zhang"));
        assert!(matches!(to_patient[1], ServerMessage::Lobby { status: LobbyStatus::Waiting, .. }));
        assert!(
            matches!(out.messages_to(1)[0], ServerMessage::Lobby { status: LobbyStatus::Waiting, participant } if participant.id == "zhang")
        );
        assert_eq!(out.timeline(), vec![TimelineKind::Waiting]);

        // Lobby -> room: refused, reaches nobody.
        for msg in [offer("li"), ClientMessage::Chat { text: "hello".into() }] {
            let out = room.handle(t(2), 9, msg, || "m".into());
            assert_eq!(out.deliveries.len(), 1);
            assert_eq!(out.deliveries[0].to, vec![9]);
            assert!(matches!(
                out.deliveries[0].msg.as_ref(),
                ServerMessage::Error { code: ErrorCode::NotAdmitted, .. }
            ));
        }
        let out = room.handle(t(2), 9, ClientMessage::Media { mic: true, camera: true, screen: false }, || "m".into());
        assert!(out.deliveries.is_empty());

        // Room -> lobby: the signal is refused as to an unknown peer, chat skips the lobby.
        let out = room.handle(t(3), 1, offer("zhang"), || unreachable!());
        assert!(out.messages_to(9).is_empty());
        assert!(matches!(out.messages_to(1)[0], ServerMessage::Error { code: ErrorCode::UnknownPeer, .. }));
        let out = room.handle(t(3), 1, ClientMessage::Chat { text: "请稍等".into() }, || "m1".into());
        assert!(out.messages_to(9).is_empty());
        assert_eq!(out.messages_to(1).len(), 1);

        // A patient cannot admit itself.
        let out = room.handle(t(4), 9, ClientMessage::Admit { peer: "zhang".into() }, || "m".into());
        assert!(matches!(out.messages_to(9)[0], ServerMessage::Error { code: ErrorCode::NotAdmitted, .. }));
    }

    #[test]
    fn a_reading_reaches_everyone_in_the_room_but_not_the_lobby() {
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "tok-wang");
        room.join(t(2), joiner("zhang", 9, RoomRole::Patient), "tok-zhang");
        let reading = super::super::protocol::LiveReading {
            id: "r1".into(),
            consultation_id: "c1".into(),
            kind: "blood_pressure".into(),
            measured_at: "2026-12-01T00:00:00.000000Z".into(),
            received_at: "2026-12-01T00:00:01.000000Z".into(),
            source: "kiosk".into(),
            device: "manual entry".into(),
            values: Default::default(),
            summary: "152/96 mmHg".into(),
        };
        let out = room.observation(reading.clone());
        let expected = ServerMessage::Observation { reading: reading.clone() };
        assert_eq!(out.messages_to(1), vec![&expected]);
        assert_eq!(out.messages_to(2), vec![&expected]);
        assert!(out.messages_to(9).is_empty(), "the patient still waits in the lobby");
        room.handle(t(3), 1, ClientMessage::Admit { peer: "zhang".into() }, || unreachable!());
        assert_eq!(room.observation(reading).messages_to(9), vec![&expected]);
    }

    #[test]
    fn a_doctor_ends_the_call_for_everyone_and_a_patient_cannot() {
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "tok-wang");
        room.join(t(2), joiner("zhang", 9, RoomRole::Patient), "tok-zhang");
        room.handle(t(3), 1, ClientMessage::Admit { peer: "zhang".into() }, || unreachable!());
        room.join(t(4), joiner("liu", 7, RoomRole::Patient), "tok-liu");
        let out = room.handle(t(5), 9, ClientMessage::End, || unreachable!());
        assert!(matches!(out.messages_to(9)[0], ServerMessage::Error { code: ErrorCode::NotAllowed, .. }));
        assert!(!room.is_empty());

        let out = room.handle(t(6), 2, ClientMessage::End, || unreachable!());
        for conn in [1, 2, 9, 7] {
            assert_eq!(
                out.messages_to(conn),
                vec![&ServerMessage::CallEnded { by: "WANG".into() }],
                "connection {conn} hears who ended it, and nothing else"
            );
            assert!(out.effects.contains(&Effect::Close { conn, code: close::ENDED, reason: "ended for everyone" }));
        }
        assert_eq!(out.timeline(), vec![TimelineKind::Left; 4], "each one leaves the timeline");
        assert!(out.effects.contains(&Effect::CallEnded { by_user: "user-wang".into() }));
        assert!(room.is_empty());
        // Admissions are forgotten: a patient joining again waits in the lobby.
        let out = room.join(t(7), joiner("zhang", 10, RoomRole::Patient), "tok-zhang-2");
        assert!(matches!(out.messages_to(10)[0], ServerMessage::Joined { admitted: false, .. }));
    }

    #[test]
    fn a_doctor_admits_then_the_patient_is_in_the_room() {
        let mut room = doctors_room();
        room.join(t(1), joiner("zhang", 9, RoomRole::Patient), "tok-zhang");
        let out = room.handle(t(2), 1, ClientMessage::Admit { peer: "zhang".into() }, || unreachable!());
        let to_patient = out.messages_to(9);
        assert!(matches!(to_patient[0], ServerMessage::Lobby { status: LobbyStatus::Admitted, .. }));
        assert!(matches!(to_patient[1], ServerMessage::PeerJoined { peer } if peer.id == "li" && peer.polite));
        assert_eq!(to_patient.len(), 2, "patients do not see the lobby");
        let to_li = out.messages_to(1);
        assert!(to_li.iter().any(|m| matches!(m, ServerMessage::PeerJoined { peer } if peer.id == "zhang")));
        assert!(to_li.iter().any(|m| matches!(m, ServerMessage::Lobby { status: LobbyStatus::Admitted, .. })));
        let Effect::Record(entry) = &out.effects[0] else { panic!() };
        assert_eq!((entry.kind, entry.by.as_deref()), (TimelineKind::Admitted, Some("user-li")));
        let out = room.handle(t(3), 1, offer("zhang"), || unreachable!());
        assert_eq!(out.deliveries[0].to, vec![9]);

        // Removed: told, closed, and back to the lobby on the next join.
        let out = room.handle(t(4), 1, ClientMessage::Remove { peer: "zhang".into() }, || unreachable!());
        assert!(out.effects.contains(&Effect::Close { conn: 9, code: close::REMOVED, reason: "removed by a doctor" }));
        assert!(matches!(out.messages_to(1)[0], ServerMessage::PeerLeft { reason: LeaveReason::Removed, .. }));
        let out = room.join(t(5), joiner("zhang", 10, RoomRole::Patient), "tok");
        assert!(matches!(out.messages_to(10)[0], ServerMessage::Joined { admitted: false, .. }));
    }

    #[test]
    fn an_admitted_patient_rejoining_skips_the_lobby_and_doctors_cannot_be_removed() {
        let mut room = doctors_room();
        room.join(t(1), joiner("zhang", 9, RoomRole::Patient), "t");
        room.handle(t(2), 1, ClientMessage::Admit { peer: "zhang".into() }, || unreachable!());
        room.handle(t(3), 9, ClientMessage::Leave, || unreachable!());
        let out = room.join(t(4), joiner("zhang", 11, RoomRole::Patient), "t");
        assert!(matches!(out.messages_to(11)[0], ServerMessage::Joined { admitted: true, .. }));
        room.join(t(5), joiner("wang", 2, RoomRole::Expert), "t");
        let out = room.handle(t(6), 1, ClientMessage::Remove { peer: "wang".into() }, || unreachable!());
        assert!(matches!(out.messages_to(1)[0], ServerMessage::Error { code: ErrorCode::NotAllowed, .. }));
    }

    #[test]
    fn a_lost_socket_keeps_the_seat_and_replays_in_order() {
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "t");
        let out = room.disconnected(t(10), 2);
        assert!(matches!(out.messages_to(1)[0], ServerMessage::PeerReconnecting { peer } if peer == "wang"));
        assert_eq!(out.timeline(), vec![TimelineKind::Disconnected]);
        room.handle(t(11), 1, offer("wang"), || unreachable!());
        room.handle(t(12), 1, ClientMessage::Chat { text: "还在吗".into() }, || "m1".into());
        assert_eq!(room.counts(), RoomCounts { in_room: 1, in_lobby: 0, reconnecting: 1 });

        assert_eq!(room.resume(t(13), "nope", 5, "h2".into(), "tok2").unwrap_err(), ResumeRefused::UnknownToken);
        let out = room.resume(t(13), "hash-wang-2", 5, "h2".into(), "tok2").unwrap();
        let to_wang = out.messages_to(5);
        assert!(matches!(to_wang[0], ServerMessage::Resumed { replayed: 2, restart_ice: true, you, resume_token, .. }
            if you.id == "wang" && resume_token == "tok2"));
        assert!(matches!(to_wang[1], ServerMessage::Signal { .. }));
        assert!(matches!(to_wang[2], ServerMessage::Chat { .. }));
        assert!(matches!(out.messages_to(1)[0], ServerMessage::PeerReconnected { restart_ice: true, .. }));
        assert_eq!(out.timeline(), vec![TimelineKind::Reconnected]);
        // The old token is spent; the old connection id no longer speaks for wang.
        assert!(room.resume(t(14), "hash-wang-2", 6, "h3".into(), "x").is_err());
        assert!(room.handle(t(14), 2, offer("li"), || unreachable!()).deliveries.is_empty());
        assert_eq!(room.handle(t(14), 5, offer("li"), || unreachable!()).deliveries[0].to, vec![1]);
    }

    #[test]
    fn resuming_over_a_live_socket_replaces_it() {
        let mut room = doctors_room();
        let out = room.resume(t(1), "hash-li-1", 7, "h".into(), "t").unwrap();
        assert!(out.effects.contains(&Effect::Close {
            conn: 1,
            code: close::REPLACED,
            reason: "resumed on another connection"
        }));
        assert!(room.disconnected(t(2), 1).deliveries.is_empty(), "the replaced socket's end changes nothing");
        assert_eq!(room.counts().in_room, 1);
    }

    #[test]
    fn the_seat_expires_after_the_window() {
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "t");
        room.disconnected(t(10), 2);
        assert!(room.expire(t(69)).deliveries.is_empty());
        let out = room.expire(t(70));
        assert!(matches!(out.messages_to(1)[0], ServerMessage::PeerLeft { reason: LeaveReason::TimedOut, .. }));
        assert_eq!(out.timeline(), vec![TimelineKind::Left]);
        assert!(room.resume(t(71), "hash-wang-2", 3, "h".into(), "t").is_err());
    }

    #[test]
    fn a_stored_seat_comes_back_into_a_new_room_where_it_was() {
        // The room was lost (a restart): Dr. Li's stored seat comes back first, then patient
        // Zhang's, admitted before the restart, then Zhao's, who was waiting.
        let mut room = Room::new(RoomLimits::default());
        let out = room.restore(t(0), joiner("li", 11, RoomRole::Requester), "tok-li2").unwrap();
        let to_li = out.messages_to(11);
        let ServerMessage::Resumed { you, admitted: true, restart_ice: true, replayed: 0, resume_token, .. } = to_li[0]
        else {
            panic!("{to_li:?}")
        };
        assert_eq!(you.id, "li", "the participant keeps its id");
        assert_eq!(resume_token, "tok-li2");
        assert!(!to_li.iter().any(|m| matches!(m, ServerMessage::Joined { .. })), "answered as a resume, not a join");
        let zhang = Joiner { may_enter: true, ..joiner("zhang", 12, RoomRole::Patient) };
        let out = room.restore(t(1), zhang, "tok-zhang2").unwrap();
        assert!(
            matches!(out.messages_to(12)[0], ServerMessage::Resumed { admitted: true, peers, .. } if peers[0].id == "li")
        );
        assert!(matches!(out.messages_to(11)[0], ServerMessage::PeerJoined { peer } if peer.id == "zhang"));
        let out = room.restore(t(2), joiner("zhao", 13, RoomRole::Patient), "tok-zhao2").unwrap();
        let to_zhao = out.messages_to(13);
        assert!(matches!(to_zhao[0], ServerMessage::Resumed { admitted: false, restart_ice: false, .. }));
        assert!(matches!(to_zhao[1], ServerMessage::Lobby { status: LobbyStatus::Waiting, .. }));
        assert!(matches!(out.messages_to(11)[0], ServerMessage::Lobby { status: LobbyStatus::Waiting, .. }));

        // A seat the room holds is not put back a second time (its token was another), and
        // a seat that ended here does not come back.
        assert!(room.restore(t(3), joiner("li", 14, RoomRole::Requester), "x").is_err());
        room.handle(t(4), 11, ClientMessage::Remove { peer: "zhang".into() }, || unreachable!());
        let zhang = Joiner { may_enter: true, ..joiner("zhang", 15, RoomRole::Patient) };
        assert!(room.restore(t(5), zhang, "x").is_err(), "a removed participant's seat stays ended");
        let snap = room.snapshot();
        assert_eq!(snap.ended, vec!["zhang".to_string()]);
        assert_eq!(Room::from_snapshot(RoomLimits::default(), snap.clone()).snapshot(), snap);
    }

    #[test]
    fn an_overflowing_replay_buffer_gives_up_the_seat() {
        let mut room = Room::new(RoomLimits { replay_messages: 3, ..RoomLimits::default() });
        room.join(t(0), joiner("li", 1, RoomRole::Requester), "t");
        room.join(t(0), joiner("wang", 2, RoomRole::Expert), "t");
        room.disconnected(t(1), 2);
        for _ in 0..3 {
            assert!(room.handle(t(2), 1, offer("wang"), || unreachable!()).effects.is_empty());
        }
        let out = room.handle(t(2), 1, offer("wang"), || unreachable!());
        assert!(matches!(out.messages_to(1)[0], ServerMessage::PeerLeft { reason: LeaveReason::Overflowed, .. }));
        assert!(room.resume(t(3), "hash-wang-2", 3, "h".into(), "t").is_err());
    }

    #[test]
    fn the_same_user_joining_again_replaces_the_old_connection() {
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "t");
        let mut again = joiner("wang2", 3, RoomRole::Expert);
        again.user_id = "user-wang".into();
        let out = room.join(t(2), again, "t");
        assert!(out.effects.contains(&Effect::Close {
            conn: 2,
            code: close::REPLACED,
            reason: "joined again from another connection"
        }));
        let to_li = out.messages_to(1);
        assert!(matches!(to_li[0], ServerMessage::PeerLeft { peer, reason: LeaveReason::Replaced } if peer == "wang"));
        assert!(matches!(to_li[1], ServerMessage::PeerJoined { peer } if peer.id == "wang2"));
    }

    #[test]
    fn the_room_is_bounded() {
        let mut room = Room::new(RoomLimits { max_participants: 2, ..RoomLimits::default() });
        room.join(t(0), joiner("li", 1, RoomRole::Requester), "t");
        room.join(t(0), joiner("wang", 2, RoomRole::Expert), "t");
        let out = room.join(t(0), joiner("chen", 3, RoomRole::Expert), "t");
        assert!(out.effects.contains(&Effect::Close { conn: 3, code: close::ROOM_FULL, reason: "room full" }));
        assert_eq!(room.counts().in_room, 2);
    }

    #[test]
    fn chat_is_stored_and_echoed_and_bounded() {
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "t");
        let out = room.handle(t(2), 2, ClientMessage::Chat { text: "  心电图已看  ".into() }, || "m1".into());
        assert!(matches!(&out.effects[0], Effect::StoreChat { id, text, .. } if id == "m1" && text == "心电图已看"));
        assert_eq!(out.deliveries[0].to, vec![1, 2]);
        let long = "字".repeat(2001);
        let out = room.handle(t(2), 2, ClientMessage::Chat { text: long }, || unreachable!());
        assert!(out.effects.is_empty());
        assert!(matches!(out.messages_to(2)[0], ServerMessage::Error { code: ErrorCode::InvalidChat, .. }));
    }

    #[test]
    fn media_state_is_shared_and_shown_to_later_arrivals() {
        let mut room = doctors_room();
        room.handle(t(1), 1, ClientMessage::Media { mic: true, camera: false, screen: true }, || unreachable!());
        let out = room.join(t(2), joiner("wang", 2, RoomRole::Expert), "t");
        let ServerMessage::Joined { peers, .. } = out.messages_to(2)[0] else { panic!() };
        assert_eq!(peers[0].media, MediaState { mic: true, camera: false, screen: true });
    }

    type Event = Box<dyn Fn(&mut Room) -> Outcome>;

    /// What a replica would do with `event`, as text to compare.
    fn step(room: &mut Room, event: &dyn Fn(&mut Room) -> Outcome) -> String {
        format!("{:?}", event(room))
    }

    #[test]
    fn a_replica_from_a_snapshot_acts_exactly_as_the_room_it_was_taken_from() {
        // A room with history: two doctors, the patient admitted and gone again (admission
        // is remembered), media state, Wang's socket lost with a chat line waiting for him.
        let mut room = doctors_room();
        room.join(t(1), joiner("wang", 2, RoomRole::Expert), "tok-wang");
        room.join(t(2), joiner("zhang", 9, RoomRole::Patient), "tok-zhang");
        room.handle(t(3), 1, ClientMessage::Admit { peer: "zhang".into() }, || unreachable!());
        room.handle(t(4), 2, ClientMessage::Media { mic: true, camera: false, screen: true }, || unreachable!());
        room.disconnected(t(5), 2);
        room.handle(t(6), 1, ClientMessage::Chat { text: "网络断了吗？".into() }, || "chat-1".into());
        room.handle(t(7), 9, ClientMessage::Leave, || unreachable!());

        // The snapshot travels as JSON, as on the bus.
        let wire = serde_json::to_string(&room.snapshot()).unwrap();
        let mut replica = Room::from_snapshot(RoomLimits::default(), serde_json::from_str(&wire).unwrap());
        assert_eq!(replica.snapshot(), room.snapshot());
        assert_eq!(replica.counts(), RoomCounts { in_room: 1, in_lobby: 0, reconnecting: 1 });

        // The same later events give the same outcomes on both: the admitted patient skips
        // the lobby, Wang resumes with the chat replayed, signals, the seat expiry clock.
        let events: Vec<Event> = vec![
            Box::new(|r| r.join(t(8), joiner("zhang", 10, RoomRole::Patient), "tok-zhang2")),
            Box::new(|r| r.resume(t(9), "hash-wang-2", 11, "hash-wang-11".into(), "tok-wang3").unwrap()),
            Box::new(|r| r.handle(t(10), 11, offer("li"), || unreachable!())),
            Box::new(|r| r.disconnected(t(11), 10)),
            Box::new(|r| r.expire(t(11 + 59))),
            Box::new(|r| r.expire(t(11 + 60))),
        ];
        for (i, e) in events.iter().enumerate() {
            assert_eq!(step(&mut replica, e.as_ref()), step(&mut room, e.as_ref()), "event {i}");
        }
        assert_eq!(replica.snapshot(), room.snapshot());

        // And what the replica said is what the room's rules say: Zhang entered directly,
        // Wang got what he missed (the chat line, Zhang leaving and coming back), then Zhang's
        // seat expired.
        let mut check = Room::from_snapshot(RoomLimits::default(), serde_json::from_str(&wire).unwrap());
        let joined = check.join(t(8), joiner("zhang", 10, RoomRole::Patient), "tok-zhang2");
        assert!(matches!(joined.messages_to(10)[0], ServerMessage::Joined { admitted: true, .. }));
        let resumed = check.resume(t(9), "hash-wang-2", 11, "hash-wang-11".into(), "tok-wang3").unwrap();
        let to_wang = resumed.messages_to(11);
        assert!(matches!(to_wang[0], ServerMessage::Resumed { replayed: 3, .. }), "{to_wang:?}");
        assert!(matches!(to_wang[1], ServerMessage::Chat { text, .. } if text == "网络断了吗？"));
        assert_eq!(room.counts(), RoomCounts { in_room: 2, in_lobby: 0, reconnecting: 0 });
    }
}
