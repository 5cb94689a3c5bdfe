//! Schedules (SPEC §5): `/schedules` (list, create), `/schedules/{id}` (read,
//! change, delete), their overrides (`POST /schedules/{id}/overrides`,
//! `DELETE /schedules/{id}/overrides/{oid}`) and the on-call answers:
//! `GET /schedules/{id}/on-call?at=`, `GET /schedules/{id}/shifts?start=&end=`
//! and `GET /oncall?at=` (every schedule). Admins change schedules, admins and
//! engineers read them, and an engineer may add or delete an override that
//! adds or removes himself; the engine checks it, validates them and refuses
//! to delete a schedule an escalation policy names (409).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imas_core::model::{
    NewOverride, NewSchedule, OnCall, OnCallEverywhere, Override, OverrideId, Schedule, ScheduleId,
    SchedulePatch, Shift,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, paged, parse_path, parse_path_param};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{
    AtQuery, Auth, InstantParams, JsonBody, ListParams, PageQuery, RangeQuery, instant,
    required_instant,
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(get_schedule, update_schedule, delete_schedule))
        .routes(routes!(add_override))
        .routes(routes!(delete_override))
        .routes(routes!(schedule_on_call))
        .routes(routes!(schedule_shifts))
        .routes(routes!(on_call_everywhere))
}

#[utoipa::path(get, tag = "on-call", path = "/schedules", params(PageQuery), responses((status = 200, body = Vec<Schedule>, description = "newest first; Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_schedules(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    Ok(paged(&uri, s.engine.list_schedules(&who, p.page()?).await?))
}

#[utoipa::path(post, tag = "on-call", path = "/schedules", request_body = NewSchedule, responses((status = 201, body = Schedule), (status = 400, body = ErrorAnswer, description = "a field is invalid (named in `field`): an unknown time zone, a time that is not HH:MM, empty weekdays, a user or rotation that does not exist, ..."), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn create_schedule(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(new): JsonBody<NewSchedule>,
) -> ApiResult<Response> {
    let schedule = s.engine.create_schedule(&who, new).await?;
    Ok((StatusCode::CREATED, Json(schedule)).into_response())
}

#[utoipa::path(get, tag = "on-call", path = "/schedules/{id}", params(("id" = ScheduleId, Path, description = "schedule id")), responses((status = 200, body = Schedule, description = "the schedule with its rules and overrides"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn get_schedule(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Schedule>> {
    Ok(Json(s.engine.get_schedule(&who, parse_path(&id)?).await?))
}

#[utoipa::path(patch, tag = "on-call", path = "/schedules/{id}", params(("id" = ScheduleId, Path, description = "schedule id")), request_body = SchedulePatch, responses((status = 200, body = Schedule), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "the schedule changed meanwhile (a concurrent write): read it again and retry")), security(("bearer" = [])))]
pub(crate) async fn update_schedule(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<SchedulePatch>,
) -> ApiResult<Json<Schedule>> {
    Ok(Json(
        s.engine
            .update_schedule(&who, parse_path(&id)?, patch)
            .await?,
    ))
}

#[utoipa::path(delete, tag = "on-call", path = "/schedules/{id}", params(("id" = ScheduleId, Path, description = "schedule id")), responses((status = 204, description = "deleted, with its overrides"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "an escalation policy names the schedule")), security(("bearer" = [])))]
pub(crate) async fn delete_schedule(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine.delete_schedule(&who, parse_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, tag = "on-call", path = "/schedules/{id}/overrides", params(("id" = ScheduleId, Path, description = "schedule id")), request_body(content = NewOverride, description = "`addUserId` alone adds, `removeUserId` alone removes, both replace (only while the removed user is on call)"), responses((status = 201, body = Override), (status = 400, body = ErrorAnswer, description = "start not before end, end in the past, neither user given, a user who does not exist, ..."), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer, description = "not an admin, and not an engineer adding or removing himself"), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "the schedule has 1,000 overrides, or changed meanwhile")), security(("bearer" = [])))]
pub(crate) async fn add_override(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBody(new): JsonBody<NewOverride>,
) -> ApiResult<Response> {
    let created = s.engine.add_override(&who, parse_path(&id)?, new).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(delete, tag = "on-call", path = "/schedules/{id}/overrides/{oid}", params(("id" = ScheduleId, Path, description = "schedule id"), ("oid" = OverrideId, Path, description = "override id")), responses((status = 204, description = "deleted"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer, description = "not an admin, and not an engineer the override adds or removes"), (status = 404, body = ErrorAnswer, description = "no such schedule or override"), (status = 409, body = ErrorAnswer, description = "the schedule changed meanwhile")), security(("bearer" = [])))]
pub(crate) async fn delete_override(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path((id, oid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let schedule: ScheduleId = parse_path(&id)?;
    let oid: OverrideId = parse_path_param("oid", &oid)?;
    s.engine.delete_override(&who, schedule, oid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, tag = "on-call", path = "/schedules/{id}/on-call", params(("id" = ScheduleId, Path, description = "schedule id"), AtQuery), responses((status = 200, body = OnCall, description = "who is on call at `at`: the users of the rules active then, changed by the overrides active then; possibly nobody"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn schedule_on_call(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<InstantParams>,
) -> ApiResult<Json<OnCall>> {
    let id: ScheduleId = parse_path(&id)?;
    let at = instant("at", q.at.as_deref())?;
    Ok(Json(s.engine.schedule_on_call(&who, id, at).await?))
}

#[utoipa::path(get, tag = "on-call", path = "/schedules/{id}/shifts", params(("id" = ScheduleId, Path, description = "schedule id"), RangeQuery), responses((status = 200, body = Vec<Shift>, description = "per user, the stretches on call within [start, end), merged; `truncated` when one goes on before start or after end"), (status = 400, body = ErrorAnswer, description = "start or end missing or not RFC 3339, end not after start, or a range over 90 days"), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn schedule_shifts(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    Query(q): Query<InstantParams>,
) -> ApiResult<Json<Vec<Shift>>> {
    let id: ScheduleId = parse_path(&id)?;
    let start = required_instant("start", q.start.as_deref())?;
    let end = required_instant("end", q.end.as_deref())?;
    Ok(Json(s.engine.schedule_shifts(&who, id, start, end).await?))
}

#[utoipa::path(get, tag = "on-call", path = "/oncall", params(AtQuery), responses((status = 200, body = OnCallEverywhere, description = "every schedule with who is on call in it at `at`"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn on_call_everywhere(
    State(s): State<AppState>,
    Auth(who): Auth,
    Query(q): Query<InstantParams>,
) -> ApiResult<Json<OnCallEverywhere>> {
    let at = instant("at", q.at.as_deref())?;
    Ok(Json(s.engine.on_call_everywhere(&who, at).await?))
}
