//! The handlers: parse, call the engine, shape the answer like the original's.

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::header::{IF_MATCH, LINK};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use imas_core::engine::{IncidentPatch, NewIncident, NewUser};
use imas_core::model::{
    AuditFilter, Cursor, Incident, IncidentFilter, IncidentId, IncidentType, NotificationId, Page,
    Priority, Role, Status, User, UserId,
};
use serde::{Deserialize, Deserializer, Serialize};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    AuditQuery, Auth, ClientAddr, IncidentQuery, JsonBody, ListParams, PageQuery, date, priorities,
    statuses, user_id,
};

/// A JSON array answer with `Link: <...>; rel="next"` when there is a next page.
fn paged<T: Serialize>(uri: &Uri, page: Page<T>) -> Response {
    with_next_link(Json(page.items).into_response(), uri, page.next)
}

/// Adds `Link: <...>; rel="next"` when there is a next page.
fn with_next_link(mut response: Response, uri: &Uri, next: Option<Cursor>) -> Response {
    if let Some(link) = next.and_then(|n| next_link(uri, n)) {
        response.headers_mut().insert(LINK, link);
    }
    response
}

fn next_link(uri: &Uri, next: Cursor) -> Option<HeaderValue> {
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    pairs.retain(|(k, _)| k != "cursor");
    pairs.push(("cursor".into(), next.encode()));
    let query = serde_urlencoded::to_string(&pairs).ok()?;
    HeaderValue::from_str(&format!("<{}?{query}>; rel=\"next\"", uri.path())).ok()
}

fn parse_path<T: std::str::FromStr<Err = imas_core::Error>>(raw: &str) -> ApiResult<T> {
    raw.parse::<T>()
        .map_err(|_| ApiError::invalid("id", "expected an id (a UUID)"))
}

// ----- auth ------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterBody {
    /// Display name.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Letters, digits, `.`, `_` and `-`.
    #[schema(min_length = 3, max_length = 50, pattern = "^[A-Za-z0-9._-]+$")]
    username: String,
    /// At least 8 characters, not a commonly used password.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    /// An email address.
    #[schema(min_length = 3, max_length = 254)]
    email: String,
}

/// Answer of `POST /auth/register`: the user's public fields and a token.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Registered {
    #[serde(flatten)]
    user: User,
    token: String,
}

/// Answer of `POST /auth/login`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenAnswer {
    token: String,
}

/// Answer of `POST /sla/assign-sla` and `POST /api/escalations/manual`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MessageAnswer {
    message: String,
    incident: Incident,
}

/// Answer of `GET /sla/violations`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ViolationsAnswer {
    total_violations: u64,
    notified: u64,
    skipped: u64,
    violations: Vec<Incident>,
}

/// An error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorAnswer {
    error: String,
    /// The field at fault, for validation errors.
    field: Option<String>,
}

#[utoipa::path(post, path = "/auth/register", request_body = RegisterBody, responses((status = 201, body = Registered), (status = 400, body = ErrorAnswer), (status = 409, body = ErrorAnswer), (status = 503, body = ErrorAnswer, description = "password hashing at capacity; see Retry-After")))]
pub(crate) async fn register(
    State(s): State<AppState>,
    JsonBody(b): JsonBody<RegisterBody>,
) -> ApiResult<Response> {
    let (user, token) = s
        .engine
        .register(NewUser {
            name: b.name,
            username: b.username,
            email: b.email,
            password: b.password,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Registered { user, token })).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    username: String,
    password: String,
}

#[utoipa::path(post, path = "/auth/login", request_body = LoginBody, responses((status = 200, body = TokenAnswer), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 429, body = ErrorAnswer, description = "too many failed attempts for the username or the address; see Retry-After"), (status = 503, body = ErrorAnswer, description = "password hashing at capacity; see Retry-After")))]
pub(crate) async fn login(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(b): JsonBody<LoginBody>,
) -> ApiResult<Response> {
    let token = s
        .engine
        .login_from(&b.username, &b.password, client)
        .await?;
    Ok(Json(TokenAnswer { token }).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    role: Role,
}

#[utoipa::path(patch, path = "/users/{id}/role", params(("id" = UserId, Path, description = "user id")), request_body = RoleBody, responses((status = 200, body = User), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "the last admin cannot be demoted")), security(("bearer" = [])))]
pub(crate) async fn change_role(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RoleBody>,
) -> ApiResult<Json<User>> {
    let id: UserId = parse_path(&id)?;
    Ok(Json(s.engine.change_role(&who, id, b.role).await?))
}

// ----- incidents -------------------------------------------------------------------

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
}

