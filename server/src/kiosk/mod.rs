//! Check-in at a medical corner's or clinic's kiosk (a browser opened with `?kiosk=1`,
//! enrolled with a kiosk device token). The patient shows their electronic health card's QR
//! code, or types the card number or their resident ID number with their date of birth; the
//! kiosk finds them among the patients its organisation may see (its own patients, and for a
//! hospital those of the centres linked to it: the coordinator's rule), finds their
//! consultation booked for today at the kiosk's organisation, and hands the kiosk access for
//! that consultation only, with which it joins the call as the patient and waits in the lobby.
//! With nothing booked today it says so, and `POST /api/v1/kiosk/notify-duty` tells the
//! community doctors of the kiosk's organisation.
//!
//! Every lookup is audited (a found patient with the patient, a failed one with its reason);
//! failed lookups are throttled per kiosk (`kiosk_lookup_failures_per_minute`).

pub mod store;

use crate::api::{Json, Routes};
use crate::app::AppState;
use crate::audit::{self, Outcome};
use crate::auth::jwt::JwtKeys;
use crate::auth::throttle::{Key, LoginThrottle, Verdict};
use crate::config::Config;
use crate::db::{ts, Db};
use crate::devices::{DeviceAuth, DeviceKind};
use crate::directory::UserView;
use crate::domain::people::Role;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::patients::health_card::{self, CardError};
use crate::patients::store::{self as patients_store, Found, Viewer};
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;

/// The zone of the kiosks' day (`kiosk_time_zone`).
fn site_tz(config: &Config) -> Tz {
    config.kiosk_time_zone.parse().unwrap_or(crate::scheduling::slots::DEFAULT_TZ)
}

/// How long after a check-in the doctors on duty may be notified of it.
pub const NOTIFY_WITHIN_MINS: i64 = 30;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    /// The health card's QR payload, as scanned.
    #[serde(default)]
    pub qr: Option<String>,
    /// The health card number, typed (with `birth_date`).
    #[serde(default)]
    pub card_number: Option<String>,
    /// The resident ID number, typed (with `birth_date`).
    #[serde(default)]
    pub resident_id: Option<String>,
    /// YYYY-MM-DD, with a typed number.
    #[serde(default)]
    pub birth_date: Option<String>,
}

/// How the patient is to be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Card { card_id: String, issuer: String, valid_until: NaiveDate },
    CardNumber { number: String, birth_date: NaiveDate },
    ResidentId { number: String, birth_date: NaiveDate },
}

impl Lookup {
    pub fn method(&self) -> &'static str {
        match self {
            Lookup::Card { .. } => "qr",
            Lookup::CardNumber { .. } => "card_number",
            Lookup::ResidentId { .. } => "resident_id",
        }
    }
}

/// Why a lookup found nobody; each is a stable code with words a patient understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// A damaged code, or a number that cannot be a card or ID number.
    Invalid,
    /// The card's validity has passed.
    Expired,
    /// No patient this kiosk may see has this card (or this number and birth date).
    Unknown,
}

impl Miss {
    pub fn code(self) -> ErrorCode {
        match self {
            Miss::Invalid => ErrorCode::CardInvalid,
            Miss::Expired => ErrorCode::CardExpired,
            Miss::Unknown => ErrorCode::CardUnknown,
        }
    }

    fn error(self) -> ApiError {
        let (status, title, detail) = match self {
            Miss::Invalid => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Card not readable",
                "the code could not be read as a health card, or the number is not a card or ID number",
            ),
            Miss::Expired => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Card expired",
                "this health card has expired; please ask at the desk for a new one",
            ),
            Miss::Unknown => (
                StatusCode::NOT_FOUND,
                "Card not known here",
                "no patient of this clinic has this card, or this number with this date of birth",
            ),
        };
        ApiError::new(status, self.code(), title, detail)
    }
}

