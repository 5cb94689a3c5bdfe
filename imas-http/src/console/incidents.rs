//! The incidents pages: `/ui/` (the list: status cards with counts, filters,
//! search, keyset pages, live updates over `/ui/events`, bulk acknowledge and
//! resolve), `/ui/incidents/new` (report one) and `/ui/incidents/{id}` (one
//! incident: fields, SLA countdown, escalation, alerts, timeline, actions).
//! Every read and action is an engine call: a `user` sees only the incidents
//! they reported (`Engine::list_visible_incidents`), the engine refuses what a
//! role may not do.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use imas_core::engine::{IncidentPatch, NewIncident};
use imas_core::escalation::Step;
use imas_core::model::{
    Alert, AuditEntry, AuditFilter, Cursor, Incident, IncidentFilter, IncidentId, IncidentType,
    PageRequest, Priority, Status, UserId, UserSummary,
};
use imas_core::rbac::{self, Permission};
use imas_core::{Error, Principal};

use super::{
    ConsoleState, FieldErrors, InLayout, Layout, PageError, PageResult, Posted, Session, render,
    render_status, see_other,
};
use crate::extract::{ListParams, date, priorities, service_id, statuses, user_id};

pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/", get(list))
        .route("/ui/incidents", post(create))
        .route("/ui/incidents/new", get(new_form))
        .route("/ui/incidents/bulk", post(bulk))
        .route("/ui/incidents/{id}", get(show))
        .route("/ui/incidents/{id}/{action}", post(act))
}

// ---------------------------------------------------------------- the list

/// One status card.
#[derive(Debug, Clone)]
pub(crate) struct Card {
    status: &'static str,
    count: u64,
    href: String,
    current: bool,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    id: String,
    title: String,
    status: &'static str,
    priority: &'static str,
    breached: bool,
    assignee: String,
    created: String,
    due: String,
}

/// What the live part of the list shows (re-fetched on `sse:incidents`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ListView {
    cards: Vec<Card>,
    breached: u64,
    rows: Vec<Row>,
    next: Option<String>,
    /// This page's address with `partial=1`, which htmx re-fetches.
    refresh: String,
    /// This page's address, where bulk actions come back to.
    back: String,
    can_update: bool,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    layout: Layout,
    list: ListView,
    errors: FieldErrors,
    q: String,
    status: String,
    priority: String,
    statuses: Vec<&'static str>,
    priorities: Vec<&'static str>,
    is_user: bool,
}

#[derive(Template)]
#[template(path = "incidents_list.html")]
struct IncidentsPartial {
    layout: Layout,
    list: ListView,
}

/// Parses the list filters (the names and formats of `GET /incidents`).
fn filter_of(p: &ListParams) -> Result<IncidentFilter, Error> {
    Ok(IncidentFilter {
        status: statuses(p.status.as_deref())?,
        priority: priorities(p.priority.as_deref())?,
        assigned_to: user_id("assignedTo", p.assigned_to.as_deref())?,
        service_id: service_id("serviceId", p.service_id.as_deref())?,
        created_from: date("startDate", p.start_date.as_deref(), false)?,
        created_to: date("endDate", p.end_date.as_deref(), true)?,
        q: p.q.clone().filter(|q| !q.trim().is_empty()),
        ..Default::default()
    })
}

/// The page's query pairs without `cursor` and `partial`.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    pairs.retain(|(k, v)| k != "cursor" && k != "partial" && !v.is_empty());
    pairs
}

