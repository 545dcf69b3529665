//! Time zones: the zone an expert's calendar and a clinic use unless set otherwise, and how
//! a time is written for people in a zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The zone of an expert or clinic without one of its own (China Standard Time).
pub const DEFAULT_TZ: Tz = chrono_tz::Asia::Shanghai;

/// RFC 3339 in the given zone, e.g. `2026-11-24T09:00:00+08:00`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}
