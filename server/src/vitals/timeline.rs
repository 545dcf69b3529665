//! One longitudinal record of a resident: every consultation, signed opinion, referral,
//! follow-up plan, file, ECG and vital sign, across all centres and hospitals of the
//! consortium, newest first, each item only to those who may see it ([`may_see`], pure).
//!
//! Who sees which item:
//! - the patient: all of their own record;
//! - a community doctor of the patient's home centre (the family doctor): all;
//! - another community doctor who sees the patient (a referral sent to their centre): the
//!   referrals their centre sends or receives, and what belongs to consultations they take
//!   part in;
//! - an expert: what belongs to consultations they take part in (not declined), referrals
//!   assigned to them or written by them, and vital signs while they take part in an active
//!   consultation of the patient;
//! - admins and coordinators: not the clinical timeline (403).

use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::audit;
use crate::auth::{AuthUser, Role};
use crate::db::{ts, Id};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;

/// The kinds of timeline items.
pub const KINDS: [&str; 7] = ["consultation", "opinion", "referral", "follow_up", "file", "ecg", "vital"];

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineFilter {
    /// Comma-separated kinds: consultation, opinion, referral, follow_up, file, ecg, vital.
    pub kind: Option<String>,
    /// RFC 3339 lower bound (inclusive).
    pub from: Option<crate::db::ClientTime>,
    /// RFC 3339 upper bound (exclusive).
    pub to: Option<crate::db::ClientTime>,
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TimelineItem {
    /// The record's own id (a consultation's, an opinion's, a reading's, ...).
    pub id: String,
    /// consultation, opinion, referral, follow_up, file, ecg or vital.
    pub kind: String,
    /// When it happened: requested, signed, referred, planned, uploaded, measured.
    pub at: String,
    pub consultation_id: Option<String>,
    /// A line to show, e.g. the consultation's reason or a reading's values.
    pub title: String,
    /// Its state (a consultation's or referral's status; `current` for a reading).
    pub status: String,
    /// What the item carries besides, by kind (a reading's values; an ECG's heart rate and
    /// QTc; an opinion's impression and plain-words summary; ...).
    pub data: Value,
}

/// What decides whether a viewer sees an item.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub consultation_id: Option<String>,
    /// For a referral: its author, assignee and the two organisations.
    pub referral: Option<(String, Option<String>, String, String)>,
    pub is_vital: bool,
}

/// The viewer's relationship to the patient.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub role: Role,
    pub user_id: String,
    pub org: String,
    /// The patient themself, or a community doctor of the patient's home centre.
    pub whole_record: bool,
    /// Consultations of the patient the viewer takes part in (not declined).
    pub consultations: HashSet<String>,
    /// An expert taking part in an active consultation of the patient.
    pub active_consultation: bool,
}

/// Whether `v` sees an item with `f` (see the module documentation). Pure.
pub fn may_see(v: &Viewer, f: &Facts) -> bool {
    if v.whole_record {
        return true;
    }
    if f.consultation_id.as_ref().is_some_and(|c| v.consultations.contains(c)) {
        return true;
    }
    if let Some((author, assignee, from, to)) = &f.referral {
        return match v.role {
            Role::CommunityDoctor => *author == v.user_id || *from == v.org || *to == v.org,
            Role::Expert => *author == v.user_id || assignee.as_deref() == Some(v.user_id.as_str()),
            _ => false,
        };
    }
    f.is_vital && v.role == Role::Expert && v.active_consultation && f.consultation_id.is_none()
}

/// A position in the timeline: an item's time and id, written `<at>~<id>`.
fn parse_cursor(c: Option<String>) -> ApiResult<(String, String)> {
    let Some(c) = c else { return Ok((String::new(), String::new())) };
    let bad = || ApiError::validation("cursor", "not a cursor of this list: pass the `next` of the previous page");
    let (at, id) = c.split_once('~').ok_or_else(bad)?;
    let t = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    let id = uuid::Uuid::try_parse(id).map_err(|_| bad())?;
    if ts(t.with_timezone(&chrono::Utc)) != at {
        return Err(bad());
    }
    Ok((at.to_string(), id.hyphenated().to_string()))
}

struct Window {
    from: String,
    to: String,
    after_at: String,
    after_id: String,
    limit: i64,
}

