//! The JSON API by resource: one module per feature of the engine, each with
//! its own [`OpenApiRouter`] in which a route, its handler and its OpenAPI entry
//! are declared together (`routes!`); [`router`] merges them.

use axum::Json;
use axum::http::header::LINK;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use imas_core::model::{Cursor, Incident, Page};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

mod alertmanager;
mod alerts;
pub(crate) mod audit;
mod escalation_policies;
mod escalations;
mod events_v2;
mod incidents;
mod integrations;
mod notifications;
pub(crate) mod reports;
mod rotations;
mod schedules;
mod service;
mod services;
mod sla;
mod users;

pub use alertmanager::MAX_NOTIFICATION_BYTES;

pub(crate) use service::{method_not_allowed, no_route, openapi_json};

/// Every documented route, with the OpenAPI document they make together
/// (`GET /openapi.json` itself is added by [`crate::router_with`]).
pub(crate) fn router() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi;
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .merge(users::router())
        .merge(incidents::router())
        .merge(sla::router())
        .merge(escalations::router())
        .merge(notifications::router())
        .merge(audit::router())
        .merge(reports::router())
        .merge(services::router())
        .merge(integrations::router())
        .merge(alerts::router())
        .merge(events_v2::router())
        .merge(alertmanager::router())
        .merge(rotations::router())
        .merge(schedules::router())
        .merge(escalation_policies::router())
        .merge(service::router())
}

/// Answer of `POST /sla/assign-sla` and `POST /api/escalations/manual`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MessageAnswer {
    message: String,
    incident: Incident,
}

/// An error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorAnswer {
    error: String,
    /// The field at fault, for validation errors.
    field: Option<String>,
}

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

/// An id from the path; a 400 naming `id` otherwise.
fn parse_path<T: std::str::FromStr<Err = imas_core::Error>>(raw: &str) -> ApiResult<T> {
    parse_path_param("id", raw)
}

/// An id from the path parameter `name`; a 400 naming it otherwise.
fn parse_path_param<T: std::str::FromStr<Err = imas_core::Error>>(
    name: &str,
    raw: &str,
) -> ApiResult<T> {
    raw.parse::<T>()
        .map_err(|_| ApiError::invalid(name, "expected an id (a UUID)"))
}
