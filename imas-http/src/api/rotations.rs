//! Rotations (SPEC §5): `/rotations` (list, create), `/rotations/{id}` (read,
//! change, delete) and `/rotations/{id}/shifts?start=&end=` (who holds each
//! shift of a range of at most 90 days). Admins change them, admins and
//! engineers read them; the engine checks it, validates them and refuses to
//! delete a rotation a schedule rule or an escalation policy names (409).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imas_core::model::{NewRotation, Rotation, RotationId, RotationPatch, Shift};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, paged, parse_path};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{
    Auth, InstantParams, JsonBody, ListParams, PageQuery, RangeQuery, required_instant,
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rotations, create_rotation))
        .routes(routes!(get_rotation, update_rotation, delete_rotation))
        .routes(routes!(rotation_shifts))
}

#[utoipa::path(get, tag = "on-call", path = "/rotations", params(PageQuery), responses((status = 200, body = Vec<Rotation>, description = "newest first; Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_rotations(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    Ok(paged(&uri, s.engine.list_rotations(&who, p.page()?).await?))
}

#[utoipa::path(post, tag = "on-call", path = "/rotations", request_body = NewRotation, responses((status = 201, body = Rotation), (status = 400, body = ErrorAnswer, description = "a field is invalid (named in `field`): an unknown time zone, a shift length out of 1..=9000, a participant who does not exist, ..."), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn create_rotation(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(new): JsonBody<NewRotation>,
) -> ApiResult<Response> {
    let rotation = s.engine.create_rotation(&who, new).await?;
    Ok((StatusCode::CREATED, Json(rotation)).into_response())
}

#[utoipa::path(get, tag = "on-call", path = "/rotations/{id}", params(("id" = RotationId, Path, description = "rotation id")), responses((status = 200, body = Rotation), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn get_rotation(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Rotation>> {
    Ok(Json(s.engine.get_rotation(&who, parse_path(&id)?).await?))
}

#[utoipa::path(patch, tag = "on-call", path = "/rotations/{id}", params(("id" = RotationId, Path, description = "rotation id")), request_body = RotationPatch, responses((status = 200, body = Rotation), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "the rotation changed meanwhile (a concurrent write): read it again and retry")), security(("bearer" = [])))]
pub(crate) async fn update_rotation(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<RotationPatch>,
) -> ApiResult<Json<Rotation>> {
    Ok(Json(
        s.engine
            .update_rotation(&who, parse_path(&id)?, patch)
            .await?,
    ))
}

#[utoipa::path(delete, tag = "on-call", path = "/rotations/{id}", params(("id" = RotationId, Path, description = "rotation id")), responses((status = 204, description = "deleted"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "a schedule rule or an escalation policy names the rotation")), security(("bearer" = [])))]
pub(crate) async fn delete_rotation(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine.delete_rotation(&who, parse_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, tag = "on-call", path = "/rotations/{id}/shifts", params(("id" = RotationId, Path, description = "rotation id"), RangeQuery), responses((status = 200, body = Vec<Shift>, description = "the shifts over [start, end), in time order; `truncated` when a shift goes on before start or after end"), (status = 400, body = ErrorAnswer, description = "start or end missing or not RFC 3339, end not after start, or a range over 90 days"), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn rotation_shifts(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<InstantParams>,
) -> ApiResult<Json<Vec<Shift>>> {
    let id: RotationId = parse_path(&id)?;
    let start = required_instant("start", q.start.as_deref())?;
    let end = required_instant("end", q.end.as_deref())?;
    Ok(Json(s.engine.rotation_shifts(&who, id, start, end).await?))
}
