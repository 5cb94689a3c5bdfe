//! The audit log (SPEC §1, §6): `/ui/audit`, `table#audit` newest first, with
//! the filters of `GET /audit` (action, actor, target, from, to) as query
//! parameters, so that a filtered page is a link, and keyset pages
//! (`a[rel=next]`).

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use imas_core::model::{Actor, AuditAction, PageRequest};
use imas_core::rbac::{self, Permission};

use super::show::{Choice, next_href, query, when};
use super::{
    ConsoleState, FieldErrors, InLayout, Layout, PageError, PageResult, Session, render_status,
};
use crate::api::audit::audit_filter;
use crate::extract::ListParams;

pub(super) fn router() -> Router<ConsoleState> {
    Router::new().route("/ui/audit", get(list))
}

struct Row {
    action: &'static str,
    actor: String,
    target: String,
    description: String,
    created: String,
    created_rfc3339: String,
}

#[derive(Template)]
#[template(path = "audit_list.html")]
struct ListPage {
    layout: Layout,
    entries: Vec<Row>,
    next: Option<String>,
    actions: Vec<Choice>,
    actor: String,
    target: String,
    from: String,
    to: String,
    errors: FieldErrors,
}

async fn list(
    State(s): State<ConsoleState>,
    session: Session,
    q: Result<Query<ListParams>, QueryRejection>,
) -> PageResult {
    let layout = Layout::signed_in(&s, &session, "/ui/audit").await;
    // Whom the log is closed to learn nothing of its filters: the engine's
    // permission first, as `list_audit` would answer it.
    if let Err(e) = rbac::require(session.who.role, Permission::ReadAudit) {
        return Err(PageError::from(e).with(&layout));
    }
    let p = query(q).map_err(|e| e.with(&layout))?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let from = p.from.clone().or_else(|| p.start_date.clone());
    let to = p.to.clone().or_else(|| p.end_date.clone());
    let mut page = ListPage {
        entries: Vec::new(),
        next: None,
        actions: Choice::list(
            std::iter::once((String::new(), "Any".to_string())).chain(
                AuditAction::ALL
                    .iter()
                    .map(|a| (a.as_str().to_string(), a.as_str().to_string())),
            ),
            p.action.as_deref(),
        ),
        actor: text(&p.actor),
        target: text(&p.target),
        from: text(&from),
        to: text(&to),
        errors: FieldErrors::none(),
        layout,
    };
    // A filter that does not parse: said beside its field (the names are the
    // query's, which are the form's).
    let checked = audit_filter(&p).and_then(|f| {
        let request = p.page().map_err(|_| {
            imas_core::Error::validation(
                "cursor",
                "expected a limit from 1 to 500 and a cursor from a previous page's link",
            )
        })?;
        Ok((f, request))
    });
    let (filter, request) = match checked {
        Ok(x) => x,
        Err(e) => match FieldErrors::from_error(&e) {
            Some(mut errors) => {
                // `startDate`/`endDate` are the aliases of the form's fields.
                for (alias, field) in [("startDate", "from"), ("endDate", "to")] {
                    if let Some(m) = errors.get(alias).map(str::to_string) {
                        errors = FieldErrors::one(field, m);
                    }
                }
                page.errors = errors;
                return render_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
            }
            None => return Err(PageError::from(e).with(&page.layout)),
        },
    };
    let found = s
        .engine
        .list_audit(&session.who, &filter, request)
        .await
        .in_layout(&page.layout)?;
    // Actors by name where the role may list users.
    let mut names: HashMap<String, String> = HashMap::new();
    if let Ok(users) = s
        .engine
        .list_users(&session.who, PageRequest::first(500))
        .await
    {
        for u in users.items {
            names.insert(u.id.to_string(), u.username);
        }
    }
    page.next = next_href(
        "/ui/audit",
        &[
            ("action", p.action.as_deref()),
            ("actor", p.actor.as_deref()),
            ("target", p.target.as_deref()),
            ("from", from.as_deref()),
            ("to", to.as_deref()),
            ("limit", p.limit.as_deref()),
        ],
        found.next,
    );
    page.entries = found
        .items
        .into_iter()
        .map(|a| Row {
            action: a.action.as_str(),
            actor: match a.actor {
                Actor::System => "SYSTEM".into(),
                Actor::User(id) => {
                    let id = id.to_string();
                    names.get(&id).cloned().unwrap_or(id)
                }
            },
            target: a.target.unwrap_or_default(),
            description: a.description,
            created: when(a.created_at),
            created_rfc3339: a.created_at.to_rfc3339(),
        })
        .collect();
    render_status(StatusCode::OK, &page)
}