fn address(pairs: &[(String, String)]) -> String {
    match serde_urlencoded::to_string(pairs) {
        Ok(q) if !q.is_empty() => format!("/ui/?{q}"),
        _ => "/ui/".into(),
    }
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Usernames by id, when the role may list users (else empty).
async fn usernames(
    s: &ConsoleState,
    who: &Principal,
) -> (Vec<UserSummary>, HashMap<UserId, String>) {
    if !rbac::allows(who.role, Permission::ListUsers) {
        return (Vec::new(), HashMap::new());
    }
    let users = s
        .engine
        .list_users(who, PageRequest::first(imas_core::model::MAX_LIMIT))
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let names = users.iter().map(|u| (u.id, u.username.clone())).collect();
    (users, names)
}

async fn list_view(
    s: &ConsoleState,
    session: &Session,
    p: &ListParams,
    query: Option<&str>,
) -> Result<ListView, Error> {
    let filter = filter_of(p)?;
    let page = p.page().map_err(|_| {
        Error::validation(
            "cursor",
            "this page link is no longer valid; start again from the first page",
        )
    })?;
    let page = PageRequest {
        limit: if p.limit.is_some() { page.limit } else { 50 },
        ..page
    };
    let who = &session.who;
    let found = s.engine.list_visible_incidents(who, &filter, page).await?;
    let pairs = query_pairs(query);
    // The cards count the whole queue (the other filters but the status).
    let base = IncidentFilter {
        status: Vec::new(),
        ..filter.clone()
    };
    let mut cards = Vec::new();
    for status in Status::ALL {
        let count = s
            .engine
            .count_incidents(
                who,
                &IncidentFilter {
                    status: vec![*status],
                    ..base.clone()
                },
            )
            .await?;
        let mut link: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "status")
            .cloned()
            .collect();
        link.push(("status".into(), status.as_str().into()));
        cards.push(Card {
            status: status.as_str(),
            count,
            href: address(&link),
            current: filter.status == [*status],
        });
    }
    let breached = s
        .engine
        .count_incidents(
            who,
            &IncidentFilter {
                sla_breached: Some(true),
                status: vec![
                    Status::Open,
                    Status::Acknowledged,
                    Status::InProgress,
                    Status::OnHold,
                ],
                ..base
            },
        )
        .await?;
    let (_, names) = usernames(s, who).await;
    let rows = found
        .items
        .iter()
        .map(|i| Row {
            id: i.id.to_string(),
            title: i.title.clone(),
            status: i.status.as_str(),
            priority: i.priority.as_str(),
            breached: i.sla_breached,
            assignee: i
                .assigned_to
                .map(|a| names.get(&a).cloned().unwrap_or_else(|| "someone".into()))
                .unwrap_or_default(),
            created: time(&i.created_at),
            due: i
                .sla_deadline
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .collect();
    let next = found.next.map(|c: Cursor| {
        let mut link = pairs.clone();
        link.push(("cursor".into(), c.encode()));
        address(&link)
    });
    let mut current = pairs.clone();
    if let Some(c) = p.cursor.as_ref().filter(|c| !c.is_empty()) {
        current.push(("cursor".into(), c.clone()));
    }
    let back = address(&current);
    current.push(("partial".into(), "1".into()));
    Ok(ListView {
        cards,
        breached,
        rows,
        next,
        refresh: address(&current),
        back,
        can_update: rbac::allows(who.role, Permission::UpdateIncident),
    })
}

async fn list(
    State(s): State<ConsoleState>,
    session: Session,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(p): Query<ListParams>,
) -> PageResult {
    let query = uri.query();
    let partial = query_has(query, "partial");
    if partial {
        let list = list_view(&s, &session, &p, query)
            .await
            .map_err(PageError::from)?;
        return render(&IncidentsPartial {
            layout: Layout::bare(&session),
            list,
        });
    }
    let layout = session.layout(&s, "/ui/").await;
    let (list, errors, status) = match list_view(&s, &session, &p, query).await {
        Ok(list) => (list, FieldErrors::none(), StatusCode::OK),
        Err(e) => match FieldErrors::from_error(&e) {
            Some(errors) => (
                ListView::default(),
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            None => return Err(PageError::from(e).with(&layout)),
        },
    };
    let _ = headers;
    render_status(
        status,
        &IncidentsPage {
            layout,
            list,
            errors,
            q: p.q.clone().unwrap_or_default(),
            status: p.status.clone().unwrap_or_default(),
            priority: p.priority.clone().unwrap_or_default(),
            statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
            priorities: Priority::ALL.iter().map(|p| p.as_str()).collect(),
            is_user: !rbac::allows(session.who.role, Permission::ListIncidents),
        },
    )
}

fn query_has(query: Option<&str>, name: &str) -> bool {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or_default())
        .unwrap_or_default()
        .iter()
        .any(|(k, v)| k == name && !v.is_empty() && v != "0")
}

/// Where to come back to after a form: a console address only.
fn back_to(form: &super::FormData, default: &str) -> String {
    match form.get("back") {
        Some(b)
            if (b == "/ui/" || b.starts_with("/ui/")) && !b.contains("//") && !b.contains('\\') =>
        {
            b.to_string()
        }
        _ => default.to_string(),
    }
}

fn parse_id(raw: &str) -> Result<IncidentId, PageError> {
    raw.parse()
        .map_err(|_| PageError::not_found("There is no such incident."))
}

/// `POST /ui/incidents/bulk`: acknowledge or resolve the selected incidents.
async fn bulk(State(s): State<ConsoleState>, posted: Posted) -> PageResult {
    let layout = posted.session.layout(&s, "/ui/").await;
    let to = match posted.form.get("action") {
        Some("acknowledge") => Status::Acknowledged,
        Some("resolve") => Status::Resolved,
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Invalid input",
                "Choose acknowledge or resolve.",
            )
            .with(&layout));
        }
    };
    let ids: Vec<&str> = posted.form.all("ids").collect();
    if ids.len() > MAX_BULK {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Invalid input",
            &format!("Select at most {MAX_BULK} incidents at once."),
        )
        .with(&layout));
    }
    let mut failed = Vec::new();
    let mut done = 0;
    for raw in ids {
        let Ok(id) = raw.parse::<IncidentId>() else {
            failed.push(format!("{raw}: not an incident id"));
            continue;
        };
        match s.engine.change_status(&posted.session.who, id, to).await {
            Ok(_) => done += 1,
            Err(e @ Error::Forbidden { .. }) => return Err(PageError::from(e).with(&layout)),
            Err(e) => failed.push(format!("{id}: {e}")),
        }
    }
    if failed.is_empty() {
        return Ok(see_other(&back_to(&posted.form, "/ui/")));
    }
    Err(PageError::new(
        StatusCode::CONFLICT,
        "Some incidents did not change",
        &format!(
            "{done} changed; not changed: {}. They may have changed meanwhile — reload the page.",
            failed.join("; ")
        ),
    )
    .with(&layout))
}