/// The clause that keeps one source's rows within the window, newest first, with `at` the
/// source's time column and `id` its id column; binds `$2`..`$6`.
fn window_clause(at: &str, id: &str) -> String {
    format!(
        "{at} IS NOT NULL AND {at} >= $2 AND {at} < $3 AND ($4 = '' OR {at} < $4 OR ({at} = $4 AND {id} < $5))
         ORDER BY {at} DESC, {id} DESC LIMIT $6"
    )
}

type Row = (TimelineItem, Facts);

async fn source(state: &AppState, kind: &str, patient: &str, w: &Window) -> ApiResult<Vec<Row>> {
    let pool = &state.db.pool;
    macro_rules! fetch {
        ($ty:ty, $sql:expr) => {
            sqlx::query_as::<_, $ty>(&$sql)
                .bind(patient)
                .bind(&w.from)
                .bind(&w.to)
                .bind(&w.after_at)
                .bind(&w.after_id)
                .bind(w.limit)
                .fetch_all(pool)
                .await?
        };
    }
    let facts = |c: &Option<String>| Facts { consultation_id: c.clone(), ..Facts::default() };
    let item = |id: String, kind: &str, at: String, c: Option<String>, title: String, status: String, data: Value| {
        TimelineItem { id, kind: kind.into(), at, consultation_id: c, title, status, data }
    };
    Ok(match kind {
        "consultation" => {
            let rows = fetch!(
                (String, String, String, String, String, String, String),
                format!(
                    "SELECT c.id, c.created_at, c.reason, c.state, c.specialty, c.mode, o.name FROM consultations c
                     JOIN organisations o ON o.id = c.requesting_organisation_id
                     WHERE c.patient_id = $1 AND c.state <> 'draft' AND {}",
                    window_clause("c.created_at", "c.id")
                )
            );
            rows.into_iter()
                .map(|(id, at, reason, st, specialty, mode, org)| {
                    let c = Some(id.clone());
                    let f = facts(&c);
                    (
                        item(
                            id,
                            kind,
                            at,
                            c,
                            reason,
                            st,
                            json!({"specialty": specialty, "mode": mode, "requested_by_organisation": org}),
                        ),
                        f,
                    )
                })
                .collect()
        }
        "opinion" => {
            let rows = fetch!(
                (String, String, String, String, String, String, String),
                format!(
                    "SELECT o.id, o.signed_at, o.consultation_id, o.impression, o.patient_summary, o.signer_name, o.recommendations
                     FROM opinions o JOIN consultations c ON c.id = o.consultation_id
                     WHERE c.patient_id = $1 AND o.status = 'signed' AND {}",
                    window_clause("o.signed_at", "o.id")
                )
            );
            rows.into_iter()
                .map(|(id, at, c, impression, summary, signer, recommendations)| {
                    let c = Some(c);
                    let f = facts(&c);
                    let data = json!({"impression": impression, "patient_summary": summary, "signer_name": signer, "recommendations": recommendations});
                    (item(id, kind, at, c, impression, "signed".into(), data), f)
                })
                .collect()
        }
        "referral" => {
            let rows = fetch!(
                (String, String, Option<String>, String, String, String, String, String, String, Option<String>, String),
                format!(
                    "SELECT r.id, r.created_at, r.consultation_id, r.reason, r.status, r.direction, r.from_organisation_id,
                            r.to_organisation_id, r.created_by, r.assigned_to, o.name
                     FROM referrals r JOIN organisations o ON o.id = r.to_organisation_id
                     WHERE r.patient_id = $1 AND r.status <> 'entered_in_error' AND {}",
                    window_clause("r.created_at", "r.id")
                )
            );
            rows.into_iter()
                .map(|(id, at, c, reason, st, direction, from, to, author, assignee, to_name)| {
                    let f = Facts {
                        consultation_id: c.clone(),
                        referral: Some((author, assignee, from, to)),
                        is_vital: false,
                    };
                    (item(id, kind, at, c, reason, st, json!({"direction": direction, "to_organisation": to_name})), f)
                })
                .collect()
        }
        "follow_up" => {
            let rows = fetch!(
                (String, String, Option<String>, String, String, i64, i64, String),
                format!(
                    "SELECT id, created_at, consultation_id, condition, status, interval_weeks, visits, targets
                     FROM follow_up_plans WHERE patient_id = $1 AND status <> 'entered_in_error' AND {}",
                    window_clause("created_at", "id")
                )
            );
            rows.into_iter()
                .map(|(id, at, c, condition, st, interval, visits, t)| {
                    let f = facts(&c);
                    let targets = super::worklist::targets_of(&t, &condition);
                    let data = json!({"condition": condition, "interval_weeks": interval, "visits": visits, "targets": targets});
                    (item(id, kind, at, c, condition, st, data), f)
                })
                .collect()
        }
        "file" | "ecg" => {
            let ecg = kind == "ecg";
            let rows = fetch!(
                (String, String, String, String, String, Option<String>),
                format!(
                    "SELECT f.id, f.created_at, f.consultation_id, f.name, f.kind, a.measurements
                     FROM files f JOIN consultations c ON c.id = f.consultation_id LEFT JOIN ecg_analyses a ON a.file_id = f.id
                     WHERE c.patient_id = $1 AND {} AND {}",
                    if ecg { "f.kind = 'ecg'" } else { "f.kind <> 'ecg'" },
                    window_clause("f.created_at", "f.id")
                )
            );
            rows.into_iter()
                .map(|(id, at, c, name, file_kind, m)| {
                    let c = Some(c);
                    let f = facts(&c);
                    let m: Value = m.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or(Value::Null);
                    let data = if ecg {
                        json!({"file_kind": file_kind, "heart_rate_bpm": m["heart_rate_bpm"], "qtc_bazett_ms": m["qtc_bazett_ms"], "rhythm": m["rhythm"]})
                    } else {
                        json!({"file_kind": file_kind})
                    };
                    (item(id, kind, at, c, name, "stored".into(), data), f)
                })
                .collect()
        }
        "vital" => {
            let rows: Vec<super::ObservationRow> = fetch!(
                super::ObservationRow,
                format!(
                    "SELECT {} FROM observations WHERE patient_id = $1 AND status = 'current' AND {}",
                    super::OBSERVATION_COLUMNS,
                    window_clause("measured_at", "id")
                )
            );
            rows.into_iter()
                .map(|r| {
                    let o = super::Observation::from(r);
                    let f = Facts { consultation_id: o.consultation_id.clone(), referral: None, is_vital: true };
                    let data =
                        json!({"reading_kind": o.kind, "values": o.values, "source": o.source, "device": o.device});
                    (item(o.id, kind, o.measured_at, o.consultation_id, o.summary, o.status, data), f)
                })
                .collect()
        }
        _ => Vec::new(),
    })
}

