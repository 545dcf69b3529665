-- An MDT's appointment is booked with one of its experts; the others who accepted meet at the
-- same time, so it holds their calendars too: one row per other expert. A hold counts while
-- its appointment is booked (or was attended), as the appointment itself does for its own
-- expert, and stops counting when that expert declines the consultation (released_at).
CREATE TABLE appointment_holds (
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    expert_id TEXT NOT NULL REFERENCES users(id),
    start_at TEXT NOT NULL,
    end_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    released_at TEXT,
    PRIMARY KEY (appointment_id, expert_id)
);
CREATE INDEX appointment_holds_expert ON appointment_holds (expert_id, start_at);
