//! Every write of patient data commits with its audit event: no statement that inserts into or
//! updates a patient-data table runs on the pool by itself (outside a transaction that also
//! records the event). Reads the server's sources, so a new write outside a transaction fails
//! here before it reaches a review.

use std::path::{Path, PathBuf};

/// Tables that hold patient data.
const PATIENT_DATA: [&str; 19] = [
    "patients",
    "consultations",
    "consultation_consents",
    "consultation_participants",
    "consultation_notes",
    "opinions",
    "referrals",
    "referral_events",
    "follow_up_plans",
    "follow_up_visits",
    "files",
    "ecg_analyses",
    "dicom_instances",
    "appointments",
    "observations",
    "worklist_items",
    "patient_identifiers",
    "kiosk_checkins",
    "uploads",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("server sources") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The table a statement writes, if it inserts into or updates one.
fn written_table(sql: &str) -> Option<String> {
    let words: Vec<String> = sql.split_whitespace().take(3).map(|w| w.to_ascii_lowercase()).collect();
    match words.as_slice() {
        [insert, into, table, ..] if insert == "insert" && into == "into" => Some(table.clone()),
        [update, table, ..] if update == "update" => Some(table.clone()),
        _ => None,
    }
}

/// `(file, line, table)` of every patient-data write executed directly on a pool.
fn writes_on_the_pool() -> Vec<(String, usize, String)> {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("server/src"), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        let mut rest = text.as_str();
        let mut offset = 0;
        while let Some(at) = rest.find("sqlx::query") {
            let statement_start = offset + at;
            let tail = &text[statement_start..];
            // The statement runs until its `.await`.
            let end = tail.find(".await").unwrap_or(tail.len());
            let statement = &tail[..end];
            if let Some(sql) = statement.split('"').nth(1) {
                if let Some(table) = written_table(sql) {
                    let on_pool =
                        statement.contains(".pool)") || statement.contains(".pool.") || statement.contains(".writer()");
                    if PATIENT_DATA.contains(&table.as_str()) && on_pool {
                        let line = text[..statement_start].lines().count() + 1;
                        found.push((file.display().to_string(), line, table));
                    }
                }
            }
            offset = statement_start + "sqlx::query".len();
            rest = &text[offset..];
        }
    }
    found
}

#[test]
fn patient_data_is_written_only_inside_audited_transactions() {
    let found = writes_on_the_pool();
    assert!(
        found.is_empty(),
        "patient data written on the pool, apart from its audit event (use audit::begin and AuditedTx::audit): {found:#?}"
    );
}

#[test]
fn the_scan_recognises_writes() {
    assert_eq!(written_table("INSERT INTO consultation_notes (id) VALUES ($1)").as_deref(), Some("consultation_notes"));
    assert_eq!(written_table("  UPDATE opinions SET x = 1").as_deref(), Some("opinions"));
    assert_eq!(written_table("SELECT * FROM opinions"), None);
}
