//! The web console over a real socket: sign-in and its cookie, the redirect
//! to the sign-in page, CSRF refusals that change nothing, what each role may
//! see and do, the session cookie on `/notifications/stream` and `/ui/events`,
//! sign-out, assets and gzip.

use std::sync::Arc;
use std::time::Duration;

use imas_core::Engine;
use imas_core::auth::JwtKeys;
use imas_core::engine::NewIncident;
use imas_core::memory::MemoryStore;
use imas_core::model::{Role, Status};
use imas_http::RouterOptions;
use imas_http::serve::{ServeOptions, serve};
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    COOKIE, ETAG, IF_NONE_MATCH, LOCATION, SET_COOKIE,
};
use tokio::sync::oneshot;

const PASSWORD: &str = "a long and unusual passphrase";

struct Srv {
    base: String,
    engine: Engine,
    /// No redirects followed, no automatic decompression.
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start_with(options: RouterOptions) -> Srv {
    start_with_ttl(options, Duration::from_secs(3600)).await
}

/// A server whose tokens (and so sessions) last `ttl`.
async fn start_with_ttl(options: RouterOptions, ttl: Duration) -> Srv {
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .jwt_keys(JwtKeys::new(&[7; 32], ttl).expect("keys"))
        .build()
        .expect("engine");
    engine
        .ensure_admin("admin", PASSWORD, "admin@example.com")
        .await
        .expect("admin");
    let admin = engine.login("admin", PASSWORD).await.expect("admin login");
    let by = engine.authenticate(&admin).await.expect("admin principal");
    for (name, role) in [("uma", Role::User), ("enzo", Role::Engineer)] {
        let (user, _) = engine
            .register(imas_core::engine::NewUser {
                name: name.into(),
                username: name.into(),
                email: format!("{name}@example.com"),
                password: PASSWORD.into(),
            })
            .await
            .expect("register");
        if role != Role::User {
            engine.change_role(&by, user.id, role).await.expect("role");
        }
    }
    let app = imas_http::router_with(engine.clone(), options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, app, ServeOptions::default(), async move {
        let _ = rx.await;
    }));
    Srv {
        base: format!("http://{addr}"),
        engine,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_gzip()
            .build()
            .expect("client"),
        stop: Some(stop),
    }
}

async fn start() -> Srv {
    start_with(RouterOptions::default()).await
}

/// The value of cookie `name` set by an answer, with its attributes.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// The value of the first `name="csrf" value="..."` of a page.
fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a csrf field");
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("end")].to_string()
}

