//! The day replayer (`benches/day_replay.rs`, docs/scale.md) at a tiny scale against the test
//! server, on SQLite and PostgreSQL: 20 consultations of a compressed day go end to end
//! through the API and signaling without an error, and every invariant the replayer checks
//! holds (no double booking, every acknowledged write and signed opinion stored, audited).

mod common;
#[path = "../benches/replay/mod.rs"]
mod replay;

use common::TestApp;
use std::sync::Arc;

/// `signed_in`: every account signs in before the day (the replayer's `--signed-in`), so the
/// day itself has no password sign-in.
async fn a_small_day_replays_without_errors_and_its_invariants_hold(app: &TestApp, signed_in: bool) {
    let scale = replay::Scale { hospitals: 1, experts: 4, centres: 2, doctors: 3, patients: 40, history: 30 };
    let world = Arc::new(replay::generate(&app.state.db, &scale, "tiny").await);
    let (past,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM consultations c JOIN appointments a ON a.consultation_id = c.id
         WHERE c.state = 'completed' AND a.status = 'attended' AND a.end_at < $1",
    )
    .bind(teleconsult::db::now_ts())
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(past, 30, "the history: 30 completed consultations with their attended appointments, in the past");
    // 20 consultations over the whole day, replayed in about 8 s.
    let plan = replay::Plan {
        per_day: 20,
        from_hour: 0.0,
        hours: 24.0,
        speed: 86_400.0 / 8.0,
        think_ms: 0,
        call_secs: 0.2,
        ecg_share: 0.3,
        new_patient_share: 0.2,
        home_screens: true,
        seed: 18,
    };
    let ecg = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ecg/waveform_ecg.dcm")).unwrap();
    let report =
        replay::replay(std::slice::from_ref(&app.base), &app.state.db, world, plan, &[], ecg, signed_in, false).await;
    let json = report.json();
    assert_eq!(report.scheduled, 20, "the day's 20 arrivals are scheduled");
    // A slot taken by a concurrent booking since the list was read is retried with the next:
    // the one answer that is not an error.
    let errors: Vec<String> = report.stats.errors().into_keys().filter(|k| !k.ends_with("(retried)")).collect();
    assert!(errors.is_empty(), "{}", report.markdown());
    assert_eq!(json["consultations"]["completed"], 20, "{}", report.markdown());
    for (name, holds, detail) in &report.invariants {
        assert!(holds, "{name}: {detail}");
    }
    let acked = report.stats.acked.lock().unwrap();
    assert_eq!(acked.signed.len(), 20);
    assert!(!acked.files.is_empty(), "some consultations had an ECG");
    let ops: Vec<&str> = json["operations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    for op in [
        "doctor_home_consultations",
        "expert_home_consultations",
        "request",
        "accept",
        "book",
        "join",
        "websocket_joined",
        "opinion_sign",
    ] {
        assert!(ops.contains(&op), "{op} measured: {ops:?}");
    }
    assert_eq!(ops.contains(&"login"), !signed_in, "password sign-ins during the day: {ops:?}");
    if signed_in {
        let si = report.sign_in.as_ref().expect("the sign-ins before the day are reported");
        assert_eq!((si.accounts, si.failed), (3 + 4, 0), "every doctor and expert signed in");
    }
    assert!(report.svg().starts_with("<svg"), "the plot");
}

mod tiny_day {
    use super::*;

    // Rooms open as soon as a slot is booked (the replay does not wait for the appointment).
    fn rooms_open_early(c: &mut teleconsult::config::Config) {
        c.call_open_before_mins = 60 * 24 * 14;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::spawn_with(common::Backend::Sqlite, None, rooms_open_early).await;
        a_small_day_replays_without_errors_and_its_invariants_hold(&app, false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = TestApp::spawn_postgres_with(rooms_open_early).await {
            a_small_day_replays_without_errors_and_its_invariants_hold(&app, true).await;
        }
    }
}
