//! Storage: one connection pool over SQLite (embedded default) or PostgreSQL, chosen by the
//! database URL. Both run the same migrations and the same queries: a shared SQL subset with
//! `$n` placeholders, TEXT ids (UUIDv7), TEXT timestamps in fixed-width UTC RFC 3339 (which
//! sort and compare correctly as text) and BIGINT integers.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub mod batch;
pub mod filter;
pub mod keyed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite has one writer at a time. Write transactions of this process queue here, in
    /// arrival order, instead of retrying in SQLite's busy handler (whose growing sleeps
    /// leave the database idle and made the booking tail hundreds of milliseconds long).
    writer: Arc<tokio::sync::Mutex<()>>,
    /// The group commit of audit events written on their own (reads), started on first use
    /// ([`crate::audit::AuditEvent::record`]).
    pub(crate) audit: Arc<std::sync::OnceLock<batch::Batcher<crate::audit::Row, ()>>>,
    /// What this instance keeps of experts' standing calendars for ranking candidates
    /// ([`crate::scheduling::roster`]); a write of a calendar here tells it.
    pub rosters: Arc<crate::scheduling::roster::Rosters>,
    /// Bookings of one expert queue here before they take a connection
    /// ([`crate::scheduling::appointments::book_slot`]).
    pub bookings: Arc<keyed::KeyedLocks>,
}

/// A write transaction: for SQLite it also holds this process's writer turn until it
/// commits or is dropped (rolled back). Dereferences to the connection, like `&mut *tx`
/// on a plain transaction.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// A connection that holds the writer turn: see [`Db::writer`].
pub struct WriteConn {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteConn {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.conn
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

impl Db {
    /// Connects, creating the SQLite file if needed. SQLite connections get WAL, foreign keys
    /// and a busy timeout.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        if backend == Backend::Sqlite {
            if let Some(path) = sqlite_path(url) {
                if let Some(parent) = std::path::Path::new(&path).parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent)?;
                    }
                }
            }
        }
        let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let max = if backend == Backend::Sqlite { 8 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Db {
            pool,
            backend,
            writer: Arc::default(),
            audit: Arc::default(),
            rosters: Arc::default(),
            bookings: Arc::default(),
        })
    }

    /// Begins a transaction that will write. On SQLite it first waits for this process's
    /// writer turn (FIFO), then begins `IMMEDIATE`: the write lock is taken at the start, so a
    /// transaction that reads before it writes can never be refused its upgrade
    /// (`SQLITE_BUSY_SNAPSHOT`, returned at once whatever the busy timeout) by a statement
    /// that committed in between — another process, or a write of this one that runs
    /// outside the turn; those wait in the busy handler instead. On PostgreSQL it is a plain
    /// transaction, rows being locked by the statements themselves.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let (turn, tx) = match self.backend {
            Backend::Sqlite => {
                let turn = self.writer.clone().lock_owned().await;
                (Some(turn), self.pool.begin_with("BEGIN IMMEDIATE").await?)
            }
            Backend::Postgres => (None, self.pool.begin().await?),
        };
        Ok(WriteTx { tx, _turn: turn })
    }

    /// For one statement that writes on its own (atomic without a transaction, and one round
    /// trip instead of three): on SQLite, this process's writer turn, to hold while the
    /// statement runs; nothing on PostgreSQL.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    /// A pooled connection for one statement that writes on its own, holding this process's
    /// writer turn on SQLite (nothing on PostgreSQL) until it is dropped: the end of the
    /// statement in `q.execute(&mut *db.writer().await?).await`. Never call it while the same
    /// task holds a [`WriteTx`] (the turn is not reentrant).
    pub async fn writer(&self) -> Result<WriteConn, sqlx::Error> {
        let turn = self.write_turn().await;
        Ok(WriteConn { conn: self.pool.acquire().await?, _turn: turn })
    }

    /// The same database without this handle's batchers (what a batcher's own task writes
    /// with, so that it does not keep itself alive).
    pub(crate) fn plain(&self) -> Db {
        Db {
            pool: self.pool.clone(),
            backend: self.backend,
            writer: self.writer.clone(),
            audit: Arc::default(),
            rosters: self.rosters.clone(),
            bookings: self.bookings.clone(),
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_string())
    }
}

