//! SLA: `POST /sla/assign-sla` (set an incident's priority and targets) and
//! `GET /sla/violations` (the incidents past their targets).

use axum::Json;
use axum::extract::{OriginalUri, Query, State};
use axum::response::{IntoResponse, Response};
use imas_core::model::{Incident, IncidentId, Priority};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, MessageAnswer, with_next_link};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody, ListParams, PageQuery};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(assign_sla))
        .routes(routes!(violations))
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignSlaBody {
    id: IncidentId,
    priority: Priority,
}

#[utoipa::path(post, tag = "sla", path = "/sla/assign-sla", request_body = AssignSlaBody, responses((status = 200, body = MessageAnswer), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn assign_sla(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(b): JsonBody<AssignSlaBody>,
) -> ApiResult<Response> {
    let incident = s.engine.assign_sla(&who, b.id, b.priority).await?;
    let message = imas_core::messages::answer_sla_assigned(incident.sla_target_ms);
    Ok(Json(MessageAnswer { message, incident }).into_response())
}

#[utoipa::path(get, tag = "sla", path = "/sla/violations", params(PageQuery), responses((status = 200, body = ViolationsAnswer), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
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