#[utoipa::path(post, path = "/incidents", request_body = CreateIncidentBody, responses((status = 201, body = Incident), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer, description = "role not allowed, or a `user` setting assignedTo"), (status = 429, body = ErrorAnswer, description = "reporting limit reached; see Retry-After")), security(("bearer" = [])))]
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
    };
    let incident = s.engine.create_incident(&who, input).await?;
    Ok((StatusCode::CREATED, Json(incident)).into_response())
}

fn incident_filter(p: &ListParams) -> ApiResult<IncidentFilter> {
    Ok(IncidentFilter {
        status: statuses(p.status.as_deref())?,
        priority: priorities(p.priority.as_deref())?,
        assigned_to: user_id("assignedTo", p.assigned_to.as_deref())?,
        created_from: date("startDate", p.start_date.as_deref(), false)?,
        created_to: date("endDate", p.end_date.as_deref(), true)?,
        q: p.q.clone().filter(|q| !q.trim().is_empty()),
        ..Default::default()
    })
}

#[utoipa::path(get, path = "/incidents", params(PageQuery, IncidentQuery), responses((status = 200, body = Vec<Incident>, description = "newest first; Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
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

#[utoipa::path(get, path = "/incidents/{id}", params(("id" = IncidentId, Path, description = "incident id")), responses((status = 200, body = Incident), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
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

#[utoipa::path(put, path = "/incidents/{id}", params(("id" = IncidentId, Path, description = "incident id"), ("If-Match" = Option<String>, Header, description = "expected version")), request_body = UpdateIncidentBody, responses((status = 200, body = Incident), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer)), security(("bearer" = [])))]
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

#[utoipa::path(delete, path = "/incidents/{id}", params(("id" = IncidentId, Path, description = "incident id")), responses((status = 204), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn delete_incident(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine.delete_incident(&who, parse_path(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- SLA and escalation ----------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignSlaBody {
    id: IncidentId,
    priority: Priority,
}

#[utoipa::path(post, path = "/sla/assign-sla", request_body = AssignSlaBody, responses((status = 200, body = MessageAnswer), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn assign_sla(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(b): JsonBody<AssignSlaBody>,
) -> ApiResult<Response> {
    let incident = s.engine.assign_sla(&who, b.id, b.priority).await?;
    let message = format!(
        "SLA of {}h assigned",
        incident.sla_target_ms as f64 / 3_600_000.0
    );
    Ok(Json(MessageAnswer { message, incident }).into_response())
}

#[utoipa::path(get, path = "/sla/violations", params(PageQuery), responses((status = 200, body = ViolationsAnswer), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn violations(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    let v = s.engine.list_violations(&who, p.page()?).await?;
    let response = Json(ViolationsAnswer {
        total_violations: v.total,
        notified: v.notified,
        skipped: v.skipped,
        violations: v.page.items,
    })
    .into_response();
    Ok(with_next_link(response, &uri, v.page.next))
}

#[utoipa::path(get, path = "/api/escalations", params(PageQuery), responses((status = 200, body = Vec<Incident>), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_escalations(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    Ok(paged(
        &uri,
        s.engine.list_escalations(&who, p.page()?).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EscalateBody {
    id: IncidentId,
    #[schema(max_length = 1000)]
    reason: Option<String>,
}

#[utoipa::path(post, path = "/api/escalations/manual", request_body = EscalateBody, responses((status = 200, body = MessageAnswer), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn escalate(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(b): JsonBody<EscalateBody>,
) -> ApiResult<Response> {
    let incident = s.engine.escalate_manually(&who, b.id, b.reason).await?;
    let message = format!("Incident escalated to level {}", incident.escalation_level);
    Ok(Json(MessageAnswer { message, incident }).into_response())
}

// ----- notifications and audit -----------------------------------------------------

#[utoipa::path(get, path = "/notifications", params(PageQuery), responses((status = 200, body = Vec<imas_core::model::Notification>), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_notifications(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    Ok(paged(
        &uri,
        s.engine.list_notifications(&who, p.page()?).await?,
    ))
}

