-- Consultation workflow: requests with consent, participants, stored state transitions,
-- expert availability, appointments, no-shows, notifications and reminders.

CREATE TABLE consultations (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    requesting_organisation_id TEXT NOT NULL REFERENCES organisations(id),
    requested_by TEXT NOT NULL REFERENCES users(id),
    reason TEXT NOT NULL,
    record_summary TEXT NOT NULL DEFAULT '',
    specialty TEXT NOT NULL REFERENCES specialties(code),
    min_title TEXT NOT NULL,
    urgency TEXT NOT NULL CHECK (urgency IN ('routine', 'urgent', 'emergency')),
    mode TEXT NOT NULL CHECK (mode IN ('video', 'ecg_review', 'imaging_review', 'mdt')),
    addressee_kind TEXT NOT NULL CHECK (addressee_kind IN ('expert', 'pool', 'mdt')),
    pool_organisation_id TEXT REFERENCES organisations(id),
    state TEXT NOT NULL,
    assigned_expert_id TEXT REFERENCES users(id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX consultations_patient ON consultations (patient_id);
CREATE INDEX consultations_org ON consultations (requesting_organisation_id, created_at);
CREATE INDEX consultations_state ON consultations (state, specialty);

CREATE TABLE consultation_consents (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    given_by TEXT NOT NULL CHECK (given_by IN ('patient', 'guardian')),
    guardian_name TEXT NOT NULL DEFAULT '',
    method TEXT NOT NULL CHECK (method IN ('written', 'recorded_verbal')),
    given_at TEXT NOT NULL,
    witness_id TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL
);
CREATE INDEX consultation_consents_consultation ON consultation_consents (consultation_id);

CREATE TABLE consultation_participants (
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL CHECK (role IN ('requester', 'expert', 'patient')),
    status TEXT NOT NULL CHECK (status IN ('invited', 'accepted', 'declined', 'active')),
    reason TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL,
    PRIMARY KEY (consultation_id, user_id)
);
CREATE INDEX consultation_participants_user ON consultation_participants (user_id);

CREATE TABLE consultation_transitions (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id TEXT REFERENCES users(id),
    reason TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX consultation_transitions_consultation ON consultation_transitions (consultation_id, at);

CREATE TABLE availability_rules (
    id TEXT PRIMARY KEY,
    expert_id TEXT NOT NULL REFERENCES users(id),
    weekday BIGINT NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_time TEXT NOT NULL,
    end_time TEXT NOT NULL,
    slot_minutes BIGINT NOT NULL CHECK (slot_minutes > 0),
    time_zone TEXT NOT NULL,
    active BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE INDEX availability_rules_expert ON availability_rules (expert_id);

CREATE TABLE availability_exceptions (
    id TEXT PRIMARY KEY,
    expert_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('leave', 'extra')),
    start_at TEXT NOT NULL,
    end_at TEXT NOT NULL,
    slot_minutes BIGINT NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    active BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE INDEX availability_exceptions_expert ON availability_exceptions (expert_id, start_at);

CREATE TABLE booking_policies (
    expert_id TEXT PRIMARY KEY REFERENCES users(id),
    buffer_minutes BIGINT NOT NULL DEFAULT 0,
    max_per_day BIGINT NOT NULL DEFAULT 0,
    min_notice_minutes BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE appointments (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    expert_id TEXT NOT NULL REFERENCES users(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    start_at TEXT NOT NULL,
    end_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'cancelled', 'rescheduled', 'attended', 'no_show')),
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    cancelled_at TEXT,
    cancel_reason TEXT NOT NULL DEFAULT '',
    replaced_by TEXT
);
CREATE INDEX appointments_expert ON appointments (expert_id, status, start_at);
CREATE INDEX appointments_patient ON appointments (patient_id, status, start_at);
CREATE INDEX appointments_consultation ON appointments (consultation_id);
CREATE INDEX appointments_start ON appointments (status, start_at);

CREATE TABLE no_shows (
    id TEXT PRIMARY KEY,
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    participant TEXT NOT NULL CHECK (participant IN ('expert', 'community_doctor', 'patient')),
    recorded_by TEXT NOT NULL REFERENCES users(id),
    at TEXT NOT NULL,
    UNIQUE (appointment_id, participant)
);

CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    consultation_id TEXT REFERENCES consultations(id),
    created_at TEXT NOT NULL,
    read_at TEXT
);
CREATE INDEX notifications_user ON notifications (user_id, id);

CREATE TABLE reminders_sent (
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    kind TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (appointment_id, kind)
);
