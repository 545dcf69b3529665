-- Network check results: one row per finished (or timed-out) pre-call check, kept per
-- organisation so coordinators see which clinics have network trouble. Diagnostics, not
-- patient data. `result` is the full result (path, round trip, loss, throughput, verdict)
-- as JSON; path and verdict are copied out for filtering.

CREATE TABLE netcheck_results (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    started_at TEXT NOT NULL,
    completed_at TEXT NOT NULL,
    path TEXT NOT NULL CHECK (path IN ('host', 'srflx', 'relay', 'unknown')),
    verdict TEXT NOT NULL CHECK (verdict IN ('video', 'audio_only', 'cannot_connect')),
    result TEXT NOT NULL
);
CREATE INDEX netcheck_results_organisation ON netcheck_results (organisation_id, id);
CREATE INDEX netcheck_results_user ON netcheck_results (user_id, id);
