//! On call (SPEC §5, §6): `/ui/oncall`, who is on call now in every schedule
//! and each schedule's shifts over the next two weeks, with its overrides; a
//! form adds an override (admins any, an engineer one that adds or removes
//! himself, as the engine allows) and each override can be deleted.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::TimeDelta;
use imas_core::Error;
use imas_core::model::{NewOverride, OverrideId, PageRequest, ScheduleId, UserId};
use imas_core::rbac::{self, Permission};

use super::show::{Choice, filled, local_value, parse_local, path_id, when};
use super::{
    ConsoleState, FieldErrors, InLayout, Layout, PageError, PageResult, Posted, Session,
    render_status, see_other,
};

pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/oncall", get(page))
        .route("/ui/oncall/overrides", post(add_override))
        .route(
            "/ui/oncall/schedules/{id}/overrides/{oid}/delete",
            post(delete_override),
        )
}

/// Days of shifts shown per schedule.
const SHIFT_DAYS: i64 = 14;

struct ShiftRow {
    user: String,
    start: String,
    end: String,
}

struct OverrideRow {
    id: String,
    what: String,
    start: String,
    end: String,
    can_delete: bool,
}

struct ScheduleSection {
    id: String,
    name: String,
    time_zone: String,
    now: Vec<String>,
    shifts: Vec<ShiftRow>,
    overrides: Vec<OverrideRow>,
}

/// The override form's values (kept when it is re-rendered).
struct OverrideForm {
    schedules: Vec<Choice>,
    add: Vec<Choice>,
    remove: Vec<Choice>,
    start: String,
    end: String,
}

#[derive(Template)]
#[template(path = "schedules_oncall.html")]
struct OnCallPage {
    layout: Layout,
    at: String,
    until: String,
    schedules: Vec<ScheduleSection>,
    can_add: bool,
    form: OverrideForm,
    errors: FieldErrors,
}

/// What the form posted, to show again.
#[derive(Default)]
struct Sent {
    schedule: Option<String>,
    add: Option<String>,
    remove: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

async fn render_page(
    s: &ConsoleState,
    session: &Session,
    sent: Sent,
    errors: FieldErrors,
    status: StatusCode,
) -> PageResult {
    let layout = Layout::signed_in(s, session, "/ui/oncall").await;
    let who = &session.who;
    let now = s.engine.now();
    let everywhere = s
        .engine
        .on_call_everywhere(who, Some(now))
        .await
        .in_layout(&layout)?;
    let users = s
        .engine
        .list_users(who, PageRequest::first(500))
        .await
        .in_layout(&layout)?
        .items;
    let names: HashMap<UserId, String> = users
        .iter()
        .map(|u| (u.id, format!("{} ({})", u.name, u.username)))
        .collect();
    let name_of = |id: UserId| names.get(&id).cloned().unwrap_or_else(|| id.to_string());
    let until = now + TimeDelta::days(SHIFT_DAYS);
    let manage_any = rbac::allows(who.role, Permission::ManageOnCall);
    let mut schedules = Vec::new();
    for on in everywhere.schedules {
        let schedule = s
            .engine
            .get_schedule(who, on.schedule_id)
            .await
            .in_layout(&layout)?;
        let shifts = s
            .engine
            .schedule_shifts(who, on.schedule_id, now, until)
            .await
            .in_layout(&layout)?;
        schedules.push(ScheduleSection {
            id: on.schedule_id.to_string(),
            name: on.name,
            time_zone: schedule.time_zone.name().to_string(),
            now: on
                .users
                .iter()
                .map(|u| format!("{} ({})", u.name, u.username))
                .collect(),
            shifts: shifts
                .into_iter()
                .map(|sh| ShiftRow {
                    user: name_of(sh.user_id),
                    start: when(sh.start),
                    end: when(sh.end),
                })
                .collect(),
            overrides: schedule
                .overrides
                .iter()
                .filter(|o| o.end > now)
                .map(|o| OverrideRow {
                    id: o.id.to_string(),
                    what: match (o.add_user_id, o.remove_user_id) {
                        (Some(a), Some(r)) => format!("{} instead of {}", name_of(a), name_of(r)),
                        (Some(a), None) => format!("{} added", name_of(a)),
                        (None, Some(r)) => format!("{} removed", name_of(r)),
                        (None, None) => "nobody".into(),
                    },
                    start: when(o.start),
                    end: when(o.end),
                    can_delete: manage_any
                        || (rbac::allows(who.role, Permission::ManageOwnOverrides)
                            && (o.add_user_id == Some(who.id) || o.remove_user_id == Some(who.id))),
                })
                .collect(),
        });
    }
    let can_add = rbac::allows(who.role, Permission::ManageOwnOverrides) && !schedules.is_empty();
    let nobody = || (String::new(), "Nobody".to_string());
    let everyone: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.id.to_string(), format!("{} ({})", u.name, u.username)))
        .collect();
    // Everyone in both lists: an engineer may hand his shift to a colleague
    // (put her on call in his place) or take one himself; which overrides a
    // role may make is the engine's to decide, and its refusal is shown.
    let addable = everyone.clone();
    let default_add = if manage_any {
        None
    } else {
        Some(who.id.to_string())
    };
    let form = OverrideForm {
        schedules: Choice::list(
            schedules.iter().map(|s| (s.id.clone(), s.name.clone())),
            sent.schedule.as_deref(),
        ),
        add: Choice::list(
            std::iter::once(nobody()).chain(addable),
            sent.add.as_deref().or(default_add.as_deref()),
        ),
        remove: Choice::list(
            std::iter::once(nobody()).chain(everyone),
            sent.remove.as_deref(),
        ),
        start: sent.start.unwrap_or_else(|| local_value(now)),
        end: sent
            .end
            .unwrap_or_else(|| local_value(now + TimeDelta::hours(8))),
    };
    let page = OnCallPage {
        layout,
        at: when(now),
        until: when(until),
        schedules,
        can_add,
        form,
        errors,
    };
    render_status(status, &page)
}

