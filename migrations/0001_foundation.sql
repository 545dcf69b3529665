-- Foundation: organisations, consortium links, departments, users, experts, patients,
-- refresh tokens and the audit trail. Written in the SQL subset shared by SQLite and
-- PostgreSQL: TEXT ids (UUIDv7), TEXT UTC timestamps, BIGINT integers.

CREATE TABLE organisations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('tertiary_hospital', 'community_health_centre', 'medical_corner')),
    address TEXT NOT NULL DEFAULT '',
    active BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE consortium_links (
    id TEXT PRIMARY KEY,
    hospital_id TEXT NOT NULL REFERENCES organisations(id),
    centre_id TEXT NOT NULL REFERENCES organisations(id),
    created_at TEXT NOT NULL,
    UNIQUE (hospital_id, centre_id)
);

CREATE TABLE specialties (
    code TEXT PRIMARY KEY,
    name_en TEXT NOT NULL,
    name_zh TEXT NOT NULL
);

CREATE TABLE departments (
    id TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    specialty TEXT NOT NULL REFERENCES specialties(code),
    created_at TEXT NOT NULL,
    UNIQUE (organisation_id, specialty)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'coordinator', 'community_doctor', 'expert', 'patient')),
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    department_id TEXT REFERENCES departments(id),
    active BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX users_organisation ON users (organisation_id);

CREATE TABLE expert_profiles (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    title TEXT NOT NULL CHECK (title IN ('resident', 'attending', 'associate_chief', 'chief')),
    time_zone TEXT NOT NULL DEFAULT 'Asia/Shanghai',
    bio TEXT NOT NULL DEFAULT '',
    -- bumped by every booking transaction: takes the row lock that serialises bookings
    booking_seq BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE expert_specialties (
    user_id TEXT NOT NULL REFERENCES users(id),
    specialty TEXT NOT NULL REFERENCES specialties(code),
    PRIMARY KEY (user_id, specialty)
);
CREATE INDEX expert_specialties_specialty ON expert_specialties (specialty);

CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sex TEXT NOT NULL CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    birth_date TEXT NOT NULL,
    phone TEXT NOT NULL DEFAULT '',
    resident_id TEXT NOT NULL DEFAULT '',
    home_organisation_id TEXT NOT NULL REFERENCES organisations(id),
    user_id TEXT UNIQUE REFERENCES users(id),
    -- bumped by every booking transaction, like expert_profiles.booking_seq
    booking_seq BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX patients_home ON patients (home_organisation_id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    actor_id TEXT,
    actor_role TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL DEFAULT '',
    patient_id TEXT,
    client_addr TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_patient ON audit_events (patient_id, at);
CREATE INDEX audit_events_actor ON audit_events (actor_id, at);
CREATE INDEX audit_events_at ON audit_events (at);