#[utoipa::path(patch, path = "/notifications/{id}/read", params(("id" = NotificationId, Path, description = "notification id")), responses((status = 200, body = imas_core::model::Notification), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn mark_read(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: NotificationId = parse_path(&id)?;
    Ok(Json(s.engine.mark_notification_read(&who, id).await?).into_response())
}

#[utoipa::path(get, path = "/audit", params(PageQuery, AuditQuery), responses((status = 200, body = Vec<imas_core::model::AuditEntry>), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_audit(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    let filter = AuditFilter {
        action: p
            .action
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(str::parse)
            .transpose()?,
        actor: p
            .actor
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(str::parse)
            .transpose()?,
        target: p.target.clone().filter(|t| !t.is_empty()),
        from: match &p.from {
            Some(from) => date("from", Some(from), false)?,
            None => date("startDate", p.start_date.as_deref(), false)?,
        },
        to: match &p.to {
            Some(to) => date("to", Some(to), true)?,
            None => date("endDate", p.end_date.as_deref(), true)?,
        },
    };
    Ok(paged(
        &uri,
        s.engine.list_audit(&who, &filter, p.page()?).await?,
    ))
}

#[utoipa::path(get, path = "/notifications/stream", responses((status = 200, content_type = "text/event-stream", description = "Server-Sent Events: one `notification` event (JSON) per new notification of the caller; comments keep an idle stream alive; the stream ends when the token expires"), (status = 401, body = ErrorAnswer), (status = 429, body = ErrorAnswer, description = "the caller already has the most live streams open at once", headers(("Retry-After" = u64, description = "seconds")))), security(("bearer" = [])))]
pub(crate) async fn notification_stream(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    let token = crate::extract::bearer(&headers)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <token>",
        )
    })?;
    let events = s.engine.open_notification_stream(token).await?.map(|n| {
        Event::default()
            .event("notification")
            .json_data(&n)
            .or_else(|_| {
                Ok::<_, std::convert::Infallible>(Event::default().comment("unserialisable"))
            })
    });
    let mut shutdown = s.shutdown.clone();
    let stop = async move {
        if let Some(rx) = shutdown.as_mut() {
            let _ = rx.wait_for(|stop| *stop).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    // Fused, like every stream handed to a body: a body polled after its end
    // must stay ended.
    Ok(Sse::new(events.take_until(stop).fuse())
        .keep_alive(KeepAlive::default())
        .into_response())
}

// ----- dead letters ----------------------------------------------------------------

/// Query of `GET /admin/dead-letters`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterParams {
    /// How many, oldest first (1..=500, default 50).
    limit: Option<String>,
}

/// A notification whose delivery failed for good (or ran out of attempts).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeadLetterAnswer {
    /// The notification's idempotency key: what to redrive.
    key: String,
    /// The last error.
    error: String,
    /// Deliveries tried.
    attempts: u32,
    /// When it was dead-lettered.
    dead_at: chrono::DateTime<chrono::Utc>,
    /// The notification intent (recipient, message, type, incident).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

#[utoipa::path(get, path = "/admin/dead-letters", params(DeadLetterParams), responses((status = 200, body = [DeadLetterAnswer]), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_dead_letters(
    State(s): State<AppState>,
    Auth(who): Auth,
    Query(p): Query<DeadLetterParams>,
) -> ApiResult<Json<Vec<DeadLetterAnswer>>> {
    let page = ListParams {
        limit: p.limit,
        ..ListParams::default()
    }
    .page()?;
    let dead = s.engine.list_dead_letters(&who, page.limit).await?;
    Ok(Json(
        dead.into_iter()
            .map(|d| DeadLetterAnswer {
                key: d.key,
                error: d.error,
                attempts: d.attempts,
                dead_at: d.failed_at,
                payload: d.payload,
            })
            .collect(),
    ))
}

/// Answer of `POST /admin/dead-letters/{key}/redrive`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RedriveAnswer {
    key: String,
    message: String,
}

#[utoipa::path(post, path = "/admin/dead-letters/{key}/redrive", params(("key" = String, Path, description = "the dead letter's key")), responses((status = 202, body = RedriveAnswer, description = "handed to the workers again"), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn redrive_dead_letter(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    s.engine.redrive_dead_letter(&who, &key).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RedriveAnswer {
            key,
            message: "redriven: the workers will deliver it again".into(),
        }),
    )
        .into_response())
}

// ----- reports ---------------------------------------------------------------------

