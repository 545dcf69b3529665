//! Figures for coordinators: consultation volumes by state, mode, specialty and centre;
//! median times from request to acceptance and to the signed opinion; referrals up and down
//! per month.

use crate::api::{Json, Query};
use crate::app::AppState;
use crate::auth::{AuthUser, Role};
use crate::db::{parse_ts, ts};

use super::store as record_store;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The median of a list of durations in minutes; `None` for an empty list.
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    Some(if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 })
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FigureQuery {
    pub from: Option<crate::db::ClientTime>,
    pub to: Option<crate::db::ClientTime>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Figures {
    pub consultations_total: i64,
    pub by_state: BTreeMap<String, i64>,
    pub by_mode: BTreeMap<String, i64>,
    pub by_specialty: BTreeMap<String, i64>,
    pub by_centre: BTreeMap<String, i64>,
    pub median_minutes_to_acceptance: Option<f64>,
    pub median_minutes_to_signed_opinion: Option<f64>,
    /// month (YYYY-MM) -> {"up": n, "down": n}
    pub referrals_per_month: BTreeMap<String, BTreeMap<String, i64>>,
}

pub async fn figures(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<FigureQuery>,
) -> ApiResult<Json<Figures>> {
    if !matches!(user.role, Role::Admin | Role::Coordinator) {
        return Err(ApiError::forbidden("figures are for coordinators and admins"));
    }
    let window = record_store::Window { from: q.from.map(|t| ts(t.into())), to: q.to.map(|t| ts(t.into())) };
    let rows = record_store::figure_consultations(&state.db, &user, &window).await?;
    let mut f = Figures {
        consultations_total: rows.len() as i64,
        by_state: BTreeMap::new(),
        by_mode: BTreeMap::new(),
        by_specialty: BTreeMap::new(),
        by_centre: BTreeMap::new(),
        median_minutes_to_acceptance: None,
        median_minutes_to_signed_opinion: None,
        referrals_per_month: BTreeMap::new(),
    };
    for (_, s, m, sp, centre) in &rows {
        *f.by_state.entry(s.clone()).or_default() += 1;
        *f.by_mode.entry(m.clone()).or_default() += 1;
        *f.by_specialty.entry(sp.clone()).or_default() += 1;
        *f.by_centre.entry(centre.clone()).or_default() += 1;
    }
    let transitions = record_store::figure_transitions(&state.db, &user, &window).await?;
    let mut firsts: HashMap<(String, &'static str), String> = HashMap::new();
    for (cid, action, at) in transitions {
        let key = match action.as_str() {
            "submit" => "submit",
            "accept" | "claim" => "accept",
            _ => "sign",
        };
        firsts.entry((cid, key)).or_insert(at);
    }
    let minutes = |cid: &str, key: &'static str| -> Option<f64> {
        let start = parse_ts(firsts.get(&(cid.to_string(), "submit"))?);
        let end = parse_ts(firsts.get(&(cid.to_string(), key))?);
        Some((end - start).num_seconds() as f64 / 60.0)
    };
    f.median_minutes_to_acceptance = median(rows.iter().filter_map(|r| minutes(&r.0, "accept")).collect());
    f.median_minutes_to_signed_opinion = median(rows.iter().filter_map(|r| minutes(&r.0, "sign")).collect());
    let referrals = record_store::figure_referrals(&state.db, &user, &window).await?;
    for (month, dir, n) in referrals {
        f.referrals_per_month.entry(month).or_default().insert(dir, n);
    }
    Ok(Json(f))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
