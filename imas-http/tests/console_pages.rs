//! The console's page groups over a real socket (`imas_http::serve::serve`)
//! with a real client (reqwest, redirects not followed), on a memory store and
//! a manual clock: services and integration keys (the key shown once), on
//! call and overrides, escalation policies, notifications, reports, users and
//! roles, the audit log. What each role may open (the 403 page otherwise), a
//! POST without the CSRF token refused with nothing changed, and validation
//! errors shown beside their field (422).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use imas_core::Engine;
use imas_core::auth::JwtKeys;
use imas_core::memory::MemoryStore;
use imas_core::model::Role;
use imas_core::ports::ManualClock;
use imas_http::serve::{ServeOptions, serve};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

const PASSWORD: &str = "a long and unusual passphrase";

/// The engine's "now": Monday 2 March 2026, 10:00 UTC.
const NOW: &str = "2026-03-02T10:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .with_timezone(&Utc)
}

/// The server, with the session tokens of an admin, an engineer (Enzo) and a
/// plain user (Uma).
struct Srv {
    base: String,
    client: reqwest::Client,
    engine: Engine,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    admin: String,
    enzo: String,
    uma: String,
    enzo_id: String,
    uma_id: String,
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A page: status, `Location`, `Content-Type` and body.
struct Page {
    status: StatusCode,
    location: Option<String>,
    content_type: String,
    /// The `Set-Cookie` headers.
    cookies: Vec<String>,
    body: String,
}

impl Page {
    fn expect(self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }

    /// The 403 page "Not allowed".
    fn not_allowed(self) {
        let body = self.expect(StatusCode::FORBIDDEN);
        assert!(body.contains("<h1>Not allowed</h1>"), "{body}");
    }

    /// The 303 of a successful form; its target.
    fn see_other(self) -> String {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        self.location.expect("Location")
    }

    /// A form re-rendered with the error beside `field`.
    fn invalid(self, field: &str) -> String {
        let body = self.expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.contains(&format!(r#"<p class="field-error" id="{field}-error">"#)),
            "no error beside {field}: {body}"
        );
        assert!(
            body.contains(&format!(
                r#"aria-invalid="true" aria-describedby="{field}-error""#
            )),
            "{field} not marked invalid: {body}"
        );
        body
    }
}

/// The CSRF token of a session (SHA-256 of the prefix and the token, hex).
fn csrf(token: &str) -> String {
    hex::encode(Sha256::digest(
        format!("imas-console-csrf:{token}").as_bytes(),
    ))
}

async fn register(engine: &Engine, name: &str, username: &str) -> String {
    let (user, _) = engine
        .register(imas_core::engine::NewUser {
            name: name.into(),
            username: username.into(),
            email: format!("{username}@example.com"),
            password: PASSWORD.into(),
        })
        .await
        .expect("register");
    user.id.to_string()
}

async fn start() -> Srv {
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .jwt_keys(JwtKeys::new(&[5; 32], Duration::from_secs(3600)).expect("keys"))
        .clock(Arc::new(ManualClock::new(t(NOW))))
        .build()
        .expect("engine");
    engine
        .ensure_admin("admin", PASSWORD, "admin@example.com")
        .await
        .expect("admin");
    let admin = engine.login("admin", PASSWORD).await.expect("admin login");
    let by = engine.authenticate(&admin).await.expect("admin principal");
    let uma_id = register(&engine, "Uma User", "uma").await;
    let enzo_id = register(&engine, "Enzo Engineer", "enzo").await;
    engine
        .change_role(&by, enzo_id.parse().expect("id"), Role::Engineer)
        .await
        .expect("role");
    let enzo = engine.login("enzo", PASSWORD).await.expect("login");
    let uma = engine.login("uma", PASSWORD).await.expect("login");
    let app = imas_http::router(engine.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, ServeOptions::default(), async move {
        let _ = rx.await;
    }));
    Srv {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        engine,
        stop: Some(stop),
        task: Some(task),
        admin,
        enzo,
        uma,
        enzo_id,
        uma_id,
    }
}

impl Srv {
    /// A console GET with the session cookie of `token`.
    async fn page(&self, path: &str, token: &str) -> Page {
        self.page_with(path, token, None).await
    }

    /// A console GET with the session cookie of `token` and another cookie
    /// (`name=value`).
    async fn page_with(&self, path: &str, token: &str, other: Option<&str>) -> Page {
        let mut cookies = format!("imas_session={token}");
        if let Some(other) = other {
            cookies = format!("{cookies}; {other}");
        }
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, cookies)
            .send()
            .await
            .expect("request");
        Self::read(res).await
    }

