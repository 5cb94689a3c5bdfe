//! The service itself: `GET /healthz` (the engine's [`imas_core::engine::Health`]),
//! `GET /metrics` (Prometheus text), `GET /openapi.json`, and the JSON answers to
//! an unknown route or a method a route does not have.

use axum::Json;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorAnswer;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

/// Answer of `GET /healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HealthAnswer {
    /// `ok`, or `degraded` when a backend is unreachable.
    #[schema(pattern = "^(ok|degraded)$")]
    status: &'static str,
    /// `ok` or `unavailable`.
    #[schema(pattern = "^(ok|unavailable)$")]
    store: &'static str,
    /// `ok` or `unavailable`.
    #[schema(pattern = "^(ok|unavailable)$")]
    queue: &'static str,
}

#[utoipa::path(get, tag = "service", path = "/healthz", responses((status = 200, body = HealthAnswer, description = "store and queue reachable"), (status = 503, body = HealthAnswer, description = "a backend is unreachable")))]
pub(crate) async fn healthz(State(s): State<AppState>) -> Response {
    let health = s.engine.health().await;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let (status, overall) = if health.is_ok() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    let body = HealthAnswer {
        status: overall,
        store: word(health.store),
        queue: word(health.queue),
    };
    (status, Json(body)).into_response()
}

/// `GET /openapi.json`: the document, serialized once when the router is built.
pub(crate) fn openapi_json(
    doc: &utoipa::openapi::OpenApi,
) -> axum::routing::MethodRouter<AppState> {
    let body = match serde_json::to_vec(doc) {
        Ok(bytes) => Ok(axum::body::Bytes::from(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            Err(())
        }
    };
    axum::routing::get(move || {
        let body = body.clone();
        async move {
            match body {
                Ok(bytes) => ([(CONTENT_TYPE, "application/json")], bytes).into_response(),
                Err(()) => ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log",
                )
                .into_response(),
            }
        }
    })
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

/// `GET /metrics`: Prometheus text (0.0.4) of the request series and of the
/// engine's state read now (SPEC §8). With a metrics token configured, only a
/// request carrying it as `Authorization: Bearer <token>` is answered.
#[utoipa::path(get, tag = "service", path = "/metrics", responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String), (status = 401, description = "a metrics token is configured and the request does not carry it", body = ErrorAnswer), (status = 503, description = "a backend is unreachable", body = ErrorAnswer)), security((), ("bearer" = [])))]
pub(crate) async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = &s.metrics_token {
        let given = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !crate::metrics::bearer_matches(given, token) {
            let mut answer = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "metrics require the metrics token as a bearer token",
            )
            .into_response();
            answer
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(answer);
        }
    }
    let text = crate::metrics::render(&s.engine, &s.metrics)
        .await
        .map_err(|e| crate::metrics::unavailable(&e))?;
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}
