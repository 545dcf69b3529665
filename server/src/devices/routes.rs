//! HTTP side of devices: issuing, listing and revoking by users, and the calling device.

use super::store::{self, ListFilter, NewDeviceRow, ViewRow};
use super::{
    new_token, policy, token_hash, CallingDevice, DeviceAuth, DeviceFilter, DeviceKind, DeviceView, IssuedDevice,
    NewDevice, RevokeDevice,
};
use crate::api::{Json, Page, Path, Query, Routes};
use crate::app::AppState;
use crate::audit::{self, Outcome};
use crate::db::{Db, Id};
use crate::directory::policy::Manager;
use crate::domain::people::Role;
use crate::error::{ApiError, ApiResult};
use crate::principal::AuthUser;
use axum::extract::State;
use axum::http::StatusCode;

/// The caller's linked centres (coordinators), for the rules.
async fn linked_of(db: &Db, user: &AuthUser) -> ApiResult<Vec<String>> {
    if user.role == Role::Coordinator {
        crate::directory::linked_centres(db, &user.org).await
    } else {
        Ok(Vec::new())
    }
}

fn refused(r: policy::Refusal) -> ApiError {
    match r {
        policy::Refusal::Hidden => ApiError::not_found("device"),
        policy::Refusal::Forbidden(why) => ApiError::forbidden(why),
    }
}

async fn issue(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<NewDevice>,
) -> ApiResult<(StatusCode, Json<IssuedDevice>)> {
    if !policy::may_list(user.role) {
        return Err(ApiError::forbidden("only admins, coordinators and community doctors issue devices"));
    }
    let label = body.label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(ApiError::validation("label", "1 to 100 characters"));
    }
    // The patient's home centre decides (the rules then require the caller to manage it). A
    // record the caller may not see is not found, as one that does not exist: the answer
    // tells nothing of the records elsewhere.
    let patient_home_org = match (&body.patient_id, body.kind) {
        (Some(_), k) if k != DeviceKind::Home => {
            return Err(ApiError::validation("patient_id", "only a home device is bound to a patient"))
        }
        (Some(pid), _) => Some(
            crate::patients::find_visible(&state.db, &user, pid)
                .await?
                .ok_or_else(|| ApiError::not_found("patient"))?
                .home_organisation_id,
        ),
        (None, _) => None,
    };
    let org = body.organisation_id.clone().or_else(|| patient_home_org.clone()).unwrap_or_else(|| user.org.clone());
    if patient_home_org.as_ref().is_some_and(|home| *home != org) {
        return Err(ApiError::validation(
            "organisation_id",
            "a home device serves the home centre of the patient it is bound to",
        ));
    }
    let linked = linked_of(&state.db, &user).await?;
    let m = Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    let target = policy::Target { org: &org, kind: body.kind, patient_home_org: patient_home_org.as_deref() };
    if let Err(r) = policy::may_issue(&m, &target) {
        audit::event(&user, "issue", "device", "")
            .maybe_patient(body.patient_id.clone())
            .outcome(Outcome::Denied)
            .detail(format!("{} device for organisation {org}", body.kind.as_str()))
            .record(&state.db)
            .await?;
        return Err(refused(r));
    }
    if !crate::directory::store::is_active_organisation(&state.db, &org).await? {
        return Err(ApiError::validation("organisation_id", "no active organisation has this id"));
    }
    let token = new_token();
    let mut tx = audit::begin(&state.db).await?;
    let new = NewDeviceRow {
        organisation_id: &org,
        kind: body.kind,
        label,
        patient_id: body.patient_id.as_deref(),
        token_hash: &token_hash(&token),
        created_by: &user.id,
    };
    let id = store::insert(&mut tx, &new).await?;
    tx.audit(
        audit::event(&user, "issue", "device", &id)
            .maybe_patient(body.patient_id.clone())
            .detail(format!("{} device \"{label}\"", body.kind.as_str())),
    )
    .await?;
    tx.commit().await?;
    let device =
        store::view_row(&state.db, &id).await?.ok_or_else(|| ApiError::internal("issued device vanished"))?.view();
    Ok((StatusCode::CREATED, Json(IssuedDevice { device, token })))
}