/// A signed-in browser: its session cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Srv {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs in through the form; the answer of the POST.
    async fn sign_in_answer(&self, username: &str, password: &str) -> reqwest::Response {
        let form = self
            .client
            .get(self.url("/ui/login"))
            .send()
            .await
            .expect("login page");
        assert_eq!(form.status(), StatusCode::OK);
        let login_cookie = set_cookie(&form, "imas_login_csrf").expect("login csrf cookie");
        assert!(login_cookie.contains("HttpOnly"), "{login_cookie}");
        assert!(login_cookie.contains("SameSite=Strict"), "{login_cookie}");
        assert!(login_cookie.contains("Path=/ui/login"), "{login_cookie}");
        let html = form.text().await.expect("html");
        assert!(html.contains(r#"<form id="login""#), "{html}");
        let csrf = csrf_of(&html);
        assert_eq!(csrf, cookie_value(&login_cookie));
        self.client
            .post(self.url("/ui/login"))
            .header(COOKIE, format!("imas_login_csrf={csrf}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("username", username),
                ("password", password),
                ("next", "/ui/"),
            ])
            .send()
            .await
            .expect("sign in")
    }

    async fn sign_in(&self, username: &str) -> Browser {
        let res = self.sign_in_answer(username, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let session = set_cookie(&res, "imas_session").expect("session cookie");
        let cookie = format!("imas_session={}", cookie_value(&session));
        let page = self.get(&cookie, "/ui/").await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.expect("html");
        Browser {
            csrf: csrf_of(&html),
            cookie,
        }
    }

    async fn get(&self, cookie: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("get")
    }

    async fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header(COOKIE, cookie)
            .form(form)
            .send()
            .await
            .expect("post")
    }

    /// An incident reported by `username`.
    async fn incident(&self, username: &str, title: &str) -> imas_core::model::Incident {
        let token = self.engine.login(username, PASSWORD).await.expect("login");
        let who = self.engine.authenticate(&token).await.expect("who");
        self.engine
            .create_incident(
                &who,
                NewIncident {
                    title: title.into(),
                    ..NewIncident::default()
                },
            )
            .await
            .expect("incident")
    }

    async fn status_of(&self, id: imas_core::model::IncidentId) -> Status {
        let token = self.engine.login("admin", PASSWORD).await.expect("login");
        let who = self.engine.authenticate(&token).await.expect("who");
        self.engine
            .get_incident(&who, id)
            .await
            .expect("get")
            .status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_an_http_only_strict_cookie_that_expires_with_the_token() {
    let srv = start().await;
    let res = srv.sign_in_answer("admin", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/ui/");
    let cookie = set_cookie(&res, "imas_session").expect("session cookie");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("; Path=/;"), "{cookie}");
    assert!(cookie.contains("; Max-Age=3600"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    // The cookie is the engine's token.
    let token = cookie_value(&cookie);
    let who = srv
        .engine
        .authenticate(&token)
        .await
        .expect("a valid token");
    assert_eq!(who.role, Role::Admin);
    // The page shows who is signed in, the sign-out form and the unread count.
    let html = srv
        .get(&format!("imas_session={token}"), "/ui/")
        .await
        .text()
        .await
        .expect("html");
    for needle in [
        r#"<nav id="nav""#,
        r#"<span id="whoami">admin"#,
        "(admin)",
        r#"<form id="logout""#,
        r#"id="unread-count""#,
        r#"<div id="status-cards""#,
        r#"<table id="incidents""#,
        r#"href="/ui/audit""#,
        r#"href="/ui/users""#,
    ] {
        assert!(html.contains(needle), "{needle} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_the_router_is_told_so() {
    let srv = start_with(RouterOptions {
        secure_cookies: true,
        ..RouterOptions::default()
    })
    .await;
    let res = srv.sign_in_answer("admin", PASSWORD).await;
    let cookie = set_cookie(&res, "imas_session").expect("session cookie");
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_a_missing_sign_in_token_is_refused() {
    let srv = start().await;
    let res = srv.sign_in_answer("admin", "not the password").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&res, "imas_session").is_none());
    let html = res.text().await.expect("html");
    assert!(html.contains(r#"id="login-error""#), "{html}");
    // A sign-in form posted without its double-submit cookie.
    let res = srv
        .client
        .post(srv.url("/ui/login"))
        .form(&[
            ("csrf", "0123"),
            ("username", "admin"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&res, "imas_session").is_none());
    assert!(
        res.text()
            .await
            .expect("html")
            .contains(r#"id="csrf-refused""#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_pages_redirect_to_the_sign_in_page() {
    let srv = start().await;
    let res = srv.client.get(srv.url("/")).send().await.expect("get /");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/ui/");
    let res = srv.get("", "/ui/incidents/new").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        "/ui/login?next=%2Fui%2Fincidents%2Fnew"
    );
    // An expired or forged cookie is no session either.
    let res = srv.get("imas_session=forged", "/ui/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // htmx requests are told with HX-Redirect.
    let res = srv
        .client
        .get(srv.url("/ui/?partial=1"))
        .header("hx-request", "true")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("hx-redirect"));
    // Console pages carry the Content-Security-Policy.
    let res = srv.get("", "/ui/login").await;
    assert!(
        res.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp")
            .contains("script-src 'self'")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let srv = start().await;
    let admin = srv.sign_in("admin").await;
    let incident = srv.incident("admin", "Disk full").await;
    let path = format!("/ui/incidents/{}/acknowledge", incident.id);
    for form in [
        vec![],
        vec![("csrf", "0".repeat(64))],
        vec![("csrf", String::new())],
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = srv.post(&admin.cookie, &path, &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let html = res.text().await.expect("html");
        assert!(html.contains(r#"id="csrf-refused""#), "{html}");
        assert!(html.contains("This form has expired or did not come from IMAS"));
    }
    assert_eq!(srv.status_of(incident.id).await, Status::Open);
    // The token of another session is no better.
    let enzo = srv.sign_in("enzo").await;
    let res = srv
        .post(&admin.cookie, &path, &[("csrf", enzo.csrf.as_str())])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(srv.status_of(incident.id).await, Status::Open);
    // With the session's token it is done, and audited as the API would.
    let res = srv
        .post(&admin.cookie, &path, &[("csrf", admin.csrf.as_str())])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(srv.status_of(incident.id).await, Status::Acknowledged);
    // Sign-out needs it too.
    let res = srv.post(&admin.cookie, "/ui/logout", &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_actions_take_the_token_from_the_htmx_header() {
    let srv = start().await;
    let enzo = srv.sign_in("enzo").await;
    let a = srv.incident("admin", "One").await;
    let b = srv.incident("admin", "Two").await;
    let (ida, idb) = (a.id.to_string(), b.id.to_string());
    let res = srv
        .client
        .post(srv.url("/ui/incidents/bulk"))
        .header(COOKIE, &enzo.cookie)
        .header("x-csrf-token", &enzo.csrf)
        .form(&[
            ("action", "resolve"),
            ("ids", ida.as_str()),
            ("ids", idb.as_str()),
            ("back", "/ui/?status=open"),
        ])
        .send()
        .await
        .expect("bulk");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/ui/?status=open");
    assert_eq!(srv.status_of(a.id).await, Status::Resolved);
    assert_eq!(srv.status_of(b.id).await, Status::Resolved);
    // The cards count them.
    let html = srv
        .get(&enzo.cookie, "/ui/")
        .await
        .text()
        .await
        .expect("html");
    assert!(
        html.contains(r#"data-status="resolved"><span class="count">2</span>"#),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_sees_and_does_what_the_engine_allows() {
    let srv = start().await;
    let uma = srv.sign_in("uma").await;
    let enzo = srv.sign_in("enzo").await;
    let hers = srv.incident("uma", "My laptop is on fire").await;
    let other = srv.incident("admin", "Database down").await;
    // A user sees only the incidents she reported, and may report one.
    let html = srv
        .get(&uma.cookie, "/ui/")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains(&format!(r#"data-incident-id="{}""#, hers.id)));
    assert!(!html.contains(&format!(r#"data-incident-id="{}""#, other.id)));
    assert!(html.contains(r#"href="/ui/incidents/new""#));
    assert!(
        !html.contains(r#"href="/ui/audit""#),
        "no audit link for a user"
    );
    assert!(!html.contains(r#"value="acknowledge""#), "no bulk actions");
    let res = srv
        .get(&uma.cookie, &format!("/ui/incidents/{}", other.id))
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The engine refuses her an action even with a valid token.
    let res = srv
        .post(
            &uma.cookie,
            &format!("/ui/incidents/{}/acknowledge", hers.id),
            &[("csrf", uma.csrf.as_str())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        res.text()
            .await
            .expect("html")
            .contains("<h1>Not allowed</h1>")
    );
    assert_eq!(srv.status_of(hers.id).await, Status::Open);
    // She reports one; a blank title is shown beside its field.
    let res = srv
        .post(
            &uma.cookie,
            "/ui/incidents",
            &[("csrf", uma.csrf.as_str()), ("title", "  ")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.expect("html");
    assert!(html.contains(r#"id="title-error""#), "{html}");
    assert!(html.contains(r#"aria-invalid="true" aria-describedby="title-error""#));
    let res = srv
        .post(
            &uma.cookie,
            "/ui/incidents",
            &[
                ("csrf", uma.csrf.as_str()),
                ("title", "Printer jam"),
                ("priority", "low"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // An engineer works the queue but may not escalate by hand (admin).
    let html = srv
        .get(&enzo.cookie, &format!("/ui/incidents/{}", other.id))
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains(r#"<form id="acknowledge""#));
    assert!(html.contains(r#"<form id="reassign""#));
    assert!(!html.contains(r#"<form id="escalate""#));
    assert!(html.contains(r#"<ol id="timeline">"#));
    let res = srv
        .post(
            &enzo.cookie,
            &format!("/ui/incidents/{}/escalate", other.id),
            &[("csrf", enzo.csrf.as_str())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A bad priority is shown beside its field.
    let res = srv
        .post(
            &enzo.cookie,
            &format!("/ui/incidents/{}/priority", other.id),
            &[("csrf", enzo.csrf.as_str()), ("priority", "urgent")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text()
            .await
            .expect("html")
            .contains(r#"id="priority-error""#)
    );
    // A stale version is a conflict, not an overwrite.
    let res = srv
        .post(
            &enzo.cookie,
            &format!("/ui/incidents/{}/resolve", other.id),
            &[("csrf", enzo.csrf.as_str()), ("version", "0")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(srv.status_of(other.id).await, Status::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_opens_the_live_streams() {
    let srv = start().await;
    let enzo = srv.sign_in("enzo").await;
    let res = srv.get(&enzo.cookie, "/notifications/stream").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    drop(res);
    let res = srv.get("", "/notifications/stream").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = srv
        .get("imas_session=forged", "/notifications/stream")
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The console's stream: the unread count first, then `incidents` when
    // one changes.
    let mut res = srv.get(&enzo.cookie, "/ui/events").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut seen = String::new();
    let read = async {
        while let Some(chunk) = res.chunk().await.expect("chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: notifications") && !seen.contains("event: incidents") {
                srv.incident("admin", "Live").await;
            }
            if seen.contains("event: incidents") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("events in time");
    assert!(seen.contains("event: notifications\ndata: 0"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_clears_the_cookie() {
    let srv = start().await;
    let admin = srv.sign_in("admin").await;
    let res = srv
        .post(
            &admin.cookie,
            "/ui/logout",
            &[("csrf", admin.csrf.as_str())],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/ui/login");
    let cleared = set_cookie(&res, "imas_session").expect("cleared cookie");
    assert!(cleared.starts_with("imas_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_assets_are_gzipped_and_assets_cached_for_good() {
    let srv = start().await;
    let admin = srv.sign_in("admin").await;
    let res = srv
        .client
        .get(srv.url("/ui/"))
        .header(COOKIE, &admin.cookie)
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("page");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    let html = srv
        .get(&admin.cookie, "/ui/")
        .await
        .text()
        .await
        .expect("html");
    let at = html.find("/ui/assets/htmx.min.js?v=").expect("htmx link");
    let link = &html[at..at + html[at..].find('"').expect("end")];
    let res = srv
        .client
        .get(srv.url(link))
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("asset");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_ENCODING], "gzip");
    assert!(
        res.headers()[CACHE_CONTROL]
            .to_str()
            .expect("cache")
            .contains("immutable")
    );
    let etag = res.headers()[ETAG].clone();
    let res = srv
        .client
        .get(srv.url(link))
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .expect("asset again");
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = srv
        .client
        .get(srv.url("/ui/assets/nope.js"))
        .send()
        .await
        .expect("404");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_console_address_is_the_console_404_page() {
    let srv = start().await;
    let admin = srv.sign_in("admin").await;
    let res = srv.get(&admin.cookie, "/ui/no/such/page").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    let res = srv.get(&admin.cookie, "/ui/incidents/not-an-id").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // A form posted after the session ended goes to the sign-in page, then home.
    let res = srv
        .post("imas_session=forged", "/ui/incidents/bulk", &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/ui/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_between_the_page_and_its_stream_is_announced_at_once() {
    let srv = start().await;
    let enzo = srv.sign_in("enzo").await;
    let html = srv
        .get(&enzo.cookie, "/ui/")
        .await
        .text()
        .await
        .expect("html");
    let at = html
        .find("/ui/events?since=")
        .expect("sse-connect with since");
    let rest = &html[at..];
    let events = &rest[..rest.find('"').expect("end")];
    srv.incident("admin", "Made before the stream").await;
    let mut res = srv.get(&enzo.cookie, events).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut seen = String::new();
    let read = async {
        while let Some(chunk) = res.chunk().await.expect("chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: incidents") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .expect("announced at once");
}

/// The console's live stream: refused with 401 (not a redirect an
/// EventSource cannot follow) without a session; one of the caller's few
/// stream slots each, like `/notifications/stream`; and when the session
/// ends, a last event `signed-out` (the page then goes to the sign-in form).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_stream_is_limited_refused_without_a_session_and_says_when_it_ends() {
    let srv = start_with_ttl(RouterOptions::default(), Duration::from_secs(3)).await;
    let res = srv.get("", "/ui/events").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let enzo = srv.sign_in("enzo").await;
    let mut open = Vec::new();
    for _ in 0..imas_core::engine::DEFAULT_MAX_STREAMS_PER_USER {
        let res = srv.get(&enzo.cookie, "/ui/events").await;
        assert_eq!(res.status(), StatusCode::OK);
        open.push(res);
    }
    let res = srv.get(&enzo.cookie, "/ui/events").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    // The session (3 s) ends: each stream's last event says so.
    let mut res = open.pop().expect("a stream");
    let mut seen = String::new();
    let read = async {
        while let Some(chunk) = res.chunk().await.expect("chunk") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the stream ends with the session");
    assert!(seen.contains("event: signed-out"), "{seen}");
    drop(open);
    // Its slot is given back: a new session may open a stream again.
    let enzo = srv.sign_in("enzo").await;
    let res = srv.get(&enzo.cookie, "/ui/events").await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// `GET /ui/logout` (an address of SPEC §6) is a page with the sign-out
/// form, not an empty 405; the sign-in form keeps the browser's login token
/// while it holds one (another tab's form stays valid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logout_address_is_a_page_and_the_login_token_is_kept() {
    let srv = start().await;
    let admin = srv.sign_in("admin").await;
    let res = srv.get(&admin.cookie, "/ui/logout").await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("html");
    assert!(html.contains(r#"<form id="logout""#), "{html}");
    let token = "0123456789abcdef".repeat(4);
    let res = srv
        .get(&format!("imas_login_csrf={token}"), "/ui/login")
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let kept = set_cookie(&res, "imas_login_csrf").expect("cookie");
    assert_eq!(cookie_value(&kept), token);
    assert_eq!(csrf_of(&res.text().await.expect("html")), token);
    // A malformed one is replaced.
    let res = srv.get("imas_login_csrf=<x>", "/ui/login").await;
    let fresh = set_cookie(&res, "imas_login_csrf").expect("cookie");
    assert_ne!(cookie_value(&fresh), "<x>");
    assert_eq!(cookie_value(&fresh).len(), 64);
}

/// Forms that were tampered with change nothing: a bulk action over more
/// incidents than one takes, and an action whose `version` is not a number
/// (the optimistic check is not dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_action_is_bounded_and_a_bad_version_is_refused() {
    let srv = start().await;
    let enzo = srv.sign_in("enzo").await;
    let a = srv.incident("admin", "One").await;
    let ida = a.id.to_string();
    let mut form = vec![("csrf", enzo.csrf.as_str()), ("action", "resolve")];
    form.extend(std::iter::repeat_n(("ids", ida.as_str()), 501));
    let res = srv.post(&enzo.cookie, "/ui/incidents/bulk", &form).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(srv.status_of(a.id).await, Status::Open);
    let res = srv
        .post(
            &enzo.cookie,
            &format!("/ui/incidents/{ida}/resolve"),
            &[("csrf", enzo.csrf.as_str()), ("version", "one")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(srv.status_of(a.id).await, Status::Open);
}
