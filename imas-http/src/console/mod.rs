//! The web console (SPEC §6): server-rendered pages under `/ui`, askama
//! templates checked at compile time (`templates/`, named by `askama.toml`),
//! htmx for partial updates and live changes over `/ui/events`, every asset
//! served from the binary (`assets/`). It holds no business rule: every page
//! and action is an engine call, with the same permissions, audit and
//! validation as the JSON API. One module per page group, like kanidm's
//! `views/`; the session cookie and the CSRF token live in `session`.
//!
//! # Adding a page group
//!
//! 1. A module `console/<group>.rs` with
//!    `pub(super) fn router() -> Router<ConsoleState>` whose routes are full
//!    paths starting with `/ui` (`.route("/ui/services", get(list))`), and one
//!    line in `router` below the comment `// page groups: one line each`
//!    (`.merge(services::router())`) plus its `mod services;` line beside the
//!    others below.
//! 2. A page handler takes `Session` (the signed-in caller: it redirects to
//!    `/ui/login?next=...` by itself when there is no valid cookie) and
//!    returns `PageResult`:
//!    ```ignore
//!    #[derive(askama::Template)]
//!    #[template(path = "services.html")]
//!    struct ServicesPage { layout: Layout, services: Vec<Service> }
//!
//!    async fn list(State(s): State<ConsoleState>, session: Session) -> PageResult {
//!        let layout = session.layout(&s, "/ui/services").await;
//!        let services = s.engine.list_services(&session.who, ..).await.in_layout(&layout)?;
//!        render(&ServicesPage { layout, services })
//!    }
//!    ```
//!    The template starts `{% extends "base.html" %}` and fills
//!    `{% block title %}` and `{% block main %}`; `layout` must be a field named
//!    so (the header, navigation, `#whoami`, `form#logout` and `#unread-count`
//!    come from it).
//! 3. A state-changing request is a `POST` whose handler takes `Posted`
//!    instead of `Session`: it has already refused (403, `#csrf-refused`) a
//!    request whose `csrf` field or `X-CSRF-Token` header is not the session's
//!    token, so nothing more is needed. Forms carry it with
//!    `<input type="hidden" name="csrf" value="{{ layout.csrf() }}">`. Read
//!    fields with `posted.form.get("name")` / `posted.form.all("ids")`; after
//!    success answer `see_other``("/ui/...")` (303).
//! 4. An engine error: `.in_layout(&layout)?` (`InLayout`) turns it into the
//!    page that says so — `Forbidden` is the 403 "Not allowed" page, `NotFound`
//!    404, `Conflict` 409 "changed meanwhile — reload", 429, 503. A page the
//!    role may not open at all: `return Err(PageError::forbidden("why").with(&layout))`
//!    (or let the engine's own `Forbidden` answer it).
//! 5. A validation error beside its field: re-render the form with status 422
//!    (`render_status`) and a `FieldErrors` field built with
//!    `FieldErrors::from_error(&e)` (it keeps the engine's field name and
//!    message; other errors go through `in_layout`). In the template, for the
//!    field `title`:
//!    ```text
//!    <label for="title">Title</label>
//!    <input id="title" name="title" {{ errors.attrs("title")|safe }}>
//!    {% if let Some(m) = errors.get("title") %}<p class="field-error" id="title-error">{{ m }}</p>{% endif %}
//!    ```
//!    (`attrs` gives `aria-invalid="true" aria-describedby="title-error"` when
//!    that field is at fault.)
//! 6. Navigation: `Layout` shows a link only to the pages the role may open
//!    (see `NAV` below, which already lists every page of SPEC §6).
//! 7. Live parts: `<body>` is already connected to `/ui/events` (htmx SSE
//!    extension). A region that must follow incident changes is
//!    `<div id="x" hx-get="/ui/...?partial=1" hx-trigger="sse:incidents" hx-swap="outerHTML">`;
//!    its handler renders only that fragment when `partial=1`, with
//!    `Layout::bare``(&session)` as its `layout` (CSRF for its forms, no
//!    navigation). `incidents.rs` does exactly this.
//! 8. Other pieces to reuse: query parsers of `crate::extract` (`ListParams`
//!    and `page()` for `limit`/`cursor`, `statuses`, `date`, ...), with the
//!    JSON API's parameter names; `FormData::non_blank`; unknown `/ui/...`
//!    addresses already answer the console's 404 page (do not add a
//!    fallback). Every answer gets the Content-Security-Policy: no inline
//!    `<script>` or `style=""`; put behaviour in `assets/console.js` and styles
//!    in `assets/console.css` (add a new asset to `ASSETS`).

