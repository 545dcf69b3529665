-- The computer-assisted ECG pre-read stored with each ECG file.
CREATE TABLE ecg_analyses (
    file_id TEXT PRIMARY KEY REFERENCES files(id),
    measurements TEXT NOT NULL,
    created_at TEXT NOT NULL
);
