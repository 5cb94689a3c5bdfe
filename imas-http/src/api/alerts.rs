//! Alerts (SPEC §4): `GET /alerts` (filtered by service, status and words of
//! the summary) and `GET /incidents/{id}/alerts` (an incident's alerts, for
//! whoever may read the incident). Both newest first, paginated like every
//! list.

use axum::extract::{OriginalUri, Path, Query, State};
use axum::response::Response;
use imas_core::model::{Alert, AlertFilter, IncidentId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, paged, parse_path};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{AlertQuery, Auth, ListParams, PageQuery, alert_status, service_id};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(incident_alerts))
}

#[utoipa::path(get, tag = "alerts", path = "/alerts", params(PageQuery, AlertQuery), responses((status = 200, body = Vec<Alert>, description = "newest first (by startedAt); Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_alerts(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    let filter = AlertFilter {
        service_id: service_id("serviceId", p.service_id.as_deref())?,
        status: alert_status(p.status.as_deref())?,
        q: p.q.clone().filter(|q| !q.trim().is_empty()),
        ..Default::default()
    };
    Ok(paged(
        &uri,
        s.engine.list_alerts(&who, filter, p.page()?).await?,
    ))
}

#[utoipa::path(get, tag = "alerts", path = "/incidents/{id}/alerts", params(("id" = IncidentId, Path, description = "incident id"), PageQuery), responses((status = 200, body = Vec<Alert>, description = "the incident's alerts, newest first; Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn incident_alerts(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    let incident: IncidentId = parse_path(&id)?;
    Ok(paged(
        &uri,
        s.engine.incident_alerts(&who, incident, p.page()?).await?,
    ))
}
