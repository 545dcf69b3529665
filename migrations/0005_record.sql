-- The clinical record: notes, versioned signed opinions, referrals up and down with their
-- history, and follow-up plans with their visits. Nothing here is deleted: withdrawal is a
-- state ("entered in error") with a reason.

CREATE TABLE consultation_notes (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    author_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('case_summary', 'note')),
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('current', 'entered_in_error')),
    withdrawn_reason TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX consultation_notes_consultation ON consultation_notes (consultation_id, created_at);

CREATE TABLE opinions (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    author_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('individual', 'joint')),
    version BIGINT NOT NULL,
    supersedes TEXT REFERENCES opinions(id),
    status TEXT NOT NULL CHECK (status IN ('draft', 'signed', 'superseded')),
    findings TEXT NOT NULL DEFAULT '',
    impression TEXT NOT NULL DEFAULT '',
    recommendations TEXT NOT NULL DEFAULT '',
    referral_advice TEXT NOT NULL DEFAULT '',
    follow_up_advice TEXT NOT NULL DEFAULT '',
    amendment_reason TEXT NOT NULL DEFAULT '',
    signer_name TEXT NOT NULL DEFAULT '',
    signer_title TEXT NOT NULL DEFAULT '',
    signed_at TEXT,
    content_sha256 TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (consultation_id, author_id, kind, version)
);
CREATE INDEX opinions_consultation ON opinions (consultation_id, version);

CREATE TABLE referrals (
    id TEXT PRIMARY KEY,
    consultation_id TEXT REFERENCES consultations(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    direction TEXT NOT NULL CHECK (direction IN ('up', 'down')),
    from_organisation_id TEXT NOT NULL REFERENCES organisations(id),
    to_organisation_id TEXT NOT NULL REFERENCES organisations(id),
    to_department_id TEXT REFERENCES departments(id),
    created_by TEXT NOT NULL REFERENCES users(id),
    reason TEXT NOT NULL,
    urgency TEXT NOT NULL CHECK (urgency IN ('routine', 'urgent', 'emergency')),
    care_plan TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('requested', 'accepted', 'rejected', 'completed', 'entered_in_error')),
    appointment_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX referrals_from ON referrals (from_organisation_id, created_at);
CREATE INDEX referrals_to ON referrals (to_organisation_id, created_at);

CREATE TABLE referral_events (
    id TEXT PRIMARY KEY,
    referral_id TEXT NOT NULL REFERENCES referrals(id),
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    actor_id TEXT NOT NULL REFERENCES users(id),
    reason TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX referral_events_referral ON referral_events (referral_id, at);

CREATE TABLE follow_up_plans (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    consultation_id TEXT REFERENCES consultations(id),
    referral_id TEXT REFERENCES referrals(id),
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    condition TEXT NOT NULL,
    interval_weeks BIGINT NOT NULL,
    visits BIGINT NOT NULL,
    instructions TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL REFERENCES users(id),
    status TEXT NOT NULL CHECK (status IN ('active', 'closed', 'entered_in_error')),
    created_at TEXT NOT NULL
);
CREATE INDEX follow_up_plans_patient ON follow_up_plans (patient_id);

CREATE TABLE follow_up_visits (
    id TEXT PRIMARY KEY,
    plan_id TEXT NOT NULL REFERENCES follow_up_plans(id),
    seq BIGINT NOT NULL,
    due_date TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('planned', 'done', 'closed')),
    note TEXT NOT NULL DEFAULT '',
    updated_by TEXT REFERENCES users(id),
    updated_at TEXT NOT NULL,
    UNIQUE (plan_id, seq)
);
CREATE INDEX follow_up_visits_due ON follow_up_visits (status, due_date);
