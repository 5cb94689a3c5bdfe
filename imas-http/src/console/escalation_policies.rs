//! Escalation policies (SPEC §5, §6): `/ui/policies`, every policy with its
//! steps and their targets, named (users, schedules, rotations). Read-only
//! for now: admins change policies through the API.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use imas_core::model::{PageRequest, PolicyTarget};

use super::show::{next_href, query, when};
use super::{ConsoleState, InLayout, Layout, PageError, PageResult, Session, render};
use crate::extract::ListParams;

pub(super) fn router() -> Router<ConsoleState> {
    Router::new().route("/ui/policies", get(list))
}

struct StepRow {
    number: usize,
    delay: String,
    targets: Vec<String>,
}

struct PolicyRow {
    id: String,
    name: String,
    description: String,
    repeat: u32,
    steps: Vec<StepRow>,
    updated: String,
}

#[derive(Template)]
#[template(path = "escalation_policies_list.html")]
struct ListPage {
    layout: Layout,
    policies: Vec<PolicyRow>,
    next: Option<String>,
}

fn minutes(n: u32) -> String {
    match n {
        1 => "1 minute".into(),
        n if n % 60 == 0 && n >= 120 => format!("{} hours", n / 60),
        60 => "1 hour".into(),
        n => format!("{n} minutes"),
    }
}

async fn list(
    State(s): State<ConsoleState>,
    session: Session,
    q: Result<Query<ListParams>, QueryRejection>,
) -> PageResult {
    let layout = Layout::signed_in(&s, &session, "/ui/policies").await;
    let params = query(q).map_err(|e| e.with(&layout))?;
    let page = params.page().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Invalid address",
            "The page's limit or cursor is invalid.",
        )
        .with(&layout)
    })?;
    let who = &session.who;
    let policies = s
        .engine
        .list_escalation_policies(who, page)
        .await
        .in_layout(&layout)?;
    // Names for the targets (the same permission reads them all).
    let mut names: HashMap<String, String> = HashMap::new();
    if let Ok(users) = s.engine.list_users(who, PageRequest::first(500)).await {
        for u in users.items {
            names.insert(u.id.to_string(), format!("{} ({})", u.name, u.username));
        }
    }
    if let Ok(schedules) = s.engine.list_schedules(who, PageRequest::first(500)).await {
        for x in schedules.items {
            names.insert(x.id.to_string(), x.name);
        }
    }
    if let Ok(rotations) = s.engine.list_rotations(who, PageRequest::first(500)).await {
        for x in rotations.items {
            names.insert(x.id.to_string(), x.name);
        }
    }
    let name = |id: String| names.get(&id).cloned().unwrap_or(id);
    let target = |t: &PolicyTarget| match t {
        PolicyTarget::User { id } => format!("user {}", name(id.to_string())),
        PolicyTarget::Schedule { id } => format!("on call in schedule {}", name(id.to_string())),
        PolicyTarget::Rotation { id } => format!("on call in rotation {}", name(id.to_string())),
        PolicyTarget::Role { role } => format!("every {role}"),
        PolicyTarget::Assignee => "the assignee".into(),
    };
    let next = next_href("/ui/policies", &[], policies.next);
    let policies = policies
        .items
        .into_iter()
        .map(|p| PolicyRow {
            id: p.id.to_string(),
            steps: p
                .steps
                .iter()
                .enumerate()
                .map(|(i, step)| StepRow {
                    number: i + 1,
                    delay: minutes(step.delay_minutes),
                    targets: step.targets.iter().map(target).collect(),
                })
                .collect(),
            name: p.name,
            description: p.description,
            repeat: p.repeat,
            updated: when(p.updated_at),
        })
        .collect();
    render(&ListPage {
        layout,
        policies,
        next,
    })
}
