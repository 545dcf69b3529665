//! Identifiers of a patient beyond the resident ID: the electronic health card (电子健康卡,
//! added by its number or by its QR payload), the medical insurance number, a phone number.
//! A value is unique per (kind, issuer) among identifiers in use (409
//! `identifier_in_use`); identifiers are retired, never deleted; they are shown masked only
//! (`4401********1234`, `138****5678`), to everyone: whoever needs the number has the card.
//! Added and retired by those who edit the record (`patients::may_edit`); every read and
//! write is audited with the patient.

pub use crate::domain::people::IdentifierKind;

use super::health_card::{self, CardError};
use super::store::{self, IdentifierRow};
use crate::api::{Json, Path};
use crate::app::AppState;
use crate::audit;
use crate::db::{new_id, now_ts, Db};
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use crate::principal::AuthUser;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Pure: an identifier as shown. A phone keeps its first 3 and last 4 digits
/// (`138****5678`); other numbers their first 4 and last 4 (`4401********1234`); values
/// shorter than 9 characters (or too short for that to hide a quarter) keep only a quarter
/// at each end.
pub fn mask(kind: IdentifierKind, value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let (head, tail) = match kind {
        IdentifierKind::Phone => (3, 4),
        _ => (4, 4),
    };
    let (head, tail) = if head + tail <= n / 2 + n / 4 && n >= 9 {
        (head, tail)
    } else {
        // Show at most half: a quarter at each end.
        (n / 4, n / 4)
    };
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', n - head - tail));
    out.extend(&chars[n - tail..]);
    out
}

/// Pure: the stored form of a typed value of `kind`, or why it is refused.
pub fn normalise(kind: IdentifierKind, raw: &str) -> Result<String, &'static str> {
    match kind {
        IdentifierKind::HealthCard | IdentifierKind::Insurance => {
            health_card::normalise_card_id(raw).ok_or("6 to 40 letters or digits")
        }
        IdentifierKind::Phone => {
            let trimmed = raw.trim();
            let (plus, rest) = match trimmed.strip_prefix('+') {
                Some(r) => ("+", r),
                None => ("", trimmed),
            };
            let digits: String = rest.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
            if (5..=20).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
                Ok(format!("{plus}{digits}"))
            } else {
                Err("5 to 20 digits, optionally after '+'")
            }
        }
    }
}

/// An identifier as everyone sees it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IdentifierView {
    pub id: String,
    pub kind: IdentifierKind,
    pub issuer: String,
    pub masked: String,
    /// The last day a health card is valid (from its QR code or as entered).
    pub valid_until: Option<String>,
    pub added_at: String,
    pub retired_at: Option<String>,
}

impl IdentifierRow {
    fn view(self) -> IdentifierView {
        IdentifierView {
            id: self.id,
            kind: self.kind,
            issuer: self.issuer,
            masked: mask(self.kind, &self.value),
            valid_until: self.valid_until,
            added_at: self.added_at,
            retired_at: self.retired_at,
        }
    }
}

/// The patient's identifiers in use, masked (the caller has already been allowed to see the
/// record and audited).
pub async fn in_use(db: &Db, patient_id: &str) -> ApiResult<Vec<IdentifierView>> {
    let rows = store::identifiers_in_use(db, patient_id).await?;
    Ok(rows.into_iter().map(IdentifierRow::view).collect())
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIdentifier {
    pub kind: IdentifierKind,
    /// The number (card id, insurance number, phone); or give `qr` for a health card.
    #[serde(default)]
    pub value: Option<String>,
    /// A health card's QR payload (format `health_card_qr_format`): it gives the card id,
    /// the issuer and the validity.
    #[serde(default)]
    pub qr: Option<String>,
    /// Who issued it (the provincial health-card platform, the insurance fund, `CN` for a
    /// phone); required unless `qr` gives it or the kind is `phone`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The last day a health card is valid, YYYY-MM-DD.
    #[serde(default)]
    pub valid_until: Option<String>,
}

/// A checked identifier ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub kind: IdentifierKind,
    pub issuer: String,
    pub value: String,
    pub valid_until: Option<String>,
}

