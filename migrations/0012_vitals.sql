-- Vital signs from home, kiosk and clinic devices; targets of chronic-disease follow-up
-- plans; the family doctor's worklist of readings out of target or missing. Readings are
-- never deleted: a wrong one is marked entered in error.

CREATE TABLE observations (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    -- chosen by the sending device; a retry with the same id stores nothing
    client_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('blood_pressure', 'glucose', 'spo2', 'weight', 'temperature', 'ecg')),
    measured_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('home', 'kiosk', 'clinic')),
    -- the device as the sender names it (model, serial)
    device TEXT NOT NULL DEFAULT '',
    -- the registered device whose token sent it (device gateway), if any
    device_id TEXT,
    consultation_id TEXT REFERENCES consultations(id),
    -- the signed-in user who sent it (none for a device token)
    recorded_by TEXT REFERENCES users(id),
    systolic_mmhg DOUBLE PRECISION,
    diastolic_mmhg DOUBLE PRECISION,
    pulse_bpm DOUBLE PRECISION,
    glucose_mmol_l DOUBLE PRECISION,
    glucose_context TEXT CHECK (glucose_context IN ('fasting', 'postprandial', 'random')),
    spo2_pct DOUBLE PRECISION,
    weight_kg DOUBLE PRECISION,
    temperature_c DOUBLE PRECISION,
    ecg_file_id TEXT REFERENCES files(id),
    status TEXT NOT NULL DEFAULT 'current' CHECK (status IN ('current', 'entered_in_error')),
    UNIQUE (patient_id, client_id)
);
CREATE INDEX observations_patient_time ON observations (patient_id, measured_at);
CREATE INDEX observations_consultation ON observations (consultation_id);

-- A plan's targets (JSON, see server/src/vitals/targets.rs); empty: the defaults of its
-- condition.
ALTER TABLE follow_up_plans ADD COLUMN targets TEXT NOT NULL DEFAULT '';

-- One item per (plan, reason) episode: a reading out of target opens one (later readings
-- out of target add to it until it is acknowledged); a silence beyond the plan's frequency
-- opens one per silence (episode_key: since when nothing arrived).
CREATE TABLE worklist_items (
    id TEXT PRIMARY KEY,
    plan_id TEXT NOT NULL REFERENCES follow_up_plans(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    reason TEXT NOT NULL,
    episode_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    detail TEXT NOT NULL DEFAULT '',
    first_observation_id TEXT REFERENCES observations(id),
    last_observation_id TEXT REFERENCES observations(id),
    readings BIGINT NOT NULL DEFAULT 0,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    acknowledged_by TEXT REFERENCES users(id),
    acknowledged_at TEXT,
    UNIQUE (plan_id, reason, episode_key)
);
CREATE UNIQUE INDEX worklist_items_open ON worklist_items (plan_id, reason) WHERE status = 'open';
CREATE INDEX worklist_items_org ON worklist_items (organisation_id, status, opened_at);
