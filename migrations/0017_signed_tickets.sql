-- Signaling tickets are signed (HMAC-SHA256 under a key every instance derives from the
-- shared signing secret) and no longer stored when handed out. A ticket is used once because
-- the seat it gives is stored with the ticket's SHA-256 under this unique index: a second
-- redemption, on any instance, finds the hash taken. A seat is kept well past its ticket's
-- 30 s (until an hour after the seat expires), so the hash stays taken while the ticket lives.
-- Seats taken before this change have no ticket hash (NULLs are distinct).
ALTER TABLE signaling_seats ADD COLUMN ticket_hash TEXT;
CREATE UNIQUE INDEX signaling_seats_ticket ON signaling_seats (ticket_hash);
-- Tickets handed out before this change were stored here; they expired 30 s after, and
-- nothing reads them any more. Not clinical data: who joined which room stays on the room's
-- timeline (room_events) and in the audit trail.
DROP TABLE signaling_tickets;
