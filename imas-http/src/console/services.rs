//! Services and their integration keys (SPEC §4, §6): `/ui/services` (the
//! list; admins create one), `/ui/services/{id}` (its fields, its keys; admins
//! create a key, shown once in `#new-key-secret`, and revoke one). Every
//! action is the engine's, with its permissions, validation and audit.
//!
//! The new key is shown by the page the creation redirects to (so that a
//! reload never creates a second key): the POST hands it over in a cookie
//! that lives two minutes, only on that service's address (HttpOnly,
//! SameSite=Strict), which the page shows once — when the key is one of the
//! service's live keys — and clears.

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use imas_core::Error;
use imas_core::model::{
    EscalationPolicyId, Integration, IntegrationId, IntegrationKind, NewIntegration, NewService,
    PageRequest, Service, ServiceId, key_hash,
};
use imas_core::rbac::{self, Permission};

use super::session::{cookie, same, set_cookie};
use super::show::{Choice, filled, next_href, path_id, query, when};
use super::{
    ConsoleState, FieldErrors, InLayout, Layout, PageResult, Posted, Session, render_status,
    see_other,
};
use crate::extract::ListParams;

/// The cookie that hands a new key from its creation to the page showing it.
const NEW_KEY_COOKIE: &str = "imas_new_key";
/// How long it lives, in seconds.
const NEW_KEY_SECS: u64 = 120;

pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/services", get(list).post(create))
        .route("/ui/services/{id}", get(show))
        .route("/ui/services/{id}/integrations", post(create_key))
        .route(
            "/ui/services/{id}/integrations/{key}/revoke",
            post(revoke_key),
        )
}

/// A service as a row of the list.
struct Row {
    id: String,
    name: String,
    description: String,
    policy: String,
    auto_resolve: bool,
    created: String,
}

/// What the new-service form holds (kept when it is re-rendered).
#[derive(Default)]
struct ServiceForm {
    name: String,
    description: String,
    auto_resolve: bool,
    ack_timeout: String,
    policies: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "services_list.html")]
struct ListPage {
    layout: Layout,
    services: Vec<Row>,
    next: Option<String>,
    can_manage: bool,
    form: ServiceForm,
    errors: FieldErrors,
}