// ---------------------------------------------------------------- report one

#[derive(Template)]
#[template(path = "incident_new.html")]
struct NewPage {
    layout: Layout,
    errors: FieldErrors,
    title: String,
    description: String,
    priority: String,
    kind: String,
    priorities: Vec<&'static str>,
    kinds: Vec<&'static str>,
}

fn new_page(layout: Layout, errors: FieldErrors, form: Option<&super::FormData>) -> NewPage {
    let get = |n: &str| form.and_then(|f| f.get(n)).unwrap_or_default().to_string();
    NewPage {
        layout,
        errors,
        title: get("title"),
        description: get("description"),
        priority: form
            .and_then(|f| f.get("priority"))
            .unwrap_or("medium")
            .to_string(),
        kind: form
            .and_then(|f| f.get("type"))
            .unwrap_or("task")
            .to_string(),
        priorities: Priority::ALL.iter().map(|p| p.as_str()).collect(),
        kinds: IncidentType::ALL.iter().map(|k| k.as_str()).collect(),
    }
}

async fn new_form(State(s): State<ConsoleState>, session: Session) -> PageResult {
    let layout = session.layout(&s, "/ui/").await;
    if !rbac::allows(session.who.role, Permission::CreateIncident) {
        return Err(PageError::forbidden("Your role may not report incidents.").with(&layout));
    }
    render(&new_page(layout, FieldErrors::none(), None))
}

/// `POST /ui/incidents`: report an incident.
async fn create(State(s): State<ConsoleState>, posted: Posted) -> PageResult {
    let f = &posted.form;
    let parsed = (|| -> Result<NewIncident, Error> {
        Ok(NewIncident {
            title: f.get("title").unwrap_or_default().to_string(),
            description: f.non_blank("description").map(str::to_string),
            kind: f.non_blank("type").map(str::parse).transpose()?,
            priority: f.non_blank("priority").map(str::parse).transpose()?,
            assigned_to: None,
            service_id: None,
        })
    })();
    let result = match parsed {
        Ok(input) => s.engine.create_incident(&posted.session.who, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(i) => Ok(see_other(&format!("/ui/incidents/{}", i.id))),
        Err(e) => {
            let layout = posted.session.layout(&s, "/ui/").await;
            match FieldErrors::from_error(&e) {
                Some(errors) => render_status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &new_page(layout, errors, Some(f)),
                ),
                None => Err(PageError::from(e).with(&layout)),
            }
        }
    }
}

