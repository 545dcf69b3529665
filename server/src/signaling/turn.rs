//! Short-lived TURN credentials in the TURN REST API scheme that coturn checks with
//! `use-auth-secret`: the username is `<expiry-unix>:<user id>` and the password is
//! base64(HMAC-SHA1(secret, username)). coturn recomputes the password from the username
//! with the same shared secret and refuses it once the expiry has passed, so the secret stays
//! between the server and coturn and a leaked credential is only good until it expires.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::time::Duration;

/// The longest time between two refreshes, however long a credential lives (so a timer's
/// deadline stays in range for absurd lifetimes).
pub const MAX_REFRESH_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// A username and password for a TURN server, valid until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    pub username: String,
    pub password: String,
    pub expires_at: DateTime<Utc>,
}

/// The credential for `user_id`, valid for `ttl_secs` from `now`.
pub fn mint(secret: &str, user_id: &str, now: DateTime<Utc>, ttl_secs: u64) -> TurnCredential {
    let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX);
    let expiry = now.timestamp().saturating_add(ttl);
    let username = format!("{expiry}:{user_id}");
    let password = password(secret, &username);
    let expires_at = DateTime::from_timestamp(expiry, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    TurnCredential { username, password, expires_at }
}

/// How often a participant holding a credential that lives `ttl_secs` gets a fresh one:
/// halfway through its lifetime, so a new one is there well before the old one expires, at
/// least a second apart (and at most [`MAX_REFRESH_PERIOD`]).
pub fn refresh_period(ttl_secs: u64) -> Duration {
    (Duration::from_secs(ttl_secs) / 2).clamp(Duration::from_secs(1), MAX_REFRESH_PERIOD)
}

/// base64(HMAC-SHA1(secret, username)), the password coturn expects for `username`.
pub fn password(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The ICE URLs of one configured URL. A `turn:` URL without a `transport` parameter is
/// handed out as TURN over UDP and over TCP (TCP gets through firewalls that drop UDP);
/// anything else is handed out as written.
pub fn expand(url: &str) -> Vec<String> {
    if url.starts_with("turn:") && !url.contains("transport=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        vec![format!("{url}{sep}transport=udp"), format!("{url}{sep}transport=tcp")]
    } else {
        vec![url.to_string()]
    }
}

pub use crate::config::{host_port, is_ice_url};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_api_scheme() {
        // Expected value computed independently:
        // python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
        //   b'north-clinic-turn-secret', b'1795435200:0190f5d2-0000-7000-8000-000000000001',
        //   hashlib.sha1).digest()).decode())"
        let now = DateTime::parse_from_rfc3339("2026-11-23T11:00:00Z").unwrap().with_timezone(&Utc);
        let c = mint("north-clinic-turn-secret", "0190f5d2-0000-7000-8000-000000000001", now, 3600);
        assert_eq!(c.username, "1795435200:0190f5d2-0000-7000-8000-000000000001");
        assert_eq!(c.password, "doAeyBgjXpW2k0d2lyP2NIRPGMw=");
        assert_eq!(c.expires_at.to_rfc3339(), "2026-11-23T12:00:00+00:00");
        assert_ne!(mint("another-secret", "0190f5d2-0000-7000-8000-000000000001", now, 3600).password, c.password);
        assert_ne!(mint("north-clinic-turn-secret", "someone-else", now, 3600).password, c.password);
    }

    #[test]
    fn an_absurd_lifetime_does_not_overflow() {
        let c = mint("s", "u", Utc::now(), u64::MAX);
        assert!(c.username.starts_with(&format!("{}:", i64::MAX)));
        assert_eq!(c.expires_at, DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn a_credential_is_refreshed_halfway_through_its_lifetime() {
        assert_eq!(refresh_period(3600), Duration::from_secs(1800));
        assert_eq!(refresh_period(6), Duration::from_secs(3));
        assert_eq!(refresh_period(3), Duration::from_millis(1500));
        assert_eq!(refresh_period(1), Duration::from_secs(1), "at least a second apart");
        assert_eq!(refresh_period(0), Duration::from_secs(1));
        assert_eq!(refresh_period(u64::MAX), MAX_REFRESH_PERIOD, "an absurd lifetime does not overflow a timer");
        // Whatever the lifetime (from two seconds on), the fresh credential comes before the
        // old one expires.
        for ttl in [2, 5, 61, 3600, 86_400, 30 * 86_400] {
            assert!(refresh_period(ttl) < Duration::from_secs(ttl), "{ttl}");
        }
    }

    #[test]
    fn turn_urls_without_transport_are_offered_over_udp_and_tcp() {
        assert_eq!(
            expand("turn:turn.example.org:3478"),
            vec!["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"]
        );
        assert_eq!(expand("turn:t.example.org?transport=tcp"), vec!["turn:t.example.org?transport=tcp"]);
        assert_eq!(expand("turns:t.example.org:443?transport=tcp"), vec!["turns:t.example.org:443?transport=tcp"]);
        assert_eq!(expand("stun:t.example.org:3478"), vec!["stun:t.example.org:3478"]);
        assert_eq!(host_port("turns:t.example.org:443?transport=tcp"), Some("t.example.org:443"));
        assert!(is_ice_url("stun:[::1]:3478"));
        assert!(!is_ice_url("http://t.example.org"));
        assert!(!is_ice_url("turn:"));
    }
}