async fn policy_names(s: &ConsoleState, session: &Session) -> Vec<(String, String)> {
    // Only to name them: a role that may not read policies sees ids.
    match s
        .engine
        .list_escalation_policies(&session.who, PageRequest::first(500))
        .await
    {
        Ok(page) => page
            .items
            .into_iter()
            .map(|p| (p.id.to_string(), p.name))
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn list_page(
    s: &ConsoleState,
    session: &Session,
    params: &ListParams,
    form: ServiceForm,
    errors: FieldErrors,
    status: StatusCode,
) -> PageResult {
    let layout = Layout::signed_in(s, session, "/ui/services").await;
    let page = super::show::page_of(params).map_err(|e| e.with(&layout))?;
    let page = s
        .engine
        .list_services(&session.who, page)
        .await
        .in_layout(&layout)?;
    let names = policy_names(s, session).await;
    let can_manage = rbac::allows(session.who.role, Permission::ManageServices);
    let services = page
        .items
        .into_iter()
        .map(|svc| Row {
            id: svc.id.to_string(),
            policy: policy_label(&names, svc.escalation_policy_id),
            name: svc.name,
            description: svc.description,
            auto_resolve: svc.auto_resolve,
            created: when(svc.created_at),
        })
        .collect();
    let next = next_href("/ui/services", &[], page.next);
    let mut form = form;
    if form.policies.is_empty() {
        let mut options = vec![(String::new(), "The default policy".to_string())];
        options.extend(names);
        form.policies = Choice::list(options, None);
    }
    render_status(
        status,
        &ListPage {
            layout,
            services,
            next,
            can_manage,
            form,
            errors,
        },
    )
}

fn policy_label(names: &[(String, String)], id: Option<EscalationPolicyId>) -> String {
    match id {
        None => "default".into(),
        Some(id) => {
            let id = id.to_string();
            names
                .iter()
                .find(|(i, _)| *i == id)
                .map_or(id, |(_, n)| n.clone())
        }
    }
}

async fn list(
    State(s): State<ConsoleState>,
    session: Session,
    q: Result<Query<ListParams>, QueryRejection>,
) -> PageResult {
    let params = query(q)?;
    let form = ServiceForm {
        auto_resolve: true,
        ..ServiceForm::default()
    };
    list_page(
        &s,
        &session,
        &params,
        form,
        FieldErrors::none(),
        StatusCode::OK,
    )
    .await
}

/// The form's fields as the engine takes them; a field that does not parse is
/// a validation error naming it.
fn new_service(posted: &Posted) -> Result<NewService, Error> {
    let f = &posted.form;
    let escalation_policy_id = filled(f.get("escalationPolicyId"))
        .map(str::parse::<EscalationPolicyId>)
        .transpose()
        .map_err(|_| Error::validation("escalationPolicyId", "expected one of the policies"))?;
    let ack_timeout_seconds = filled(f.get("ackTimeoutSeconds"))
        .map(str::parse::<u32>)
        .transpose()
        .map_err(|_| {
            Error::validation(
                "ackTimeoutSeconds",
                "expected a number of seconds (1 to 604800), or nothing",
            )
        })?;
    Ok(NewService {
        name: f.get("name").unwrap_or_default().to_string(),
        description: f.get("description").unwrap_or_default().to_string(),
        auto_resolve: Some(f.get("autoResolve").is_some()),
        escalation_policy_id,
        ack_timeout_seconds,
    })
}

async fn create(State(s): State<ConsoleState>, posted: Posted) -> PageResult {
    let result = match new_service(&posted) {
        Ok(new) => s.engine.create_service(&posted.session.who, new).await,
        Err(e) => Err(e),
    };
    let e = match result {
        Ok(service) => return Ok(see_other(&format!("/ui/services/{}", service.id))),
        Err(e) => e,
    };
    let errors = match (&e, FieldErrors::from_error(&e)) {
        (_, Some(errors)) => errors,
        // A taken name: said beside the name rather than as a page.
        (Error::Conflict { .. }, None) => FieldErrors::one("name", e.to_string()),
        _ => {
            let layout = Layout::signed_in(&s, &posted.session, "/ui/services").await;
            return Err(super::PageError::from(e).with(&layout));
        }
    };
    let f = &posted.form;
    let names = policy_names(&s, &posted.session).await;
    let mut options = vec![(String::new(), "The default policy".to_string())];
    options.extend(names);
    let form = ServiceForm {
        name: f.get("name").unwrap_or_default().to_string(),
        description: f.get("description").unwrap_or_default().to_string(),
        auto_resolve: f.get("autoResolve").is_some(),
        ack_timeout: f.get("ackTimeoutSeconds").unwrap_or_default().to_string(),
        policies: Choice::list(options, f.get("escalationPolicyId")),
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

/// An integration key as a row.
struct KeyRow {
    id: String,
    name: String,
    kind: &'static str,
    created: String,
}

/// A key just created: the only time its secret is shown.
struct NewKey {
    name: String,
    kind: &'static str,
    secret: String,
}

#[derive(Template)]
#[template(path = "services_show.html")]
struct ShowPage {
    layout: Layout,
    service: Service,
    policy: String,
    ack_timeout: String,
    created: String,
    updated: String,
    can_manage_keys: bool,
    keys: Vec<KeyRow>,
    new_key: Option<NewKey>,
    key_name: String,
    kinds: Vec<Choice>,
    errors: FieldErrors,
}

fn kind_choices(current: Option<&str>) -> Vec<Choice> {
    Choice::list(
        IntegrationKind::ALL.iter().map(|k| {
            let label = match k {
                IntegrationKind::EventsV2 => "PagerDuty Events API v2",
                IntegrationKind::Alertmanager => "Prometheus Alertmanager",
            };
            (k.as_str().to_string(), label.to_string())
        }),
        current,
    )
}

struct ShowArgs {
    /// `<integration id>.<key>` from the hand-over cookie.
    handed: Option<String>,
    key_name: String,
    kind: Option<String>,
    errors: FieldErrors,
    status: StatusCode,
}

async fn show_page(s: &ConsoleState, session: &Session, raw: &str, args: ShowArgs) -> PageResult {
    let layout = Layout::signed_in(s, session, "/ui/services").await;
    let id: ServiceId = path_id(raw, "service").map_err(|e| e.with(&layout))?;
    let service = s
        .engine
        .get_service(&session.who, id)
        .await
        .in_layout(&layout)?;
    let can_manage_keys = rbac::allows(session.who.role, Permission::ManageIntegrations);
    let keys: Vec<Integration> = if can_manage_keys {
        s.engine
            .list_integrations(&session.who, id)
            .await
            .in_layout(&layout)?
    } else {
        Vec::new()
    };
    // The key handed over by its creation, if it is one of this service's.
    let new_key = args.handed.as_deref().and_then(|v| {
        let (id, rest) = v.split_once('.')?;
        // Only to the session that created it (another admin signing in on
        // the same browser within the cookie's two minutes sees nothing).
        let (tag, secret) = rest.split_once('.')?;
        if !same(tag, &session_tag(session)) {
            return None;
        }
        let k = keys.iter().find(|k| k.id.to_string() == id)?;
        same(&key_hash(secret), &k.key_hash).then(|| NewKey {
            name: k.name.clone(),
            kind: k.kind.as_str(),
            secret: secret.to_string(),
        })
    });
    let names = policy_names(s, session).await;
    let page = ShowPage {
        policy: policy_label(&names, service.escalation_policy_id),
        ack_timeout: service
            .ack_timeout_seconds
            .map_or_else(|| "none".to_string(), |n| format!("{n} s")),
        created: when(service.created_at),
        updated: when(service.updated_at),
        service,
        layout,
        can_manage_keys,
        keys: keys
            .into_iter()
            .map(|k| KeyRow {
                id: k.id.to_string(),
                name: k.name,
                kind: k.kind.as_str(),
                created: when(k.created_at),
            })
            .collect(),
        new_key,
        key_name: args.key_name,
        kinds: kind_choices(args.kind.as_deref()),
        errors: args.errors,
    };
    render_status(args.status, &page)
}

async fn show(
    State(s): State<ConsoleState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> PageResult {
    let handed = cookie(&headers, NEW_KEY_COOKIE).map(str::to_string);
    let args = ShowArgs {
        handed: handed.clone(),
        key_name: String::new(),
        kind: None,
        errors: FieldErrors::none(),
        status: StatusCode::OK,
    };
    let mut response = show_page(&s, &session, &id, args).await?;
    if handed.is_some() {
        // Shown once: the cookie goes with this answer.
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(
                NEW_KEY_COOKIE,
                "",
                &format!("/ui/services/{id}"),
                0,
                s.secure_cookies,
            ),
        );
    }
    Ok(response)
}

async fn create_key(
    State(s): State<ConsoleState>,
    Path(id): Path<String>,
    posted: Posted,
) -> PageResult {
    let name = posted.form.get("name").unwrap_or_default().to_string();
    let kind_raw = posted.form.get("kind").map(str::to_string);
    let result = async {
        let service: ServiceId = id
            .parse()
            .map_err(|_| Error::NotFound { entity: "service" })?;
        let kind: IntegrationKind = kind_raw.as_deref().unwrap_or_default().parse()?;
        s.engine
            .create_integration(
                &posted.session.who,
                service,
                NewIntegration {
                    name: name.clone(),
                    kind,
                },
            )
            .await
    }
    .await;
    let args = match result {
        // To the service's page, which shows the key once: a reload of it
        // creates nothing.
        Ok(created) => {
            let service = created.integration.service_id;
            let mut response = see_other(&format!("/ui/services/{service}"));
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    NEW_KEY_COOKIE,
                    &format!(
                        "{}.{}.{}",
                        created.integration.id,
                        session_tag(&posted.session),
                        created.key
                    ),
                    &format!("/ui/services/{service}"),
                    NEW_KEY_SECS,
                    s.secure_cookies,
                ),
            );
            return Ok(response);
        }
        Err(e) => match FieldErrors::from_error(&e) {
            Some(errors) => ShowArgs {
                handed: None,
                key_name: name,
                kind: kind_raw,
                errors,
                status: StatusCode::UNPROCESSABLE_ENTITY,
            },
            None => {
                let layout = Layout::signed_in(&s, &posted.session, "/ui/services").await;
                return Err(super::PageError::from(e).with(&layout));
            }
        },
    };
    show_page(&s, &posted.session, &id, args).await
}

/// What ties a handed-over key to the session that created it: the start of
/// the session's CSRF token (itself derived from the session token).
fn session_tag(session: &Session) -> String {
    session.csrf.chars().take(16).collect()
}

async fn revoke_key(
    State(s): State<ConsoleState>,
    Path((id, key)): Path<(String, String)>,
    posted: Posted,
) -> PageResult {
    let layout = Layout::signed_in(&s, &posted.session, "/ui/services").await;
    let service: ServiceId = path_id(&id, "service").map_err(|e| e.with(&layout))?;
    let key: IntegrationId = path_id(&key, "integration").map_err(|e| e.with(&layout))?;
    // The key of the address's service only: its page is where the form is.
    let of_service = s
        .engine
        .list_integrations(&posted.session.who, service)
        .await
        .in_layout(&layout)?
        .iter()
        .any(|k| k.id == key);
    if !of_service {
        return Err(super::PageError::not_found("This service has no such key.").with(&layout));
    }
    s.engine
        .revoke_integration(&posted.session.who, key)
        .await
        .in_layout(&layout)?;
    Ok(see_other(&format!("/ui/services/{service}")))
}
