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

use super::store::{self, Window};
use crate::api::{Json, Path, Query};
use crate::app::AppState;
use crate::audit;
use crate::auth::{AuthUser, Role};
use crate::db::{ts, Db, Id};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashSet;

/// The kinds of timeline items.
pub use crate::domain::vitals::TimelineKind;

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
    #[schemars(with = "String")]
    pub kind: TimelineKind,
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
fn parse_cursor(c: Option<String>) -> ApiResult<Option<(String, String)>> {
    let Some(c) = c else { return Ok(None) };
    let bad = || ApiError::validation("cursor", "not a cursor of this list: pass the `next` of the previous page");
    let (at, id) = c.split_once('~').ok_or_else(bad)?;
    let t = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    let id = uuid::Uuid::try_parse(id).map_err(|_| bad())?;
    if ts(t.with_timezone(&chrono::Utc)) != at {
        return Err(bad());
    }
    Ok(Some((at.to_string(), id.hyphenated().to_string())))
}

type Row = (TimelineItem, Facts);

fn item(
    id: String,
    kind: TimelineKind,
    at: String,
    c: Option<String>,
    title: String,
    status: String,
    data: Value,
) -> TimelineItem {
    TimelineItem { id, kind, at, consultation_id: c, title, status, data }
}

fn facts(c: &Option<String>) -> Facts {
    Facts { consultation_id: c.clone(), ..Facts::default() }
}

/// One round's rows of one kind, each with what [`may_see`] decides on.
async fn source(db: &Db, kind: TimelineKind, patient: &str, w: &Window<'_>) -> ApiResult<Vec<Row>> {
    Ok(match kind {
        TimelineKind::Consultation => consultations(store::timeline_consultations(db, patient, w).await?),
        TimelineKind::Opinion => opinions(store::timeline_opinions(db, patient, w).await?),
        TimelineKind::Referral => referrals(store::timeline_referrals(db, patient, w).await?),
        TimelineKind::FollowUp => follow_ups(store::timeline_follow_ups(db, patient, w).await?),
        TimelineKind::File => files(kind, store::timeline_files(db, patient, false, w).await?),
        TimelineKind::Ecg => files(kind, store::timeline_files(db, patient, true, w).await?),
        TimelineKind::Vital => vitals(store::timeline_vitals(db, patient, w).await?),
    })
}

fn consultations(rows: Vec<store::ConsultationRow>) -> Vec<Row> {
    rows.into_iter()
        .map(|(id, at, reason, st, specialty, mode, org)| {
            let c = Some(id.clone());
            let f = facts(&c);
            let data = json!({"specialty": specialty, "mode": mode, "requested_by_organisation": org});
            (item(id, TimelineKind::Consultation, at, c, reason, st, data), f)
        })
        .collect()
}

fn opinions(rows: Vec<store::OpinionRow>) -> Vec<Row> {
    rows.into_iter()
        .map(|(id, at, c, impression, summary, signer, recommendations)| {
            let c = Some(c);
            let f = facts(&c);
            let data = json!({"impression": impression, "patient_summary": summary, "signer_name": signer, "recommendations": recommendations});
            (item(id, TimelineKind::Opinion, at, c, impression, "signed".into(), data), f)
        })
        .collect()
}

fn referrals(rows: Vec<store::ReferralRow>) -> Vec<Row> {
    rows.into_iter()
        .map(|(id, at, c, reason, st, direction, from, to, author, assignee, to_name)| {
            let f = Facts { consultation_id: c.clone(), referral: Some((author, assignee, from, to)), is_vital: false };
            let data = json!({"direction": direction, "to_organisation": to_name});
            (item(id, TimelineKind::Referral, at, c, reason, st, data), f)
        })
        .collect()
}

fn follow_ups(rows: Vec<store::FollowUpRow>) -> Vec<Row> {
    rows.into_iter()
        .map(|(id, at, c, condition, st, interval, visits, t)| {
            let f = facts(&c);
            let targets = super::worklist::targets_of(&t, &condition);
            let data =
                json!({"condition": condition, "interval_weeks": interval, "visits": visits, "targets": targets});
            (item(id, TimelineKind::FollowUp, at, c, condition, st, data), f)
        })
        .collect()
}