use std::sync::OnceLock;

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use imas_core::model::Role;
use imas_core::rbac::{self, Permission};
use imas_core::{Engine, Error};
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

mod events;
mod incidents;
mod session;

mod audit;
mod escalation_policies;
mod notifications;
mod reports;
mod schedules;
mod services;
mod show;
mod users;

#[allow(unused_imports)]
pub(crate) use session::{FormData, Posted, Session, is_htmx};

/// The session token of a request's `imas_session` cookie, if any (what
/// `GET /notifications/stream` accepts in place of a bearer token).
pub(crate) fn session_token(headers: &HeaderMap) -> Option<&str> {
    session::cookie(headers, session::SESSION_COOKIE)
}

/// Options of [`router`].
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// Adds `Secure` to the cookies (set it when the server speaks HTTPS).
    pub secure_cookies: bool,
    /// Ends live streams (`/ui/events`) when it turns true.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Shared state of the console's handlers.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleState {
    /// The engine.
    pub engine: Engine,
    /// Whether cookies are `Secure`.
    pub secure_cookies: bool,
    /// Turns true at shutdown.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The Content-Security-Policy of every console answer.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console: every page under `/ui`, with the session, CSRF and assets.
/// [`crate::router_with`] merges it (with `GET /` redirected to `/ui/`).
pub fn router(engine: Engine, options: ConsoleOptions) -> Router {
    let state = ConsoleState {
        engine,
        secure_cookies: options.secure_cookies,
        shutdown: options.shutdown,
    };
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/assets/{name}", get(asset))
        .merge(session::router())
        .merge(events::router())
        .merge(incidents::router())
        // page groups: one line each
        .merge(services::router())
        .merge(schedules::router())
        .merge(escalation_policies::router())
        .merge(notifications::router())
        .merge(reports::router())
        .merge(users::router())
        .merge(audit::router())
        // Any other console address is the console's own 404 page.
        .route("/ui/{*rest}", axum::routing::any(no_page))
        .with_state(state)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
}

async fn no_page() -> PageError {
    PageError::not_found("There is no such page in the console.")
}

// ---------------------------------------------------------------- assets

/// The files under `assets/`, served at `/ui/assets/{name}`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/htmx.min.js"),
    ),
    (
        "sse.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/sse.min.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/console.css"),
    ),
    (
        "htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/htmx.LICENSE"),
    ),
    (
        "sse.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/sse.LICENSE"),
    ),
];

/// Each asset's content hash (16 hex digits), its ETag and `?v=` in its URL.
fn asset_hashes() -> &'static Vec<String> {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| hex::encode(&Sha256::digest(body)[..8]))
            .collect()
    })
}

/// The URL of an asset, with its content hash (so it may be cached for good).
pub(crate) fn asset_url(name: &str) -> String {
    match ASSETS.iter().position(|(n, _, _)| *n == name) {
        Some(i) => format!("/ui/assets/{name}?v={}", asset_hashes()[i]),
        None => format!("/ui/assets/{name}"),
    }
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|(n, _, _)| *n == name) else {
        return PageError::new(StatusCode::NOT_FOUND, "Not found", "No such file.").into_response();
    };
    let (_, content_type, body) = ASSETS[i];
    let etag = format!("\"{}\"", asset_hashes()[i]);
    let cache = "public, max-age=31536000, immutable";
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if fresh {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache.into())],
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache.into()),
        ],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------- layout

/// One link of the navigation.
#[derive(Debug, Clone)]
pub(crate) struct NavItem {
    /// `/ui/...`.
    pub href: &'static str,
    /// Its text.
    pub label: &'static str,
    /// The page shown now.
    pub current: bool,
}

/// Every page of the navigation, with the permission that opens it (`None`:
/// every role).
const NAV: &[(&str, &str, Option<Permission>)] = &[
    ("/ui/", "Incidents", None),
    ("/ui/services", "Services", Some(Permission::ReadServices)),
    ("/ui/oncall", "On call", Some(Permission::ReadOnCall)),
    ("/ui/policies", "Policies", Some(Permission::ReadOnCall)),
    (
        "/ui/notifications",
        "Notifications",
        Some(Permission::ReadOwnNotifications),
    ),
    ("/ui/reports", "Reports", Some(Permission::ExportReports)),
    ("/ui/users", "Users", Some(Permission::ListUsers)),
    ("/ui/audit", "Audit", Some(Permission::ReadAudit)),
];

