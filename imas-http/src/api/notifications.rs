//! Notifications: the caller's list, `PATCH /notifications/{id}/read`, the live
//! stream (Server-Sent Events), and the dead letters of failed deliveries
//! (`/admin/dead-letters`, list and redrive).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use imas_core::model::NotificationId;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, paged, parse_path};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, ListParams, PageQuery};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(notification_stream))
        .routes(routes!(mark_read))
        .routes(routes!(list_dead_letters))
        .routes(routes!(redrive_dead_letter))
}

#[utoipa::path(get, tag = "notifications", path = "/notifications", params(PageQuery), responses((status = 200, body = Vec<imas_core::model::Notification>), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
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

#[utoipa::path(patch, tag = "notifications", path = "/notifications/{id}/read", params(("id" = NotificationId, Path, description = "notification id")), responses((status = 200, body = imas_core::model::Notification), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn mark_read(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id: NotificationId = parse_path(&id)?;
    Ok(Json(s.engine.mark_notification_read(&who, id).await?).into_response())
}

#[utoipa::path(get, tag = "notifications", path = "/notifications/stream", responses((status = 200, content_type = "text/event-stream", description = "Server-Sent Events: one `notification` event (JSON) per new notification of the caller; comments keep an idle stream alive; the stream ends when the token expires. Without an `Authorization` header the web console's session cookie `imas_session` is accepted instead, so that a browser's EventSource works"), (status = 401, body = ErrorAnswer), (status = 429, body = ErrorAnswer, description = "the caller already has the most live streams open at once", headers(("Retry-After" = u64, description = "seconds")))), security(("bearer" = [])))]
pub(crate) async fn notification_stream(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    // A browser's EventSource cannot send a header: without `Authorization`,
    // the web console's session cookie authenticates the stream (the same
    // engine call).
    let token = match crate::extract::bearer(&headers)? {
        Some(token) => token,
        None => crate::console::session_token(&headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <token> (or the console's session cookie)",
            )
        })?,
    };
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

#[utoipa::path(get, tag = "notifications", path = "/admin/dead-letters", params(DeadLetterParams), responses((status = 200, body = [DeadLetterAnswer]), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
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

#[utoipa::path(post, tag = "notifications", path = "/admin/dead-letters/{key}/redrive", params(("key" = String, Path, description = "the dead letter's key")), responses((status = 202, body = RedriveAnswer, description = "handed to the workers again"), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
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
            message: imas_core::messages::ANSWER_REDRIVEN.into(),
        }),
    )
        .into_response())
}
