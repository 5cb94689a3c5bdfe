//! Reports: `GET /reports/incidents?format=csv|pdf`, the filtered incidents as a
//! download. The engine checks the permission and the format and streams the
//! bytes ([`imas_core::engine::Download`]); this module reads the query and
//! maps the download to an answer.

use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use imas_core::engine::{Download, ReportRequest};
use imas_core::model::{IncidentFilter, Priority, Status};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ErrorAnswer;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, date, priorities, statuses};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report))
}

/// Query of `GET /reports/incidents`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportParams {
    /// `csv` or `pdf` (anything else, or none, is a 400).
    #[param(value_type = ReportFormat, inline, required = true)]
    pub(crate) format: Option<String>,
    /// Status, or several separated by commas.
    #[param(style = Form, explode = false, value_type = Option<Vec<Status>>)]
    pub(crate) status: Option<String>,
    /// Priority, or several separated by commas.
    #[param(style = Form, explode = false, value_type = Option<Vec<Priority>>)]
    pub(crate) priority: Option<String>,
    /// Created at or after (RFC 3339 or YYYY-MM-DD); years 1 to 9999.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub(crate) start_date: Option<String>,
    /// Created at or before (RFC 3339 or YYYY-MM-DD, inclusive of that day);
    /// years 1 to 9999.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub(crate) end_date: Option<String>,
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

#[utoipa::path(get, tag = "reports", path = "/reports/incidents", params(ReportParams), responses((status = 200, description = "the report, streamed", content((String = "text/csv"), (String = "application/pdf"))), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 501, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn report(
    State(s): State<AppState>,
    Auth(who): Auth,
    Query(p): Query<ReportParams>,
) -> ApiResult<Response> {
    Ok(attachment(
        s.engine.download_report(&who, report_request(&p)).await?,
    ))
}

/// The engine's request for the report a query asks for (the web console's
/// download reads the same query).
pub(crate) fn report_request(p: &ReportParams) -> ReportRequest<'_> {
    let filter = (|| -> imas_core::Result<IncidentFilter> {
        Ok(IncidentFilter {
            status: statuses(p.status.as_deref())?,
            priority: priorities(p.priority.as_deref())?,
            created_from: date("startDate", p.start_date.as_deref(), false)?,
            created_to: date("endDate", p.end_date.as_deref(), true)?,
            ..Default::default()
        })
    })();
    let described = [
        ("status", &p.status),
        ("priority", &p.priority),
        ("startDate", &p.start_date),
        ("endDate", &p.end_date),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
    .collect();
    ReportRequest {
        format: p.format.as_deref(),
        filter,
        described,
    }
}

/// A download as an answer. A failure after the first bytes can only cut the
/// body short (the status and headers are sent): it is logged.
///
/// The stream is fused before it becomes the body: a body may be polled again
/// after it said it has ended (tower-http's compression body does, looking for
/// trailers), and an unfused `unfold` or `chain` then panics mid-response.
pub(crate) fn attachment(download: Download) -> Response {
    let Download {
        content_type,
        filename,
        body,
    } = download;
    let body = body
        .map(move |bytes| {
            bytes.map_err(|e| {
                tracing::error!(error = %e, content_type, "report failed while streaming");
                std::io::Error::other(e.to_string())
            })
        })
        .fuse();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}
