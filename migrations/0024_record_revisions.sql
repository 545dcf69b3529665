-- What a change to a patient's record replaced: the previous values of the fields it changed
-- (a record's demographics, a follow-up visit's date, status and note), who changed them and
-- when. An edit never loses what was there before it.
CREATE TABLE record_revisions (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    revised_at TEXT NOT NULL,
    revised_by TEXT NOT NULL REFERENCES users(id),
    previous TEXT NOT NULL
);
CREATE INDEX record_revisions_patient ON record_revisions (patient_id, revised_at);
