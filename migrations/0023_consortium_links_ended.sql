-- A consortium link that an admin ends leaves `consortium_links` (every access rule reads that
-- table, so the hospital's coordinators lose the centre at their next request) and is kept
-- here with who ended it, when and why. A centre may be linked again later.
CREATE TABLE consortium_links_ended (
    id TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL REFERENCES organisations(id),
    centre_id TEXT NOT NULL REFERENCES organisations(id),
    created_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    ended_by TEXT NOT NULL REFERENCES users(id),
    reason TEXT NOT NULL
);
CREATE INDEX consortium_links_ended_centre ON consortium_links_ended (centre_id);