/// The signed-in part of the layout.
#[derive(Debug, Clone)]
pub(crate) struct UserBar {
    /// The caller's username.
    pub username: String,
    /// The caller's role.
    pub role: Role,
    /// The CSRF token of the session.
    pub csrf: String,
    /// The unread notifications, as shown (`"3"`, `"100+"`).
    pub unread: String,
    /// The links the role may open.
    pub nav: Vec<NavItem>,
    /// The incidents generation the page was rendered at (empty when the
    /// store has none): `/ui/events?since=` starts from it, so that a change
    /// made before the stream connects is not missed.
    pub generation: String,
}

/// What `base.html` shows around every page: for a signed-in caller the header
/// with the navigation, `#whoami`, `form#logout` and `#unread-count`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    /// `None` on the sign-in and error pages without a session.
    pub user: Option<UserBar>,
}

fn generation_text(engine: &Engine) -> String {
    engine
        .incidents_generation()
        .map(|g| g.to_string())
        .unwrap_or_default()
}

/// Unread notifications counted for the header (`100+` beyond).
const UNREAD_CAP: u32 = 100;

impl Layout {
    /// The layout of a signed-in caller on the page `current` (a `NAV` href).
    pub(crate) async fn signed_in(
        state: &ConsoleState,
        session: &Session,
        current: &str,
    ) -> Layout {
        let unread = match state
            .engine
            .unread_notifications(&session.who, UNREAD_CAP)
            .await
        {
            Ok((n, false)) => n.to_string(),
            Ok((n, true)) => format!("{n}+"),
            Err(_) => String::new(),
        };
        let nav = NAV
            .iter()
            .filter(|(_, _, p)| p.is_none_or(|p| rbac::allows(session.who.role, p)))
            .map(|(href, label, _)| NavItem {
                href,
                label,
                current: *href == current,
            })
            .collect();
        Layout {
            user: Some(UserBar {
                username: session.username.clone(),
                role: session.who.role,
                csrf: session.csrf.clone(),
                unread,
                nav,
                generation: generation_text(&state.engine),
            }),
        }
    }

    /// The layout of a partial (a fragment htmx swaps in): the session's CSRF
    /// token for its forms, no navigation.
    pub(crate) fn bare(session: &Session) -> Layout {
        Layout {
            user: Some(UserBar {
                username: session.username.clone(),
                role: session.who.role,
                csrf: session.csrf.clone(),
                unread: String::new(),
                nav: Vec::new(),
                generation: String::new(),
            }),
        }
    }

    /// The CSRF token for a form's hidden `csrf` field (empty without a session).
    pub(crate) fn csrf(&self) -> &str {
        self.user.as_ref().map_or("", |u| u.csrf.as_str())
    }

    /// The URL of an asset (see [`asset_url`]).
    pub(crate) fn asset(&self, name: &str) -> String {
        asset_url(name)
    }
}

// ---------------------------------------------------------------- rendering

/// A console answer: a page, or the page of an error.
pub(crate) type PageResult = Result<Response, PageError>;

/// A template rendered as an HTML page (200).
pub(crate) fn render<T: Template>(page: &T) -> PageResult {
    render_status(StatusCode::OK, page)
}

/// A template rendered as an HTML page with this status (422 for a form
/// re-rendered with its errors).
pub(crate) fn render_status<T: Template>(status: StatusCode, page: &T) -> PageResult {
    match page.render() {
        Ok(html) => Ok(html_response(status, html)),
        Err(e) => {
            tracing::error!(error = %e, "cannot render a console page");
            Err(PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be shown; see the server log.",
            ))
        }
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// 303 See Other to a console address (after a successful POST). For an htmx
/// request, `HX-Redirect` does the same.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The validation errors of a re-rendered form: the engine's field and
/// message.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldErrors {
    errors: Vec<(String, String)>,
}

impl FieldErrors {
    /// No error.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// An error on `field`.
    pub(crate) fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![(field.into(), message.into())],
        }
    }

    /// The field error of an engine `Validation` error (`None` for other errors).
    pub(crate) fn from_error(e: &Error) -> Option<Self> {
        match e {
            Error::Validation { field, message } => Some(Self::one(field.clone(), message.clone())),
            _ => None,
        }
    }

    /// The message for `field`, if it is at fault.
    pub(crate) fn get(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// The input's attributes: `aria-invalid` and `aria-describedby` pointing
    /// at `<field>-error` when the field is at fault, else nothing. Field names
    /// are ours (never input), so the result is safe to emit unescaped.
    pub(crate) fn attrs(&self, field: &str) -> String {
        if self.get(field).is_some()
            && field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            format!(r#"aria-invalid="true" aria-describedby="{field}-error""#)
        } else {
            String::new()
        }
    }

    /// The errors on fields other than `shown` (the form shows them together).
    /// (`shown`: field names separated by commas.)
    pub(crate) fn others(&self, shown: &str) -> Vec<(String, String)> {
        self.errors
            .iter()
            .filter(|(f, _)| !shown.split(',').any(|s| s == f))
            .cloned()
            .collect()
    }
}