    /// A console form POST with the session cookie of `token` and its CSRF
    /// token (unless `with_csrf` is false).
    async fn form(
        &self,
        path: &str,
        token: &str,
        fields: &[(&str, &str)],
        with_csrf: bool,
    ) -> Page {
        let mut fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if with_csrf {
            fields.push(("csrf".into(), csrf(token)));
        }
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("imas_session={token}"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&fields).expect("form"))
            .send()
            .await
            .expect("request");
        Self::read(res).await
    }

    async fn post(&self, path: &str, token: &str, fields: &[(&str, &str)]) -> Page {
        self.form(path, token, fields, true).await
    }

    async fn read(res: reqwest::Response) -> Page {
        let status = res.status();
        let header = |name| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header(LOCATION);
        let content_type = header(CONTENT_TYPE).unwrap_or_default();
        let cookies = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let body = res.text().await.expect("body");
        Page {
            status,
            location,
            content_type,
            cookies,
            body,
        }
    }

    /// A JSON API call with a bearer token.
    async fn api(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let bytes = res.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, body)
    }

    /// Creates a service from the console (admin); its id.
    async fn service(&self, name: &str) -> String {
        let to = self
            .post(
                "/ui/services",
                &self.admin,
                &[
                    ("name", name),
                    ("description", "takes money"),
                    ("autoResolve", "true"),
                ],
            )
            .await
            .see_other();
        to.strip_prefix("/ui/services/")
            .unwrap_or_else(|| panic!("redirect to {to}"))
            .to_string()
    }
}

