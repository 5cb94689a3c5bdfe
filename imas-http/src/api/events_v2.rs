//! PagerDuty Events API v2 (SPEC §4, ANCHORS §1b): `POST /v2/enqueue`, public
//! (the event's `routing_key`, an integration key of kind `events-v2`,
//! authenticates it), answered in PagerDuty's own shapes so that its client
//! libraries and every tool that speaks Events v2 work against IMAS.
//!
//! The body is read as bytes whatever its `Content-Type` (tools send
//! `application/json`, `curl -d` sends a form type) and handed to the engine,
//! which parses it and applies the event. Answers:
//! - 202 `{"status":"success","message":"Event processed","dedup_key":"..."}`;
//! - 400 `{"status":"invalid event","message":"Event object is invalid","errors":[...]}`,
//!   every problem named (an unknown, revoked or wrong-kind key is one);
//! - 413 in the same shape for a body over 512 KB ([`MAX_EVENT_BYTES`]),
//!   refused before it is read whole: like a 400 it tells the sender not to
//!   retry, and it says why in HTTP's own terms;
//! - 429 with `Retry-After` (whole seconds, rounded up) over the key's rate
//!   limit, in the same shape;
//! - 5xx in the same shape when IMAS could not take the event (the store
//!   failed): senders retry those.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use imas_core::Error;
use imas_core::engine::{EnqueueError, Enqueued};
use imas_core::model::{IntegrationKind, MAX_EVENT_BYTES};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::retry_after_secs;
use crate::metrics::AlertOutcome;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enqueue))
        // The route's own limit (innermost, so it overrides the router's).
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES))
}

/// The 202 answer: the event was taken.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventAccepted {
    /// `success`.
    #[schema(example = "success")]
    status: &'static str,
    /// `Event processed`.
    #[schema(example = "Event processed")]
    message: &'static str,
    /// The event's dedup key (generated for a trigger that sent none): send it
    /// with the acknowledge and resolve events of the same alert.
    dedup_key: String,
}

/// Every other answer, PagerDuty's error shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventRefused {
    /// `invalid event` (400, 413), `throttled` (429), `error` (5xx).
    #[schema(example = "invalid event")]
    status: &'static str,
    /// What happened, e.g. `Event object is invalid`.
    message: String,
    /// Each problem found.
    errors: Vec<String>,
}

/// A PagerDuty Events API v2 event.
// Described for the OpenAPI document only: the engine reads the bytes itself
// (`imas_core::model::Event`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventBody {
    /// An integration key of kind `events-v2` (32 characters).
    #[schema(min_length = 32, max_length = 32)]
    routing_key: String,
    /// `trigger`, `acknowledge` or `resolve`.
    #[schema(pattern = "^(trigger|acknowledge|resolve)$")]
    event_action: String,
    /// The alert the event is about: required for acknowledge and resolve; a
    /// trigger without one gets a new key (a new alert).
    #[schema(max_length = 255)]
    dedup_key: Option<String>,
    /// Required for a trigger.
    payload: Option<EventPayload>,
    /// Links to show with the alert.
    links: Option<Vec<EventLink>>,
    /// Images (kept with the alert's details).
    #[schema(value_type = Option<Vec<Object>>)]
    images: Option<Vec<serde_json::Value>>,
    /// The monitoring tool's name.
    client: Option<String>,
    /// The monitoring tool's address.
    client_url: Option<String>,
}

/// The `payload` of a trigger.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventPayload {
    /// What is wrong.
    #[schema(min_length = 1, max_length = 1024)]
    summary: String,
    /// Where it happens (a host, a service).
    source: String,
    /// `critical` (priority critical), `error` (high), `warning` (medium) or
    /// `info` (low).
    severity: imas_core::model::Severity,
    /// When the source saw it (ISO 8601).
    timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// The part of the source.
    component: Option<String>,
    /// A grouping of sources.
    group: Option<String>,
    /// The class or type of the problem.
    class: Option<String>,
    /// Anything else, kept in the alert's details.
    #[schema(value_type = Option<Object>)]
    custom_details: Option<serde_json::Value>,
}

/// A link of an event.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct EventLink {
    /// Where it points.
    href: String,
    /// What to show for it.
    text: Option<String>,
}

fn refused(
    status: StatusCode,
    kind: &'static str,
    message: impl Into<String>,
    errors: Vec<String>,
) -> Response {
    let body = EventRefused {
        status: kind,
        message: message.into(),
        errors,
    };
    (status, Json(body)).into_response()
}

fn invalid(status: StatusCode, errors: Vec<String>) -> Response {
    refused(status, "invalid event", "Event object is invalid", errors)
}

/// A refusal the sender should retry after `after`.
fn retry(status: StatusCode, kind: &'static str, message: &str, after: Duration) -> Response {
    let secs = retry_after_secs(after);
    let mut answer = refused(
        status,
        kind,
        format!("{message}; retry after {secs} s"),
        Vec::new(),
    );
    answer
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    answer
}