/// Pure: checks a new identifier (`field` prefixes the field names in errors, e.g.
/// `identifiers[0]`). A QR payload is read with `parser`.
pub fn check(n: &NewIdentifier, parser: &dyn health_card::CardPayloadParser, field: &str) -> ApiResult<Checked> {
    let f = |name: &str| if field.is_empty() { name.to_string() } else { format!("{field}.{name}") };
    if let Some(qr) = &n.qr {
        if n.kind != IdentifierKind::HealthCard {
            return Err(ApiError::validation(&f("qr"), "only a health card has a QR code"));
        }
        if n.value.is_some() || n.issuer.is_some() || n.valid_until.is_some() {
            return Err(ApiError::validation(&f("qr"), "give either the QR code or the number, issuer and validity"));
        }
        let card = parser.parse(qr).map_err(|e| match e {
            CardError::Invalid(why) => ApiError::validation(&f("qr"), why),
            CardError::Expired(_) => ApiError::validation(&f("qr"), "the card has expired"),
        })?;
        return Ok(Checked {
            kind: n.kind,
            issuer: card.issuer,
            value: card.card_id,
            valid_until: Some(card.valid_until.format("%Y-%m-%d").to_string()),
        });
    }
    let raw = n.value.as_deref().ok_or_else(|| ApiError::validation(&f("value"), "the number is required"))?;
    let value = normalise(n.kind, raw).map_err(|why| ApiError::validation(&f("value"), why))?;
    let issuer = match (n.issuer.as_deref().map(str::trim), n.kind) {
        (Some(i), _) if health_card::valid_issuer(i) => i.to_string(),
        (Some(_), _) => {
            return Err(ApiError::validation(&f("issuer"), "1 to 64 characters: letters, digits, '.', '_', ':', '-'"))
        }
        (None, IdentifierKind::Phone) => "CN".to_string(),
        (None, _) => return Err(ApiError::validation(&f("issuer"), "who issued the number is required")),
    };
    let valid_until = match &n.valid_until {
        None => None,
        Some(_) if n.kind != IdentifierKind::HealthCard => {
            return Err(ApiError::validation(&f("valid_until"), "only a health card has a validity"))
        }
        Some(d) => Some(
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| ApiError::validation(&f("valid_until"), "a date as YYYY-MM-DD"))?
                .format("%Y-%m-%d")
                .to_string(),
        ),
    };
    Ok(Checked { kind: n.kind, issuer, value, valid_until })
}

fn in_use_conflict(c: &Checked) -> ApiError {
    ApiError::conflict(
        ErrorCode::IdentifierInUse,
        format!("this {} number of {} is already recorded for a patient", c.kind.as_str().replace('_', " "), c.issuer),
    )
}