// ---------------------------------------------------------------- errors

/// The page of an error: its status, a heading and a message, inside the
/// caller's layout when known.
#[derive(Debug)]
pub(crate) struct PageError(Box<ErrorInfo>);

#[derive(Debug)]
struct ErrorInfo {
    status: StatusCode,
    title: String,
    message: String,
    /// The CSRF refusal (`#csrf-refused`).
    csrf: bool,
    retry_after: Option<u64>,
    layout: Layout,
    /// Redirect to the sign-in page instead (the session ended meanwhile).
    sign_in: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: &'a Layout,
    title: &'a str,
    message: &'a str,
    csrf: bool,
}

impl PageError {
    /// An error page.
    pub(crate) fn new(status: StatusCode, title: &str, message: &str) -> Self {
        Self(Box::new(ErrorInfo {
            status,
            title: title.into(),
            message: message.into(),
            csrf: false,
            retry_after: None,
            layout: Layout::default(),
            sign_in: false,
        }))
    }

    /// The 403 page "Not allowed", saying why.
    pub(crate) fn forbidden(why: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Not allowed", why)
    }

    /// The 403 refusal of a form without the session's CSRF token.
    pub(crate) fn csrf() -> Self {
        let mut page = Self::new(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form has expired or did not come from IMAS; reload the page and try again.",
        );
        page.0.csrf = true;
        page
    }

    /// A 404 page.
    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found", what)
    }

    /// Shown inside this layout (with the navigation).
    pub(crate) fn with(mut self, layout: &Layout) -> Self {
        self.0.layout = layout.clone();
        self
    }
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        match &e {
            Error::NotFound { entity } => Self::not_found(&format!(
                "There is no such {entity}, or you may not see it."
            )),
            Error::Forbidden { message } => {
                Self::forbidden(&format!("You may not see or do this: {message}."))
            }
            Error::Conflict { .. } | Error::InvalidTransition { .. } => Self::new(
                StatusCode::CONFLICT,
                "Changed meanwhile",
                &format!("{e}. It changed meanwhile — reload the page and try again."),
            ),
            Error::Validation { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "Invalid input", &e.to_string())
            }
            Error::Unauthorized { .. } => {
                let mut p = Self::new(
                    StatusCode::UNAUTHORIZED,
                    "Signed out",
                    "Your session has ended; sign in again.",
                );
                p.0.sign_in = true;
                p
            }
            Error::RateLimited { retry_after, .. } => {
                let mut p = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests",
                    &format!("{e}. Try again shortly."),
                );
                p.0.retry_after = Some(crate::error::retry_after_secs(*retry_after));
                p
            }
            Error::Unavailable { retry_after, .. } => {
                let mut p = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    &format!("{e}. Try again shortly."),
                );
                p.0.retry_after = Some(crate::error::retry_after_secs(*retry_after));
                p
            }
            _ => {
                tracing::error!(error = %e, "console request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The request failed; see the server log.",
                )
            }
        }
    }
}

/// `.in_layout(&layout)` on an engine result: its error as a page inside the
/// caller's layout.
pub(crate) trait InLayout<T> {
    /// The error as a [`PageError`] shown in `layout`.
    fn in_layout(self, layout: &Layout) -> Result<T, PageError>;
}

impl<T> InLayout<T> for Result<T, Error> {
    fn in_layout(self, layout: &Layout) -> Result<T, PageError> {
        self.map_err(|e| PageError::from(e).with(layout))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let this = *self.0;
        if this.sign_in {
            return session::to_sign_in("/ui/", false);
        }
        let page = ErrorPage {
            layout: &this.layout,
            title: &this.title,
            message: &this.message,
            csrf: this.csrf,
        };
        let html = page
            .render()
            .unwrap_or_else(|_| "<!doctype html><title>Error</title><h1>Error</h1>".to_string());
        let mut response = html_response(this.status, html);
        if let Some(secs) = this.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
