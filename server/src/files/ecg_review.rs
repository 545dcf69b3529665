//! The ECG review endpoint: an uploaded ECG file as leads in microvolts with the
//! computer-assisted measurements ([`crate::ecg::http`]), for those who may read the file.

use super::routes::read_all;
use crate::api::{Json, Path, Query, Routes};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::Id;
use crate::domain::files::FileKind;
use crate::ecg::http::{EcgQuery, MAX_ECG_BYTES};
use crate::ecg::EcgView;
use crate::error::ErrorCode;
use crate::error::{ApiError, ApiResult};
use axum::extract::State;

async fn ecg(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
    Query(q): Query<EcgQuery>,
) -> ApiResult<Json<EcgView>> {
    let (file, consultation) = super::readable_file(&state.db, &user, &id).await?;
    if file.kind != FileKind::Ecg {
        return Err(ApiError::unprocessable(ErrorCode::NotAnEcg, "the file is not an ECG recording"));
    }
    crate::audit::event(&user, "read", "file", &id)
        .patient(&consultation.patient_id)
        .detail("ecg")
        .record(&state.db)
        .await?;
    let bytes = read_all(&state.files, &file.storage_key, MAX_ECG_BYTES).await?;
    Ok(Json(crate::ecg::http::review(&state.db, &id, &file.name, bytes, &q).await?))
}

pub fn routes() -> Routes {
    Routes::new("ecg")
        .get(
            "/api/v1/files/{id}/ecg",
            "An ECG file as leads in microvolts with computer-assisted measurements (?max_points= to decimate)",
            ecg,
        )
        .query::<EcgQuery>()
        .json::<EcgView>(200)
        .errors(&[409])
}
