//! Escalation policies (SPEC §5, §6): `/ui/policies`, every policy with its
//! steps and their targets, named (users, schedules, rotations); admins
//! create one with up to [`FORM_STEPS`] steps (`form#new-policy`) and delete
//! one no service uses. Changing a policy is the API's for now.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use imas_core::Error;
use imas_core::model::{EscalationStep, NewEscalationPolicy, PageRequest, PolicyTarget, Role};
use imas_core::rbac::{self, Permission};

use super::show::{Choice, filled, next_href, query, when};
use super::{
    ConsoleState, FieldErrors, InLayout, Layout, PageError, PageResult, Posted, Session,
    render_status, see_other,
};
use crate::extract::ListParams;

pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/policies", get(list).post(create))
        .route("/ui/policies/{id}/delete", axum::routing::post(delete))
}

/// Steps of the new-policy form (the API takes up to 20).
const FORM_STEPS: usize = 3;

/// One step of the new-policy form.
struct StepForm {
    /// 1-based.
    number: usize,
    /// `step<n>-delay`.
    delay_field: String,
    /// `step<n>-targets`.
    targets_field: String,
    delay: String,
    targets: Vec<Choice>,
}

/// The new-policy form's values (kept when it is re-rendered).
struct PolicyForm {
    name: String,
    description: String,
    repeat: String,
    steps: Vec<StepForm>,
}

/// A target from an option's value: `assignee`, `role:admin`, `user:<id>`,
/// `schedule:<id>`, `rotation:<id>`.
fn parse_target(field: &str, raw: &str) -> Result<PolicyTarget, Error> {
    let bad = || Error::validation(field, "expected one of the targets listed");
    if raw == "assignee" {
        return Ok(PolicyTarget::Assignee);
    }
    let (kind, id) = raw.split_once(':').ok_or_else(bad)?;
    Ok(match kind {
        "role" => PolicyTarget::Role {
            role: id.parse().map_err(|_| bad())?,
        },
        "user" => PolicyTarget::User {
            id: id.parse().map_err(|_| bad())?,
        },
        "schedule" => PolicyTarget::Schedule {
            id: id.parse().map_err(|_| bad())?,
        },
        "rotation" => PolicyTarget::Rotation {
            id: id.parse().map_err(|_| bad())?,
        },
        _ => return Err(bad()),
    })
}

/// The form's field of an engine field (`steps[1].delayMinutes` is
/// `step2-delay`, `steps[0].targets[2]` is `step1-targets`).
fn form_field(engine: &str) -> String {
    let Some(rest) = engine.strip_prefix("steps[") else {
        return if engine == "steps" {
            "step1-targets".into()
        } else {
            engine.into()
        };
    };
    let (n, rest) = rest.split_once(']').unwrap_or(("0", rest));
    let n = n.parse::<usize>().map_or(1, |n| n + 1);
    if rest.starts_with(".delayMinutes") {
        format!("step{n}-delay")
    } else {
        format!("step{n}-targets")
    }
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
    can_manage: bool,
    form: PolicyForm,
    errors: FieldErrors,
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
    let params = query(q)?;
    list_page(
        &s,
        &session,
        &params,
        None,
        FieldErrors::none(),
        StatusCode::OK,
    )
    .await
}

