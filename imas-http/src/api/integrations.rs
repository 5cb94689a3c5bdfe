//! Integration keys (SPEC §4): `POST /services/{id}/integrations` (the answer
//! is the only place the key is shown), `GET /services/{id}/integrations`
//! (never with a key) and `DELETE /integrations/{id}` (revokes at once).
//! Admins only; the engine checks it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imas_core::model::{CreatedIntegration, Integration, IntegrationId, NewIntegration, ServiceId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, parse_path};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_integrations, create_integration))
        .routes(routes!(revoke_integration))
}

#[utoipa::path(post, tag = "integrations", path = "/services/{id}/integrations", params(("id" = ServiceId, Path, description = "service id")), request_body = NewIntegration, responses((status = 201, body = CreatedIntegration, description = "the integration with its key: 32 characters [a-z0-9], shown in this answer only (IMAS keeps a hash)"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer, description = "no such service")), security(("bearer" = [])))]
pub(crate) async fn create_integration(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBody(new): JsonBody<NewIntegration>,
) -> ApiResult<Response> {
    let created = s
        .engine
        .create_integration(&who, parse_path(&id)?, new)
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(get, tag = "integrations", path = "/services/{id}/integrations", params(("id" = ServiceId, Path, description = "service id")), responses((status = 200, body = Vec<Integration>, description = "the service's integrations that are not revoked, oldest first, without their keys"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer, description = "no such service")), security(("bearer" = [])))]
pub(crate) async fn list_integrations(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Integration>>> {
    Ok(Json(
        s.engine.list_integrations(&who, parse_path(&id)?).await?,
    ))
}

#[utoipa::path(delete, tag = "integrations", path = "/integrations/{id}", params(("id" = IntegrationId, Path, description = "integration id")), responses((status = 204, description = "revoked: its key is refused from now on"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer, description = "no such integration, or already revoked")), security(("bearer" = [])))]
pub(crate) async fn revoke_integration(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine.revoke_integration(&who, parse_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
