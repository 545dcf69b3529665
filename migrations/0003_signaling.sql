-- Live sessions: single-use tickets to the signaling WebSocket, the room timeline (who
-- waited, joined, was admitted or removed, lost the connection, reconnected, left, and
-- when), and the chat lines, which are part of the consultation record.

CREATE TABLE signaling_tickets (
    token_hash TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    room_role TEXT NOT NULL CHECK (room_role IN ('requester', 'expert', 'patient')),
    expires_at TEXT NOT NULL,
    used_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX signaling_tickets_expiry ON signaling_tickets (expires_at);

CREATE TABLE room_events (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    participant_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    room_role TEXT NOT NULL CHECK (room_role IN ('requester', 'expert', 'patient')),
    kind TEXT NOT NULL CHECK (kind IN ('waiting', 'joined', 'admitted', 'removed', 'disconnected', 'reconnected', 'left')),
    by_user_id TEXT REFERENCES users(id),
    detail TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX room_events_consultation ON room_events (consultation_id, at);
CREATE INDEX room_events_user ON room_events (user_id, at);

CREATE TABLE consultation_messages (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    sender_id TEXT NOT NULL REFERENCES users(id),
    participant_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX consultation_messages_consultation ON consultation_messages (consultation_id, sent_at);
