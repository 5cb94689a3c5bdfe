//! Reports (SPEC §1, §6): `/ui/reports`, `form#report` (format CSV or PDF and
//! the filters of `GET /reports/incidents`), and its download
//! `/ui/reports/incidents`: the API's report (the same query, the same engine
//! call) for the session's caller, a plain GET with the cookie.

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use imas_core::Error;
use imas_core::engine::DownloadError;
use imas_core::model::{Priority, Status};
use imas_core::rbac::{self, Permission};

use super::show::{Choice, filled, query};
use super::{ConsoleState, FieldErrors, Layout, PageError, PageResult, Session, render_status};
use crate::api::reports::{ReportParams, attachment, report_request};

pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/reports", get(form))
        .route("/ui/reports/incidents", get(download))
}

#[derive(Template)]
#[template(path = "reports_form.html")]
struct FormPage {
    layout: Layout,
    formats: Vec<Choice>,
    statuses: Vec<Choice>,
    priorities: Vec<Choice>,
    start_date: String,
    end_date: String,
    errors: FieldErrors,
}

async fn form_page(
    s: &ConsoleState,
    session: &Session,
    p: &ReportParams,
    errors: FieldErrors,
    status: StatusCode,
) -> PageResult {
    let layout = Layout::signed_in(s, session, "/ui/reports").await;
    // The page of a download the role may not have: the engine's own words.
    if let Err(e) = rbac::require(session.who.role, Permission::ExportReports) {
        return Err(PageError::from(e).with(&layout));
    }
    let any = || (String::new(), "Any".to_string());
    let page = FormPage {
        layout,
        formats: Choice::list(
            [("csv", "CSV (a spreadsheet)"), ("pdf", "PDF (to print)")]
                .map(|(v, l)| (v.to_string(), l.to_string())),
            Some(filled(p.format.as_deref()).unwrap_or("csv")),
        ),
        statuses: Choice::list(
            std::iter::once(any()).chain(
                Status::ALL
                    .iter()
                    .map(|s| (s.as_str().to_string(), s.as_str().to_string())),
            ),
            p.status.as_deref(),
        ),
        priorities: Choice::list(
            std::iter::once(any()).chain(
                Priority::ALL
                    .iter()
                    .map(|s| (s.as_str().to_string(), s.as_str().to_string())),
            ),
            p.priority.as_deref(),
        ),
        start_date: p.start_date.clone().unwrap_or_default(),
        end_date: p.end_date.clone().unwrap_or_default(),
        errors,
    };
    render_status(status, &page)
}

async fn form(State(s): State<ConsoleState>, session: Session) -> PageResult {
    let empty = ReportParams {
        format: None,
        status: None,
        priority: None,
        start_date: None,
        end_date: None,
    };
    form_page(&s, &session, &empty, FieldErrors::none(), StatusCode::OK).await
}

/// The form's empty fields ("any") are no filter.
fn cleaned(p: ReportParams) -> ReportParams {
    let keep = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    ReportParams {
        format: keep(p.format),
        status: keep(p.status),
        priority: keep(p.priority),
        start_date: keep(p.start_date),
        end_date: keep(p.end_date),
    }
}

async fn download(
    State(s): State<ConsoleState>,
    session: Session,
    q: Result<Query<ReportParams>, QueryRejection>,
) -> PageResult {
    let p = cleaned(query(q)?);
    let e = match s
        .engine
        .download_report(&session.who, report_request(&p))
        .await
    {
        Ok(download) => return Ok(attachment(download)),
        Err(e) => e,
    };
    // Beside the field at fault, in the form filled as it was sent.
    let errors = match &e {
        DownloadError::BadFormat => FieldErrors::one("format", e.to_string()),
        DownloadError::Engine(engine @ Error::Validation { .. }) => {
            FieldErrors::from_error(engine).unwrap_or_default()
        }
        DownloadError::NotCompiledIn { .. } => {
            let layout = Layout::signed_in(&s, &session, "/ui/reports").await;
            return Err(PageError::new(
                StatusCode::NOT_IMPLEMENTED,
                "Not available",
                &e.to_string(),
            )
            .with(&layout));
        }
        DownloadError::Engine(_) | _ => {
            let layout = Layout::signed_in(&s, &session, "/ui/reports").await;
            let page = match e {
                DownloadError::Engine(engine) => PageError::from(engine),
                other => {
                    tracing::error!(error = %other, "report failed");
                    PageError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong",
                        "The report failed; see the server log.",
                    )
                }
            };
            return Err(page.with(&layout));
        }
    };
    form_page(&s, &session, &p, errors, StatusCode::UNPROCESSABLE_ENTITY).await
}
