//! Test harness: starts the real server in-process on port 0, with the demo consortium, on
//! SQLite (a fresh file) or PostgreSQL (a fresh database created from `TEST_DATABASE_URL` and
//! dropped afterwards), and speaks HTTP to it as a client does.
#![allow(dead_code)]

mod world;
#[allow(unused_imports)]
pub use world::{written_consent, ConsultationBuilder};

use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use teleconsult::app::{AppState, Application};
use teleconsult::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$body(app)` once on SQLite and once on PostgreSQL, as two tests.
#[macro_export]
macro_rules! db_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite).await;
                super::$name(&app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::common::TestApp::spawn_postgres().await {
                    super::$name(&app).await;
                }
            }
        }
    };
}

pub fn services_required() -> bool {
    std::env::var("TELECONSULT_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v == "true")
}

/// A PostgreSQL database made for one test and dropped when the test ends.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> PgDatabase {
        use sqlx::Connection;
        let name = format!("tc_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("TEST_DATABASE_URL {admin_url} is unreachable: {e}"));
        sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
        PgDatabase { admin_url: admin_url.to_string(), url: format!("{base}/{name}"), name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::Executor::execute(
                        &mut conn,
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                    )
                    .await;
                }
            })
        })
        .join();
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub backend: Backend,
    pub data_dir: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _pg: Option<PgDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub fn test_config(data_dir: PathBuf, database_url: String) -> Config {
    Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir,
        database_url,
        jwt_secret: "test-secret-test-secret-test-secret-0123".into(),
        demo: true,
        ..Config::default()
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        match backend {
            Backend::Sqlite => Self::spawn_with(Backend::Sqlite, None, |_| {}).await,
            Backend::Postgres => Self::spawn_postgres().await.expect("TEST_DATABASE_URL is not set"),
        }
    }

    /// `None` (test skipped) when no PostgreSQL is configured, unless services are required.
    pub async fn spawn_postgres() -> Option<TestApp> {
        Self::spawn_postgres_with(|_| {}).await
    }

    pub async fn spawn_postgres_with(adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let pg = PgDatabase::create(&url).await;
                Some(Self::spawn_with(Backend::Postgres, Some(pg), adjust).await)
            }
            _ => {
                assert!(
                    !services_required(),
                    "TELECONSULT_REQUIRE_SERVICES is set but TEST_DATABASE_URL is not: the PostgreSQL run cannot be skipped"
                );
                eprintln!("skipping the PostgreSQL run: TEST_DATABASE_URL is not set");
                None
            }
        }
    }

    pub async fn spawn_with(backend: Backend, pg: Option<PgDatabase>, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let data_dir = std::env::temp_dir().join(format!("tc-test-{}", uuid::Uuid::new_v4()));
        let url = pg.as_ref().map(|p| p.url.clone()).unwrap_or_default();
        let mut config = test_config(data_dir.clone(), url);
        adjust(&mut config);
        let app = Application::build(config).await.expect("application builds");
        let addr = app.local_addr();
        let state = app.state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            state,
            backend,
            data_dir,
            shutdown: Some(tx),
            _pg: pg,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Signs in an account whose password is `demo-password`. An account a test made through
    /// the API starts with a one-time password (it opens only the password change): its owner
    /// sets one of their own the first time, as a person would, here `demo-password` again
    /// (by way of another, as the new password must differ from the current one).
    pub async fn login_full(&self, username: &str) -> Value {
        let session = self.sign_in(username, "demo-password").await;
        if session["user"]["must_change_password"] != true {
            return session;
        }
        let token = session["access_token"].as_str().expect("access token");
        for (current, new) in [("demo-password", "demo-password-first"), ("demo-password-first", "demo-password")] {
            let (status, body) = self
                .post(
                    "/api/v1/me/password",
                    token,
                    &serde_json::json!({"current_password": current, "new_password": new}),
                )
                .await;
            assert_eq!(status, 204, "{username} sets their own password: {body}");
        }
        self.sign_in(username, "demo-password").await
    }

    async fn sign_in(&self, username: &str, password: &str) -> Value {
        let resp = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(resp.status(), 200, "login of {username}");
        resp.json().await.expect("login body")
    }

    /// Signs in a demo account and returns its access token.
    pub async fn login(&self, username: &str) -> String {
        self.login_full(username).await["access_token"].as_str().expect("access token").to_string()
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(path)).bearer_auth(token).send().await.expect("GET");
        split(resp).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let resp = self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("POST");
        split(resp).await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let resp = self.http.put(self.url(path)).bearer_auth(token).json(body).send().await.expect("PUT");
        split(resp).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let resp = self.http.patch(self.url(path)).bearer_auth(token).json(body).send().await.expect("PATCH");
        split(resp).await
    }

    /// The id of a demo user, looked up as the admin.
    pub async fn user_id(&self, username: &str) -> String {
        let admin = self.login("admin").await;
        let (_, users) = self.get("/api/v1/users", &admin).await;
        users["items"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["username"] == username))
            .and_then(|u| u["id"].as_str())
            .unwrap_or_else(|| panic!("no user {username}"))
            .to_string()
    }
}

pub async fn split(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// The Python interpreter for the interoperability clients (`TELECONSULT_PYTHON`, default
/// `python3`) if it imports every module in `modules`; `None` (test skipped) otherwise,
/// unless services are required (`.ci/run` installs them).
pub fn python_with(modules: &[&str]) -> Option<String> {
    let python = std::env::var("TELECONSULT_PYTHON").unwrap_or_else(|_| "python3".into());
    let imports = modules.iter().map(|m| format!("import {m}")).collect::<Vec<_>>().join("; ");
    let ok = std::process::Command::new(&python).args(["-c", &imports]).output().is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        !services_required(),
        "{python} cannot import {modules:?}: install them as .ci/run does (TELECONSULT_PYTHON names the interpreter)"
    );
    eprintln!("skipping: {python} cannot import {modules:?} (set TELECONSULT_PYTHON or install them as .ci/run does)");
    None
}

/// `node` if it resolves the npm `package` from `web-client/node_modules` (`.ci/run` installs
/// them with `npm ci`); `None` (test skipped) otherwise, unless services are required.
pub fn node_with(package: &str) -> Option<String> {
    let web_client = format!("{}/web-client", env!("CARGO_MANIFEST_DIR"));
    let probe = format!("require.resolve({package:?}, {{ paths: [{web_client:?}] }})");
    let ok = std::process::Command::new("node").args(["-e", &probe]).output().is_ok_and(|o| o.status.success());
    if ok {
        return Some("node".into());
    }
    assert!(!services_required(), "node cannot resolve {package}: run `npm ci` in web-client/ as .ci/run does");
    eprintln!("skipping: node cannot resolve {package} (run `npm ci` in web-client/)");
    None
}

/// Runs a client script under `tests/interop/` with its interpreter (`python`, `node`) and
/// `args`; its stdout parsed as JSON.
pub async fn run_client(interpreter: &str, script: &str, args: &[&str]) -> Value {
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let (py, argv): (String, Vec<String>) = (interpreter.to_string(), args.iter().map(|a| a.to_string()).collect());
    let out = tokio::task::spawn_blocking(move || std::process::Command::new(py).arg(&path).args(argv).output())
        .await
        .expect("the client runs")
        .unwrap_or_else(|e| panic!("{interpreter} {script}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stderr}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stderr}"))
}
