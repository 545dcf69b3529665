//! Typed configuration, layered: built-in defaults < TOML file (`--config`) < environment
//! variables named `TELECONSULT_<FIELD>` (e.g. `TELECONSULT_BIND`, `TELECONSULT_DATABASE_URL`).
//! Printing a configuration redacts its secrets.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub bind: SocketAddr,
    /// Directory for the SQLite database, the generated JWT key and stored files.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; empty means `sqlite://<data_dir>/teleconsult.db`.
    pub database_url: String,
    /// HS256 signing key for access tokens; empty means "generate once and keep in data_dir".
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Largest JSON request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS; empty keeps CORS closed.
    pub cors_allow_origins: Vec<String>,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// Failed logins allowed per account from one client address within a minute (a client
    /// address alone, across accounts: four times as many).
    pub login_failures_per_minute: u32,
    /// Failed device authentications (unknown or revoked device tokens) allowed from one
    /// client address within a minute before 429.
    pub device_auth_failures_per_minute: u32,
    /// Failed patient lookups (unknown, expired or invalid cards and numbers) one kiosk may
    /// make within a minute before 429.
    pub kiosk_lookup_failures_per_minute: u32,
    /// How long the access a kiosk check-in hands out for the patient's call lasts (it opens
    /// only that consultation's room).
    pub kiosk_session_ttl_secs: u64,
    /// The format of the health card's QR payload: `tchc1` (the documented test format); a
    /// provincial platform's format is added as a parser (`patients::health_card`).
    pub health_card_qr_format: String,
    /// The IANA time zone of the sites' day: a kiosk finds the consultations booked for
    /// "today" in it.
    pub kiosk_time_zone: String,
    /// Reverse proxies (addresses or CIDR blocks, comma-separated in
    /// `TELECONSULT_TRUSTED_PROXIES`) whose `X-Forwarded-For` names the client and whose
    /// `X-Forwarded-Proto`/`-Host` name the origin links are built from; from any other peer
    /// these headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// ICE server URLs handed to call participants (`stun:`, `turn:`, `turns:`), comma-separated
    /// in `TELECONSULT_TURN_URLS`. TURN URLs are only handed out with credentials.
    pub turn_urls: Vec<String>,
    /// Secret shared with coturn (`static-auth-secret`) to mint TURN credentials; never sent
    /// to a client. Empty: TURN URLs are left out of the ICE servers.
    pub turn_secret: String,
    /// How long a minted TURN credential stays valid.
    pub turn_ttl_secs: u64,
    /// Participants per room, lobby included.
    pub signaling_max_participants: usize,
    /// Messages per second one signaling connection may send (bursts of twice that).
    pub signaling_messages_per_second: u32,
    /// How far ahead an appointment may be booked, and an availability exception start, in
    /// days; further ahead: 422 `beyond_booking_horizon`.
    pub booking_horizon_days: u32,
    /// A booked call's room opens this many minutes before the appointment's start (urgent
    /// and emergency requests open at once).
    pub call_open_before_mins: u32,
    /// A participant of an appointment may be recorded as a no-show from this many minutes
    /// after its start (someone a few minutes late is not a no-show), never one who came.
    pub no_show_after_mins: u32,
    /// Network checks the server runs at once (each one a server-side WebRTC peer).
    pub netcheck_max_sessions: usize,
    /// A network check session is closed this long after it started.
    pub netcheck_session_secs: u64,
    /// NATS server (`nats://host:4222`, with JetStream) that lets several instances serve the
    /// same rooms; empty: the in-process bus of a single instance.
    pub nats_url: String,
    /// Load the demo consortium into an empty database (loopback binds only).
    pub demo: bool,
    /// Where file bytes are kept: `local` (under `data_dir/files`) or `s3`.
    pub files_backend: String,
    /// Largest file accepted by an upload, in bytes.
    pub files_max_upload_bytes: u64,
    /// Room kept free on the local file storage's disk: a resumable upload whose declared
    /// length does not fit in the free space minus this is refused at creation (507).
    pub files_reserve_bytes: u64,
    /// An unfinished resumable upload expires this long after its last activity.
    pub files_upload_expiry_secs: u64,
    /// S3-compatible endpoint URL (empty: AWS); `http://` endpoints are allowed.
    pub s3_endpoint: String,
    pub s3_bucket: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".parse().expect("static address"),
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            jwt_secret: String::new(),
            jwt_issuer: "teleconsult".into(),
            jwt_audience: "teleconsult-api".into(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_body_bytes: 1024 * 1024,
            cors_allow_origins: Vec::new(),
            log_format: "text".into(),
            login_failures_per_minute: 5,
            device_auth_failures_per_minute: 10,
            kiosk_lookup_failures_per_minute: 5,
            kiosk_session_ttl_secs: 2 * 3600,
            health_card_qr_format: "tchc1".into(),
            kiosk_time_zone: "Asia/Shanghai".into(),
            trusted_proxies: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: String::new(),
            turn_ttl_secs: 3600,
            signaling_max_participants: 8,
            signaling_messages_per_second: 50,
            booking_horizon_days: 365,
            call_open_before_mins: 15,
            no_show_after_mins: 10,
            netcheck_max_sessions: 8,
            netcheck_session_secs: 60,
            nats_url: String::new(),
            demo: false,
            files_backend: "local".into(),
            files_max_upload_bytes: 2 * 1024 * 1024 * 1024,
            files_reserve_bytes: 64 * 1024 * 1024,
            files_upload_expiry_secs: 24 * 3600,
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Toml { path: PathBuf, source: toml::de::Error },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the TOML file if given, then `TELECONSULT_*` variables from `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut table = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => return Err(ConfigError::Invalid("defaults do not serialise".into())),
        };
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
            let from_file: toml::Table =
                toml::from_str(&text).map_err(|source| ConfigError::Toml { path: path.into(), source })?;
            for (k, v) in from_file {
                table.insert(k, v);
            }
            // Check unknown keys and types of the file alone, so the message names the file.
            toml::Value::Table(table.clone())
                .try_into::<Config>()
                .map_err(|source| ConfigError::Toml { path: path.into(), source })?;
        }
        for (var, raw) in env {
            let Some(key) = var.strip_prefix("TELECONSULT_") else { continue };
            let key = key.to_ascii_lowercase();
            let Some(default) = table.get(&key) else { continue };
            let value = match default {
                toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| ConfigError::Env {
                    var: var.clone(),
                    message: format!("expected an integer, got {raw:?}"),
                })?),
                toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" | "" => false,
                    _ => return Err(ConfigError::Env { var, message: format!("expected true or false, got {raw:?}") }),
                }),
                toml::Value::Array(_) => toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                ),
                _ => toml::Value::String(raw),
            };
            table.insert(key, value);
        }
        let config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if crate::patients::health_card::parser_for(&self.health_card_qr_format).is_none() {
            return Err(ConfigError::Invalid(format!(
                "health_card_qr_format must be one of {:?}, not {:?}",
                crate::patients::health_card::FORMATS,
                self.health_card_qr_format
            )));
        }
        if self.kiosk_time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "kiosk_time_zone is not an IANA time zone: {:?}",
                self.kiosk_time_zone
            )));
        }
        if self.kiosk_session_ttl_secs == 0 {
            return Err(ConfigError::Invalid("kiosk_session_ttl_secs must be positive".into()));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!("log_format must be text or json, not {:?}", self.log_format)));
        }
        if self.access_token_ttl_secs == 0 || self.refresh_token_ttl_secs == 0 {
            return Err(ConfigError::Invalid("token lifetimes must be positive".into()));
        }
        if !matches!(self.files_backend.as_str(), "local" | "s3") {
            return Err(ConfigError::Invalid(format!(
                "files_backend must be local or s3, not {:?}",
                self.files_backend
            )));
        }
        if self.files_backend == "s3" && self.s3_bucket.is_empty() {
            return Err(ConfigError::Invalid("files_backend = s3 needs s3_bucket".into()));
        }
        if let Some(bad) = self.turn_urls.iter().find(|u| !is_ice_url(u)) {
            return Err(ConfigError::Invalid(format!("turn_urls: {bad:?} is not a stun:, turn: or turns: URL")));
        }
        crate::proxy::parse_trusted(&self.trusted_proxies)
            .map_err(|e| ConfigError::Invalid(format!("trusted_proxies: {e}")))?;
        if self.turn_ttl_secs == 0 {
            return Err(ConfigError::Invalid("turn_ttl_secs must be positive".into()));
        }
        if self.booking_horizon_days == 0 {
            return Err(ConfigError::Invalid("booking_horizon_days must be positive".into()));
        }
        if self.netcheck_session_secs == 0 {
            return Err(ConfigError::Invalid("netcheck_session_secs must be positive".into()));
        }
        let url = &self.database_url;
        let known = ["sqlite:", "postgres://", "postgresql://"].iter().any(|p| url.starts_with(p));
        if !url.is_empty() && !known {
            return Err(ConfigError::Invalid("database_url must start with sqlite: or postgres://".into()));
        }
        Ok(())
    }

    /// The database URL in effect: the configured one or the embedded SQLite file.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("teleconsult.db").display())
        } else {
            self.database_url.clone()
        }
    }

    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("files")
    }
}

/// The `host[:port]` part of a `stun:`/`turn:`/`turns:` URL.
pub fn host_port(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once(':')?;
    let hp = rest.split('?').next().unwrap_or_default();
    (!hp.is_empty()).then_some(hp)
}

/// Whether `url` is an ICE server URL the server knows how to hand out (a `turn_urls` entry).
pub fn is_ice_url(url: &str) -> bool {
    ["stun:", "stuns:", "turn:", "turns:"].iter().any(|s| url.starts_with(s)) && host_port(url).is_some()
}

/// Replaces the password of a URL like `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

fn redact_secret(s: &str) -> &'static str {
    if s.is_empty() {
        "(unset)"
    } else {
        "***"
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "bind = {}", self.bind)?;
        writeln!(f, "data_dir = {}", self.data_dir.display())?;
        writeln!(f, "database_url = {}", redact_url(&self.effective_database_url()))?;
        writeln!(f, "jwt_secret = {}", redact_secret(&self.jwt_secret))?;
        writeln!(f, "jwt_issuer = {} / audience = {}", self.jwt_issuer, self.jwt_audience)?;
        writeln!(f, "access_token_ttl_secs = {}", self.access_token_ttl_secs)?;
        writeln!(f, "refresh_token_ttl_secs = {}", self.refresh_token_ttl_secs)?;
        writeln!(f, "max_body_bytes = {}", self.max_body_bytes)?;
        writeln!(f, "cors_allow_origins = {:?}", self.cors_allow_origins)?;
        writeln!(f, "log_format = {}", self.log_format)?;
        writeln!(f, "login_failures_per_minute = {}", self.login_failures_per_minute)?;
        writeln!(f, "device_auth_failures_per_minute = {}", self.device_auth_failures_per_minute)?;
        writeln!(
            f,
            "kiosk: {} failed lookups per minute, sessions of {} s, health card QR format {}, day in {}",
            self.kiosk_lookup_failures_per_minute,
            self.kiosk_session_ttl_secs,
            self.health_card_qr_format,
            self.kiosk_time_zone
        )?;
        writeln!(f, "trusted_proxies = {:?}", self.trusted_proxies)?;
        writeln!(f, "turn_urls = {:?}", self.turn_urls)?;
        writeln!(f, "turn_secret = {} / turn_ttl_secs = {}", redact_secret(&self.turn_secret), self.turn_ttl_secs)?;
        writeln!(
            f,
            "signaling: {} participants per room, {} messages/s per connection",
            self.signaling_max_participants, self.signaling_messages_per_second
        )?;
        writeln!(
            f,
            "booking_horizon_days = {}, call_open_before_mins = {}, no_show_after_mins = {}",
            self.booking_horizon_days, self.call_open_before_mins, self.no_show_after_mins
        )?;
        writeln!(
            f,
            "netcheck: {} sessions at once, {} s each",
            self.netcheck_max_sessions, self.netcheck_session_secs
        )?;
        writeln!(
            f,
            "nats_url = {}",
            if self.nats_url.is_empty() { "(unset: one instance)".to_string() } else { redact_url(&self.nats_url) }
        )?;
        writeln!(f, "files_backend = {}", self.files_backend)?;
        writeln!(f, "files_max_upload_bytes = {}", self.files_max_upload_bytes)?;
        writeln!(f, "files_upload_expiry_secs = {}", self.files_upload_expiry_secs)?;
        writeln!(f, "files_reserve_bytes = {}", self.files_reserve_bytes)?;
        if self.files_backend == "s3" {
            writeln!(f, "s3 = {} bucket {} region {}", self.s3_endpoint, self.s3_bucket, self.s3_region)?;
            writeln!(f, "s3_secret_access_key = {}", redact_secret(&self.s3_secret_access_key))?;
        }
        write!(f, "demo = {}", self.demo)
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("tc-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "bind = \"127.0.0.1:9000\"\nlog_format = \"json\"\nmax_body_bytes = 2048\n").unwrap();
        let c = Config::load(
            Some(&file),
            env(&[("TELECONSULT_BIND", "127.0.0.1:9100"), ("TELECONSULT_CORS_ALLOW_ORIGINS", "https://a, https://b")]),
        )
        .unwrap();
        assert_eq!(c.bind.port(), 9100);
        assert_eq!(c.log_format, "json");
        assert_eq!(c.max_body_bytes, 2048);
        assert_eq!(c.cors_allow_origins, vec!["https://a", "https://b"]);
        assert_eq!(c.access_token_ttl_secs, 900);
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::load(None, env(&[("TELECONSULT_MAX_BODY_BYTES", "lots")])).unwrap_err();
        assert!(err.to_string().contains("TELECONSULT_MAX_BODY_BYTES"), "{err}");
        let err = Config::load(None, env(&[("TELECONSULT_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("database_url"), "{err}");
        let err = Config::load(None, env(&[("TELECONSULT_TURN_URLS", "turn:t.example.org, https://t.example.org")]))
            .unwrap_err();
        assert!(err.to_string().contains("https://t.example.org"), "{err}");
        let c = Config::load(
            None,
            env(&[
                ("TELECONSULT_TURN_URLS", "turn:t.example.org:3478, turns:t.example.org:443"),
                ("TELECONSULT_TURN_SECRET", "s"),
            ]),
        )
        .unwrap();
        assert_eq!((c.turn_urls.len(), c.turn_secret.as_str(), c.turn_ttl_secs), (2, "s", 3600));
    }

    #[test]
    fn the_booking_horizon_and_the_storage_reserve_are_configurable() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!((c.booking_horizon_days, c.files_reserve_bytes), (365, 64 * 1024 * 1024));
        let c = Config::load(
            None,
            env(&[("TELECONSULT_BOOKING_HORIZON_DAYS", "90"), ("TELECONSULT_FILES_RESERVE_BYTES", "0")]),
        )
        .unwrap();
        assert_eq!((c.booking_horizon_days, c.files_reserve_bytes), (90, 0));
        let err = Config::load(None, env(&[("TELECONSULT_BOOKING_HORIZON_DAYS", "0")])).unwrap_err();
        assert!(err.to_string().contains("booking_horizon_days"), "{err}");
    }

    #[test]
    fn network_check_limits_come_from_the_environment() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!((c.netcheck_max_sessions, c.netcheck_session_secs), (8, 60));
        let c = Config::load(
            None,
            env(&[("TELECONSULT_NETCHECK_MAX_SESSIONS", "3"), ("TELECONSULT_NETCHECK_SESSION_SECS", "20")]),
        )
        .unwrap();
        assert_eq!((c.netcheck_max_sessions, c.netcheck_session_secs), (3, 20));
        let err = Config::load(None, env(&[("TELECONSULT_NETCHECK_SESSION_SECS", "0")])).unwrap_err();
        assert!(err.to_string().contains("netcheck_session_secs"), "{err}");
    }

    #[test]
    fn the_kiosk_and_the_health_card_format_are_configurable_and_checked() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!((c.health_card_qr_format.as_str(), c.kiosk_time_zone.as_str()), ("tchc1", "Asia/Shanghai"));
        assert_eq!((c.device_auth_failures_per_minute, c.kiosk_lookup_failures_per_minute), (10, 5));
        let c = Config::load(
            None,
            env(&[
                ("TELECONSULT_KIOSK_TIME_ZONE", "Asia/Urumqi"),
                ("TELECONSULT_KIOSK_LOOKUP_FAILURES_PER_MINUTE", "3"),
            ]),
        )
        .unwrap();
        assert_eq!((c.kiosk_time_zone.as_str(), c.kiosk_lookup_failures_per_minute), ("Asia/Urumqi", 3));
        for (var, value, named) in [
            ("TELECONSULT_HEALTH_CARD_QR_FORMAT", "guangdong", "health_card_qr_format"),
            ("TELECONSULT_KIOSK_TIME_ZONE", "Mars/Olympus", "kiosk_time_zone"),
            ("TELECONSULT_KIOSK_SESSION_TTL_SECS", "0", "kiosk_session_ttl_secs"),
        ] {
            let err = Config::load(None, env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(named), "{err}");
        }
        assert!(Config::default().to_string().contains("health card QR format tchc1"));
    }

    #[test]
    fn printing_redacts_secrets() {
        let c = Config {
            database_url: "postgres://app:hunter2@db/tc".into(),
            jwt_secret: "topsecret".into(),
            turn_secret: "coturn-shared".into(),
            ..Config::default()
        };
        let shown = c.to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("topsecret"), "{shown}");
        assert!(!shown.contains("coturn-shared") && shown.contains("turn_secret = ***"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/tc"));
    }

    #[test]
    fn the_nats_url_comes_from_the_environment_and_prints_without_its_password() {
        assert!(Config::load(None, env(&[])).unwrap().nats_url.is_empty(), "one instance by default");
        let c = Config::load(None, env(&[("TELECONSULT_NATS_URL", "nats://tc:natspass@nats.internal:4222")])).unwrap();
        assert_eq!(c.nats_url, "nats://tc:natspass@nats.internal:4222");
        let shown = c.to_string();
        assert!(
            !shown.contains("natspass") && shown.contains("nats_url = nats://tc:***@nats.internal:4222"),
            "{shown}"
        );
    }
}