async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(f): Query<DeviceFilter>,
) -> ApiResult<Json<Page<DeviceView>>> {
    if !policy::may_list(user.role) {
        return Err(ApiError::forbidden("only admins, coordinators and community doctors see devices"));
    }
    let limit = crate::api::page_limit(f.limit, 200)?;
    // The scope in SQL (so pages are full), the rules again on each row.
    let cursor = crate::api::page_cursor(f.cursor)?;
    let filter = ListFilter {
        organisation_id: f.organisation_id.as_deref().filter(|o| !o.is_empty()),
        kind: f.kind,
        patient_id: f.patient_id.as_deref().filter(|p| !p.is_empty()),
        include_revoked: f.include_revoked.unwrap_or(false),
        after: Some(cursor.as_str()).filter(|c| !c.is_empty()),
    };
    let rows = store::list(&state.db, user.role, &user.org, filter, limit as i64 + 1).await?;
    let linked = linked_of(&state.db, &user).await?;
    let m = Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    let page = crate::api::page(rows, limit, |r| r.id.clone());
    let items: Vec<ViewRow> = page.items.into_iter().filter(|r| policy::may_see(&m, &r.target())).collect();
    // A home device names its patient: reading the binding is a read of patient data.
    let bound: Vec<&ViewRow> = items.iter().filter(|r| r.patient_id.is_some()).collect();
    if !bound.is_empty() {
        let mut tx = state.db.begin_write().await?;
        for r in bound {
            audit::event(&user, "list", "device", &r.id)
                .maybe_patient(r.patient_id.clone())
                .record_with(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(Json(Page { items: items.into_iter().map(ViewRow::view).collect(), next: page.next }))
}

async fn revoke(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Json(body): Json<RevokeDevice>,
) -> ApiResult<Json<DeviceView>> {
    if body.reason.chars().count() > 500 {
        return Err(ApiError::validation("reason", "at most 500 characters"));
    }
    if !policy::may_list(user.role) {
        return Err(ApiError::forbidden("only admins, coordinators and community doctors revoke devices"));
    }
    let row = store::view_row(&state.db, &id).await?.ok_or_else(|| ApiError::not_found("device"))?;
    let linked = linked_of(&state.db, &user).await?;
    let m = Manager { id: &user.id, role: user.role, org: &user.org, linked_centres: &linked };
    if let Err(refusal) = policy::may_revoke(&m, &row.target()) {
        audit::event(&user, "revoke", "device", &id)
            .maybe_patient(row.patient_id.clone())
            .outcome(Outcome::Denied)
            .record(&state.db)
            .await?;
        return Err(refused(refusal));
    }
    if row.revoked_at.is_none() {
        let mut tx = audit::begin(&state.db).await?;
        store::revoke(&mut tx, &id, &user.id).await?;
        tx.audit(
            audit::event(&user, "revoke", "device", &id)
                .maybe_patient(row.patient_id.clone())
                .detail(body.reason.trim()),
        )
        .await?;
        tx.commit().await?;
        // A call a kiosk's check-in seated ends with the kiosk, at once.
        state.accounts.access_changed(&id).await;
    }
    let after = store::view_row(&state.db, &id).await?.ok_or_else(|| ApiError::internal("revoked device vanished"))?;
    Ok(Json(after.view()))
}

/// The calling device, as a kiosk's setup screen checks a pasted token.
async fn me(State(state): State<AppState>, device: DeviceAuth) -> ApiResult<Json<CallingDevice>> {
    let organisation_name = crate::directory::store::organisation_name(&state.db, &device.organisation_id).await?;
    Ok(Json(CallingDevice {
        id: device.device_id,
        kind: device.kind,
        label: device.label,
        organisation_id: device.organisation_id,
        organisation_name,
    }))
}

pub fn routes() -> Routes {
    Routes::new("devices")
        .post("/api/v1/devices", "Issue a device and its token (shown once)", issue)
        .body::<NewDevice>()
        .json::<IssuedDevice>(201)
        .errors(&[404])
        .get("/api/v1/devices", "Devices the caller manages", list)
        .query::<DeviceFilter>()
        .json::<Page<DeviceView>>(200)
        .post("/api/v1/devices/{id}/revoke", "Revoke a device: its token stops working at once", revoke)
        .body::<RevokeDevice>()
        .json::<DeviceView>(200)
        .get("/api/v1/device", "The calling device (device token)", me)
        .device_auth()
        .json::<CallingDevice>(200)
}