// ---------------------------------------------------------------- one incident

/// One alert as shown.
#[derive(Debug, Clone)]
pub(crate) struct AlertRow {
    summary: String,
    status: String,
    severity: String,
    source: String,
    labels: Vec<(String, String)>,
    links: Vec<(String, String)>,
    started: String,
    events: i64,
}

/// One timeline entry.
#[derive(Debug, Clone)]
pub(crate) struct TimelineRow {
    at: String,
    action: String,
    actor: String,
    description: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPageT {
    layout: Layout,
    view: IncidentView,
}

#[derive(Template)]
#[template(path = "incident_body.html")]
struct IncidentPartial {
    layout: Layout,
    view: IncidentView,
}

#[derive(Debug, Clone)]
pub(crate) struct IncidentView {
    i: Incident,
    id: String,
    status: &'static str,
    priority: &'static str,
    kind: &'static str,
    due: String,
    paused: bool,
    assignee: String,
    assignee_id: String,
    reporter: String,
    created: String,
    updated: String,
    next_step: String,
    alerts: Vec<AlertRow>,
    timeline: Option<Vec<TimelineRow>>,
    users: Vec<(String, String)>,
    priorities: Vec<&'static str>,
    can_update: bool,
    can_escalate: bool,
    errors: FieldErrors,
}

fn step_text(step: Step, level: u32) -> &'static str {
    match step {
        Step::ResponseBreach => "response deadline",
        Step::AtRisk => "SLA at risk warning",
        Step::Breach => "SLA breach",
        Step::Escalate(_) if level == 0 => "escalation to level 1",
        Step::Escalate(_) => "escalation to the next level",
        Step::PolicyStep => "next step of its escalation policy",
        Step::AckExpired => "acknowledgement expiry (open again)",
    }
}

async fn incident_view(
    s: &ConsoleState,
    session: &Session,
    id: IncidentId,
    errors: FieldErrors,
) -> Result<IncidentView, Error> {
    let who = &session.who;
    let i = s.engine.get_incident(who, id).await?;
    let alerts = s
        .engine
        .incident_alerts(who, id, PageRequest::first(100))
        .await?
        .items
        .iter()
        .map(|a: &Alert| AlertRow {
            summary: a.summary.clone(),
            status: a.status.to_string(),
            severity: a.severity.to_string(),
            source: a.source.clone(),
            labels: a
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            links: a
                .links
                .iter()
                .filter(|l| l.href.starts_with("https://") || l.href.starts_with("http://"))
                .map(|l| {
                    (
                        l.href.clone(),
                        l.text.clone().unwrap_or_else(|| l.href.clone()),
                    )
                })
                .collect(),
            started: time(&a.started_at),
            events: a.event_count,
        })
        .collect();
    let (users, names) = usernames(s, who).await;
    let name = |u: Option<UserId>| {
        u.map(|u| {
            if u == who.id {
                session.username.clone()
            } else {
                names.get(&u).cloned().unwrap_or_else(|| u.to_string())
            }
        })
        .unwrap_or_else(|| "nobody".into())
    };
    let timeline = if rbac::allows(who.role, Permission::ReadAudit) {
        let filter = AuditFilter {
            target: Some(id.to_string()),
            ..AuditFilter::default()
        };
        let entries = s
            .engine
            .list_audit(who, &filter, PageRequest::first(200))
            .await?
            .items;
        Some(
            entries
                .iter()
                .rev()
                .map(|e: &AuditEntry| TimelineRow {
                    at: time(&e.created_at),
                    action: e.action.to_string(),
                    actor: match e.actor {
                        imas_core::model::Actor::System => "IMAS".into(),
                        imas_core::model::Actor::User(u) => name(Some(u)),
                    },
                    description: e.description.clone(),
                })
                .collect(),
        )
    } else {
        None
    };
    let next_step = match s.engine.next_incident_step(&i) {
        Some((step, at)) => format!("{} at {}", step_text(step, i.escalation_level), time(&at)),
        None => "none pending".into(),
    };
    Ok(IncidentView {
        id: i.id.to_string(),
        status: i.status.as_str(),
        priority: i.priority.as_str(),
        kind: i.kind.as_str(),
        due: i
            .sla_deadline
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        paused: i.status == Status::OnHold || i.status.is_done(),
        assignee: name(i.assigned_to),
        assignee_id: i.assigned_to.map(|a| a.to_string()).unwrap_or_default(),
        reporter: name(i.reported_by),
        created: time(&i.created_at),
        updated: time(&i.updated_at),
        next_step,
        alerts,
        timeline,
        users: users
            .iter()
            .map(|u| (u.id.to_string(), format!("{} ({})", u.username, u.role)))
            .collect(),
        priorities: Priority::ALL.iter().map(|p| p.as_str()).collect(),
        can_update: rbac::allows(who.role, Permission::UpdateIncident),
        can_escalate: rbac::allows(who.role, Permission::EscalateManually),
        errors,
        i,
    })
}

