//! Incidents: `/incidents` (create, list with filters and full-text search) and
//! `/incidents/{id}` (read, update with `If-Match`, delete).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::header::IF_MATCH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use imas_core::engine::{IncidentPatch, NewIncident};
use imas_core::model::{
    Incident, IncidentFilter, IncidentId, IncidentType, Priority, ServiceId, Status, UserId,
};
use serde::{Deserialize, Deserializer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, parse_path, with_next_link};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    Auth, IncidentQuery, JsonBody, ListParams, PageQuery, date, priorities, service_id, statuses,
    user_id,
};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_incidents, create_incident))
        .routes(routes!(get_incident, update_incident, delete_incident))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateIncidentBody {
    /// Some non-blank text.
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    #[schema(max_length = 10000)]
    description: Option<String>,
    #[serde(rename = "type")]
    kind: Option<IncidentType>,
    priority: Option<Priority>,
    assigned_to: Option<UserId>,
    /// The service it belongs to (an existing one).
    service_id: Option<ServiceId>,
}

#[utoipa::path(post, tag = "incidents", path = "/incidents", request_body = CreateIncidentBody, responses((status = 201, body = Incident), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer, description = "role not allowed, or a `user` setting assignedTo"), (status = 429, body = ErrorAnswer, description = "reporting limit reached; see Retry-After")), security(("bearer" = [])))]
pub(crate) async fn create_incident(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(b): JsonBody<CreateIncidentBody>,
) -> ApiResult<Response> {
    let input = NewIncident {
        title: b.title,
        description: b.description,
        kind: b.kind,
        priority: b.priority,
        assigned_to: b.assigned_to,
        service_id: b.service_id,
    };
    let incident = s.engine.create_incident(&who, input).await?;
    Ok((StatusCode::CREATED, Json(incident)).into_response())
}

fn incident_filter(p: &ListParams) -> ApiResult<IncidentFilter> {
    Ok(IncidentFilter {
        status: statuses(p.status.as_deref())?,
        priority: priorities(p.priority.as_deref())?,
        assigned_to: user_id("assignedTo", p.assigned_to.as_deref())?,
        service_id: service_id("serviceId", p.service_id.as_deref())?,
        created_from: date("startDate", p.start_date.as_deref(), false)?,
        created_to: date("endDate", p.end_date.as_deref(), true)?,
        q: p.q.clone().filter(|q| !q.trim().is_empty()),
        ..Default::default()
    })
}

#[utoipa::path(get, tag = "incidents", path = "/incidents", params(PageQuery, IncidentQuery), responses((status = 200, body = Vec<Incident>, description = "newest first; Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_incidents(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    let filter = incident_filter(&p)?;
    let page = s
        .engine
        .list_incidents_shared(&who, &filter, p.page()?)
        .await?;
    let body = s.bodies.json(&page)?;
    let response = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    Ok(with_next_link(response, &uri, page.next))
}

#[utoipa::path(get, tag = "incidents", path = "/incidents/{id}", params(("id" = IncidentId, Path, description = "incident id")), responses((status = 200, body = Incident), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn get_incident(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Incident>> {
    Ok(Json(s.engine.get_incident(&who, parse_path(&id)?).await?))
}

/// `null` and absent are different for `assignedTo`: `null` unassigns.
fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<UserId>>, D::Error> {
    Option::<UserId>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct UpdateIncidentBody {
    /// Some non-blank text.
    #[schema(min_length = 1, max_length = 200)]
    title: Option<String>,
    #[schema(max_length = 10000)]
    description: Option<String>,
    #[serde(rename = "type")]
    kind: Option<IncidentType>,
    priority: Option<Priority>,
    status: Option<Status>,
    /// `null` unassigns.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<UserId>)]
    assigned_to: Option<Option<UserId>>,
}

fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::invalid("If-Match", "expected the incident's version, e.g. \"3\""))
}

#[utoipa::path(put, tag = "incidents", path = "/incidents/{id}", params(("id" = IncidentId, Path, description = "incident id"), ("If-Match" = Option<String>, Header, description = "expected version")), request_body = UpdateIncidentBody, responses((status = 200, body = Incident), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn update_incident(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<UpdateIncidentBody>,
) -> ApiResult<Json<Incident>> {
    let patch = IncidentPatch {
        title: b.title,
        description: b.description,
        kind: b.kind,
        priority: b.priority,
        status: b.status,
        assigned_to: b.assigned_to,
    };
    Ok(Json(
        s.engine
            .update_incident(&who, parse_path(&id)?, patch, if_match(&headers)?)
            .await?,
    ))
}

#[utoipa::path(delete, tag = "incidents", path = "/incidents/{id}", params(("id" = IncidentId, Path, description = "incident id")), responses((status = 204), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn delete_incident(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine.delete_incident(&who, parse_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
