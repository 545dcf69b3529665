//! Access tokens: HS256 JWTs with issuer, audience, 15-minute expiry, and the user's role and
//! organisation in the claims. The key is configured, or generated once and kept in the data
//! directory; it is never written in the source.

use super::Role;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    pub role: Role,
    pub org: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The account's token generation when the token was issued: a request whose token names
    /// an older generation than the account's is refused (see `auth::accounts`).
    #[serde(default)]
    pub gen: i64,
    /// The refresh-token family the token was issued with (empty for tokens from elsewhere):
    /// a password change keeps this family and revokes the others.
    #[serde(default)]
    pub fam: String,
    /// What the token is restricted to (empty: whatever its role and relationships allow):
    /// `consultation:<id> readings:<patient id>` for the access a kiosk check-in hands out
    /// ([`scope_allows`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The device the token was handed out through (a kiosk's check-in; empty for a sign-in):
    /// the token ends with the device, when it is revoked or its organisation deactivated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dev: String,
}

/// Pure: whether a token restricted to `scope` may be used on `path`. A scope is one or
/// more space-separated grants: `consultation:<id>` opens `/api/v1/me` and that
/// consultation's own routes (`/api/v1/consultations/<id>` and below: its record, its room's
/// join); `readings:<patient id>` opens that patient's vital-sign readings
/// (`/api/v1/patients/<id>/observations`: the kiosk's blood pressure during the call).
/// Nothing else.
pub fn scope_allows(scope: &str, path: &str) -> bool {
    if scope.is_empty() {
        return true;
    }
    let id_of = |grant: &'static str, part: &str| -> Option<String> {
        part.strip_prefix(grant).filter(|id| !id.is_empty() && !id.contains('/')).map(str::to_string)
    };
    let mut granted = false;
    for part in scope.split(' ') {
        if let Some(id) = id_of("consultation:", part) {
            let own = format!("/api/v1/consultations/{id}");
            granted |= path == "/api/v1/me"
                || path == own
                || path.strip_prefix(&own).is_some_and(|rest| rest.starts_with('/'));
        } else if let Some(id) = id_of("readings:", part) {
            granted |= path == format!("/api/v1/patients/{id}/observations");
        } else {
            // A grant this server does not know: the whole token is refused.
            return false;
        }
    }
    granted
}

/// Who a token is for, as [`JwtKeys::issue`] writes it into the claims.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub role: Role,
    pub org: &'a str,
    pub generation: i64,
    pub family: &'a str,
    /// The device handing the token out (empty: none, the user signed in).
    pub device: &'a str,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    pub ttl_secs: u64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl_secs: u64) -> Self {
        // Only HS256 is accepted: tokens naming another algorithm (or `none`) fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl_secs,
        }
    }

    pub fn issue(&self, s: Subject<'_>) -> anyhow::Result<(String, i64)> {
        self.issue_scoped(s, "", self.ttl_secs)
    }

    /// A token restricted to `scope` (see [`scope_allows`]) that lives `ttl_secs`.
    pub fn issue_scoped(&self, s: Subject<'_>, scope: &str, ttl_secs: u64) -> anyhow::Result<(String, i64)> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + ttl_secs as i64;
        let claims = Claims {
            sub: s.user_id.to_string(),
            name: s.name.to_string(),
            role: s.role,
            org: s.org.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
            gen: s.generation,
            fam: s.family.to_string(),
            scope: scope.to_string(),
            dev: s.device.to_string(),
        };
        Ok((jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?, exp))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|d| d.claims)
    }
}

