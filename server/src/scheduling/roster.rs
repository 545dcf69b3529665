//! What ranking candidates needs of a specialty's experts that changes rarely: each expert's
//! weekly rules, time zone and booking policy, and the specialties each practises. Read for a
//! whole specialty at once and kept by each instance, so that a candidates call reads only what
//! moves with every booking (appointments, leave, open workloads, and who is active, which
//! decides who is offered at all and is never kept).
//!
//! A roster is used while it is younger than [`ROSTER_TTL`] and no change to a calendar has
//! been made since it was read: an expert's new hours or a new expert show in the candidates
//! at once on the instance that stored them and, with several instances, on the others as soon
//! as NATS brings the announcement ([`SUBJECT`]); an instance that misses it sees the change
//! within [`ROSTER_TTL`]. Candidates only rank; booking a slot checks the expert's calendar in
//! the database, in the booking's transaction, so a stale roster can offer a slot that is then
//! refused, never book one.

use super::slots::{BookingPolicy, WeeklyRule, DEFAULT_TZ};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a roster is used without being read again, whatever was announced.
pub const ROSTER_TTL: Duration = Duration::from_secs(10);

/// NATS subject on which instances announce a change to an expert's calendar (no payload).
pub const SUBJECT: &str = "teleconsult.rosters.changed";

/// An expert's calendar without what moves: the weekly rules, the policy and the time zone.
#[derive(Debug, Clone)]
pub struct StandingCalendar {
    pub rules: Vec<WeeklyRule>,
    pub policy: BookingPolicy,
    pub time_zone: chrono_tz::Tz,
}

impl Default for StandingCalendar {
    fn default() -> Self {
        StandingCalendar { rules: Vec::new(), policy: BookingPolicy::default(), time_zone: DEFAULT_TZ }
    }
}

/// The standing calendars and specialties of every expert practising one specialty, by expert
/// id (an expert without rules or profile is absent from `calendars`).
#[derive(Debug, Default)]
pub struct Roster {
    pub calendars: HashMap<String, StandingCalendar>,
    pub specialties: HashMap<String, Vec<String>>,
}

struct Kept {
    generation: u64,
    read_at: Instant,
    roster: Arc<Roster>,
}

/// The rosters an instance keeps, by specialty.
#[derive(Default)]
pub struct Rosters {
    /// Counts this instance's changes to calendars; a roster read before the latest is not used.
    generation: AtomicU64,
    kept: Mutex<HashMap<String, Kept>>,
    /// One read at a time per specialty: calls that find no good roster wait for the read
    /// under way instead of each reading the same rows (which, under load, made every call
    /// of a busy specialty read the whole roster again).
    reading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// With several instances: where changes are announced ([`Rosters::listen`]).
    nats: std::sync::OnceLock<async_nats::Client>,
}

impl Rosters {
    /// A calendar, policy or specialty changed here (called after the change committed):
    /// no roster read before is used again, here or, once told over NATS, elsewhere.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(client) = self.nats.get().cloned() {
            tokio::spawn(async move {
                if let Err(e) = client.publish(SUBJECT, bytes::Bytes::new()).await {
                    tracing::warn!(error = %e, "a calendar change could not be announced on NATS");
                }
            });
        }
    }

    /// Announces this instance's changes on NATS and takes the other instances'.
    pub async fn listen(self: &Arc<Self>, client: async_nats::Client) -> anyhow::Result<()> {
        let mut changes = client.subscribe(SUBJECT).await?;
        let _ = self.nats.set(client);
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while changes.next().await.is_some() {
                let Some(rosters) = weak.upgrade() else { break };
                rosters.generation.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(())
    }

    /// Taken before a roster is read, and given back with it to [`Rosters::keep`]: a change
    /// committed while the roster was being read makes it unusable at once.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The specialty's roster if one is kept that is still good at `now`.
    pub fn fresh(&self, specialty: &str, now: Instant) -> Option<Arc<Roster>> {
        let generation = self.generation();
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(specialty)
            .filter(|k| k.generation == generation && now.saturating_duration_since(k.read_at) < ROSTER_TTL)
            .map(|k| k.roster.clone())
    }

    /// The turn to read the specialty's roster: hold it while reading, and look for a good
    /// roster again once it is held (the previous holder may have just kept one).
    pub fn turn(&self, specialty: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        reading.entry(specialty.to_string()).or_default().clone()
    }

    /// Keeps a roster read from `read_at` on, when [`Rosters::generation`] was `generation`.
    pub fn keep(&self, specialty: &str, generation: u64, read_at: Instant, roster: Arc<Roster>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let newer = kept.get(specialty).is_some_and(|k| k.read_at > read_at);
        if !newer {
            kept.insert(specialty.to_string(), Kept { generation, read_at, roster });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(expert: &str) -> Arc<Roster> {
        let mut r = Roster::default();
        r.specialties.insert(expert.into(), vec!["cardiology".into()]);
        Arc::new(r)
    }

    #[test]
    fn a_roster_is_used_until_it_is_old() {
        let rosters = Rosters::default();
        let t0 = Instant::now();
        assert!(rosters.fresh("cardiology", t0).is_none(), "nothing kept yet");
        rosters.keep("cardiology", rosters.generation(), t0, roster("a"));
        let kept = rosters.fresh("cardiology", t0 + Duration::from_secs(9)).expect("young enough");
        assert!(kept.specialties.contains_key("a"));
        assert!(rosters.fresh("radiology", t0).is_none(), "kept by specialty");
        assert!(rosters.fresh("cardiology", t0 + ROSTER_TTL).is_none(), "too old");
    }

    #[test]
    fn a_change_on_this_instance_is_seen_at_once() {
        let rosters = Rosters::default();
        let t0 = Instant::now();
        rosters.keep("cardiology", rosters.generation(), t0, roster("a"));
        rosters.changed();
        assert!(rosters.fresh("cardiology", t0).is_none());
    }

    #[test]
    fn a_roster_read_across_a_change_is_not_used() {
        let rosters = Rosters::default();
        let t0 = Instant::now();
        // Read started, a change commits, the read ends and is kept: it may predate the change.
        let generation = rosters.generation();
        rosters.changed();
        rosters.keep("cardiology", generation, t0, roster("a"));
        assert!(rosters.fresh("cardiology", t0).is_none());
        // The next read, started after the change, is used.
        rosters.keep("cardiology", rosters.generation(), t0 + Duration::from_millis(1), roster("b"));
        assert!(rosters.fresh("cardiology", t0).expect("kept").specialties.contains_key("b"));
    }

    #[test]
    fn an_older_read_does_not_replace_a_newer_one() {
        let rosters = Rosters::default();
        let t0 = Instant::now();
        let g = rosters.generation();
        rosters.keep("cardiology", g, t0 + Duration::from_secs(1), roster("new"));
        rosters.keep("cardiology", g, t0, roster("old"));
        assert!(rosters.fresh("cardiology", t0).expect("kept").specialties.contains_key("new"));
    }
}