async fn page(State(s): State<ConsoleState>, session: Session) -> PageResult {
    render_page(
        &s,
        &session,
        Sent::default(),
        FieldErrors::none(),
        StatusCode::OK,
    )
    .await
}

fn user_field(field: &str, raw: Option<&str>) -> Result<Option<UserId>, Error> {
    filled(raw)
        .map(|v| {
            v.parse::<UserId>()
                .map_err(|_| Error::validation(field, "expected one of the users"))
        })
        .transpose()
}

async fn add_override(State(s): State<ConsoleState>, posted: Posted) -> PageResult {
    let f = &posted.form;
    let result = async {
        let schedule: ScheduleId = filled(f.get("schedule"))
            .unwrap_or_default()
            .parse()
            .map_err(|_| Error::validation("schedule", "choose a schedule"))?;
        let new = NewOverride {
            start: parse_local("start", f.get("start").unwrap_or_default())?,
            end: parse_local("end", f.get("end").unwrap_or_default())?,
            add_user_id: user_field("addUserId", f.get("addUserId"))?,
            remove_user_id: user_field("removeUserId", f.get("removeUserId"))?,
        };
        s.engine
            .add_override(&posted.session.who, schedule, new)
            .await
    }
    .await;
    let e = match result {
        Ok(_) => return Ok(see_other("/ui/oncall")),
        Err(e) => e,
    };
    let Some(errors) = FieldErrors::from_error(&e) else {
        let layout = Layout::signed_in(&s, &posted.session, "/ui/oncall").await;
        return Err(PageError::from(e).with(&layout));
    };
    let sent = Sent {
        schedule: f.get("schedule").map(str::to_string),
        add: f.get("addUserId").map(str::to_string),
        remove: f.get("removeUserId").map(str::to_string),
        start: f.get("start").map(str::to_string),
        end: f.get("end").map(str::to_string),
    };
    render_page(
        &s,
        &posted.session,
        sent,
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

async fn delete_override(
    State(s): State<ConsoleState>,
    Path((id, oid)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let layout = Layout::signed_in(&s, &posted.session, "/ui/oncall").await;
    let id: ScheduleId = path_id(&id, "schedule").map_err(|e| e.with(&layout))?;
    let oid: OverrideId = path_id(&oid, "override").map_err(|e| e.with(&layout))?;
    s.engine
        .delete_override(&posted.session.who, id, oid)
        .await
        .in_layout(&layout)?;
    Ok(see_other("/ui/oncall"))
}
