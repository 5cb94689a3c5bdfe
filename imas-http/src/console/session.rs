//! Sessions and CSRF. The session cookie `imas_session` holds the engine's
//! bearer token (`Engine::login_from`); every request authenticates it with the
//! engine, so a role change or a deleted account applies at once. The CSRF
//! token of a session is the lowercase hex SHA-256 of
//! `"imas-console-csrf:" + token`: a form carries it in its `csrf` field (htmx
//! sends it as `X-CSRF-Token` too), and [`Posted`] refuses a POST without it.
//! The sign-in form, before any session, uses a double-submit cookie
//! `imas_login_csrf` echoed in its `csrf` field.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use imas_core::{Error, Principal};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ConsoleState, Layout, PageError, PageResult, render_status, see_other};
use crate::extract::ClientAddr;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "imas_session";
/// The sign-in form's double-submit cookie.
const LOGIN_CSRF_COOKIE: &str = "imas_login_csrf";
/// The header htmx sends the CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in form stays usable.
const LOGIN_FORM_SECS: u64 = 3600;

pub(super) fn router() -> Router<ConsoleState> {
    Router::new()
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", get(logout_page).post(logout))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session token.
pub(crate) fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"imas-console-csrf:");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Compares two strings in time that depends only on their lengths.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A `Set-Cookie` value.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Whether `next` is a console address we may send a signed-in caller to
/// (never another site).
fn safe_next(next: &str) -> bool {
    (next == "/ui" || next.starts_with("/ui/"))
        && !next.contains("//")
        && !next.contains('\\')
        && next.chars().all(|c| !c.is_control())
}

/// The answer sending a caller without a session to the sign-in page: 303 to
/// `/ui/login?next=<path>`, or for an htmx request `HX-Redirect` to it.
pub(crate) fn to_sign_in(next: &str, htmx: bool) -> Response {
    let next = if safe_next(next) { next } else { "/ui/" };
    let to = match serde_urlencoded::to_string([("next", next)]) {
        Ok(q) if next != "/ui/" => format!("/ui/login?{q}"),
        _ => "/ui/login".to_string(),
    };
    if htmx {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(v) = HeaderValue::from_str(&to) {
            r.headers_mut().insert("hx-redirect", v);
        }
        r
    } else {
        see_other(&to)
    }
}

/// The signed-in caller of a console request, from the session cookie. Without
/// a valid cookie the request is answered by a redirect to the sign-in page.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The caller, with their current role.
    pub who: Principal,
    /// Their username.
    pub username: String,
    /// The session's bearer token (for page groups that need it).
    #[allow(dead_code)]
    pub token: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// When the token expires.
    pub expires: imas_core::model::Timestamp,
}

impl Session {
    /// The layout of a page of this session (see [`Layout::signed_in`]).
    pub(crate) async fn layout(&self, state: &ConsoleState, current: &str) -> Layout {
        Layout::signed_in(state, self, current).await
    }

    /// The session of a request's cookie; `None` without a valid one.
    pub(crate) async fn of(
        state: &ConsoleState,
        headers: &HeaderMap,
    ) -> Result<Option<Session>, PageError> {
        let Some(token) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let (who, expires) = match state.engine.authenticate_until(token).await {
            Ok(found) => found,
            Err(Error::Unauthorized { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let user = match state.engine.me(&who).await {
            Ok(u) => u,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(Session {
            who,
            username: user.username,
            token: token.to_string(),
            csrf: csrf_token(token),
            expires,
        }))
    }
}

/// Whether a request comes from htmx.
pub(crate) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

impl FromRequestParts<ConsoleState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        match Session::of(state, &parts.headers).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => {
                // Back to the page after signing in; a form posted with an
                // ended session cannot be replayed by a GET, so it goes home.
                let next = if parts.method == axum::http::Method::GET {
                    parts
                        .uri
                        .path_and_query()
                        .map_or("/ui/", |p| p.as_str())
                        .to_string()
                } else {
                    "/ui/".to_string()
                };
                // A live stream (EventSource) cannot follow a redirect to a
                // page: it is told 401, and retries nothing.
                let stream = parts.uri.path() == "/ui/events"
                    || parts
                        .headers
                        .get(header::ACCEPT)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains("text/event-stream"));
                if stream {
                    return Err((StatusCode::UNAUTHORIZED, "signed out").into_response());
                }
                Err(to_sign_in(&next, is_htmx(&parts.headers)))
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A form body: its fields in order (a name may repeat, like `ids`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FormData {
    fields: Vec<(String, String)>,
}

impl FormData {
    /// Parses an `application/x-www-form-urlencoded` body.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, PageError> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(|fields| Self { fields })
            .map_err(|_| {
                PageError::new(
                    StatusCode::BAD_REQUEST,
                    "Invalid form",
                    "The form could not be read.",
                )
            })
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, `None` when absent or blank.
    pub(crate) fn non_blank(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A state-changing console request: the session, and its form, whose CSRF
/// token (field `csrf`, or header `X-CSRF-Token`) has been checked. A request
/// without the session's token is refused with the 403 page `#csrf-refused`
/// before the handler runs, so nothing changes.
#[derive(Debug)]
pub(crate) struct Posted {
    /// The caller.
    pub session: Session,
    /// The form's fields.
    pub form: FormData,
    /// The request's headers (for page groups that need them).
    #[allow(dead_code)]
    pub headers: HeaderMap,
}

impl FromRequest<ConsoleState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &ConsoleState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|_| {
                PageError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Form too large",
                    "The form is larger than the server accepts.",
                )
                .into_response()
            })?;
        let form = FormData::parse(&bytes).map_err(IntoResponse::into_response)?;
        let sent = form
            .get("csrf")
            .or_else(|| parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()));
        if !sent.is_some_and(|t| same(t, &session.csrf)) {
            let layout = session.layout(state, "").await;
            return Err(PageError::csrf().with(&layout).into_response());
        }
        Ok(Posted {
            session,
            form,
            headers: parts.headers,
        })
    }
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// A fresh random token for the sign-in form.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The sign-in page, with a fresh double-submit token in its cookie and form.
fn login_form(
    state: &ConsoleState,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<String>,
) -> PageResult {
    // The browser's token while it holds one: another tab (or a live
    // stream's retry) showing the form must not void the form open here.
    let csrf = cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(random_token, str::to_string);
    let page = LoginPage {
        layout: Layout::default(),
        csrf: csrf.clone(),
        next: if safe_next(next) {
            next.to_string()
        } else {
            "/ui/".into()
        },
        username: username.to_string(),
        error,
    };
    let mut response = render_status(status, &page)?;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_CSRF_COOKIE,
            &csrf,
            "/ui/login",
            LOGIN_FORM_SECS,
            state.secure_cookies,
        ),
    );
    Ok(response)
}

