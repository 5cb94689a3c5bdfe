//! The incidents pages: `/ui/` (the list, with status cards, filters, search,
//! keyset pages, live updates and bulk actions), `/ui/incidents/new` (report
//! one) and `/ui/incidents/{id}` (one incident and its actions).

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::{ConsoleState, Layout, PageResult, Session, render};

pub(super) fn router() -> Router<ConsoleState> {
    Router::new().route("/ui/", get(list))
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    layout: Layout,
}

async fn list(State(s): State<ConsoleState>, session: Session) -> PageResult {
    let layout = session.layout(&s, "/ui/").await;
    render(&IncidentsPage { layout })
}
