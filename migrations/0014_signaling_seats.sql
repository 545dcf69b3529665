-- Seats in a consultation's room that outlive the instance holding the room: written when a
-- ticket is redeemed (in the redemption's transaction), so that after a restart a resume
-- token is recognised and its participant put back into a new room, instead of joining
-- again. Only the hash of the resume token is stored; it is replaced at every resume (a
-- token is used once). A seat ends with its participant (a `left` or `removed` entry of the
-- room's timeline) or at `expires_at`, which the instance holding the connection moves
-- forward while it is connected. `generation` is the account's token generation when the
-- seat was taken: once the account's tokens are ended (signed out everywhere, role changed,
-- password reset), the seat cannot be resumed either.

CREATE TABLE signaling_seats (
    participant_id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    room_role TEXT NOT NULL CHECK (room_role IN ('requester', 'expert', 'patient')),
    resume_hash TEXT NOT NULL UNIQUE,
    generation BIGINT,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX signaling_seats_expiry ON signaling_seats (expires_at);
