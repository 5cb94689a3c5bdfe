//! Users and roles (SPEC §1, §6): `/ui/users`, `table#users` (admins and
//! engineers read it); admins create an account with its role
//! (`form#new-user`) and change a role from the select on each row. The
//! engine refuses what the role may not do, and demoting the last admin.

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use imas_core::Error;
use imas_core::engine::NewUser;
use imas_core::model::{Role, UserId};
use imas_core::rbac::{self, Permission};

use super::show::{Choice, next_href, path_id, query};
use super::{
    ConsoleState, FieldErrors, InLayout, Layout, PageError, PageResult, Posted, Session,
    render_status, see_other,
};
use crate::extract::ListParams;

pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/users", get(list).post(create))
        .route("/ui/users/{id}/role", post(change_role))
}

struct Row {
    id: String,
    name: String,
    username: String,
    role: &'static str,
    time_zone: String,
    roles: Vec<Choice>,
    me: bool,
}

#[derive(Default)]
struct UserForm {
    name: String,
    username: String,
    email: String,
    roles: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "users_list.html")]
struct ListPage {
    layout: Layout,
    users: Vec<Row>,
    next: Option<String>,
    can_manage: bool,
    form: UserForm,
    errors: FieldErrors,
}

fn role_choices(current: Option<&str>) -> Vec<Choice> {
    Choice::list(
        Role::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), r.as_str().to_string())),
        current,
    )
}

async fn list_page(
    s: &ConsoleState,
    session: &Session,
    params: &ListParams,
    form: UserForm,
    errors: FieldErrors,
    status: StatusCode,
) -> PageResult {
    let layout = Layout::signed_in(s, session, "/ui/users").await;
    let page = super::show::page_of(params).map_err(|e| e.with(&layout))?;
    let page = s
        .engine
        .list_users(&session.who, page)
        .await
        .in_layout(&layout)?;
    let next = next_href("/ui/users", &[], page.next);
    let users = page
        .items
        .into_iter()
        .map(|u| Row {
            id: u.id.to_string(),
            me: u.id == session.who.id,
            roles: role_choices(Some(u.role.as_str())),
            role: u.role.as_str(),
            name: u.name,
            username: u.username,
            time_zone: u.time_zone.name().to_string(),
        })
        .collect();
    let mut form = form;
    if form.roles.is_empty() {
        form.roles = role_choices(Some("engineer"));
    }
    render_status(
        status,
        &ListPage {
            layout,
            users,
            next,
            can_manage: rbac::allows(session.who.role, Permission::ChangeRole),
            form,
            errors,
        },
    )
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
        UserForm::default(),
        FieldErrors::none(),
        StatusCode::OK,
    )
    .await
}

async fn create(State(s): State<ConsoleState>, posted: Posted) -> PageResult {
    let f = &posted.form;
    let text = |name: &str| f.get(name).unwrap_or_default().to_string();
    let result = async {
        let role: Role = f.get("role").unwrap_or_default().parse()?;
        let new = NewUser {
            name: text("name"),
            username: text("username"),
            email: text("email"),
            password: text("password"),
        };
        s.engine.create_user(&posted.session.who, new, role).await
    }
    .await;
    let e = match result {
        Ok(_) => return Ok(see_other("/ui/users")),
        Err(e) => e,
    };
    let errors = match (&e, FieldErrors::from_error(&e)) {
        (_, Some(errors)) => errors,
        // A taken username or email: said beside the username.
        (Error::Conflict { .. }, None) => FieldErrors::one("username", e.to_string()),
        _ => {
            let layout = Layout::signed_in(&s, &posted.session, "/ui/users").await;
            return Err(PageError::from(e).with(&layout));
        }
    };
    let form = UserForm {
        name: text("name"),
        username: text("username"),
        email: text("email"),
        roles: role_choices(f.get("role")),
    };
    list_page(
        &s,
        &posted.session,
        &ListParams::default(),
        form,
        errors,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

async fn change_role(
    State(s): State<ConsoleState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let layout = Layout::signed_in(&s, &posted.session, "/ui/users").await;
    let id: UserId = path_id(&id, "user").map_err(|e| e.with(&layout))?;
    let role: Role = posted
        .form
        .get("role")
        .unwrap_or_default()
        .parse()
        .in_layout(&layout)?;
    s.engine
        .change_role(&posted.session.who, id, role)
        .await
        .in_layout(&layout)?;
    Ok(see_other("/ui/users"))
}