async fn login_page(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> PageResult {
    let next = q.next.unwrap_or_else(|| "/ui/".into());
    if let Ok(Some(_)) = Session::of(&s, &headers).await {
        return Ok(see_other(if safe_next(&next) { &next } else { "/ui/" }));
    }
    login_form(&s, &headers, StatusCode::OK, &next, "", None)
}

async fn login(
    State(s): State<ConsoleState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form = FormData::parse(&body)?;
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE);
    let sent = form.get("csrf");
    if !matches!((expected, sent), (Some(e), Some(t)) if same(e, t)) {
        return Err(PageError::csrf());
    }
    let next = form.get("next").unwrap_or("/ui/");
    let username = form.get("username").unwrap_or("").trim();
    let password = form.get("password").unwrap_or("");
    if username.is_empty() || password.is_empty() {
        return login_form(
            &s,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            next,
            username,
            Some("Enter your username and password.".into()),
        );
    }
    match s.engine.login_from(username, password, client).await {
        Ok(token) => {
            let to = if safe_next(next) { next } else { "/ui/" };
            let mut response = see_other(to);
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &token,
                    "/",
                    s.engine.token_ttl().as_secs(),
                    s.secure_cookies,
                ),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(LOGIN_CSRF_COOKIE, "", "/ui/login", 0, s.secure_cookies),
            );
            Ok(response)
        }
        Err(Error::Unauthorized { .. }) => login_form(
            &s,
            &headers,
            StatusCode::UNAUTHORIZED,
            next,
            username,
            Some("Invalid username or password.".into()),
        ),
        Err(e @ (Error::RateLimited { .. } | Error::Unavailable { .. })) => {
            let (status, after) = match &e {
                Error::RateLimited { retry_after, .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, *retry_after)
                }
                Error::Unavailable { retry_after, .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, *retry_after)
                }
                _ => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    std::time::Duration::from_secs(1),
                ),
            };
            let message = format!("{e}. Try again shortly.");
            let mut response = login_form(&s, &headers, status, next, username, Some(message))?;
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::error::retry_after_secs(after)),
            );
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /ui/logout` (a bookmarkable address): signing out changes state, so
/// it is the header's `form#logout` (with its CSRF token) that does it; this
/// page says so. Signed out already: the sign-in page.
async fn logout_page(State(s): State<ConsoleState>, session: Session) -> Response {
    let layout = session.layout(&s, "/ui/logout").await;
    PageError::new(
        StatusCode::OK,
        "Sign out",
        "Use the Sign out button at the top of the page to end this session.",
    )
    .with(&layout)
    .into_response()
}

/// Sign-out: clears the session cookie and shows the sign-in page.
async fn logout(State(s): State<ConsoleState>, _posted: Posted) -> Response {
    let mut response = see_other("/ui/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, s.secure_cookies),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_the_hex_sha256_of_the_prefixed_token() {
        let t = csrf_token("abc");
        assert_eq!(t.len(), 64);
        assert_eq!(t, hex::encode(Sha256::digest(b"imas-console-csrf:abc")));
        assert!(same(&t, &csrf_token("abc")));
        assert!(!same(&t, &csrf_token("abd")));
        assert!(!same("a", "ab"));
    }

    #[test]
    fn only_console_addresses_are_followed_after_sign_in() {
        assert!(safe_next("/ui/"));
        assert!(safe_next("/ui/incidents/1?x=2"));
        assert!(!safe_next("//evil.example/ui/"));
        assert!(!safe_next("/ui//evil.example"));
        assert!(!safe_next("https://evil.example/"));
        assert!(!safe_next("/ui\\x"));
        assert!(!safe_next("/api"));
    }

    #[test]
    fn cookies_are_read_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; imas_session=tok"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "imas_session"), Some("tok"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
