-- The resident's side: identifiers beyond the resident ID, devices that act without a person
-- at the keyboard (kiosks, home and clinic measuring devices), and kiosk check-ins.

-- A device with its own token (only the token's SHA-256 is kept). A home device may be bound
-- to one patient; kiosk and clinic devices serve their organisation. Revoked, never deleted.
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    kind TEXT NOT NULL CHECK (kind IN ('kiosk', 'home', 'clinic')),
    label TEXT NOT NULL,
    patient_id TEXT REFERENCES patients(id),
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    revoked_by TEXT REFERENCES users(id),
    revoked_at TEXT,
    last_seen_at TEXT,
    CHECK (patient_id IS NULL OR kind = 'home')
);
CREATE INDEX devices_org ON devices (organisation_id, id);
CREATE INDEX devices_patient ON devices (patient_id);

-- Identifiers of a patient beyond the resident ID: the electronic health card (with the
-- validity its QR code states), the medical insurance number, a phone number. A value is
-- unique per (kind, issuer) among identifiers in use; retired ones stay for the record.
CREATE TABLE patient_identifiers (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients(id),
    kind TEXT NOT NULL CHECK (kind IN ('health_card', 'insurance', 'phone')),
    issuer TEXT NOT NULL,
    value TEXT NOT NULL,
    valid_until TEXT,
    added_by TEXT REFERENCES users(id),
    added_at TEXT NOT NULL,
    retired_by TEXT REFERENCES users(id),
    retired_at TEXT,
    retire_reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX patient_identifiers_in_use ON patient_identifiers (kind, issuer, value) WHERE retired_at IS NULL;
CREATE INDEX patient_identifiers_patient ON patient_identifiers (patient_id);
CREATE INDEX patient_identifiers_value ON patient_identifiers (kind, value);

-- A patient found at a kiosk: the consultation they were put in the lobby of (none: nothing
-- booked today at the site), and when the doctors on duty were told.
CREATE TABLE kiosk_checkins (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    patient_id TEXT NOT NULL REFERENCES patients(id),
    consultation_id TEXT REFERENCES consultations(id),
    method TEXT NOT NULL CHECK (method IN ('qr', 'card_number', 'resident_id')),
    created_at TEXT NOT NULL,
    duty_notified_at TEXT
);
CREATE INDEX kiosk_checkins_device ON kiosk_checkins (device_id, created_at);