/// Pure: what the request asks to look up, validated (`today` decides a card's validity).
pub fn lookup_of(
    r: &CheckinRequest,
    parser: &dyn health_card::CardPayloadParser,
    today: NaiveDate,
) -> Result<Lookup, LookupError> {
    let given = [r.qr.is_some(), r.card_number.is_some(), r.resident_id.is_some()].iter().filter(|g| **g).count();
    if given != 1 {
        return Err(LookupError::Body("give exactly one of qr, card_number, resident_id"));
    }
    if let Some(qr) = &r.qr {
        if r.birth_date.is_some() {
            return Err(LookupError::Body("a scanned card needs no birth_date"));
        }
        let card = parser.parse(qr).map_err(|e| match e {
            CardError::Invalid(_) => LookupError::Miss(Miss::Invalid),
            CardError::Expired(_) => LookupError::Miss(Miss::Expired),
        })?;
        health_card::check_valid(&card, today).map_err(|_| LookupError::Miss(Miss::Expired))?;
        return Ok(Lookup::Card { card_id: card.card_id, issuer: card.issuer, valid_until: card.valid_until });
    }
    let birth = r.birth_date.as_deref().ok_or(LookupError::Body("a typed number needs birth_date"))?;
    let birth_date = NaiveDate::parse_from_str(birth, "%Y-%m-%d")
        .map_err(|_| LookupError::Body("birth_date: a date as YYYY-MM-DD"))?;
    if let Some(n) = &r.card_number {
        let number = health_card::normalise_card_id(n).ok_or(LookupError::Miss(Miss::Invalid))?;
        return Ok(Lookup::CardNumber { number, birth_date });
    }
    let raw = r.resident_id.as_deref().unwrap_or_default().trim().to_uppercase();
    crate::patients::resident_id::validate(&raw).map_err(|_| LookupError::Miss(Miss::Invalid))?;
    Ok(Lookup::ResidentId { number: raw, birth_date })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The request itself is malformed (422 `validation_failed`).
    Body(&'static str),
    Miss(Miss),
}

/// Pure: the UTC bounds of the local day holding `now` in `tz`.
pub fn local_day(now: DateTime<Utc>, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let date = now.with_timezone(&tz).date_naive();
    let start = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now)
    };
    (start(date), start(date.succ_opt().unwrap_or(date)))
}

