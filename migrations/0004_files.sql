-- Shared files of a consultation: stored files, resumable (tus) uploads in progress, and the
-- DICOM index that groups instances into studies and series for DICOMweb.

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    uploaded_by TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('dicom', 'pdf', 'jpeg', 'png', 'ecg')),
    ecg_format TEXT,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    -- JSON array of strings shown to users (e.g. a DICOM patient that is not this patient)
    warnings TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL
);
CREATE INDEX files_consultation ON files (consultation_id, id);

CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    created_by TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    length BIGINT NOT NULL,
    upload_offset BIGINT NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL CHECK (state IN ('open', 'completing', 'completed', 'terminated', 'expired', 'rejected')),
    file_id TEXT REFERENCES files(id),
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX uploads_expiry ON uploads (state, expires_at);

CREATE TABLE dicom_instances (
    file_id TEXT PRIMARY KEY REFERENCES files(id),
    consultation_id TEXT NOT NULL REFERENCES consultations(id),
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    modality TEXT NOT NULL DEFAULT '',
    body_part TEXT NOT NULL DEFAULT '',
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    study_description TEXT NOT NULL DEFAULT '',
    series_description TEXT NOT NULL DEFAULT '',
    series_number BIGINT,
    instance_number BIGINT,
    accession_number TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    patient_birth_date TEXT NOT NULL DEFAULT '',
    patient_sex TEXT NOT NULL DEFAULT '',
    rows_count BIGINT NOT NULL DEFAULT 0,
    columns_count BIGINT NOT NULL DEFAULT 0,
    frames BIGINT NOT NULL DEFAULT 0,
    -- the instance's attributes in the DICOM JSON model, bulk data left as BulkDataURI
    -- templates relative to the DICOMweb base
    metadata_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (consultation_id, sop_instance_uid)
);
CREATE INDEX dicom_instances_study ON dicom_instances (consultation_id, study_uid, series_uid);