/// The configured secret, or the one kept in `data_dir/jwt.key`, generated on first run.
pub fn load_or_create_secret(configured: &str, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if !configured.is_empty() {
        if configured.len() < 32 {
            anyhow::bail!("jwt_secret must be at least 32 characters");
        }
        return Ok(configured.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt.key");
    let engine = base64::engine::general_purpose::STANDARD;
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(engine.decode(text.trim())?);
    }
    std::fs::create_dir_all(data_dir)?;
    let mut key = vec![0u8; 64];
    rand::thread_rng().fill_bytes(&mut key);
    write_private(&path, engine.encode(&key).as_bytes())?;
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(user_id: &'static str, name: &'static str, role: Role, org: &'static str) -> Subject<'static> {
        Subject { user_id, name, role, org, generation: 0, family: "", device: "" }
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", "teleconsult", "teleconsult-api", 900)
    }

    #[test]
    fn issued_tokens_verify_and_carry_role() {
        let k = keys();
        let (t, _) = k.issue(subject("u1", "dr.li", Role::CommunityDoctor, "org1")).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(c.role, Role::CommunityDoctor);
        assert_eq!(c.org, "org1");
    }

    #[test]
    fn wrong_key_issuer_audience_algorithm_and_expiry_are_refused() {
        let k = keys();
        let other = JwtKeys::new(b"another-key-another-key-another-k", "teleconsult", "teleconsult-api", 900);
        let (t, _) = other.issue(subject("u1", "x", Role::Admin, "o")).unwrap();
        assert!(k.verify(&t).is_err());

        let wrong_iss = JwtKeys::new(b"0123456789abcdef0123456789abcdef", "evil", "teleconsult-api", 900);
        assert!(k.verify(&wrong_iss.issue(subject("u1", "x", Role::Admin, "o")).unwrap().0).is_err());
        let wrong_aud = JwtKeys::new(b"0123456789abcdef0123456789abcdef", "teleconsult", "other", 900);
        assert!(k.verify(&wrong_aud.issue(subject("u1", "x", Role::Admin, "o")).unwrap().0).is_err());

        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "u1".into(),
            name: "x".into(),
            role: Role::Admin,
            org: "o".into(),
            iss: "teleconsult".into(),
            aud: "teleconsult-api".into(),
            iat: now - 1000,
            exp: now - 10,
            jti: "j".into(),
            gen: 0,
            fam: String::new(),
            scope: String::new(),
            dev: String::new(),
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(k.verify(&expired).is_err());

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims { exp: now + 100, ..claims.clone() },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(k.verify(&hs512).is_err());

        // alg "none" with no signature
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            engine.encode(br#"{"alg":"none","typ":"JWT"}"#),
            engine.encode(serde_json::to_vec(&Claims { exp: now + 100, ..claims }).unwrap())
        );
        assert!(k.verify(&none).is_err());
    }

    #[test]
    fn a_scoped_token_opens_only_its_consultation() {
        let k = keys();
        let (t, _) =
            k.issue_scoped(subject("u1", "patient.zhang", Role::Patient, "org1"), "consultation:c-1", 60).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(c.scope, "consultation:c-1");
        assert!(c.exp - c.iat == 60);
        assert_eq!(k.verify(&k.issue(subject("u1", "x", Role::Patient, "o")).unwrap().0).unwrap().scope, "");
        for open in [
            "/api/v1/me",
            "/api/v1/consultations/c-1",
            "/api/v1/consultations/c-1/join",
            "/api/v1/consultations/c-1/record",
        ] {
            assert!(scope_allows(&c.scope, open), "{open}");
        }
        for shut in [
            "/api/v1/consultations",
            "/api/v1/consultations/c-10",
            "/api/v1/consultations/c-2/join",
            "/api/v1/patients",
            "/api/v1/me/password",
            "/api/v1/notifications",
        ] {
            assert!(!scope_allows(&c.scope, shut), "{shut}");
        }
        assert!(!scope_allows("something-else", "/api/v1/me"));
        assert!(!scope_allows("consultation:c-1 something-else", "/api/v1/me"));
        // With the patient's readings: those, and still nothing else.
        let both = "consultation:c-1 readings:p-1";
        for open in ["/api/v1/me", "/api/v1/consultations/c-1/join", "/api/v1/patients/p-1/observations"] {
            assert!(scope_allows(both, open), "{open}");
        }
        for shut in [
            "/api/v1/patients/p-1",
            "/api/v1/patients/p-1/timeline",
            "/api/v1/patients/p-2/observations",
            "/api/v1/patients/p-1/observations/x",
        ] {
            assert!(!scope_allows(both, shut), "{shut}");
        }
        assert!(scope_allows("", "/api/v1/patients"));
    }

    #[test]
    fn generated_secret_is_kept() {
        let dir = std::env::temp_dir().join(format!("tc-jwt-{}", uuid::Uuid::new_v4()));
        let a = load_or_create_secret("", &dir).unwrap();
        let b = load_or_create_secret("", &dir).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert!(load_or_create_secret("short", &dir).is_err());
    }
}