/// Adds checked identifiers to a patient inside the caller's audited transaction; answers
/// their ids. A value already in use answers 409 `identifier_in_use`.
pub async fn insert(
    tx: &mut audit::AuditedTx,
    actor: &AuthUser,
    patient_id: &str,
    identifiers: &[Checked],
) -> ApiResult<Vec<String>> {
    let mut ids = Vec::new();
    for c in identifiers {
        if store::identifier_taken(tx, c).await? {
            return Err(in_use_conflict(c));
        }
        let id = new_id();
        let inserted = store::insert_identifier(tx, &id, patient_id, c, &actor.id).await;
        match inserted {
            Ok(_) => {}
            // Two requests adding the same number at once: the index decides.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Err(in_use_conflict(c)),
            Err(e) => return Err(e.into()),
        }
        tx.audit(audit::event(actor, "create", "patient_identifier", &id).patient(patient_id).detail(format!(
            "{} {} {}",
            c.kind.as_str(),
            c.issuer,
            mask(c.kind, &c.value)
        )))
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// The QR parser of `qr_format` (`health_card_qr_format`).
pub fn parser(qr_format: &str) -> ApiResult<Box<dyn health_card::CardPayloadParser>> {
    health_card::parser_for(qr_format).ok_or_else(|| ApiError::internal("health_card_qr_format names no parser"))
}

/// Loads the patient whose identifiers `action` changes (404 when not visible, audited).
async fn patient_to_change(db: &Db, user: &AuthUser, id: &str, action: &str) -> ApiResult<super::Patient> {
    super::load_to_act(db, user, id, action).await
}

/// Refuses (403) a caller who sees the patient but does not keep their record.
fn editable(user: &AuthUser, patient: &super::Patient) -> ApiResult<()> {
    if !super::may_edit(user, patient) {
        return Err(ApiError::forbidden("identifiers are kept by the patient's home organisation's staff"));
    }
    Ok(())
}

/// The audit event of `action` on an identifier (`identifier` empty for a new one) of patient `id`.
fn on_identifier(user: &AuthUser, action: &str, identifier: &str, id: &str) -> audit::AuditEvent {
    audit::event(user, action, "patient_identifier", identifier).patient(id)
}

pub(super) async fn add(
    State(state): State<AppState>,
    user: AuthUser,
    Path(crate::db::Id(id)): Path<crate::db::Id>,
    Json(body): Json<NewIdentifier>,
) -> ApiResult<(StatusCode, Json<IdentifierView>)> {
    let patient = patient_to_change(&state.db, &user, &id, "create").await?;
    let done = async {
        editable(&user, &patient)?;
        let checked = check(&body, parser(&state.config.health_card_qr_format)?.as_ref(), "")?;
        let mut tx = audit::begin(&state.db).await?;
        let ids = insert(&mut tx, &user, &id, &[checked]).await?;
        tx.commit().await?;
        Ok(ids)
    };
    let ids = on_identifier(&user, "create", "", &id).if_refused(&state.db, done.await).await?;
    let new = ids.into_iter().next().unwrap_or_default();
    let view = in_use(&state.db, &id)
        .await?
        .into_iter()
        .find(|v| v.id == new)
        .ok_or_else(|| ApiError::internal("added identifier vanished"))?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireIdentifier {
    /// Why (a lost card, a changed number), kept with the identifier.
    #[serde(default)]
    pub reason: String,
}

pub(super) async fn retire(
    State(state): State<AppState>,
    user: AuthUser,
    Path((crate::db::Id(id), crate::db::Id(identifier_id))): Path<(crate::db::Id, crate::db::Id)>,
    Json(body): Json<RetireIdentifier>,
) -> ApiResult<Json<IdentifierView>> {
    if body.reason.chars().count() > 500 {
        return Err(ApiError::validation("reason", "at most 500 characters"));
    }
    let patient = patient_to_change(&state.db, &user, &id, "retire").await?;
    let done = async {
        editable(&user, &patient)?;
        let row = store::identifier(&state.db, &id, &identifier_id).await?;
        let row = row.ok_or_else(|| ApiError::not_found("identifier"))?;
        if row.retired_at.is_some() {
            return Ok(Json(row.view()));
        }
        let mut tx = audit::begin(&state.db).await?;
        let now = now_ts();
        store::retire_identifier(&mut tx, &identifier_id, &user.id, body.reason.trim(), &now).await?;
        tx.audit(
            audit::event(&user, "retire", "patient_identifier", &identifier_id).patient(&id).detail(body.reason.trim()),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(IdentifierView { retired_at: Some(now), ..row.view() }))
    };
    on_identifier(&user, "retire", &identifier_id, &id).if_refused(&state.db, done.await).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn numbers_are_masked_as_people_expect() {
        assert_eq!(mask(IdentifierKind::HealthCard, "4401061234561234"), "4401********1234");
        assert_eq!(mask(IdentifierKind::Insurance, "44010600000012345678"), "4401************5678");
        assert_eq!(mask(IdentifierKind::Phone, "13812345678"), "138****5678");
        assert_eq!(mask(IdentifierKind::Phone, "+8613812345678"), "+86*******5678");
        // Short values never show more than half.
        assert_eq!(mask(IdentifierKind::Phone, "12345678"), "12****78");
        assert_eq!(mask(IdentifierKind::Insurance, "ABC123"), "A****3");
        for (kind, v) in
            [(IdentifierKind::HealthCard, "EHC4401060000123456"), (IdentifierKind::Phone, "+8613812345678")]
        {
            let m = mask(kind, v);
            assert_eq!(m.chars().count(), v.chars().count());
            assert!(m.chars().filter(|c| *c != '*').count() * 2 <= v.len(), "{m}");
        }
    }

    #[test]
    fn typed_numbers_are_normalised_or_refused() {
        assert_eq!(normalise(IdentifierKind::Phone, " 138-1234 5678 ").unwrap(), "13812345678");
        assert_eq!(normalise(IdentifierKind::Phone, "+86 138 1234 5678").unwrap(), "+8613812345678");
        assert!(normalise(IdentifierKind::Phone, "138x1234").is_err());
        assert_eq!(normalise(IdentifierKind::HealthCard, "ehc 4401-0600").unwrap(), "EHC44010600");
        assert!(normalise(IdentifierKind::Insurance, "12").is_err());
    }

    fn new(kind: IdentifierKind) -> NewIdentifier {
        NewIdentifier { kind, value: None, qr: None, issuer: None, valid_until: None }
    }

    #[test]
    fn a_health_card_comes_from_its_qr_code_or_its_number_and_issuer() {
        let p = health_card::Tchc1;
        let qr =
            health_card::Tchc1::encode("EHC4401060000123456", "GD-EHC", NaiveDate::from_ymd_opt(2030, 12, 31).unwrap());
        let c = check(&NewIdentifier { qr: Some(qr.clone()), ..new(IdentifierKind::HealthCard) }, &p, "").unwrap();
        assert_eq!(
            c,
            Checked {
                kind: IdentifierKind::HealthCard,
                issuer: "GD-EHC".into(),
                value: "EHC4401060000123456".into(),
                valid_until: Some("2030-12-31".into())
            }
        );
        let typed = NewIdentifier {
            value: Some("ehc4401060000123456".into()),
            issuer: Some("GD-EHC".into()),
            ..new(IdentifierKind::HealthCard)
        };
        assert_eq!(check(&typed, &p, "").unwrap().value, "EHC4401060000123456");
        // Missing issuer, QR on another kind, QR and number together, a bad QR: named fields.
        let e = check(
            &NewIdentifier { value: Some("4401061234561234".into()), ..new(IdentifierKind::Insurance) },
            &p,
            "identifiers[1]",
        )
        .unwrap_err();
        assert_eq!(e.errors[0].field, "identifiers[1].issuer");
        let e = check(&NewIdentifier { qr: Some(qr.clone()), ..new(IdentifierKind::Insurance) }, &p, "").unwrap_err();
        assert_eq!(e.errors[0].field, "qr");
        let e =
            check(&NewIdentifier { qr: Some(qr), value: Some("x".into()), ..new(IdentifierKind::HealthCard) }, &p, "")
                .unwrap_err();
        assert_eq!(e.errors[0].field, "qr");
        let e = check(&NewIdentifier { qr: Some("TCHC1|garbage".into()), ..new(IdentifierKind::HealthCard) }, &p, "")
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, "qr"));
        // A phone's issuer defaults to CN.
        let phone =
            check(&NewIdentifier { value: Some("13812345678".into()), ..new(IdentifierKind::Phone) }, &p, "").unwrap();
        assert_eq!((phone.issuer.as_str(), phone.valid_until), ("CN", None));
    }
}