pub async fn get_timeline(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Query(f): Query<TimelineFilter>,
) -> ApiResult<Json<crate::api::Page<TimelineItem>>> {
    let limit = crate::api::page_limit(f.limit, 200)?;
    let (mut after_at, mut after_id) = parse_cursor(f.cursor)?;
    let kinds: Vec<&str> = match &f.kind {
        None => KINDS.to_vec(),
        Some(k) => {
            let mut out = Vec::new();
            for part in k.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let Some(known) = KINDS.iter().find(|x| **x == part) else {
                    return Err(ApiError::validation("kind", format!("one or more of {}", KINDS.join(", "))));
                };
                out.push(*known);
            }
            out
        }
    };
    if matches!(user.role, Role::Admin | Role::Coordinator) {
        audit::event(&user, "read", "timeline", &id).outcome(audit::Outcome::Denied).record(&state.db).await?;
        return Err(ApiError::forbidden("the clinical timeline is the patient's and their doctors'"));
    }
    let patient = crate::patients::load_for(&state.db, &user, &id, "read_timeline").await?;
    let mine: Vec<(String,)> = sqlx::query_as(
        "SELECT c.id FROM consultations c JOIN consultation_participants cp ON cp.consultation_id = c.id
         WHERE c.patient_id = $1 AND cp.user_id = $2 AND cp.status <> 'declined'",
    )
    .bind(&id)
    .bind(&user.id)
    .fetch_all(&state.db.pool)
    .await?;
    let viewer = Viewer {
        role: user.role,
        user_id: user.id.clone(),
        org: user.org.clone(),
        whole_record: match user.role {
            Role::Patient => patient.user_id.as_deref() == Some(user.id.as_str()),
            Role::CommunityDoctor => patient.home_organisation_id == user.org,
            _ => false,
        },
        consultations: mine.into_iter().map(|r| r.0).collect(),
        active_consultation: user.role == Role::Expert
            && !super::active_consultations_of(&state, &id, &user.id).await?.is_empty(),
    };
    let from = f.from.map(|t| ts(t.into())).unwrap_or_default();
    let to = f.to.map(|t| ts(t.into())).unwrap_or_else(|| "9999".into());
    let mut items = Vec::new();
    let mut next = None;
    // Items the viewer may not see are skipped; a few rounds fill the page.
    for _ in 0..8 {
        let w = Window {
            from: from.clone(),
            to: to.clone(),
            after_at: after_at.clone(),
            after_id: after_id.clone(),
            limit: (limit + 1) as i64,
        };
        let mut merged: Vec<Row> = Vec::new();
        for k in &kinds {
            merged.extend(source(&state, k, &id, &w).await?);
        }
        merged.sort_by(|a, b| (&b.0.at, &b.0.id).cmp(&(&a.0.at, &a.0.id)));
        let more = merged.len() > limit - items.len();
        let mut last = None;
        for (item, facts) in merged.into_iter().take(limit - items.len()) {
            last = Some((item.at.clone(), item.id.clone()));
            if may_see(&viewer, &facts) {
                items.push(item);
            }
        }
        next = None;
        if !more {
            break;
        }
        let (at, iid) = last.expect("a full round has a last item");
        next = Some(format!("{at}~{iid}"));
        if items.len() >= limit {
            break;
        }
        (after_at, after_id) = (at, iid);
    }
    audit::event(&user, "read", "timeline", &id)
        .patient(&id)
        .detail(format!("{} items", items.len()))
        .record(&state.db)
        .await?;
    Ok(Json(crate::api::Page { items, next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(role: Role, whole: bool, mine: &[&str], active: bool) -> Viewer {
        Viewer {
            role,
            user_id: "me".into(),
            org: "my-org".into(),
            whole_record: whole,
            consultations: mine.iter().map(|s| s.to_string()).collect(),
            active_consultation: active,
        }
    }

    fn of(c: Option<&str>) -> Facts {
        Facts { consultation_id: c.map(str::to_string), ..Facts::default() }
    }

    fn vital(c: Option<&str>) -> Facts {
        Facts { is_vital: true, ..of(c) }
    }

    fn referral(author: &str, assignee: Option<&str>, from: &str, to: &str) -> Facts {
        Facts { referral: Some((author.into(), assignee.map(str::to_string), from.into(), to.into())), ..of(None) }
    }

    #[test]
    fn the_family_doctor_and_the_patient_see_everything() {
        for v in [viewer(Role::CommunityDoctor, true, &[], false), viewer(Role::Patient, true, &[], false)] {
            for f in [of(Some("c9")), vital(None), referral("x", None, "a", "b")] {
                assert!(may_see(&v, &f));
            }
        }
    }

    #[test]
    fn an_expert_sees_their_consultations_and_vitals_only_while_active() {
        let v = viewer(Role::Expert, false, &["c1"], false);
        assert!(may_see(&v, &of(Some("c1"))));
        assert!(may_see(&v, &vital(Some("c1"))), "a reading taken in their consultation");
        assert!(!may_see(&v, &of(Some("c2"))), "another expert's consultation");
        assert!(!may_see(&v, &vital(None)), "home readings: only during an active consultation");
        assert!(may_see(&viewer(Role::Expert, false, &["c1"], true), &vital(None)));
        assert!(!may_see(&viewer(Role::Expert, false, &["c1"], true), &vital(Some("c2"))));
        assert!(may_see(&v, &referral("other", Some("me"), "a", "b")), "assigned to them");
        assert!(!may_see(&v, &referral("other", None, "my-org", "b")), "their hospital's desk is not them");
    }

    #[test]
    fn another_centre_sees_only_what_its_referral_brings() {
        let v = viewer(Role::CommunityDoctor, false, &[], false);
        assert!(may_see(&v, &referral("x", None, "home", "my-org")));
        assert!(!may_see(&v, &referral("x", None, "home", "hospital")));
        assert!(!may_see(&v, &vital(None)));
        assert!(!may_see(&v, &of(Some("c1"))));
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = "2026-12-01T00:00:00.000000Z~0192f0c4-7b1e-7cc3-a000-0123456789ab";
        assert_eq!(
            parse_cursor(Some(c.into())).unwrap(),
            ("2026-12-01T00:00:00.000000Z".into(), "0192f0c4-7b1e-7cc3-a000-0123456789ab".into())
        );
        for bad in ["", "x~y", "2026-12-01T00:00:00Z~0192f0c4-7b1e-7cc3-a000-0123456789ab", "' OR 1=1"] {
            assert!(parse_cursor(Some(bad.into())).is_err(), "{bad}");
        }
    }
}
