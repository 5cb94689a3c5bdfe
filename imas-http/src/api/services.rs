//! Services (SPEC §4): `/services` (list, create) and `/services/{id}` (read,
//! change, delete). What alerts and the incidents they open belong to, with
//! the escalation policy its incidents page through (`escalationPolicyId`,
//! SPEC §5) and its acknowledgement timeout (`ackTimeoutSeconds`); `null` in a
//! PATCH removes either. The engine checks who may do what (admins change,
//! admins and engineers read), that the policy exists, and refuses to delete a
//! service with open incidents (409).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imas_core::model::{NewService, Service, ServiceId, ServicePatch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, paged, parse_path};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody, ListParams, PageQuery};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_services, create_service))
        .routes(routes!(get_service, update_service, delete_service))
}

#[utoipa::path(get, tag = "services", path = "/services", params(PageQuery), responses((status = 200, body = Vec<Service>, description = "newest first; Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_services(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    Ok(paged(&uri, s.engine.list_services(&who, p.page()?).await?))
}

#[utoipa::path(post, tag = "services", path = "/services", request_body = NewService, responses((status = 201, body = Service), (status = 400, body = ErrorAnswer, description = "a field is invalid (named in `field`), e.g. an escalationPolicyId that names no policy, an ackTimeoutSeconds out of 1..=604800"), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "a service has this name")), security(("bearer" = [])))]
pub(crate) async fn create_service(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(new): JsonBody<NewService>,
) -> ApiResult<Response> {
    let service = s.engine.create_service(&who, new).await?;
    Ok((StatusCode::CREATED, Json(service)).into_response())
}

#[utoipa::path(get, tag = "services", path = "/services/{id}", params(("id" = ServiceId, Path, description = "service id")), responses((status = 200, body = Service), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn get_service(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Service>> {
    Ok(Json(s.engine.get_service(&who, parse_path(&id)?).await?))
}

#[utoipa::path(patch, tag = "services", path = "/services/{id}", params(("id" = ServiceId, Path, description = "service id")), request_body = ServicePatch, responses((status = 200, body = Service), (status = 400, body = ErrorAnswer, description = "a field is invalid (named in `field`), e.g. an escalationPolicyId that names no policy, an ackTimeoutSeconds out of 1..=604800"), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "a service has this name")), security(("bearer" = [])))]
pub(crate) async fn update_service(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<ServicePatch>,
) -> ApiResult<Json<Service>> {
    Ok(Json(
        s.engine
            .update_service(&who, parse_path(&id)?, patch)
            .await?,
    ))
}

#[utoipa::path(delete, tag = "services", path = "/services/{id}", params(("id" = ServiceId, Path, description = "service id")), responses((status = 204, description = "deleted, its integration keys revoked"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "the service has open incidents")), security(("bearer" = [])))]
pub(crate) async fn delete_service(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine.delete_service(&who, parse_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
