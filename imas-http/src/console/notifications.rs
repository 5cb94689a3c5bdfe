//! Notifications (SPEC §1, §6): `/ui/notifications`, the caller's own, newest
//! first, the unread ones marked; a button marks one read, `form#mark-read`
//! every unread one of the page (the header's `#unread-count` follows live).

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use imas_core::model::NotificationId;

use super::show::{next_href, query, when};
use super::{
    ConsoleState, InLayout, Layout, PageError, PageResult, Posted, Session, render, see_other,
};
use crate::extract::ListParams;

pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/notifications", get(list))
        .route("/ui/notifications/read", post(mark_read))
}

struct Row {
    id: String,
    message: String,
    kind: &'static str,
    incident: Option<String>,
    unread: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "notifications_list.html")]
struct ListPage {
    layout: Layout,
    notifications: Vec<Row>,
    unread: Vec<String>,
    next: Option<String>,
}

async fn list(
    State(s): State<ConsoleState>,
    session: Session,
    q: Result<Query<ListParams>, QueryRejection>,
) -> PageResult {
    let layout = Layout::signed_in(&s, &session, "/ui/notifications").await;
    let params = query(q).map_err(|e| e.with(&layout))?;
    let page = super::show::page_of(&params).map_err(|e| e.with(&layout))?;
    let page = s
        .engine
        .list_notifications(&session.who, page)
        .await
        .in_layout(&layout)?;
    let next = next_href("/ui/notifications", &[], page.next);
    let notifications: Vec<Row> = page
        .items
        .into_iter()
        .map(|n| Row {
            id: n.id.to_string(),
            message: n.message,
            kind: n.kind.as_str(),
            incident: n.incident_id.map(|i| i.to_string()),
            unread: !n.read,
            created: when(n.created_at),
        })
        .collect();
    let unread = notifications
        .iter()
        .filter(|n| n.unread)
        .map(|n| n.id.clone())
        .collect();
    render(&ListPage {
        layout,
        notifications,
        unread,
        next,
    })
}

/// Marks the posted `ids` read (each an engine call: the caller's own only;
/// another's is the 404 page).
async fn mark_read(State(s): State<ConsoleState>, posted: Posted) -> PageResult {
    let layout = Layout::signed_in(&s, &posted.session, "/ui/notifications").await;
    for raw in posted.form.all("ids") {
        let id: NotificationId = raw
            .parse()
            .map_err(|_| PageError::not_found("There is no such notification.").with(&layout))?;
        s.engine
            .mark_notification_read(&posted.session.who, id)
            .await
            .in_layout(&layout)?;
    }
    Ok(see_other("/ui/notifications"))
}