/// The original's answer to a missing or unknown `format`.
pub(crate) const BAD_FORMAT: &str = "Invalid format. Use 'csv' or 'pdf'.";

/// Incidents exported per page while streaming a report.
const REPORT_BATCH: u32 = 500;

/// Query of `GET /reports/incidents`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportParams {
    /// `csv` or `pdf` (anything else, or none, is a 400).
    #[param(value_type = ReportFormat, inline, required = true)]
    format: Option<String>,
    /// Status, or several separated by commas.
    #[param(style = Form, explode = false, value_type = Option<Vec<Status>>)]
    status: Option<String>,
    /// Priority, or several separated by commas.
    #[param(style = Form, explode = false, value_type = Option<Vec<Priority>>)]
    priority: Option<String>,
    /// Created at or after (RFC 3339 or YYYY-MM-DD); years 1 to 9999.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    start_date: Option<String>,
    /// Created at or before (RFC 3339 or YYYY-MM-DD, inclusive of that day);
    /// years 1 to 9999.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    end_date: Option<String>,
}

/// The formats of `GET /reports/incidents`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum ReportFormat {
    /// RFC 4180 CSV.
    Csv,
    /// PDF.
    Pdf,
}

#[utoipa::path(get, path = "/reports/incidents", params(ReportParams), responses((status = 200, description = "the report, streamed", content((String = "text/csv"), (String = "application/pdf"))), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 501, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn report(
    State(s): State<AppState>,
    Auth(who): Auth,
    Query(p): Query<ReportParams>,
) -> ApiResult<Response> {
    imas_core::rbac::require(who.role, imas_core::rbac::Permission::ExportReports)?;
    let format = p.format.as_deref().map(str::to_ascii_lowercase);
    let filter = IncidentFilter {
        status: statuses(p.status.as_deref())?,
        priority: priorities(p.priority.as_deref())?,
        created_from: date("startDate", p.start_date.as_deref(), false)?,
        created_to: date("endDate", p.end_date.as_deref(), true)?,
        ..Default::default()
    };
    match format.as_deref() {
        Some("csv") => csv_report(&s, &who, filter).await,
        Some("pdf") => {
            let described = [
                ("status", &p.status),
                ("priority", &p.priority),
                ("startDate", &p.start_date),
                ("endDate", &p.end_date),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
            .collect();
            pdf_report(&s, &who, filter, described).await
        }
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, BAD_FORMAT)),
    }
}

/// The report's pages, with the first one fetched before the answer is
/// started: a report that fails at once (the store is down) is a clean error
/// status, not a download cut off before its first byte.
#[cfg(any(feature = "csv", feature = "pdf"))]
async fn report_pages(
    s: &AppState,
    who: &imas_core::Principal,
    filter: IncidentFilter,
) -> ApiResult<
    impl futures::stream::FusedStream<Item = imas_core::Result<Vec<imas_core::model::Incident>>>
    + Unpin
    + Send
    + 'static,
> {
    use futures::StreamExt;
    let mut pages = Box::pin(
        s.engine
            .export_incidents(who, filter, REPORT_BATCH)?
            .peekable(),
    );
    if let Some(Err(_)) = pages.as_mut().peek().await
        && let Some(Err(e)) = pages.next().await
    {
        return Err(e.into());
    }
    Ok(pages)
}

#[cfg(feature = "csv")]
async fn csv_report(
    s: &AppState,
    who: &imas_core::Principal,
    filter: IncidentFilter,
) -> ApiResult<Response> {
    use futures::StreamExt;
    let header = imas_core::report::csv_header()?;
    let pages = report_pages(s, who, filter).await?;
    let rows = pages.map(|page| page.and_then(|items| imas_core::report::csv_rows(&items)));
    let body = futures::stream::once(async move { Ok(header) }).chain(rows);
    Ok(attachment(
        body,
        "text/csv; charset=utf-8",
        "attachment; filename=\"incidents.csv\"",
    ))
}