/// What the engine's answer is over HTTP.
fn answer(result: Result<Enqueued, EnqueueError>) -> Response {
    match result {
        Ok(Enqueued { dedup_key }) => (
            StatusCode::ACCEPTED,
            Json(EventAccepted {
                status: "success",
                message: "Event processed",
                dedup_key,
            }),
        )
            .into_response(),
        Err(EnqueueError::Invalid(errors)) => invalid(StatusCode::BAD_REQUEST, errors),
        Err(EnqueueError::Failed(e)) => match e {
            Error::RateLimited { retry_after, .. } => retry(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too many events for this routing key",
                retry_after,
            ),
            Error::Unavailable { retry_after, .. } => retry(
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                "Event not processed: IMAS is out of capacity",
                retry_after,
            ),
            // A race the store refused (another node took the same key at
            // the same instant): the same event sent again finds the winner.
            Error::Conflict { .. } => retry(
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                "Event not processed: a concurrent event for the same alert won",
                Duration::from_secs(1),
            ),
            // The engine names the event's problems in `Invalid`; any other
            // complaint about the event is still the sender's to fix.
            Error::Validation { .. }
            | Error::Unauthorized { .. }
            | Error::Forbidden { .. }
            | Error::NotFound { .. } => invalid(StatusCode::BAD_REQUEST, vec![e.to_string()]),
            e => {
                tracing::error!(error = %e, "events v2: event not processed");
                refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "error",
                    "Event not processed: internal error; retry later",
                    Vec::new(),
                )
            }
        },
    }
}

#[utoipa::path(post, tag = "alerts", path = "/v2/enqueue",
    description = "PagerDuty Events API v2. Public: the event's `routing_key`, an integration key of kind `events-v2`, authenticates it (no bearer token). The body is read as JSON whatever its Content-Type; at most 512 KB.",
    request_body(content = EventBody, content_type = "application/json"),
    responses(
        (status = 202, body = EventAccepted, description = "the event was processed"),
        (status = 400, body = EventRefused, description = "invalid event: `errors` names each problem (an unknown, revoked or wrong-kind routing key is one); do not retry"),
        (status = 413, body = EventRefused, description = "the body is over 512 KB; do not retry"),
        (status = 429, body = EventRefused, description = "over the routing key's rate limit", headers(("Retry-After" = u64, description = "seconds"))),
        (status = 500, body = EventRefused, description = "IMAS could not process the event; retry"),
        (status = 503, body = EventRefused, description = "IMAS could not process the event now; retry", headers(("Retry-After" = u64, description = "seconds"))),
    ),
    security(()))]
pub(crate) async fn enqueue(
    State(s): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let response = match body {
        Ok(body) => answer(s.engine.enqueue_event(&body).await),
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => invalid(
            StatusCode::PAYLOAD_TOO_LARGE,
            vec![format!(
                "Event object is too large (at most {MAX_EVENT_BYTES} bytes)"
            )],
        ),
        Err(r) => invalid(
            StatusCode::BAD_REQUEST,
            vec![format!("Event body could not be read: {}", r.body_text())],
        ),
    };
    s.metrics.alert_received(
        IntegrationKind::EventsV2,
        AlertOutcome::of(response.status()),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Status, `Retry-After` and body of the answer to an engine result.
    fn parts(
        result: Result<Enqueued, EnqueueError>,
    ) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = answer(result);
        let status = response.status();
        let retry = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 4096))
            .expect("body");
        (status, retry, serde_json::from_slice(&body).expect("json"))
    }

    #[test]
    fn each_engine_answer_has_its_status_and_pagerduty_shape() {
        let failed = |e: Error| parts(Err(EnqueueError::Failed(e)));
        let (status, retry, body) = failed(Error::rate_limited(
            "events of this key",
            Duration::from_millis(1500),
        ));
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::TOO_MANY_REQUESTS, Some("2"))
        );
        assert_eq!(body["status"], "throttled");
        assert_eq!(body["errors"], serde_json::json!([]));
        let (status, retry, _) = failed(Error::conflict("open alert exists"));
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
        );
        let (status, retry, _) = failed(Error::Unavailable {
            message: "busy".into(),
            retry_after: Duration::from_secs(3),
        });
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("3"))
        );
        let (status, retry, body) = failed(Error::backend(
            "postgres",
            std::io::Error::other("password=hunter2"),
        ));
        assert_eq!((status, retry), (StatusCode::INTERNAL_SERVER_ERROR, None));
        assert_eq!(body["status"], "error");
        assert!(!body.to_string().contains("hunter2"), "{body}");
        let (status, _, body) = failed(Error::validation("routing_key", "unknown"));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["status"], "invalid event");
        assert_eq!(body["errors"][0], "invalid routing_key: unknown");
        let (status, _, body) = parts(Err(EnqueueError::Invalid(vec!["a".into(), "b".into()])));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            serde_json::json!({ "status": "invalid event", "message": "Event object is invalid", "errors": ["a", "b"] })
        );
    }
}
