//! The Prometheus Alertmanager webhook receiver (SPEC §4, ANCHORS §1a):
//! `POST /integrations/alertmanager`, authenticated by the key of an
//! integration of kind `alertmanager`, sent as `Authorization: Bearer <key>`
//! (Alertmanager's `http_config.authorization.credentials`) or as `?key=<key>`.
//!
//! The key is looked at before the body is read: a request without one is
//! answered 401 at once. The body is read as bytes whatever its
//! `Content-Type`, up to [`MAX_NOTIFICATION_BYTES`] (Alertmanager sends a whole
//! group in one notification), and handed to the engine. Alertmanager retries
//! on 5xx only, and gives up on a slow receiver, so the answer is a small JSON
//! 200 as soon as the engine has committed; 400 names the field at fault, 401
//! a missing or bad key, 429 (with `Retry-After`) the key's rate limit, and 5xx
//! only a failure of IMAS (so that Alertmanager sends the notification again).

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use imas_core::Error;
use imas_core::engine::AlertmanagerReceipt;
use imas_core::model::{IncidentId, IntegrationKind};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorAnswer;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::metrics::AlertOutcome;

/// Largest notification taken: 4 MiB, a group of a few thousand alerts.
pub const MAX_NOTIFICATION_BYTES: usize = 4 * 1024 * 1024;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive))
        // The route's own limit (innermost, so it overrides the router's).
        .layer(DefaultBodyLimit::max(MAX_NOTIFICATION_BYTES))
}

/// The answer to a notification taken.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotificationTaken {
    /// `success`.
    #[schema(example = "success")]
    status: &'static str,
    /// The group's incident (`null` when the notification held only resolved
    /// alerts of no open incident).
    incident_id: Option<IncidentId>,
    /// Alerts of the notification that opened a new alert.
    opened: usize,
    /// Alerts of the notification that resolved an open alert.
    resolved: usize,
}

/// The Alertmanager webhook payload (version 4).
// Described for the OpenAPI document only: the engine reads the bytes itself
// (`imas_core::model::AlertmanagerMessage`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub(crate) struct NotificationBody {
    /// `4`.
    #[schema(example = "4")]
    version: String,
    /// The group: one open incident per (service, groupKey).
    group_key: String,
    /// Alerts cut off by the receiver's `max_alerts`.
    truncated_alerts: Option<u64>,
    /// The receiver's name.
    receiver: Option<String>,
    /// `firing` or `resolved`.
    status: Option<String>,
    /// The group's alerts; one IMAS alert per fingerprint.
    alerts: Vec<NotificationAlert>,
    /// The labels the group is made by.
    #[schema(value_type = Option<Object>)]
    group_labels: Option<std::collections::BTreeMap<String, String>>,
    /// Labels every alert has.
    #[schema(value_type = Option<Object>)]
    common_labels: Option<std::collections::BTreeMap<String, String>>,
    /// Annotations every alert has (`summary` is the incident's title,
    /// `description` its description).
    #[schema(value_type = Option<Object>)]
    common_annotations: Option<std::collections::BTreeMap<String, String>>,
    /// The Alertmanager's address.
    #[schema(rename = "externalURL")]
    external_url: Option<String>,
}

/// One alert of a notification.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "camelCase")]
pub(crate) struct NotificationAlert {
    /// `firing` or `resolved` (resolves the alert).
    status: String,
    /// Its labels (`severity` gives the priority).
    #[schema(value_type = Option<Object>)]
    labels: Option<std::collections::BTreeMap<String, String>>,
    /// Its annotations.
    #[schema(value_type = Option<Object>)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
    /// RFC 3339.
    starts_at: Option<String>,
    /// RFC 3339.
    ends_at: Option<String>,
    /// Where it comes from.
    #[schema(rename = "generatorURL")]
    generator_url: Option<String>,
    /// The hash of its label set.
    fingerprint: String,
}

/// The integration key of a request: `Authorization: Bearer <key>`, else the
/// `key` query parameter; a 401 without either.
fn integration_key(parts: &Parts) -> ApiResult<String> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, message).challenge("Bearer");
    let from_header = crate::extract::bearer(&parts.headers)
        .map_err(|_| unauthorized("expected Authorization: Bearer <integration key>"))?;
    if let Some(key) = from_header {
        return Ok(key.to_owned());
    }
    let query = parts.uri.query().unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid query string"))?;
    pairs
        .into_iter()
        .find(|(k, v)| k == "key" && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
        .ok_or_else(|| {
            unauthorized("missing integration key: send Authorization: Bearer <key> or ?key=<key>")
        })
}

/// The answer to an engine error. A conflict is a race the store refused
/// (two notifications of one group opening its incident at once): Alertmanager
/// retries a 503, and the notification sent again joins the winner's incident.
fn refusal(e: Error) -> ApiError {
    match e {
        Error::Unauthorized { .. } => ApiError::from(e).challenge("Bearer"),
        Error::Conflict { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "a concurrent notification of the same group won; send it again",
        )
        .retry_after(Duration::from_secs(1)),
        e => ApiError::from(e),
    }
}

async fn take(s: &AppState, request: Request) -> ApiResult<AlertmanagerReceipt> {
    let (parts, body) = request.into_parts();
    let key = integration_key(&parts)?;
    let body = Bytes::from_request(Request::from_parts(parts, body), &())
        .await
        .map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "notification body is larger than {} MiB",
                        MAX_NOTIFICATION_BYTES / (1024 * 1024)
                    ),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {}", r.body_text()),
                )
            }
        })?;
    s.engine
        .receive_alertmanager(&key, &body)
        .await
        .map_err(refusal)
}

#[utoipa::path(post, tag = "alerts", path = "/integrations/alertmanager",
    description = "The Prometheus Alertmanager webhook receiver (payload version 4). Authenticated by the key of an integration of kind `alertmanager` (not a user's token): `Authorization: Bearer <key>` (Alertmanager's `http_config.authorization.credentials`) or `?key=<key>`. The body is read as JSON whatever its Content-Type; at most 4 MiB.",
    request_body(content = NotificationBody, content_type = "application/json"),
    responses(
        (status = 200, body = NotificationTaken, description = "the notification is applied"),
        (status = 400, body = ErrorAnswer, description = "invalid notification; `field` names what is at fault"),
        (status = 401, body = ErrorAnswer, description = "missing, unknown, revoked or wrong-kind key"),
        (status = 413, body = ErrorAnswer, description = "the body is over 4 MiB"),
        (status = 429, body = ErrorAnswer, description = "over the key's rate limit", headers(("Retry-After" = u64, description = "seconds"))),
        (status = 500, body = ErrorAnswer, description = "IMAS could not store the notification; Alertmanager retries"),
        (status = 503, body = ErrorAnswer, description = "IMAS could not store the notification now; Alertmanager retries", headers(("Retry-After" = u64, description = "seconds"))),
    ),
    security(("integrationKey" = []), ("integrationKeyQuery" = [])))]
pub(crate) async fn receive(State(s): State<AppState>, request: Request) -> Response {
    let response = match take(&s, request).await {
        Ok(receipt) => Json(NotificationTaken {
            status: "success",
            incident_id: receipt.incident_id,
            opened: receipt.opened,
            resolved: receipt.resolved,
        })
        .into_response(),
        Err(e) => e.into_response(),
    };
    s.metrics.alert_received(
        IntegrationKind::Alertmanager,
        AlertOutcome::of(response.status()),
    );
    response
}