/// A report streamed as a download. A failure after the first bytes can only
/// cut the body short (the status and headers are sent): it is logged.
///
/// The stream is fused before it becomes the body: a body may be polled again
/// after it said it has ended (tower-http's compression body does, looking for
/// trailers), and an unfused `unfold` or `chain` then panics mid-response.
#[cfg(any(feature = "csv", feature = "pdf"))]
fn attachment(
    body: impl futures::Stream<Item = imas_core::Result<Vec<u8>>> + Send + 'static,
    content_type: &'static str,
    disposition: &'static str,
) -> Response {
    use futures::StreamExt;
    let body = body
        .map(move |bytes| {
            bytes.map_err(|e| {
                tracing::error!(error = %e, content_type, "report failed while streaming");
                std::io::Error::other(e.to_string())
            })
        })
        .fuse();
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

#[cfg(feature = "pdf")]
async fn pdf_report(
    s: &AppState,
    who: &imas_core::Principal,
    filter: IncidentFilter,
    filters: Vec<(String, String)>,
) -> ApiResult<Response> {
    use futures::StreamExt;
    use imas_core::report::{PdfMeta, PdfReport};
    let report = PdfReport::new(PdfMeta {
        filters,
        generated_at: s.engine.now(),
    })?;
    let pages = report_pages(s, who, filter).await?;
    // Each page of incidents becomes the PDF pages it fills; the summary, the
    // page total and the font follow the last one.
    let body = futures::stream::unfold(Some((pages, report)), |state| async move {
        let (mut pages, mut report) = state?;
        match pages.next().await {
            Some(Ok(items)) => {
                let bytes = report.push(&items).map(|()| report.take());
                Some((bytes, Some((pages, report))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None => Some((report.finish(), None)),
        }
    });
    Ok(attachment(
        body,
        "application/pdf",
        "attachment; filename=\"incidents.pdf\"",
    ))
}

#[cfg(not(feature = "pdf"))]
async fn pdf_report(
    _: &AppState,
    _: &imas_core::Principal,
    _: IncidentFilter,
    _: Vec<(String, String)>,
) -> ApiResult<Response> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "PDF reports are not compiled in (feature `pdf`)",
    ))
}

#[cfg(not(feature = "csv"))]
async fn csv_report(
    _: &AppState,
    _: &imas_core::Principal,
    _: IncidentFilter,
) -> ApiResult<Response> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "CSV reports are not compiled in (feature `csv`)",
    ))
}

// ----- service ---------------------------------------------------------------------

/// Answer of `GET /healthz`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct HealthAnswer {
    /// `ok`, or `degraded` when a backend is unreachable.
    #[schema(pattern = "^(ok|degraded)$")]
    status: String,
    /// `ok` or `unavailable`.
    #[schema(pattern = "^(ok|unavailable)$")]
    store: String,
    /// `ok` or `unavailable`.
    #[schema(pattern = "^(ok|unavailable)$")]
    queue: String,
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, body = HealthAnswer, description = "store and queue reachable"), (status = 503, body = HealthAnswer, description = "a backend is unreachable")))]
pub(crate) async fn healthz(State(s): State<AppState>) -> Response {
    let store = s
        .engine
        .store()
        .next_due_at()
        .await
        .map(|_| "ok")
        .map_err(|e| e.to_string());
    let queue = s
        .engine
        .queue()
        .stats()
        .await
        .map(|_| "ok")
        .map_err(|e| e.to_string());
    let healthy = store.is_ok() && queue.is_ok();
    if let Err(e) = &store {
        tracing::warn!(error = %e, "health check: store unreachable");
    }
    if let Err(e) = &queue {
        tracing::warn!(error = %e, "health check: queue unreachable");
    }
    let word = |r: &Result<&str, String>| if r.is_ok() { "ok" } else { "unavailable" };
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "store": word(&store),
        "queue": word(&queue),
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    Json(crate::openapi::ApiDoc::openapi())
}

pub(crate) async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

// ----- operations ------------------------------------------------------------------

/// `GET /metrics`: Prometheus text (0.0.4) of the request series and of the
/// engine's state read now (SPEC §8). With a metrics token configured, only a
/// request carrying it as `Authorization: Bearer <token>` is answered.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String), (status = 401, description = "a metrics token is configured and the request does not carry it", body = ErrorAnswer), (status = 503, description = "a backend is unreachable", body = ErrorAnswer)), security((), ("bearer" = [])))]
pub(crate) async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = &s.metrics_token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !crate::metrics::bearer_matches(given, token) {
            let mut answer = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "metrics require the metrics token as a bearer token",
            )
            .into_response();
            answer.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return Ok(answer);
        }
    }
    let text = crate::metrics::render(&s.engine, &s.metrics)
        .await
        .map_err(|e| crate::metrics::unavailable(&e))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}