/// Pure: a name as a kiosk shows it on a shared screen: the family name and the last
/// character (`张*英`), or the first letter of each part of a Latin name.
pub fn greeting_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    if chars.iter().any(|c| c.is_ascii_alphabetic()) {
        return name
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .map(|c| format!("{c}."))
            .collect::<Vec<_>>()
            .join(" ");
    }
    match chars.len() {
        0 => String::new(),
        1 => chars[0].to_string(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CheckinConsultation {
    pub id: String,
    pub starts_at: String,
    /// When its room opens (before it, the kiosk shows the time and waits).
    pub room_opens_at: Option<String>,
    pub expert_name: Option<String>,
}

/// Access for the kiosk to join the call as the patient: restricted to this consultation.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CheckinAccess {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// The patient's account as sign-in answers it.
    pub user: UserView,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CheckinResponse {
    pub checkin_id: String,
    /// `in_lobby`: the patient may join the call now (or when its room opens);
    /// `none_booked_today`: nothing booked today at this site; `no_patient_account`: booked,
    /// but the patient has no account to join the call with (ask at the desk).
    pub message_code: String,
    /// The patient's name as a shared screen shows it (`张*英`).
    pub patient_name: String,
    pub consultation: Option<CheckinConsultation>,
    pub access: Option<CheckinAccess>,
}

/// The throttle's keys of a kiosk's lookups.
struct LookupGate {
    key_name: String,
    limit: u32,
    started: Instant,
}

impl LookupGate {
    fn keys(&self) -> [Key<'_>; 1] {
        [Key { name: &self.key_name, limit: self.limit }]
    }

    /// Takes the attempt back: it found someone, or was not a lookup at all.
    fn succeeded(&self, throttle: &Mutex<LoginThrottle>) {
        throttle.lock().unwrap_or_else(|e| e.into_inner()).succeeded(&self.keys(), self.started, "");
    }
}

/// Counts a lookup by `device`, or refuses (audited) when it has failed too often.
async fn begin_lookup(
    throttle: &Mutex<LoginThrottle>,
    limit: u32,
    db: &Db,
    device: &DeviceAuth,
) -> ApiResult<LookupGate> {
    let gate = LookupGate { key_name: format!("kiosk-lookup:{}", device.device_id), limit, started: Instant::now() };
    let verdict = throttle.lock().unwrap_or_else(|e| e.into_inner()).begin(&gate.keys(), gate.started);
    if let Verdict::Refused { retry_after_secs } = verdict {
        device.event("checkin", "patient", "").outcome(Outcome::Denied).detail("rate_limited").record(db).await?;
        return Err(ApiError::rate_limited(retry_after_secs));
    }
    Ok(gate)
}

/// Finds the patient among those the kiosk's organisation may see (the coordinator's rule);
/// a miss is audited and answered.
async fn find_patient(db: &Db, device: &DeviceAuth, lookup: &Lookup, today: NaiveDate) -> ApiResult<Found> {
    let viewer = Viewer { role: Role::Coordinator, user_id: &device.device_id, org: &device.organisation_id };
    let found = match lookup {
        Lookup::Card { card_id, issuer, .. } => patients_store::by_health_card(db, viewer, card_id, issuer).await?,
        Lookup::CardNumber { number, birth_date } => {
            // A typed number matches a card of any issuer; the birth date must agree, and a
            // card recorded with a validity must still be valid.
            let birth = birth_date.format("%Y-%m-%d").to_string();
            let rows = patients_store::by_card_number(db, viewer, number, &birth).await?;
            if rows.len() > 1 {
                // One number on cards of two issuers for two people: the kiosk cannot tell.
                return Err(missed(db, device, Miss::Unknown, "several patients match").await);
            }
            match rows.into_iter().next() {
                Some((_, Some(until))) if until.as_str() < today.format("%Y-%m-%d").to_string().as_str() => {
                    return Err(missed(db, device, Miss::Expired, "").await)
                }
                Some((found, _)) => Some(found),
                None => None,
            }
        }
        Lookup::ResidentId { number, birth_date } => {
            let birth = birth_date.format("%Y-%m-%d").to_string();
            patients_store::by_resident_id(db, viewer, number, &birth).await?
        }
    };
    match found {
        Some(f) => Ok(f),
        None => Err(missed(db, device, Miss::Unknown, lookup.method()).await),
    }
}

/// Records the check-in with its audit event; answers its id.
async fn record_checkin(
    db: &Db,
    device: &DeviceAuth,
    patient: &Found,
    lookup: &Lookup,
    booked: Option<&store::Booked>,
    now: DateTime<Utc>,
) -> ApiResult<String> {
    let booked_id = booked.map(|b| b.id.as_str());
    let mut tx = audit::begin(db).await?;
    let checkin_id =
        store::insert_checkin(&mut tx, &device.device_id, &patient.id, booked_id, lookup.method(), &ts(now)).await?;
    tx.audit(device.event("checkin", "patient", &patient.id).patient(&patient.id).detail(format!(
        "{} at kiosk \"{}\"; booked today: {}",
        lookup.method(),
        device.label,
        booked_id.unwrap_or("none")
    )))
    .await?;
    tx.commit().await?;
    Ok(checkin_id)
}

/// The patient's active account, if any.
async fn patient_account(db: &Db, patient: &Found) -> ApiResult<Option<UserView>> {
    Ok(match &patient.user_id {
        Some(uid) => crate::directory::load_user(db, uid).await?.filter(|u| u.active),
        None => None,
    })
}

/// Access for the kiosk to join consultation `b` as the patient, and nothing else; it names
/// the kiosk, and ends when the kiosk is revoked (or its organisation deactivated), in the
/// call too.
fn patient_access(
    jwt: &JwtKeys,
    ttl: u64,
    device: &DeviceAuth,
    user: UserView,
    b: &store::Booked,
    patient: &Found,
) -> ApiResult<CheckinAccess> {
    let (access_token, _) = jwt
        .issue_scoped(
            crate::auth::jwt::Subject {
                user_id: &user.id,
                name: &user.username,
                role: Role::Patient,
                org: &user.organisation_id,
                generation: user.token_generation,
                family: "",
                device: &device.device_id,
            },
            &format!("consultation:{} readings:{}", b.id, patient.id),
            ttl,
        )
        .map_err(ApiError::internal)?;
    Ok(CheckinAccess { access_token, token_type: "Bearer", expires_in: ttl, user })
}

async fn checkin(
    State(state): State<AppState>,
    device: DeviceAuth,
    Json(body): Json<CheckinRequest>,
) -> ApiResult<Json<CheckinResponse>> {
    device.require(&[DeviceKind::Kiosk])?;
    let gate = begin_lookup(&state.throttle, state.config.kiosk_lookup_failures_per_minute, &state.db, &device).await?;
    let now = Utc::now();
    let tz = site_tz(&state.config);
    let today = now.with_timezone(&tz).date_naive();
    let parser = crate::patients::identifiers::parser(&state.config.health_card_qr_format)?;
    let lookup = match lookup_of(&body, parser.as_ref(), today) {
        Ok(l) => l,
        Err(LookupError::Body(why)) => {
            // Not a lookup: the attempt does not count.
            gate.succeeded(&state.throttle);
            return Err(ApiError::validation("", why));
        }
        Err(LookupError::Miss(miss)) => return Err(missed(&state.db, &device, miss, "").await),
    };
    let patient = find_patient(&state.db, &device, &lookup, today).await?;
    gate.succeeded(&state.throttle);

    // Today's booked consultation at this site.
    let (day_start, day_end) = local_day(now, tz);
    let booked =
        store::booked_between(&state.db, &patient.id, &device.organisation_id, &ts(day_start), &ts(day_end)).await?;
    let checkin_id = record_checkin(&state.db, &device, &patient, &lookup, booked.as_ref(), now).await?;

    let patient_name = greeting_name(&patient.name);
    let answer = |message_code: &str, consultation, access| CheckinResponse {
        checkin_id: checkin_id.clone(),
        message_code: message_code.into(),
        patient_name: patient_name.clone(),
        consultation,
        access,
    };
    let Some(b) = booked else {
        return Ok(Json(answer("none_booked_today", None, None)));
    };
    let mut conn = state.db.pool.acquire().await?;
    let opens =
        crate::scheduling::visit::opens_at(&mut conn, &b.id, &b.urgency, state.config.call_open_before_mins).await?;
    drop(conn);
    let consultation = CheckinConsultation {
        id: b.id.clone(),
        starts_at: b.start_at.clone(),
        room_opens_at: opens.map(ts),
        expert_name: b.expert_name.clone(),
    };
    let Some(user) = patient_account(&state.db, &patient).await? else {
        return Ok(Json(answer("no_patient_account", Some(consultation), None)));
    };
    let access = patient_access(&state.jwt, state.config.kiosk_session_ttl_secs, &device, user, &b, &patient)?;
    Ok(Json(answer("in_lobby", Some(consultation), Some(access))))
}

/// Audits a failed lookup (it stays counted by the throttle) and answers its problem.
async fn missed(db: &Db, device: &DeviceAuth, miss: Miss, detail: &str) -> ApiError {
    let recorded = device
        .event("checkin", "patient", "")
        .outcome(Outcome::Denied)
        .detail(if detail.is_empty() { miss.code().to_string() } else { format!("{}: {detail}", miss.code()) })
        .record(db)
        .await;
    match recorded {
        Ok(()) => miss.error(),
        Err(e) => e,
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyDuty {
    /// The check-in that found nothing booked today.
    pub checkin_id: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DutyNotified {
    /// How many doctors on duty were told (0: nobody to tell here; ask at the desk).
    pub notified: u32,
    pub notified_at: String,
}

async fn notify_duty(
    State(state): State<AppState>,
    device: DeviceAuth,
    Json(body): Json<NotifyDuty>,
) -> ApiResult<Json<DutyNotified>> {
    device.require(&[DeviceKind::Kiosk])?;
    let row = store::checkin(&state.db, body.checkin_id.trim(), &device.device_id).await?;
    let Some(store::CheckinRow { patient_id, consultation_id, created_at, duty_notified_at: notified_at, name }) = row
    else {
        return Err(ApiError::not_found("check-in"));
    };
    if consultation_id.is_some() {
        return Err(ApiError::conflict(ErrorCode::AlreadyBooked, "this check-in found a consultation booked today"));
    }
    if let Some(at) = notified_at {
        // Told already: a second tap tells nobody twice.
        return Ok(Json(DutyNotified { notified: 0, notified_at: at }));
    }
    let now = Utc::now();
    let created = DateTime::parse_from_rfc3339(&created_at).map(|t| t.with_timezone(&Utc)).unwrap_or(now);
    if now - created > chrono::Duration::minutes(NOTIFY_WITHIN_MINS) {
        return Err(ApiError::conflict(
            ErrorCode::TooLate,
            format!("a check-in can call the doctor on duty within {NOTIFY_WITHIN_MINS} minutes; check in again"),
        ));
    }
    let doctors =
        crate::directory::store::active_user_ids(&state.db, &device.organisation_id, Role::CommunityDoctor).await?;
    let at = ts(now);
    let mut tx = audit::begin(&state.db).await?;
    store::mark_duty_notified(&mut tx, body.checkin_id.trim(), &at).await?;
    let text = crate::notifications::Text::new("kiosk_walk_in").with("name", &name).with("kiosk", &device.label);
    let notice = crate::notifications::Notice::new("kiosk_walk_in", text, String::new(), None);
    let stored = crate::notifications::store(&mut tx, &doctors, &notice).await?;
    tx.audit(
        device
            .event("notify_duty", "patient", &patient_id)
            .patient(&patient_id)
            .detail(format!("{} doctors told", doctors.len())),
    )
    .await?;
    tx.commit().await?;
    crate::notifications::publish(&state.notifications, &stored);
    Ok(Json(DutyNotified { notified: doctors.len() as u32, notified_at: at }))
}

pub fn routes() -> Routes {
    Routes::new("kiosk")
        .post("/api/v1/kiosk/checkin", "Check a patient in at a kiosk (kiosk device token)", checkin)
        .device_auth()
        .body::<CheckinRequest>()
        .json::<CheckinResponse>(200)
        .errors(&[404, 429])
        .post(
            "/api/v1/kiosk/notify-duty",
            "Tell the doctors on duty that a checked-in patient has nothing booked today (kiosk device token)",
            notify_duty,
        )
        .device_auth()
        .body::<NotifyDuty>()
        .json::<DutyNotified>(200)
        .errors(&[404, 409])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patients::health_card::Tchc1;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn req() -> CheckinRequest {
        CheckinRequest { qr: None, card_number: None, resident_id: None, birth_date: None }
    }

    #[test]
    fn a_request_names_one_way_to_find_the_patient() {
        let today = d(2026, 12, 4);
        let qr = Tchc1::encode("EHC0000000001", "DEMO-EHC", d(2036, 12, 31));
        assert_eq!(
            lookup_of(&CheckinRequest { qr: Some(qr.clone()), ..req() }, &Tchc1, today),
            Ok(Lookup::Card {
                card_id: "EHC0000000001".into(),
                issuer: "DEMO-EHC".into(),
                valid_until: d(2036, 12, 31)
            })
        );
        assert_eq!(
            lookup_of(
                &CheckinRequest {
                    card_number: Some("ehc 0000 000001".into()),
                    birth_date: Some("1948-05-12".into()),
                    ..req()
                },
                &Tchc1,
                today
            ),
            Ok(Lookup::CardNumber { number: "EHC0000000001".into(), birth_date: d(1948, 5, 12) })
        );
        let rid17 = "11010519480512002";
        let rid = format!("{rid17}{}", crate::patients::resident_id::check_char(rid17).unwrap());
        assert_eq!(
            lookup_of(
                &CheckinRequest {
                    resident_id: Some(rid.to_lowercase()),
                    birth_date: Some("1948-05-12".into()),
                    ..req()
                },
                &Tchc1,
                today
            ),
            Ok(Lookup::ResidentId { number: rid, birth_date: d(1948, 5, 12) })
        );
        assert!(matches!(lookup_of(&req(), &Tchc1, today), Err(LookupError::Body(_))));
        assert!(matches!(
            lookup_of(
                &CheckinRequest { qr: Some(qr), card_number: Some("EHC0000000001".into()), ..req() },
                &Tchc1,
                today
            ),
            Err(LookupError::Body(_))
        ));
        assert!(matches!(
            lookup_of(&CheckinRequest { card_number: Some("EHC0000000001".into()), ..req() }, &Tchc1, today),
            Err(LookupError::Body(_))
        ));
    }

    #[test]
    fn bad_and_expired_cards_have_their_own_codes() {
        let today = d(2026, 12, 4);
        let expired = Tchc1::encode("EHC0000000001", "DEMO-EHC", d(2026, 12, 3));
        assert_eq!(
            lookup_of(&CheckinRequest { qr: Some(expired), ..req() }, &Tchc1, today),
            Err(LookupError::Miss(Miss::Expired))
        );
        assert_eq!(
            lookup_of(&CheckinRequest { qr: Some("http://example.org".into()), ..req() }, &Tchc1, today),
            Err(LookupError::Miss(Miss::Invalid))
        );
        assert_eq!(
            lookup_of(
                &CheckinRequest { card_number: Some("12".into()), birth_date: Some("1948-05-12".into()), ..req() },
                &Tchc1,
                today
            ),
            Err(LookupError::Miss(Miss::Invalid))
        );
        let rid17 = "11010519480512002";
        let wrong = if crate::patients::resident_id::check_char(rid17) == Some('1') { '2' } else { '1' };
        assert_eq!(
            lookup_of(
                &CheckinRequest {
                    resident_id: Some(format!("{rid17}{wrong}")),
                    birth_date: Some("1948-05-12".into()),
                    ..req()
                },
                &Tchc1,
                today
            ),
            Err(LookupError::Miss(Miss::Invalid)),
            "a resident ID number whose check character is wrong"
        );
        assert_eq!(
            [Miss::Invalid, Miss::Expired, Miss::Unknown].map(Miss::code),
            [ErrorCode::CardInvalid, ErrorCode::CardExpired, ErrorCode::CardUnknown]
        );
    }

    #[test]
    fn the_kiosk_day_is_the_local_day() {
        // 23:30 in Shanghai on 4 December is 15:30 UTC.
        let now = DateTime::parse_from_rfc3339("2026-12-04T15:30:00Z").unwrap().with_timezone(&Utc);
        let tz = crate::scheduling::slots::DEFAULT_TZ;
        let (start, end) = local_day(now, tz);
        assert_eq!(ts(start), "2026-12-03T16:00:00.000000Z");
        assert_eq!(ts(end), "2026-12-04T16:00:00.000000Z");
        let after_midnight = DateTime::parse_from_rfc3339("2026-12-04T16:30:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(ts(local_day(after_midnight, tz).0), "2026-12-04T16:00:00.000000Z");
    }

    #[test]
    fn a_shared_screen_shows_part_of_the_name() {
        assert_eq!(greeting_name("张秀英"), "张*英");
        assert_eq!(greeting_name("欧阳建国"), "欧**国");
        assert_eq!(greeting_name("李明"), "李*");
        assert_eq!(greeting_name("Anna Maria Schmidt"), "A. M. S.");
    }
}
