//! Escalations: `GET /api/escalations` (the escalated incidents) and
//! `POST /api/escalations/manual` (escalate one now).

use axum::Json;
use axum::extract::{OriginalUri, Query, State};
use axum::response::{IntoResponse, Response};
use imas_core::model::{Incident, IncidentId};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, MessageAnswer, paged};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody, ListParams, PageQuery};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_escalations))
        .routes(routes!(escalate))
}

#[utoipa::path(get, tag = "escalations", path = "/api/escalations", params(PageQuery), responses((status = 200, body = Vec<Incident>), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
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

#[utoipa::path(post, tag = "escalations", path = "/api/escalations/manual", request_body = EscalateBody, responses((status = 200, body = MessageAnswer), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn escalate(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(b): JsonBody<EscalateBody>,
) -> ApiResult<Response> {
    let incident = s.engine.escalate_manually(&who, b.id, b.reason).await?;
    let message = imas_core::messages::answer_escalated(incident.escalation_level);
    Ok(Json(MessageAnswer { message, incident }).into_response())
}
