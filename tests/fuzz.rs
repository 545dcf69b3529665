//! A short property-based run over the whole API: schemathesis reads the server's own OpenAPI
//! document and sends generated requests, valid and invalid, to every operation, signed in as
//! the admin and as a community doctor of the demo consortium, and checks that none is
//! answered with a 5xx (`not_a_server_error`). On SQLite and PostgreSQL.
//!
//! schemathesis comes from `TELECONSULT_SCHEMATHESIS` (a path), else the virtualenv `.ci/run`
//! installs it into, else `PATH`. Without it the test is skipped with a message, unless
//! TELECONSULT_REQUIRE_SERVICES=1, where that is a failure. `TELECONSULT_FUZZ_EXAMPLES` and
//! `TELECONSULT_FUZZ_SEED` make a longer or different run.

mod common;

use common::TestApp;
use std::path::PathBuf;
use std::process::Command;

/// The version `.ci/run` installs.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

fn schemathesis() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TELECONSULT_SCHEMATHESIS").map(PathBuf::from),
        std::env::var_os("HOME").map(|home| {
            PathBuf::from(home)
                .join(format!(".cache/teleconsult/schemathesis-{SCHEMATHESIS_VERSION}"))
                .join("bin/schemathesis")
        }),
        Some(PathBuf::from("schemathesis")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()));
    if found.is_none() {
        assert!(
            !common::services_required(),
            "the API fuzz run needs schemathesis {SCHEMATHESIS_VERSION} (bash .ci/run installs it)"
        );
        eprintln!("skipping the API fuzz run: schemathesis is not installed (bash .ci/run installs it)");
    }
    found
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

async fn no_generated_request_gets_a_server_error(app: &TestApp) {
    let Some(st) = schemathesis() else { return };
    for user in ["admin", "dr.li"] {
        let token = app.login(user).await;
        let args = vec![
            "run".to_string(),
            app.url("/api/v1/openapi.json"),
            "--header".into(),
            format!("Authorization: Bearer {token}"),
            "--checks".into(),
            "not_a_server_error".into(),
            "--max-examples".into(),
            env_or("TELECONSULT_FUZZ_EXAMPLES", "10"),
            "--seed".into(),
            env_or("TELECONSULT_FUZZ_SEED", "20261204"),
            "--workers".into(),
            "2".into(),
            // NUL in text is refused by rule (422) on both databases: generate it too.
            "--generation-allow-x00".into(),
            "true".into(),
            "--generation-database".into(),
            "none".into(),
            "--request-timeout".into(),
            "20".into(),
            // The live notification stream never ends by design.
            "--exclude-path".into(),
            "/api/v1/notifications/stream".into(),
            // Bodies schemathesis cannot serialise (tus chunks, multipart/related DICOM); they
            // have their own tests with real clients (tests/files.rs, tests/dicom.rs).
            "--exclude-operation-id-regex".into(),
            "^(post|patch)_api_v1_consultations__id__(uploads|dicomweb_studies)".into(),
            // The document's links make a stateful phase that runs for minutes, and the
            // coverage phase of schemathesis 4.32.5 fails inside itself on large schemas
            // ("AST constructor recursion depth mismatch"); examples and fuzzing still reach
            // every operation within the CI budget.
            "--phases".into(),
            "examples,fuzzing".into(),
            "--no-color".into(),
        ];
        let st = st.clone();
        // schemathesis keeps a cache in its working directory: a fresh one, not the repository.
        let cwd = std::env::temp_dir().join(format!("tc-fuzz-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&cwd).expect("fuzz working directory");
        let run_in = cwd.clone();
        let out = tokio::task::spawn_blocking(move || Command::new(st).args(&args).current_dir(run_in).output())
            .await
            .expect("schemathesis thread")
            .expect("schemathesis runs");
        let _ = std::fs::remove_dir_all(&cwd);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "schemathesis as {user} on {:?} found failures ({}):\n{stdout}\n{stderr}",
            app.backend,
            out.status
        );
        assert!(stdout.contains(" passed"), "no generated request was sent as {user}:\n{stdout}");
    }
    // How much of the API the run reached (reported, not asserted: most operations need ids
    // that exist, which random generation rarely hits): the operations that answered at least
    // one 2xx, from the server's own request counters.
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let (reached, operations) = reached_operations(&metrics);
    eprintln!(
        "schemathesis on {:?}: {reached} of {operations} documented operations answered 2xx at least once ({:.0} %)",
        app.backend,
        100.0 * reached as f64 / operations.max(1) as f64
    );
}

/// `(operations with a 2xx, operations)` of the API (`/api/v1` and `/fhir`) from the
/// Prometheus request counters.
fn reached_operations(metrics: &str) -> (usize, usize) {
    let table = teleconsult::app::routes();
    let api: Vec<(String, &str)> = table
        .docs()
        .iter()
        .filter(|d| d.path.starts_with("/api/v1") || d.path.starts_with("/fhir"))
        .map(|d| (d.method.to_uppercase(), d.path))
        .collect();
    let reached = api
        .iter()
        .filter(|(m, p)| {
            metrics.lines().any(|l| {
                l.starts_with("teleconsult_http_requests_total{")
                    && l.contains(&format!("method=\"{m}\",route=\"{p}\",status=\"2"))
            })
        })
        .count();
    (reached, api.len())
}

fn roomy_network_checks(c: &mut teleconsult::config::Config) {
    // `POST /netcheck` answers 503 netcheck_busy by design when its sessions are full; the
    // fuzz run looks for 5xx that are not meant, so it gets room for every session it starts.
    c.netcheck_max_sessions = 10_000;
    c.netcheck_session_secs = 5;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_generated_request_gets_a_server_error_on_sqlite() {
    let app = TestApp::spawn_with(common::Backend::Sqlite, None, roomy_network_checks).await;
    no_generated_request_gets_a_server_error(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_generated_request_gets_a_server_error_on_postgres() {
    if let Some(app) = TestApp::spawn_postgres_with(roomy_network_checks).await {
        no_generated_request_gets_a_server_error(&app).await;
    }
}