async fn show(
    State(s): State<ConsoleState>,
    session: Session,
    uri: axum::http::Uri,
    Path(id): Path<String>,
) -> PageResult {
    let id = parse_id(&id)?;
    if query_has(uri.query(), "partial") {
        let layout = Layout::bare(&session);
        let view = incident_view(&s, &session, id, FieldErrors::none())
            .await
            .map_err(PageError::from)?;
        return render(&IncidentPartial { layout, view });
    }
    let layout = session.layout(&s, "/ui/").await;
    let view = incident_view(&s, &session, id, FieldErrors::none())
        .await
        .in_layout(&layout)?;
    render(&IncidentPageT { layout, view })
}

/// `POST /ui/incidents/{id}/{action}`: acknowledge, resolve, reassign,
/// priority, escalate.
/// Most incidents one bulk action takes (each is an engine call).
const MAX_BULK: usize = 500;

async fn act(
    State(s): State<ConsoleState>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let id = parse_id(&id)?;
    let who = posted.session.who;
    let f = &posted.form;
    // The version the page showed: the change is refused if the incident
    // moved since. One that is not a number is refused too, rather than
    // dropping the check.
    let version = match f.non_blank("version") {
        None => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "Invalid input",
                "The form's version is not a number; reload the page and try again.",
            )
        })?),
    };
    let result: Result<(), Error> = async {
        match action.as_str() {
            "acknowledge" | "resolve" => {
                let status = if action == "resolve" {
                    Status::Resolved
                } else {
                    Status::Acknowledged
                };
                let patch = IncidentPatch {
                    status: Some(status),
                    ..IncidentPatch::default()
                };
                s.engine.update_incident(&who, id, patch, version).await?;
            }
            "reassign" => {
                let assignee = match f.non_blank("assignee") {
                    None => None,
                    Some(raw) => Some(raw.parse::<UserId>().map_err(|_| {
                        Error::validation("assignedTo", "choose somebody from the list")
                    })?),
                };
                let patch = IncidentPatch {
                    assigned_to: Some(assignee),
                    ..IncidentPatch::default()
                };
                s.engine.update_incident(&who, id, patch, version).await?;
            }
            "priority" => {
                let priority = f.get("priority").unwrap_or_default().parse::<Priority>()?;
                let patch = IncidentPatch {
                    priority: Some(priority),
                    ..IncidentPatch::default()
                };
                s.engine.update_incident(&who, id, patch, version).await?;
            }
            "escalate" => {
                let reason = f.non_blank("reason").map(str::to_string);
                s.engine.escalate_manually(&who, id, reason).await?;
            }
            _ => return Err(Error::NotFound { entity: "action" }),
        }
        Ok(())
    }
    .await;
    let here = format!("/ui/incidents/{id}");
    match result {
        Ok(()) => Ok(see_other(&here)),
        Err(e) => {
            let layout = posted.session.layout(&s, "/ui/").await;
            match FieldErrors::from_error(&e) {
                Some(errors) => {
                    let view = incident_view(&s, &posted.session, id, errors)
                        .await
                        .in_layout(&layout)?;
                    render_status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &IncidentPageT { layout, view },
                    )
                }
                None => Err(PageError::from(e).with(&layout)),
            }
        }
    }
}
