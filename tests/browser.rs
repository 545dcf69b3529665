//! Runs the web client's browser tests (`web-client/tests/`, node's test runner driving
//! Debian Chromium through playwright-core against the real server binary) and the type check
//! of the client (`tsc --checkJs`). Installs the npm packages first when node_modules is
//! missing. Without node or Chromium the tests are skipped with a message, unless
//! TELECONSULT_REQUIRE_SERVICES=1, where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn web_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web-client")
}

fn services_required() -> bool {
    std::env::var("TELECONSULT_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into()))
}

/// Whether the tools are here; a missing one skips the test, or fails it when services are required.
fn tools_present() -> bool {
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let npm = Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success());
    let browser = chromium().exists();
    if node && npm && browser {
        return true;
    }
    let missing = format!("node: {node}, npm: {npm}, chromium at {}: {browser}", chromium().display());
    assert!(!services_required(), "browser tests need node, npm and Chromium ({missing})");
    eprintln!("skipping the browser tests: {missing}");
    false
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.current_dir(web_client()).status().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(status.success(), "{what} failed: {status}");
}

fn npm_ci() {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if !web_client().join("node_modules").join("playwright-core").exists() {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]), "npm ci");
    }
}

#[test]
fn web_client_in_chromium() {
    if !tools_present() {
        return;
    }
    npm_ci();
    // One file at a time: each starts its own server and browser, and CI has two cores.
    let mut files: Vec<String> = std::fs::read_dir(web_client().join("tests"))
        .expect("web-client/tests")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".test.js"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no browser test files");
    for file in files {
        run(
            Command::new("node")
                .args(["--test", &format!("tests/{file}")])
                .env("TELECONSULT_BIN", env!("CARGO_BIN_EXE_teleconsult")),
            &format!("node --test web-client/tests/{file}"),
        );
    }
}

#[test]
fn web_client_type_checks() {
    if !tools_present() {
        return;
    }
    npm_ci();
    run(Command::new("node").args(["node_modules/typescript/bin/tsc", "-p", "jsconfig.json"]), "tsc --checkJs");
}