async fn list_page(
    s: &ConsoleState,
    session: &Session,
    params: &ListParams,
    sent: Option<&super::FormData>,
    errors: FieldErrors,
    status: StatusCode,
) -> PageResult {
    let layout = Layout::signed_in(s, session, "/ui/policies").await;
    let page = super::show::page_of(params).map_err(|e| e.with(&layout))?;
    let who = &session.who;
    let can_manage = rbac::allows(who.role, Permission::ManageOnCall);
    let policies = s
        .engine
        .list_escalation_policies(who, page)
        .await
        .in_layout(&layout)?;
    // Names for the targets (the same permission reads them all).
    let mut names: HashMap<String, String> = HashMap::new();
    // The targets a new step may name, as options.
    let mut options: Vec<(String, String)> = vec![("assignee".into(), "the assignee".into())];
    for role in Role::ALL {
        options.push((format!("role:{role}"), format!("every {role}")));
    }
    if let Ok(users) = s.engine.list_users(who, PageRequest::first(500)).await {
        for u in users.items {
            let label = format!("{} ({})", u.name, u.username);
            options.push((format!("user:{}", u.id), format!("user {label}")));
            names.insert(u.id.to_string(), label);
        }
    }
    if let Ok(schedules) = s.engine.list_schedules(who, PageRequest::first(500)).await {
        for x in schedules.items {
            options.push((
                format!("schedule:{}", x.id),
                format!("on call in schedule {}", x.name),
            ));
            names.insert(x.id.to_string(), x.name);
        }
    }
    if let Ok(rotations) = s.engine.list_rotations(who, PageRequest::first(500)).await {
        for x in rotations.items {
            options.push((
                format!("rotation:{}", x.id),
                format!("on call in rotation {}", x.name),
            ));
            names.insert(x.id.to_string(), x.name);
        }
    }
    let get = |name: &str| {
        sent.and_then(|f| f.get(name))
            .unwrap_or_default()
            .to_string()
    };
    let form = PolicyForm {
        name: get("name"),
        description: get("description"),
        repeat: sent.map_or_else(|| "0".to_string(), |_| get("repeat")),
        steps: (1..=FORM_STEPS)
            .map(|number| {
                let field = format!("step{number}-targets");
                let chosen: Vec<&str> = sent.map(|f| f.all(&field).collect()).unwrap_or_default();
                StepForm {
                    number,
                    delay_field: format!("step{number}-delay"),
                    targets_field: field.clone(),
                    delay: match sent {
                        Some(_) => get(&format!("step{number}-delay")),
                        None if number == 1 => "15".into(),
                        None => String::new(),
                    },
                    targets: options
                        .iter()
                        .map(|(value, label)| Choice {
                            selected: chosen.contains(&value.as_str()),
                            value: value.clone(),
                            label: label.clone(),
                        })
                        .collect(),
                }
            })
            .collect(),
    };
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
    render_status(
        status,
        &ListPage {
            layout,
            policies,
            next,
            can_manage,
            form,
            errors,
        },
    )
}

/// The policy the form describes; the steps left empty are not steps.
fn new_policy(f: &super::FormData) -> Result<NewEscalationPolicy, Error> {
    let repeat = match filled(f.get("repeat")) {
        None => 0,
        Some(r) => r
            .parse()
            .map_err(|_| Error::validation("repeat", "expected a number from 0 to 5"))?,
    };
    let mut steps = Vec::new();
    for n in 1..=FORM_STEPS {
        let delay_field = format!("step{n}-delay");
        let targets_field = format!("step{n}-targets");
        let delay = filled(f.get(&delay_field));
        let chosen: Vec<&str> = f.all(&targets_field).collect();
        if delay.is_none() && chosen.is_empty() {
            continue;
        }
        let delay_minutes = delay.unwrap_or_default().parse().map_err(|_| {
            Error::validation(&delay_field, "expected a number of minutes (1 to 9000)")
        })?;
        let targets = chosen
            .iter()
            .map(|t| parse_target(&targets_field, t))
            .collect::<Result<Vec<_>, _>>()?;
        steps.push(EscalationStep {
            delay_minutes,
            targets,
        });
    }
    Ok(NewEscalationPolicy {
        name: f.get("name").unwrap_or_default().to_string(),
        description: f.get("description").unwrap_or_default().to_string(),
        repeat: Some(repeat),
        steps,
    })
}

async fn create(State(s): State<ConsoleState>, posted: Posted) -> PageResult {
    let result = match new_policy(&posted.form) {
        Ok(new) => {
            s.engine
                .create_escalation_policy(&posted.session.who, new)
                .await
        }
        Err(e) => Err(e),
    };
    let e = match result {
        Ok(_) => return Ok(see_other("/ui/policies")),
        Err(e) => e,
    };
    let errors = match &e {
        // The engine names `steps[i]...`; the form's fields are `step<n>-...`.
        Error::Validation { field, message } if field.starts_with("step") => {
            FieldErrors::one(form_field(field), message.clone())
        }
        _ => match FieldErrors::from_error(&e) {
            Some(errors) => errors,
            None => {
                let layout = Layout::signed_in(&s, &posted.session, "/ui/policies").await;
                return Err(PageError::from(e).with(&layout));
            }
        },
    };
    list_page(
        &s,
        &posted.session,
        &ListParams::default(),
        Some(&posted.form),
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// Deletes a policy (admin); one a service uses is the engine's 409 page.
async fn delete(
    State(s): State<ConsoleState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    posted: Posted,
) -> PageResult {
    let layout = Layout::signed_in(&s, &posted.session, "/ui/policies").await;
    let id: imas_core::model::EscalationPolicyId =
        super::show::path_id(&id, "escalation policy").map_err(|e| e.with(&layout))?;
    s.engine
        .delete_escalation_policy(&posted.session.who, id)
        .await
        .in_layout(&layout)?;
    Ok(see_other("/ui/policies"))
}