/// An id taken from a URL: always a UUID, so a malformed one never reaches a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(pub String);

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        uuid::Uuid::parse_str(&s).map(|u| Id(u.to_string())).map_err(|_| serde::de::Error::custom("not a valid id"))
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Fixed-width UTC text form used in storage: `2026-11-23T09:00:00.000000Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn now_ts() -> String {
    ts(Utc::now())
}

/// Years a client-sent time may fall in: four digits, so that [`ts`] stays fixed-width and
/// stored times sort and round-trip as text on both databases.
pub const CLIENT_YEARS: std::ops::RangeInclusive<i32> = 1900..=9999;

/// A point in time sent by a client (RFC 3339 with an offset) that the server may store: the
/// one checked conversion every such time passes through. Its UTC year is within
/// [`CLIENT_YEARS`]; anything else (`+99999-01-01T09:00:00+08:00`) is refused where it is
/// deserialised, as 422 `validation_failed` naming the field in a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ClientTime(DateTime<chrono::FixedOffset>);

impl ClientTime {
    pub fn parse(text: &str) -> Result<ClientTime, String> {
        use chrono::Datelike;
        let t = text
            .parse::<DateTime<chrono::FixedOffset>>()
            .map_err(|e| format!("not an RFC 3339 time with an offset ({e})"))?;
        if CLIENT_YEARS.contains(&t.year()) && CLIENT_YEARS.contains(&t.with_timezone(&Utc).year()) {
            Ok(ClientTime(t))
        } else {
            Err(format!("the year must be between {} and {} (UTC)", CLIENT_YEARS.start(), CLIENT_YEARS.end()))
        }
    }

    pub fn utc(self) -> DateTime<Utc> {
        self.0.with_timezone(&Utc)
    }
}

impl From<ClientTime> for DateTime<Utc> {
    fn from(t: ClientTime) -> Self {
        t.utc()
    }
}

impl<'de> serde::Deserialize<'de> for ClientTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        ClientTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ClientTime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ClientTime".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time", "description": "RFC 3339 with an offset; its UTC year within 1900-9999"})
    }
}

/// A calendar date sent by a client (`YYYY-MM-DD`) that the server may store, with its year
/// within [`CLIENT_YEARS`] like [`ClientTime`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientDate(chrono::NaiveDate);

impl ClientDate {
    pub fn parse(text: &str) -> Result<ClientDate, String> {
        use chrono::Datelike;
        let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| "a date as YYYY-MM-DD".to_string())?;
        if text.len() == 10 && CLIENT_YEARS.contains(&d.year()) {
            Ok(ClientDate(d))
        } else {
            Err(format!("a date as YYYY-MM-DD between {} and {}", CLIENT_YEARS.start(), CLIENT_YEARS.end()))
        }
    }

    pub fn date(self) -> chrono::NaiveDate {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for ClientDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        ClientDate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses a stored timestamp; stored values are always written by [`ts`].
pub fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl schemars::JsonSchema for ClientDate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ClientDate".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date", "description": "YYYY-MM-DD; its year within 1900-9999"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_text() {
        let a = ts("2026-03-29T00:59:59.5Z".parse().unwrap());
        let b = ts("2026-03-29T01:00:00Z".parse().unwrap());
        assert!(a < b);
        assert_eq!(a.len(), b.len());
        assert_eq!(parse_ts(&b), "2026-03-29T01:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn client_times_have_four_digit_utc_years() {
        let t = ClientTime::parse("2026-11-24T09:00:00+08:00").unwrap();
        assert_eq!(ts(t.utc()), "2026-11-24T01:00:00.000000Z");
        assert_eq!(parse_ts(&ts(t.utc())), t.utc());
        for bad in ["+99999-01-01T09:00:00+08:00", "1899-12-31T23:59:59Z", "9999-12-31T23:00:00-05:00", "soon"] {
            assert!(ClientTime::parse(bad).is_err(), "{bad}");
        }
        let last = ClientTime::parse("9999-12-31T23:59:59Z").unwrap();
        assert_eq!(ts(last.utc()).len(), ts(t.utc()).len());
        assert!(ts(t.utc()) < ts(last.utc()));
    }

    #[test]
    fn sqlite_paths_are_found() {
        assert_eq!(sqlite_path("sqlite://data/tc.db?mode=rwc").as_deref(), Some("data/tc.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
