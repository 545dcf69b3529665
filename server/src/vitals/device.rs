//! The device gateway: readings sent by a device with its own token (`Authorization: Device
//! <token>`, issued and revoked by a clinic admin, `docs/resident.md`), with nobody at the
//! keyboard. A home device is bound to one patient and sends that patient's readings; a
//! kiosk or clinic device names the patient (`?patient_id=`), who must be a patient of the
//! device's organisation or of an organisation linked to it in the consortium. The same
//! checks, idempotency and batches of up to 1,000 as the signed-in path.

use super::reading::NewReading;
use super::{ingest, Access, IngestAnswer, Sender};
use crate::api::{Json, JsonBatch, Query};
use crate::app::AppState;
use crate::audit;
use crate::devices::{DeviceAuth, DeviceKind};
use crate::error::{ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceTarget {
    /// The patient (kiosk and clinic devices); a home device's own patient when absent.
    pub patient_id: Option<String>,
}

/// Whether a device of `device_org` may send readings of a patient whose home is
/// `patient_org`: the same organisation, or the two linked in the consortium. Pure.
pub fn may_name(device_org: &str, patient_org: &str, linked: bool) -> bool {
    device_org == patient_org || linked
}

pub async fn post(
    State(state): State<AppState>,
    device: DeviceAuth,
    Query(q): Query<DeviceTarget>,
    body: JsonBatch<NewReading>,
) -> ApiResult<(StatusCode, Json<IngestAnswer>)> {
    let sender = Sender::Device { device_id: device.device_id.clone(), client_addr: device.client_addr.clone() };
    let denied = |patient: Option<String>| {
        device
            .event("create", "observation", patient.as_deref().unwrap_or(""))
            .maybe_patient(patient)
            .outcome(audit::Outcome::Denied)
    };
    let patient_id = match (device.kind, &device.patient_id, &q.patient_id) {
        (DeviceKind::Home, Some(own), None) => own.clone(),
        (DeviceKind::Home, Some(own), Some(named)) if named == own => own.clone(),
        (DeviceKind::Home, _, _) => {
            return Err(ApiError::validation(
                "patient_id",
                "a home device sends the readings of the patient it is bound to",
            ))
        }
        (_, _, Some(named)) => named.clone(),
        (_, _, None) => return Err(ApiError::validation("patient_id", "a kiosk or clinic device names the patient")),
    };
    if uuid::Uuid::try_parse(&patient_id).is_err() {
        return Err(ApiError::validation("patient_id", "not a patient id"));
    }
    let patient = super::store::patient_ref(&state.db, &patient_id).await?;
    let Some(patient) = patient else {
        denied(None).record(&state.db).await?;
        return Err(ApiError::not_found("patient"));
    };
    if device.kind != DeviceKind::Home {
        let linked =
            crate::directory::store::linked(&state.db, &device.organisation_id, &patient.home_organisation_id).await?;
        if !may_name(&device.organisation_id, &patient.home_organisation_id, linked) {
            denied(Some(patient.id.clone())).record(&state.db).await?;
            return Err(ApiError::not_found("patient"));
        }
    }
    // A device's readings are taken where it stands: a home device's at home, and so on.
    let wrong: Vec<usize> = body
        .items
        .iter()
        .enumerate()
        .filter(|(_, r)| r.source.as_str() != device.kind.as_str())
        .map(|(i, _)| i)
        .collect();
    if let Some(&i) = wrong.first() {
        let field = if body.array { format!("[{i}].source") } else { "source".to_string() };
        return Err(ApiError::validation(
            &field,
            format!("a {} device sends `{}` readings", device.kind.as_str(), device.kind.as_str()),
        ));
    }
    let access = Access { patient, expert_consultations: None };
    let answer = ingest(&state, &sender, &access, body.items, body.array).await?;
    let status = if answer.created > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(answer)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_kiosk_names_patients_of_its_organisation_or_a_linked_one() {
        assert!(super::may_name("centre", "centre", false));
        assert!(super::may_name("hospital", "centre", true));
        assert!(!super::may_name("corner", "centre", false));
    }
}
