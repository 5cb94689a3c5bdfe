//! Audit: `GET /audit`, the log of who did what, newest first, with filters.

use axum::extract::{OriginalUri, Query, State};
use axum::response::Response;
use imas_core::model::AuditFilter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, paged};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{AuditQuery, Auth, ListParams, PageQuery, date};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[utoipa::path(get, tag = "audit", path = "/audit", params(PageQuery, AuditQuery), responses((status = 200, body = Vec<imas_core::model::AuditEntry>), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_audit(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    let filter = audit_filter(&p)?;
    Ok(paged(
        &uri,
        s.engine.list_audit(&who, &filter, p.page()?).await?,
    ))
}

/// The audit filter a list query asks for (the web console's audit page reads
/// the same query); the error names the parameter at fault.
pub(crate) fn audit_filter(p: &ListParams) -> imas_core::Result<AuditFilter> {
    Ok(AuditFilter {
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
        from: match p.from.as_deref().filter(|f| !f.is_empty()) {
            Some(from) => date("from", Some(from), false)?,
            None => date("startDate", p.start_date.as_deref(), false)?,
        },
        to: match p.to.as_deref().filter(|t| !t.is_empty()) {
            Some(to) => date("to", Some(to), true)?,
            None => date("endDate", p.end_date.as_deref(), true)?,
        },
    })
}