/// The text of the element with `id` (up to its first `<`).
fn text_of(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!(r#"id="{id}""#))?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')? + start;
    Some(rest[start..end].trim().to_string())
}

// ----- roles -------------------------------------------------------------------------

#[tokio::test]
async fn each_role_opens_what_the_engine_allows_and_gets_the_403_page_elsewhere() {
    let srv = start().await;
    for path in [
        "/ui/services",
        "/ui/oncall",
        "/ui/policies",
        "/ui/reports",
        "/ui/users",
        "/ui/audit",
    ] {
        srv.page(path, &srv.uma).await.not_allowed();
    }
    let body = srv
        .page("/ui/notifications", &srv.uma)
        .await
        .expect(StatusCode::OK);
    assert!(body.contains(r#"id="whoami""#), "{body}");

    // An engineer reads, without the admins' forms.
    let services = srv
        .page("/ui/services", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(!services.contains(r#"id="new-service""#), "{services}");
    let users = srv
        .page("/ui/users", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(users.contains(r#"id="users""#), "{users}");
    assert!(!users.contains(r#"id="new-user""#), "{users}");
    for path in [
        "/ui/oncall",
        "/ui/policies",
        "/ui/reports",
        "/ui/audit",
        "/ui/notifications",
    ] {
        srv.page(path, &srv.enzo).await.expect(StatusCode::OK);
    }
    // ... and what he posts anyway is refused by the engine, nothing made.
    srv.post("/ui/services", &srv.enzo, &[("name", "sneaky")])
        .await
        .not_allowed();
    srv.post(
        "/ui/users",
        &srv.enzo,
        &[
            ("name", "Eve"),
            ("username", "eve"),
            ("email", "eve@example.com"),
            ("password", PASSWORD),
            ("role", "admin"),
        ],
    )
    .await
    .not_allowed();
    srv.post(
        &format!("/ui/users/{}/role", srv.enzo_id),
        &srv.enzo,
        &[("role", "admin")],
    )
    .await
    .not_allowed();
    let (_, list) = srv.api(Method::GET, "/services", &srv.admin, None).await;
    assert_eq!(list, json!([]));

    // An admin sees the forms.
    let services = srv
        .page("/ui/services", &srv.admin)
        .await
        .expect(StatusCode::OK);
    assert!(services.contains(r#"<form id="new-service""#), "{services}");
    let users = srv
        .page("/ui/users", &srv.admin)
        .await
        .expect(StatusCode::OK);
    assert!(users.contains(r#"<form id="new-user""#), "{users}");
    assert!(
        users.contains(&format!(r#"action="/ui/users/{}/role""#, srv.uma_id)),
        "{users}"
    );

    // Without a session: to the sign-in page.
    let res = srv
        .client
        .get(format!("{}/ui/audit", srv.base))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

// ----- services and keys -------------------------------------------------------------

#[tokio::test]
async fn an_integration_key_is_shown_once_and_can_be_revoked() {
    let srv = start().await;
    let id = srv.service("payments").await;
    let list = srv
        .page("/ui/services", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(list.contains(r#"<table id="services""#), "{list}");
    assert!(
        list.contains(&format!(r#"href="/ui/services/{id}""#)),
        "{list}"
    );

    let path = format!("/ui/services/{id}");
    let page = srv.page(&path, &srv.admin).await.expect(StatusCode::OK);
    assert!(page.contains(r#"<form id="new-key""#), "{page}");
    assert!(!page.contains("new-key-secret"), "{page}");

    // Created, then shown by the page the POST redirects to (a reload of
    // which creates nothing), handed over in a short-lived cookie.
    let made = srv
        .post(
            &format!("{path}/integrations"),
            &srv.admin,
            &[("name", "prometheus"), ("kind", "alertmanager")],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    assert_eq!(made.location.as_deref(), Some(path.as_str()));
    let handover = made
        .cookies
        .iter()
        .find(|c| c.starts_with("imas_new_key="))
        .expect("the hand-over cookie")
        .clone();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        &format!("Path={path};"),
        "Max-Age=120",
    ] {
        assert!(handover.contains(attribute), "{attribute} in {handover}");
    }
    let handover = handover.split(';').next().expect("name=value").to_string();
    // Another admin's session on the same browser is not handed the key.
    let ada = register(&srv.engine, "Ada Admin", "ada").await;
    let by = srv.engine.authenticate(&srv.admin).await.expect("admin");
    srv.engine
        .change_role(&by, ada.parse().expect("id"), Role::Admin)
        .await
        .expect("role");
    let ada = srv.engine.login("ada", PASSWORD).await.expect("login");
    let other = srv
        .page_with(&path, &ada, Some(&handover))
        .await
        .expect(StatusCode::OK);
    assert!(!other.contains("new-key-secret"), "{other}");
    let shown = srv.page_with(&path, &srv.admin, Some(&handover)).await;
    assert!(
        shown
            .cookies
            .iter()
            .any(|c| c.starts_with("imas_new_key=;") && c.contains("Max-Age=0")),
        "shown once: the cookie is cleared {:?}",
        shown.cookies
    );
    let created = shown.expect(StatusCode::OK);
    let key = text_of(&created, "new-key-secret").expect("the key");
    assert_eq!(key.len(), 32, "{key}");
    assert!(
        key.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{key}"
    );

    // The key works, and is never shown again.
    let (status, _) = srv
        .api(
            Method::POST,
            "/integrations/alertmanager",
            &key,
            Some(json!({ "version": "4", "groupKey": "g", "status": "firing", "receiver": "imas", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "alerts": [] })),
        )
        .await;
    assert_ne!(status, StatusCode::UNAUTHORIZED);
    let again = srv.page(&path, &srv.admin).await.expect(StatusCode::OK);
    assert!(!again.contains("new-key-secret"), "{again}");
    // A cookie made up (not a live key of the service) shows nothing.
    let (id_part, rest) = handover.split_once('.').expect("id.tag.key");
    let (tag, _) = rest.split_once('.').expect("tag.key");
    let forged = srv
        .page_with(
            &path,
            &srv.admin,
            Some(&format!("{id_part}.{tag}.{}", "a".repeat(32))),
        )
        .await
        .expect(StatusCode::OK);
    assert!(!forged.contains("new-key-secret"), "{forged}");
    assert!(!again.contains(&key), "{again}");
    assert!(again.contains("prometheus"), "{again}");

    // An engineer sees the service, not its keys.
    let engineer = srv.page(&path, &srv.enzo).await.expect(StatusCode::OK);
    assert!(!engineer.contains("new-key"), "{engineer}");

    // Revoke: the key is refused from then on.
    let (_, keys) = srv
        .api(
            Method::GET,
            &format!("/services/{id}/integrations"),
            &srv.admin,
            None,
        )
        .await;
    let key_id = keys[0]["id"].as_str().expect("key id").to_string();
    // Through another service's address: not found, nothing revoked.
    let other = srv.service("other").await;
    srv.post(
        &format!("/ui/services/{other}/integrations/{key_id}/revoke"),
        &srv.admin,
        &[],
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    let (_, still) = srv
        .api(
            Method::GET,
            &format!("/services/{id}/integrations"),
            &srv.admin,
            None,
        )
        .await;
    assert_eq!(still.as_array().map(Vec::len), Some(1), "{still}");
    let to = srv
        .post(
            &format!("{path}/integrations/{key_id}/revoke"),
            &srv.admin,
            &[],
        )
        .await
        .see_other();
    assert_eq!(to, path);
    let (_, keys) = srv
        .api(
            Method::GET,
            &format!("/services/{id}/integrations"),
            &srv.admin,
            None,
        )
        .await;
    assert_eq!(keys, json!([]));
    let (status, _) = srv
        .api(
            Method::POST,
            "/integrations/alertmanager",
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Revoked twice: the engine's 404, as a page.
    srv.post(
        &format!("{path}/integrations/{key_id}/revoke"),
        &srv.admin,
        &[],
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    srv.page("/ui/services/not-an-id", &srv.admin)
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_service_forms_errors_are_shown_beside_their_fields() {
    let srv = start().await;
    let body = srv
        .post(
            "/ui/services",
            &srv.admin,
            &[("name", "  "), ("description", "kept")],
        )
        .await
        .invalid("name");
    assert!(
        body.contains(">kept</textarea>"),
        "the form keeps what was typed: {body}"
    );
    srv.post(
        "/ui/services",
        &srv.admin,
        &[("name", "ok"), ("ackTimeoutSeconds", "soon")],
    )
    .await
    .invalid("ackTimeoutSeconds");
    srv.post(
        "/ui/services",
        &srv.admin,
        &[("name", "ok"), ("ackTimeoutSeconds", "0")],
    )
    .await
    .invalid("ackTimeoutSeconds");
    srv.service("payments").await;
    // A taken name, beside the name.
    srv.post("/ui/services", &srv.admin, &[("name", "payments")])
        .await
        .invalid("name");
    let id = srv.service("search").await;
    srv.post(
        &format!("/ui/services/{id}/integrations"),
        &srv.admin,
        &[("name", ""), ("kind", "events-v2")],
    )
    .await
    .invalid("name");
    srv.post(
        &format!("/ui/services/{id}/integrations"),
        &srv.admin,
        &[("name", "x"), ("kind", "smtp")],
    )
    .await
    .invalid("kind");
}

// ----- CSRF --------------------------------------------------------------------------

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let srv = start().await;
    let refused = |page: Page| {
        let body = page.expect(StatusCode::FORBIDDEN);
        assert!(body.contains(r#"id="csrf-refused""#), "{body}");
    };
    refused(
        srv.form("/ui/services", &srv.admin, &[("name", "payments")], false)
            .await,
    );
    // Another session's token is no better.
    refused(
        srv.form(
            "/ui/services",
            &srv.admin,
            &[("name", "payments"), ("csrf", &csrf(&srv.enzo))],
            false,
        )
        .await,
    );
    let (_, list) = srv.api(Method::GET, "/services", &srv.admin, None).await;
    assert_eq!(list, json!([]));
    refused(
        srv.form(
            "/ui/users",
            &srv.admin,
            &[
                ("name", "Eve"),
                ("username", "eve"),
                ("email", "eve@example.com"),
                ("password", PASSWORD),
                ("role", "admin"),
            ],
            false,
        )
        .await,
    );
    refused(
        srv.form(
            &format!("/ui/users/{}/role", srv.uma_id),
            &srv.admin,
            &[("role", "admin")],
            false,
        )
        .await,
    );
    let (_, users) = srv.api(Method::GET, "/users", &srv.admin, None).await;
    let users = users.as_array().expect("users");
    assert_eq!(users.len(), 3, "{users:?}");
    assert!(
        users
            .iter()
            .any(|u| u["username"] == "uma" && u["role"] == "user")
    );
    let id = srv.service("payments").await;
    refused(
        srv.form(
            &format!("/ui/services/{id}/integrations"),
            &srv.admin,
            &[("name", "k"), ("kind", "events-v2")],
            false,
        )
        .await,
    );
    let (_, keys) = srv
        .api(
            Method::GET,
            &format!("/services/{id}/integrations"),
            &srv.admin,
            None,
        )
        .await;
    assert_eq!(keys, json!([]));
    refused(
        srv.form("/ui/oncall/overrides", &srv.enzo, &[], false)
            .await,
    );
    refused(
        srv.form("/ui/notifications/read", &srv.uma, &[], false)
            .await,
    );
}

// ----- on call -----------------------------------------------------------------------

#[tokio::test]
async fn on_call_shows_now_and_two_weeks_and_an_engineer_overrides_for_himself_only() {
    let srv = start().await;
    let (status, rotation) = srv
        .api(
            Method::POST,
            "/rotations",
            &srv.admin,
            Some(json!({ "name": "primary", "type": "weekly", "start": "2026-03-02T09:00:00Z", "participants": [srv.enzo_id] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotation}");
    let (status, schedule) = srv
        .api(
            Method::POST,
            "/schedules",
            &srv.admin,
            Some(json!({ "name": "payments on call", "timeZone": "UTC", "rules": [{ "target": { "type": "rotation", "id": rotation["id"] }, "start": "00:00", "end": "00:00" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    let sid = schedule["id"].as_str().expect("id").to_string();

    let page = srv
        .page("/ui/oncall", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(page.contains(r#"id="oncall-now""#), "{page}");
    assert!(
        page.contains(&format!(r#"<section data-schedule-id="{sid}""#)),
        "{page}"
    );
    assert!(page.contains("Enzo Engineer (enzo)"), "{page}");
    assert!(
        page.contains("2026-03-16 10:00 UTC"),
        "shifts up to two weeks on: {page}"
    );
    assert!(page.contains(r#"<form id="new-override""#), "{page}");

    // Enzo takes himself off call for an afternoon.
    let to = srv
        .post(
            "/ui/oncall/overrides",
            &srv.enzo,
            &[
                ("schedule", &sid),
                ("start", "2026-03-02T12:00"),
                ("end", "2026-03-02T18:00"),
                ("addUserId", ""),
                ("removeUserId", &srv.enzo_id),
            ],
        )
        .await
        .see_other();
    assert_eq!(to, "/ui/oncall");
    let page = srv
        .page("/ui/oncall", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(
        page.contains("Enzo Engineer (enzo) removed, 2026-03-02 12:00 UTC to 2026-03-02 18:00 UTC"),
        "{page}"
    );
    let (_, on_call) = srv
        .api(
            Method::GET,
            &format!("/schedules/{sid}/on-call?at=2026-03-02T13:00:00Z"),
            &srv.enzo,
            None,
        )
        .await;
    assert_eq!(on_call["users"], json!([]));

    // Not someone else, as the engine says.
    srv.post(
        "/ui/oncall/overrides",
        &srv.enzo,
        &[
            ("schedule", &sid),
            ("start", "2026-03-03T12:00"),
            ("end", "2026-03-03T18:00"),
            ("addUserId", &srv.uma_id),
            ("removeUserId", ""),
        ],
    )
    .await
    .not_allowed();
    // Errors beside their fields.
    srv.post(
        "/ui/oncall/overrides",
        &srv.enzo,
        &[
            ("schedule", &sid),
            ("start", "2026-03-03T18:00"),
            ("end", "2026-03-03T12:00"),
            ("removeUserId", &srv.enzo_id),
        ],
    )
    .await
    .invalid("end");
    srv.post(
        "/ui/oncall/overrides",
        &srv.enzo,
        &[
            ("schedule", &sid),
            ("start", "tomorrow"),
            ("end", "2026-03-03T12:00"),
            ("removeUserId", &srv.enzo_id),
        ],
    )
    .await
    .invalid("start");
    srv.post(
        "/ui/oncall/overrides",
        &srv.admin,
        &[
            ("schedule", &sid),
            ("start", "2026-03-03T10:00"),
            ("end", "2026-03-03T12:00"),
        ],
    )
    .await
    .invalid("addUserId");

    // Enzo deletes his override.
    let (_, schedule) = srv
        .api(Method::GET, &format!("/schedules/{sid}"), &srv.admin, None)
        .await;
    let oid = schedule["overrides"][0]["id"]
        .as_str()
        .expect("override")
        .to_string();
    srv.post(
        &format!("/ui/oncall/schedules/{sid}/overrides/{oid}/delete"),
        &srv.enzo,
        &[],
    )
    .await
    .see_other();
    let (_, schedule) = srv
        .api(Method::GET, &format!("/schedules/{sid}"), &srv.admin, None)
        .await;
    assert_eq!(schedule["overrides"], json!([]));
}

// ----- policies ----------------------------------------------------------------------

#[tokio::test]
async fn policies_are_listed_with_their_steps_and_named_targets() {
    let srv = start().await;
    let (status, policy) = srv
        .api(
            Method::POST,
            "/escalation-policies",
            &srv.admin,
            Some(json!({ "name": "payments", "repeat": 1, "steps": [
                { "delayMinutes": 5, "targets": [{ "type": "user", "id": srv.enzo_id }] },
                { "delayMinutes": 120, "targets": [{ "type": "role", "role": "admin" }, { "type": "assignee" }] },
            ] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    let page = srv
        .page("/ui/policies", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(page.contains(r#"<table id="policies""#), "{page}");
    assert!(
        page.contains(&format!(
            r#"data-policy-id="{}""#,
            policy["id"].as_str().expect("id")
        )),
        "{page}"
    );
    assert!(
        page.contains("user Enzo Engineer (enzo); then wait 5 minutes"),
        "{page}"
    );
    assert!(
        page.contains("every admin, the assignee; then wait 2 hours"),
        "{page}"
    );
}

#[tokio::test]
async fn an_admin_creates_a_policy_with_errors_beside_the_step_at_fault() {
    let srv = start().await;
    let engineer = srv
        .page("/ui/policies", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(!engineer.contains("new-policy"), "{engineer}");
    let form = srv
        .page("/ui/policies", &srv.admin)
        .await
        .expect(StatusCode::OK);
    assert!(form.contains(r#"<form id="new-policy""#), "{form}");
    let enzo = format!("user:{}", srv.enzo_id);
    srv.post(
        "/ui/policies",
        &srv.enzo,
        &[
            ("name", "mine"),
            ("step1-delay", "5"),
            ("step1-targets", "assignee"),
        ],
    )
    .await
    .not_allowed();

    srv.post(
        "/ui/policies",
        &srv.admin,
        &[
            ("name", "payments"),
            ("step1-delay", "soon"),
            ("step1-targets", "assignee"),
        ],
    )
    .await
    .invalid("step1-delay");
    let body = srv
        .post(
            "/ui/policies",
            &srv.admin,
            &[
                ("name", "payments"),
                ("step1-delay", "5"),
                ("step1-targets", &enzo),
                ("step2-delay", "30"),
            ],
        )
        .await
        .invalid("step2-targets");
    assert!(
        body.contains(&format!(r#"<option value="{enzo}" selected>"#)),
        "the choice is kept: {body}"
    );
    srv.post("/ui/policies", &srv.admin, &[("name", "payments")])
        .await
        .invalid("step1-targets");
    srv.post(
        "/ui/policies",
        &srv.admin,
        &[
            ("name", "payments"),
            ("repeat", "9"),
            ("step1-delay", "5"),
            ("step1-targets", "assignee"),
        ],
    )
    .await
    .invalid("repeat");
    srv.post(
        "/ui/policies",
        &srv.admin,
        &[
            ("name", " "),
            ("step1-delay", "5"),
            ("step1-targets", "assignee"),
        ],
    )
    .await
    .invalid("name");

    srv.post(
        "/ui/policies",
        &srv.admin,
        &[
            ("name", "payments"),
            ("repeat", "1"),
            ("step1-delay", "10"),
            ("step1-targets", &enzo),
            ("step1-targets", "role:admin"),
            ("step2-delay", "60"),
            ("step2-targets", "assignee"),
        ],
    )
    .await
    .see_other();
    let (_, policies) = srv
        .api(Method::GET, "/escalation-policies", &srv.enzo, None)
        .await;
    assert_eq!(policies[0]["name"], "payments");
    assert_eq!(policies[0]["repeat"], 1);
    assert_eq!(
        policies[0]["steps"],
        json!([
            { "delayMinutes": 10, "targets": [{ "type": "user", "id": srv.enzo_id }, { "type": "role", "role": "admin" }] },
            { "delayMinutes": 60, "targets": [{ "type": "assignee" }] },
        ])
    );
    let page = srv
        .page("/ui/policies", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(
        page.contains("user Enzo Engineer (enzo), every admin; then wait 10 minutes"),
        "{page}"
    );

    // Deleted, unless a service uses it (the engine's 409, as a page).
    let id = policies[0]["id"].as_str().expect("id").to_string();
    let (status, service) = srv
        .api(
            Method::POST,
            "/services",
            &srv.admin,
            Some(json!({ "name": "payments", "escalationPolicyId": id })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    srv.post(&format!("/ui/policies/{id}/delete"), &srv.enzo, &[])
        .await
        .not_allowed();
    srv.post(&format!("/ui/policies/{id}/delete"), &srv.admin, &[])
        .await
        .expect(StatusCode::CONFLICT);
    let (status, _) = srv
        .api(
            Method::DELETE,
            &format!("/services/{}", service["id"].as_str().expect("id")),
            &srv.admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    srv.post(&format!("/ui/policies/{id}/delete"), &srv.admin, &[])
        .await
        .see_other();
    let (_, policies) = srv
        .api(Method::GET, "/escalation-policies", &srv.enzo, None)
        .await;
    assert_eq!(policies, json!([]));
}

// ----- notifications -----------------------------------------------------------------

#[tokio::test]
async fn notifications_are_listed_and_marked_read() {
    let srv = start().await;
    let page = srv
        .page("/ui/notifications", &srv.uma)
        .await
        .expect(StatusCode::OK);
    assert!(page.contains("No notifications."), "{page}");
    // Another user's (or no) notification: the engine's 404.
    srv.post(
        "/ui/notifications/read",
        &srv.uma,
        &[("ids", "0190f3c2-7b1e-7c3a-9d4e-1f2a3b4c5d6e")],
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    srv.post("/ui/notifications/read", &srv.uma, &[("ids", "nonsense")])
        .await
        .expect(StatusCode::NOT_FOUND);
    // Nothing to mark: back to the list.
    srv.post("/ui/notifications/read", &srv.uma, &[])
        .await
        .see_other();

    // Two incidents escalated by hand, unassigned: every engineer is told.
    for title in ["disk full", "queue stuck"] {
        let (status, incident) = srv
            .api(
                Method::POST,
                "/incidents",
                &srv.admin,
                Some(json!({ "title": title })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{incident}");
        let (status, body) = srv
            .api(
                Method::POST,
                "/api/escalations/manual",
                &srv.admin,
                Some(json!({ "id": incident["id"] })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    srv.engine.flush_notifications().await.expect("delivered");
    let page = srv
        .page("/ui/notifications", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(page.contains(r#"<ul id="notifications""#), "{page}");
    assert_eq!(page.matches(r#"data-unread="true""#).count(), 2, "{page}");
    assert!(page.contains(r#"<form id="mark-read""#), "{page}");
    assert_eq!(
        text_of(&page, "unread-count").as_deref(),
        Some("2"),
        "{page}"
    );
    // Uma is told nothing of them.
    let theirs = srv
        .page("/ui/notifications", &srv.uma)
        .await
        .expect(StatusCode::OK);
    assert!(!theirs.contains("disk full"), "{theirs}");

    // One read, then all.
    let (_, list) = srv
        .api(Method::GET, "/notifications", &srv.enzo, None)
        .await;
    let first = list[0]["id"].as_str().expect("id").to_string();
    srv.post("/ui/notifications/read", &srv.uma, &[("ids", &first)])
        .await
        .expect(StatusCode::NOT_FOUND);
    srv.post("/ui/notifications/read", &srv.enzo, &[("ids", &first)])
        .await
        .see_other();
    let page = srv
        .page("/ui/notifications", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert_eq!(page.matches(r#"data-unread="true""#).count(), 1, "{page}");
    assert_eq!(page.matches(r#"data-unread="false""#).count(), 1, "{page}");
    assert_eq!(
        text_of(&page, "unread-count").as_deref(),
        Some("1"),
        "{page}"
    );
    let second = list[1]["id"].as_str().expect("id").to_string();
    srv.post("/ui/notifications/read", &srv.enzo, &[("ids", &second)])
        .await
        .see_other();
    let page = srv
        .page("/ui/notifications", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(!page.contains(r#"data-unread="true""#), "{page}");
    assert!(
        !page.contains(r#"id="mark-read""#),
        "nothing left to mark: {page}"
    );
}

// ----- reports -----------------------------------------------------------------------

#[tokio::test]
async fn reports_download_through_the_session_with_errors_beside_the_fields() {
    let srv = start().await;
    let form = srv
        .page("/ui/reports", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(
        form.contains(r#"<form id="report" method="get" action="/ui/reports/incidents""#),
        "{form}"
    );
    let (status, _) = srv
        .api(
            Method::POST,
            "/incidents",
            &srv.uma,
            Some(json!({ "title": "card payments fail" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let csv = srv
        .page(
            "/ui/reports/incidents?format=csv&status=&priority=&startDate=&endDate=",
            &srv.enzo,
        )
        .await;
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    let body = csv.expect(StatusCode::OK);
    assert!(body.starts_with("id,"), "{body}");
    assert!(body.contains("card payments fail"), "{body}");
    let filtered = srv
        .page(
            "/ui/reports/incidents?format=csv&status=resolved",
            &srv.enzo,
        )
        .await
        .expect(StatusCode::OK);
    assert!(!filtered.contains("card payments fail"), "{filtered}");
    let pdf = srv
        .page(
            "/ui/reports/incidents?format=pdf&priority=medium",
            &srv.admin,
        )
        .await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert_eq!(pdf.content_type, "application/pdf");

    srv.page("/ui/reports/incidents?format=xls", &srv.enzo)
        .await
        .invalid("format");
    srv.page(
        "/ui/reports/incidents?format=csv&status=sleeping",
        &srv.enzo,
    )
    .await
    .invalid("status");
    srv.page(
        "/ui/reports/incidents?format=csv&startDate=yesterday",
        &srv.enzo,
    )
    .await
    .invalid("startDate");
    srv.page("/ui/reports/incidents?format=csv", &srv.uma)
        .await
        .not_allowed();
}

// ----- users -------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_creates_users_and_changes_roles() {
    let srv = start().await;
    srv.post(
        "/ui/users",
        &srv.admin,
        &[
            ("name", "Olga Ops"),
            ("username", "olga"),
            ("email", "olga@example.com"),
            ("password", PASSWORD),
            ("role", "engineer"),
        ],
    )
    .await
    .see_other();
    let page = srv
        .page("/ui/users", &srv.admin)
        .await
        .expect(StatusCode::OK);
    assert!(page.contains("olga"), "{page}");
    let (_, users) = srv.api(Method::GET, "/users", &srv.admin, None).await;
    let olga = users
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["username"] == "olga")
        .expect("olga")
        .clone();
    assert_eq!(olga["role"], "engineer");
    let (_, audit) = srv
        .api(
            Method::GET,
            &format!(
                "/audit?action=USER_REGISTERED&target={}",
                olga["id"].as_str().expect("id")
            ),
            &srv.admin,
            None,
        )
        .await;
    assert_ne!(audit[0]["actor"], olga["id"], "the admin made it: {audit}");

    // Errors beside the fields, what was typed kept (not the password).
    let body = srv
        .post(
            "/ui/users",
            &srv.admin,
            &[
                ("name", "Pat"),
                ("username", "pat"),
                ("email", "pat@example.com"),
                ("password", "short"),
                ("role", "user"),
            ],
        )
        .await
        .invalid("password");
    assert!(body.contains(r#"value="pat@example.com""#), "{body}");
    assert!(!body.contains("short"), "{body}");
    srv.post(
        "/ui/users",
        &srv.admin,
        &[
            ("name", "Pat"),
            ("username", "p t"),
            ("email", "pat@example.com"),
            ("password", PASSWORD),
            ("role", "user"),
        ],
    )
    .await
    .invalid("username");
    srv.post(
        "/ui/users",
        &srv.admin,
        &[
            ("name", "Pat"),
            ("username", "pat"),
            ("email", "pat@example.com"),
            ("password", PASSWORD),
            ("role", "boss"),
        ],
    )
    .await
    .invalid("role");
    srv.post(
        "/ui/users",
        &srv.admin,
        &[
            ("name", "Olga again"),
            ("username", "olga"),
            ("email", "olga2@example.com"),
            ("password", PASSWORD),
            ("role", "user"),
        ],
    )
    .await
    .invalid("username");

    // Uma becomes an engineer: her next page already knows it.
    srv.post(
        &format!("/ui/users/{}/role", srv.uma_id),
        &srv.admin,
        &[("role", "engineer")],
    )
    .await
    .see_other();
    srv.page("/ui/oncall", &srv.uma)
        .await
        .expect(StatusCode::OK);
    // The last admin cannot be demoted: the engine's 409, as a page.
    let (_, me) = srv.api(Method::GET, "/users/me", &srv.admin, None).await;
    srv.post(
        &format!("/ui/users/{}/role", me["id"].as_str().expect("id")),
        &srv.admin,
        &[("role", "user")],
    )
    .await
    .expect(StatusCode::CONFLICT);
}

// ----- audit -------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_log_filters_and_pages() {
    let srv = start().await;
    srv.service("payments").await;
    srv.service("search").await;
    let page = srv
        .page("/ui/audit", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert!(page.contains(r#"<table id="audit""#), "{page}");
    assert!(page.contains("SERVICE_CREATED"), "{page}");

    let only = srv
        .page(
            "/ui/audit?action=SERVICE_CREATED&actor=&target=&from=&to=",
            &srv.enzo,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        only.matches(r#"<tr data-action="SERVICE_CREATED">"#)
            .count(),
        2,
        "{only}"
    );
    assert!(!only.contains(r#"data-action="LOGIN""#), "{only}");

    // Keyset pages keep the filters.
    let first = srv
        .page("/ui/audit?action=SERVICE_CREATED&limit=1", &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert_eq!(first.matches("<tr data-action=").count(), 1, "{first}");
    let at =
        first.find(r#"<a rel="next" href=""#).expect("next link") + r#"<a rel="next" href=""#.len();
    let next = first[at..first[at..].find('"').expect("end") + at]
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    assert!(
        next.contains("action=SERVICE_CREATED") && next.contains("cursor="),
        "{next}"
    );
    let second = srv.page(&next, &srv.enzo).await.expect(StatusCode::OK);
    assert_eq!(
        second
            .matches(r#"<tr data-action="SERVICE_CREATED">"#)
            .count(),
        1,
        "{second}"
    );
    assert!(!second.contains(r#"rel="next""#), "{second}");

    srv.page("/ui/audit?actor=someone", &srv.enzo)
        .await
        .invalid("actor");
    srv.page("/ui/audit?action=NAPPED", &srv.enzo)
        .await
        .invalid("action");
    srv.page("/ui/audit?from=last+week", &srv.enzo)
        .await
        .invalid("from");
    for bad in ["/ui/audit?cursor=zzz", "/ui/audit?limit=0"] {
        let body = srv
            .page(bad, &srv.enzo)
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains(r#"id="cursor-error""#), "{body}");
    }
    // A user is refused the log, whatever its filters.
    srv.page("/ui/audit?actor=someone", &srv.uma)
        .await
        .not_allowed();
}