/// Files, or ECGs with their pre-read's headline figures.
fn files(kind: TimelineKind, rows: Vec<store::FileRow>) -> Vec<Row> {
    rows.into_iter()
        .map(|(id, at, c, name, file_kind, m)| {
            let c = Some(c);
            let f = facts(&c);
            let m: Value = m.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or(Value::Null);
            let data = if kind == TimelineKind::Ecg {
                json!({"file_kind": file_kind, "heart_rate_bpm": m["heart_rate_bpm"], "qtc_bazett_ms": m["qtc_bazett_ms"], "rhythm": m["rhythm"]})
            } else {
                json!({"file_kind": file_kind})
            };
            (item(id, kind, at, c, name, "stored".into(), data), f)
        })
        .collect()
}

fn vitals(rows: Vec<super::Observation>) -> Vec<Row> {
    rows.into_iter()
        .map(|o| {
            let f = Facts { consultation_id: o.consultation_id.clone(), referral: None, is_vital: true };
            let data = json!({"reading_kind": o.kind, "values": o.values, "source": o.source, "device": o.device});
            (item(o.id, TimelineKind::Vital, o.measured_at, o.consultation_id, o.summary, o.status, data), f)
        })
        .collect()
}

/// The kinds `?kind=` names (comma-separated), or all of them.
fn kinds(filter: Option<&str>) -> ApiResult<Vec<TimelineKind>> {
    let Some(k) = filter else { return Ok(TimelineKind::ALL.to_vec()) };
    let mut out = Vec::new();
    for part in k.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Ok(known) = part.parse::<TimelineKind>() else {
            let all: Vec<&str> = TimelineKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(ApiError::validation("kind", format!("one or more of {}", all.join(", "))));
        };
        out.push(known);
    }
    Ok(out)
}

pub async fn get_timeline(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Query(f): Query<TimelineFilter>,
) -> ApiResult<Json<crate::api::Page<TimelineItem>>> {
    let limit = crate::api::page_limit(f.limit, 200)?;
    let mut after = parse_cursor(f.cursor)?;
    let kinds = kinds(f.kind.as_deref())?;
    if matches!(user.role, Role::Admin | Role::Coordinator) {
        audit::event(&user, "read", "timeline", &id).outcome(audit::Outcome::Denied).record(&state.db).await?;
        return Err(ApiError::forbidden("the clinical timeline is the patient's and their doctors'"));
    }
    let patient = crate::patients::load_for(&state.db, &user, &id, "read_timeline").await?;
    let mine = store::participating_consultations(&state.db, &id, &user.id).await?;
    let viewer = Viewer {
        role: user.role,
        user_id: user.id.clone(),
        org: user.org.clone(),
        whole_record: match user.role {
            Role::Patient => patient.user_id.as_deref() == Some(user.id.as_str()),
            Role::CommunityDoctor => patient.home_organisation_id == user.org,
            _ => false,
        },
        consultations: mine.into_iter().collect(),
        active_consultation: user.role == Role::Expert
            && !store::active_consultations_of(&state.db, &id, &user.id).await?.is_empty(),
    };
    let from = f.from.map(|t| ts(t.into()));
    let to = f.to.map(|t| ts(t.into()));
    let mut items = Vec::new();
    let mut next = None;
    // Items the viewer may not see are skipped; a few rounds fill the page.
    for _ in 0..8 {
        let w = Window {
            from: from.as_deref(),
            to: to.as_deref(),
            after: after.as_ref().map(|(at, id)| (at.as_str(), id.as_str())),
            limit: (limit + 1) as i64,
        };
        let mut merged: Vec<Row> = Vec::new();
        for k in &kinds {
            merged.extend(source(&state.db, *k, &id, &w).await?);
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
        after = Some((at, iid));
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
            Some(("2026-12-01T00:00:00.000000Z".into(), "0192f0c4-7b1e-7cc3-a000-0123456789ab".into()))
        );
        assert_eq!(parse_cursor(None).unwrap(), None);
        for bad in ["", "x~y", "2026-12-01T00:00:00Z~0192f0c4-7b1e-7cc3-a000-0123456789ab", "' OR 1=1"] {
            assert!(parse_cursor(Some(bad.into())).is_err(), "{bad}");
        }
    }
}
