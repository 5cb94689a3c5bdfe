//! The router called in-process (tower's `oneshot`, as in axum's `examples/testing`)
//! on a memory store: every route answers, unknown routes and methods are JSON
//! errors, rejections name what is at fault, the report is a download and health
//! reports a failing store. The end-to-end tests over a socket are the root
//! `tests/http_*.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_DISPOSITION, CONTENT_TYPE, IF_MATCH};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use imas_core::auth::JwtKeys;
use imas_core::memory::MemoryStore;
use imas_core::ports::Store;
use imas_core::testkit::fault::{Call, Fault, FaultyStore};
use imas_core::{Engine, EngineConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "a long and unusual passphrase";

/// The router over an engine, with an admin's, an engineer's and a plain
/// user's tokens.
struct App {
    router: Router,
    admin: String,
    engineer: String,
    user: String,
}

/// An answer: status, headers and the whole body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: axum::http::HeaderName) -> &str {
        self.headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// A JSON error with this status; returns its body.
    fn error(&self, status: StatusCode) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header(CONTENT_TYPE), "application/json");
        let v = self.json();
        assert!(v["error"].is_string(), "{v}");
        v
    }
}

fn engine(store: Arc<dyn Store>, config: EngineConfig) -> Engine {
    Engine::builder(store)
        .jwt_keys(JwtKeys::new(&[7; 32], Duration::from_secs(3600)).expect("keys"))
        .config(config)
        .build()
        .expect("engine")
}

async fn app_on(store: Arc<dyn Store>) -> App {
    app_with(store, EngineConfig::default()).await
}

async fn app_with(store: Arc<dyn Store>, config: EngineConfig) -> App {
    let engine = engine(store, config);
    engine
        .ensure_admin("admin", PASSWORD, "admin@example.com")
        .await
        .expect("admin");
    let admin = engine.login("admin", PASSWORD).await.expect("admin login");
    let (_, user) = engine
        .register(imas_core::engine::NewUser {
            name: "Uma User".into(),
            username: "uma".into(),
            email: "uma@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("user");
    let (enzo, _) = engine
        .register(imas_core::engine::NewUser {
            name: "Enzo Engineer".into(),
            username: "enzo".into(),
            email: "enzo@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .expect("engineer");
    let by = engine.authenticate(&admin).await.expect("admin principal");
    engine
        .change_role(&by, enzo.id, imas_core::model::Role::Engineer)
        .await
        .expect("role");
    let engineer = engine
        .login("enzo", PASSWORD)
        .await
        .expect("engineer login");
    App {
        router: imas_http::router(engine),
        admin,
        engineer,
        user,
    }
}

async fn app() -> App {
    app_on(Arc::new(MemoryStore::new())).await
}

impl App {
    /// Calls the router with `token` as a bearer token and `body` as JSON.
    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).expect("request")).await
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Only the status and headers (for a stream that does not end).
    async fn head(&self, method: Method, uri: &str, token: Option<&str>) -> StatusCode {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Body::empty()).expect("request");
        self.router
            .clone()
            .oneshot(req)
            .await
            .expect("infallible")
            .status()
    }

    /// The report of `query` as the admin downloads it, checking its type and
    /// its file name (`incidents.{extension}`).
    async fn download(&self, query: &str, content_type: &str, extension: &str) -> Bytes {
        let uri = format!("/reports/incidents?{query}");
        let a = self.call(Method::GET, &uri, Some(&self.admin), None).await;
        assert_eq!(a.status, StatusCode::OK, "{query}");
        assert_eq!(a.header(CONTENT_TYPE), content_type);
        assert_eq!(
            a.header(CONTENT_DISPOSITION),
            format!("attachment; filename=\"incidents.{extension}\"")
        );
        a.body
    }

    async fn incident(&self, title: &str, priority: &str) -> Value {
        let a = self
            .call(
                Method::POST,
                "/incidents",
                Some(&self.admin),
                Some(json!({ "title": title, "priority": priority })),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
        a.json()
    }
}

// ----- routing -------------------------------------------------------------------------

#[tokio::test]
async fn every_documented_route_answers() {
    let app = app().await;
    let doc = serde_json::to_value(imas_http::openapi::document()).expect("doc");
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 40, "{:?}", paths.keys());
    let mut operations = 0;
    for (path, item) in paths {
        let uri = path
            .replace("{id}", "7f1c6b1e-4a0e-4f57-9d3b-6f9a3c1d2e4f")
            .replace("{oid}", "7f1c6b1e-4a0e-4f57-9d3b-6f9a3c1d2e50")
            .replace("{key}", "no-such-key");
        for method in item.as_object().expect("item").keys() {
            operations += 1;
            let method: Method = method.to_uppercase().parse().expect("method");
            let status = app.head(method.clone(), &uri, Some(&app.admin)).await;
            // No body: a route with a JSON body answers 415 or 400, one with an
            // id 404 ("incident not found"), never the fallbacks' 405.
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            if status == StatusCode::NOT_FOUND {
                let a = app.call(method.clone(), &uri, Some(&app.admin), None).await;
                assert_ne!(a.json()["error"], "no such route", "{method} {uri}");
            }
        }
    }
    assert_eq!(operations, 57);
    // The document served is the one the routes make.
    let served = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.header(CONTENT_TYPE), "application/json");
    assert_eq!(served.json(), doc);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let app = app().await;
    let a = app.call(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(a.error(StatusCode::NOT_FOUND)["error"], "no such route");
    let a = app.call(Method::DELETE, "/auth/login", None, None).await;
    assert_eq!(
        a.error(StatusCode::METHOD_NOT_ALLOWED)["error"],
        "method not allowed on this route"
    );
    let a = app
        .call(Method::POST, "/healthz", Some(&app.admin), None)
        .await;
    a.error(StatusCode::METHOD_NOT_ALLOWED);
}

// ----- rejections ------------------------------------------------------------------------

#[tokio::test]
async fn bad_bodies_name_their_field() {
    let app = app().await;
    let post = |body: Value| app.call(Method::POST, "/incidents", Some(&app.admin), Some(body));
    let a = post(json!({ "title": "t", "priority": "urgent" })).await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "priority");
    let a = post(json!({ "title": "t", "version": 3 })).await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "version");
    let a = post(json!({ "title": "  " })).await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "title");
    let malformed = Request::post("/incidents")
        .header(AUTHORIZATION, format!("Bearer {}", app.admin))
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from("{\"title\": "))
        .expect("request");
    let a = app.send(malformed).await;
    assert!(a.error(StatusCode::BAD_REQUEST)["field"].is_null());
    let untyped = Request::post("/incidents")
        .header(AUTHORIZATION, format!("Bearer {}", app.admin))
        .body(Body::from("{\"title\": \"t\"}"))
        .expect("request");
    app.send(untyped)
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = Request::post("/incidents")
        .header(AUTHORIZATION, format!("Bearer {}", app.admin))
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(vec![b' '; imas_http::MAX_BODY + 1]))
        .expect("request");
    let a = app.send(huge).await;
    assert_eq!(
        a.error(StatusCode::PAYLOAD_TOO_LARGE)["error"],
        "request body is larger than 1 MiB"
    );
}

#[tokio::test]
async fn bad_paths_and_queries_name_their_parameter() {
    let app = app().await;
    let get = |uri: &'static str| app.call(Method::GET, uri, Some(&app.admin), None);
    let a = get("/incidents/not-a-uuid").await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "id");
    for (uri, field) in [
        ("/incidents?limit=0", "limit"),
        ("/incidents?limit=many", "limit"),
        ("/incidents?assignedTo=bob", "assignedTo"),
        ("/incidents?startDate=soon", "startDate"),
        ("/audit?to=later", "to"),
        ("/notifications?limit=501", "limit"),
    ] {
        let a = get(uri).await;
        assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], field, "{uri}");
    }
    get("/incidents?status=nope")
        .await
        .error(StatusCode::BAD_REQUEST);
    get("/incidents?cursor=garbage")
        .await
        .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn credentials_and_roles() {
    let app = app().await;
    let a = app.call(Method::GET, "/incidents", None, None).await;
    assert_eq!(
        a.error(StatusCode::UNAUTHORIZED)["error"],
        "missing Authorization: Bearer <token>"
    );
    app.call(Method::GET, "/incidents", Some("not.a.jwt"), None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    let basic = Request::get("/incidents")
        .header(AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")
        .body(Body::empty())
        .expect("request");
    app.send(basic).await.error(StatusCode::UNAUTHORIZED);
    for uri in ["/audit", "/api/escalations", "/admin/dead-letters"] {
        app.call(Method::GET, uri, Some(&app.user), None)
            .await
            .error(StatusCode::FORBIDDEN);
    }
    let login = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({ "username": "uma", "password": "wrong password" })),
        )
        .await;
    login.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn if_match_guards_updates() {
    let app = app().await;
    let incident = app.incident("disk full", "high").await;
    let uri = format!("/incidents/{}", incident["id"].as_str().expect("id"));
    let put = |if_match: String| {
        let req = Request::put(uri.as_str())
            .header(AUTHORIZATION, format!("Bearer {}", app.admin))
            .header(CONTENT_TYPE, "application/json")
            .header(IF_MATCH, if_match)
            .body(Body::from(
                json!({ "title": "disk nearly full" }).to_string(),
            ))
            .expect("request");
        app.send(req)
    };
    let a = put("three".into()).await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "If-Match");
    let version = incident["version"].as_i64().expect("version");
    put(format!("\"{}\"", version + 5))
        .await
        .error(StatusCode::CONFLICT);
    let a = put(format!("W/\"{version}\"")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    assert_eq!(a.json()["title"], "disk nearly full");
}

#[tokio::test]
async fn engine_errors_keep_their_status() {
    let app = app().await;
    let missing = "/incidents/7f1c6b1e-4a0e-4f57-9d3b-6f9a3c1d2e4f";
    let a = app.call(Method::GET, missing, Some(&app.admin), None).await;
    assert_eq!(
        a.error(StatusCode::NOT_FOUND)["error"],
        "incident not found"
    );
    let a = app
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({
                "name": "Again", "username": "uma", "email": "u2@example.com", "password": PASSWORD
            })),
        )
        .await;
    a.error(StatusCode::CONFLICT);
    let incident = app.incident("loop", "low").await;
    let uri = format!("/incidents/{}", incident["id"].as_str().expect("id"));
    let put = |status: &'static str| {
        app.call(
            Method::PUT,
            &uri,
            Some(&app.admin),
            Some(json!({ "status": status })),
        )
    };
    assert_eq!(put("closed").await.status, StatusCode::OK);
    // A closed incident stays closed: an invalid transition is a conflict.
    assert_eq!(
        put("open").await.error(StatusCode::CONFLICT)["error"],
        "cannot change status from closed to open"
    );
}

// ----- reports ---------------------------------------------------------------------------

#[tokio::test]
async fn reports_are_downloads() {
    let app = app().await;
    for (title, priority) in [("one", "high"), ("two", "low"), ("three", "high")] {
        app.incident(title, priority).await;
    }
    let text = app
        .download("format=CSV&priority=high", "text/csv; charset=utf-8", "csv")
        .await;
    let text = String::from_utf8(text.to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and the two high ones: {text}");
    assert!(
        lines[1].contains("three") && lines[2].contains("one"),
        "{text}"
    );
    let pdf = app.download("format=pdf", "application/pdf", "pdf").await;
    assert!(pdf.starts_with(b"%PDF-"));
    for uri in ["/reports/incidents", "/reports/incidents?format=xls"] {
        let a = app.call(Method::GET, uri, Some(&app.admin), None).await;
        assert_eq!(
            a.error(StatusCode::BAD_REQUEST)["error"],
            "Invalid format. Use 'csv' or 'pdf'.",
            "{uri}"
        );
    }
    let a = app
        .call(
            Method::GET,
            "/reports/incidents?format=xls&endDate=later",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "endDate");
    // The permission comes first, before the format and the filter.
    for uri in [
        "/reports/incidents?format=csv",
        "/reports/incidents?format=xls&startDate=soon",
    ] {
        app.call(Method::GET, uri, Some(&app.user), None)
            .await
            .error(StatusCode::FORBIDDEN);
    }
}

// ----- health ----------------------------------------------------------------------------

#[tokio::test]
async fn health_reports_each_backend() {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let app = app_on(store.clone()).await;
    let a = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.json(),
        json!({ "status": "ok", "store": "ok", "queue": "ok" })
    );
    store.fail_nth(Call::NextDueAt, 1, Fault::Before);
    let a = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.json(),
        json!({ "status": "degraded", "store": "unavailable", "queue": "ok" })
    );
    let text = String::from_utf8_lossy(&a.body);
    for piece in imas_core::testkit::fault::INJECTED_PIECES {
        assert!(!text.contains(piece), "{text}");
    }
}

// ----- services, integrations, alerts (issue 17) --------------------------------------

impl App {
    /// A new service of the admin's; returns its JSON.
    async fn service(&self, name: &str) -> Value {
        let a = self
            .call(
                Method::POST,
                "/services",
                Some(&self.admin),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
        a.json()
    }

    /// A new integration of `kind` for `service`; returns its key.
    async fn key(&self, service: &Value, kind: &str) -> String {
        let uri = format!(
            "/services/{}/integrations",
            service["id"].as_str().expect("id")
        );
        let a = self
            .call(
                Method::POST,
                &uri,
                Some(&self.admin),
                Some(json!({ "name": format!("{kind} source"), "kind": kind })),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
        a.json()["key"].as_str().expect("key").to_owned()
    }

    /// `POST uri` with these bytes as the body, and an optional content type
    /// and bearer token.
    async fn post_bytes(
        &self,
        uri: &str,
        content_type: Option<&str>,
        bearer: Option<&str>,
        body: impl Into<Body>,
    ) -> Answer {
        let mut req = Request::post(uri);
        if let Some(t) = content_type {
            req = req.header(CONTENT_TYPE, t);
        }
        if let Some(t) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(body.into()).expect("request")).await
    }

    /// `POST /v2/enqueue` with `event` as JSON.
    async fn enqueue(&self, event: &Value) -> Answer {
        self.post_bytes(
            "/v2/enqueue",
            Some("application/json"),
            None,
            event.to_string(),
        )
        .await
    }

    async fn get(&self, uri: &str) -> Value {
        let a = self.call(Method::GET, uri, Some(&self.admin), None).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.json());
        a.json()
    }
}

fn trigger(key: &str, dedup: Option<&str>, summary: &str) -> Value {
    let mut event = json!({
        "routing_key": key,
        "event_action": "trigger",
        "payload": { "summary": summary, "source": "db-1", "severity": "error" }
    });
    if let Some(d) = dedup {
        event["dedup_key"] = json!(d);
    }
    event
}

/// Asserts PagerDuty's refusal shape with this status and these words among
/// its errors; returns the errors.
fn refused(a: &Answer, status: StatusCode, word: &str) -> Vec<String> {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header(CONTENT_TYPE), "application/json");
    let v = a.json();
    let errors: Vec<String> = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {v}"))
        .iter()
        .map(|e| e.as_str().expect("text").to_owned())
        .collect();
    assert_eq!(v.as_object().expect("object").len(), 3, "{v}");
    assert!(v["status"].is_string() && v["message"].is_string(), "{v}");
    assert!(
        word.is_empty() || errors.iter().any(|e| e.contains(word)),
        "{word:?} not in {errors:?}"
    );
    errors
}

fn invalid_event(a: &Answer, status: StatusCode, word: &str) -> Vec<String> {
    let errors = refused(a, status, word);
    let v = a.json();
    assert_eq!(v["status"], "invalid event");
    assert_eq!(v["message"], "Event object is invalid");
    errors
}

#[tokio::test]
async fn services_answer_with_their_statuses() {
    let app = app().await;
    let a = app.call(Method::GET, "/services", None, None).await;
    a.error(StatusCode::UNAUTHORIZED);
    let a = app
        .call(
            Method::POST,
            "/services",
            Some(&app.engineer),
            Some(json!({ "name": "payments" })),
        )
        .await;
    a.error(StatusCode::FORBIDDEN);
    let created = app.service("payments").await;
    assert_eq!(created["name"], "payments");
    assert_eq!(created["autoResolve"], true);
    assert_eq!(created["description"], "");
    let uri = format!("/services/{}", created["id"].as_str().expect("id"));
    // Engineers read; a user does not.
    let a = app.call(Method::GET, &uri, Some(&app.engineer), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), created);
    let a = app
        .call(Method::GET, "/services", Some(&app.engineer), None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json(), json!([created]));
    app.call(Method::GET, "/services", Some(&app.user), None)
        .await
        .error(StatusCode::FORBIDDEN);
    // The name is unique.
    let a = app
        .call(
            Method::POST,
            "/services",
            Some(&app.admin),
            Some(json!({ "name": "payments" })),
        )
        .await;
    a.error(StatusCode::CONFLICT);
    let a = app
        .call(
            Method::POST,
            "/services",
            Some(&app.admin),
            Some(json!({ "name": "" })),
        )
        .await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "name");
    let a = app
        .call(
            Method::POST,
            "/services",
            Some(&app.admin),
            Some(json!({ "name": "x", "id": "mine" })),
        )
        .await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "id");
    // PATCH changes what it names.
    let a = app
        .call(
            Method::PATCH,
            &uri,
            Some(&app.admin),
            Some(json!({ "description": "card payments", "autoResolve": false })),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    let patched = a.json();
    assert_eq!(patched["name"], "payments");
    assert_eq!(patched["description"], "card payments");
    assert_eq!(patched["autoResolve"], false);
    app.call(
        Method::PATCH,
        &uri,
        Some(&app.engineer),
        Some(json!({ "description": "mine now" })),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    // Not deleted while it has an open incident.
    let incident = app
        .call(
            Method::POST,
            "/incidents",
            Some(&app.admin),
            Some(json!({ "title": "card declines", "serviceId": created["id"] })),
        )
        .await;
    assert_eq!(incident.status, StatusCode::CREATED, "{}", incident.json());
    let incident = incident.json();
    assert_eq!(incident["serviceId"], created["id"]);
    assert_eq!(incident["source"], "manual");
    assert_eq!(incident["alertCount"], 0);
    app.call(Method::DELETE, &uri, Some(&app.admin), None)
        .await
        .error(StatusCode::CONFLICT);
    let incident_uri = format!("/incidents/{}", incident["id"].as_str().expect("id"));
    let a = app
        .call(
            Method::PUT,
            &incident_uri,
            Some(&app.admin),
            Some(json!({ "status": "resolved" })),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    app.call(Method::DELETE, &uri, Some(&app.engineer), None)
        .await
        .error(StatusCode::FORBIDDEN);
    let a = app.call(Method::DELETE, &uri, Some(&app.admin), None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{:?}", a.body);
    app.call(Method::GET, &uri, Some(&app.admin), None)
        .await
        .error(StatusCode::NOT_FOUND);
    app.call(Method::DELETE, &uri, Some(&app.admin), None)
        .await
        .error(StatusCode::NOT_FOUND);
    let a = app
        .call(Method::GET, "/services/nope", Some(&app.admin), None)
        .await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "id");
}

#[tokio::test]
async fn incidents_belong_to_services_and_filter_by_them() {
    let app = app().await;
    let payments = app.service("payments").await;
    let search = app.service("search").await;
    for (title, service) in [("one", &payments), ("two", &search), ("three", &payments)] {
        let a = app
            .call(
                Method::POST,
                "/incidents",
                Some(&app.admin),
                Some(json!({ "title": title, "serviceId": service["id"] })),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
    }
    app.incident("none", "low").await;
    let uri = format!(
        "/incidents?serviceId={}",
        payments["id"].as_str().expect("id")
    );
    let titles: Vec<Value> = app
        .get(&uri)
        .await
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i["title"].clone())
        .collect();
    assert_eq!(titles, vec![json!("three"), json!("one")]);
    let a = app
        .call(
            Method::GET,
            "/incidents?serviceId=x",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "serviceId");
    let a = app
        .call(
            Method::POST,
            "/incidents",
            Some(&app.admin),
            Some(json!({ "title": "t", "serviceId": "not-an-id" })),
        )
        .await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "serviceId");
    let a = app
        .call(
            Method::POST,
            "/incidents",
            Some(&app.admin),
            Some(json!({ "title": "t", "serviceId": "7f1c6b1e-4a0e-4f57-9d3b-6f9a3c1d2e4f" })),
        )
        .await;
    assert_eq!(
        a.error(StatusCode::BAD_REQUEST)["field"],
        "serviceId",
        "no such service"
    );
    // A hand-made incident without a service says so.
    let manual = app.incident("by hand", "low").await;
    assert_eq!(manual["serviceId"], Value::Null);
    assert_eq!(manual["source"], "manual");
    assert!(manual["reportedBy"].is_string());
}

#[tokio::test]
async fn an_integration_key_is_shown_once_and_revoked_at_once() {
    let app = app().await;
    let service = app.service("payments").await;
    let uri = format!(
        "/services/{}/integrations",
        service["id"].as_str().expect("id")
    );
    let body = json!({ "name": "prometheus", "kind": "events-v2" });
    app.call(Method::POST, &uri, Some(&app.engineer), Some(body.clone()))
        .await
        .error(StatusCode::FORBIDDEN);
    let a = app
        .call(Method::POST, &uri, Some(&app.admin), Some(body.clone()))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json());
    let created = a.json();
    let key = created["key"].as_str().expect("key").to_owned();
    assert_eq!(key.len(), 32, "{key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{key}"
    );
    assert_eq!(created["serviceId"], service["id"]);
    assert_eq!(created["name"], "prometheus");
    assert_eq!(created["kind"], "events-v2");
    assert!(created["createdAt"].is_string());
    // A second key is another key.
    let other = app.key(&service, "alertmanager").await;
    assert_ne!(other, key);
    // The list never shows a key (nor its hash).
    let list = app.get(&uri).await;
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 2);
    for i in list {
        let text = i.to_string();
        assert!(!text.contains(&key) && !text.contains(&other), "{text}");
        assert!(i.get("key").is_none() && i.get("keyHash").is_none(), "{i}");
    }
    assert_eq!(list[0]["id"], created["id"], "oldest first");
    // The key works until it is revoked.
    let a = app.enqueue(&trigger(&key, Some("k1"), "disk full")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.json());
    let revoke = format!("/integrations/{}", created["id"].as_str().expect("id"));
    app.call(Method::DELETE, &revoke, Some(&app.engineer), None)
        .await
        .error(StatusCode::FORBIDDEN);
    let a = app
        .call(Method::DELETE, &revoke, Some(&app.admin), None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = app.enqueue(&trigger(&key, Some("k2"), "disk full")).await;
    invalid_event(&a, StatusCode::BAD_REQUEST, "");
    app.call(Method::DELETE, &revoke, Some(&app.admin), None)
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(app.get(&uri).await.as_array().expect("list").len(), 1);
    // An unknown service.
    let a = app
        .call(
            Method::POST,
            "/services/7f1c6b1e-4a0e-4f57-9d3b-6f9a3c1d2e4f/integrations",
            Some(&app.admin),
            Some(body),
        )
        .await;
    a.error(StatusCode::NOT_FOUND);
    let a = app
        .call(
            Method::POST,
            &uri,
            Some(&app.admin),
            Some(json!({ "name": "x", "kind": "nagios" })),
        )
        .await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "kind");
}

#[tokio::test]
async fn enqueue_answers_as_pagerduty_does() {
    let app = app().await;
    let service = app.service("payments").await;
    let key = app.key(&service, "events-v2").await;
    let a = app
        .enqueue(&trigger(&key, Some("srv01/HTTP"), "HTTP down"))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(
        a.json(),
        json!({ "status": "success", "message": "Event processed", "dedup_key": "srv01/HTTP" })
    );
    // A repeat counts on the same alert.
    let a = app
        .enqueue(&trigger(&key, Some("srv01/HTTP"), "HTTP down"))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let alerts = app
        .get(&format!(
            "/alerts?serviceId={}",
            service["id"].as_str().expect("id")
        ))
        .await;
    let alerts = alerts.as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["eventCount"], 2);
    assert_eq!(alerts[0]["dedupKey"], "srv01/HTTP");
    assert_eq!(alerts[0]["severity"], "error");
    let incident = app
        .get(&format!(
            "/incidents/{}",
            alerts[0]["incidentId"].as_str().expect("id")
        ))
        .await;
    assert_eq!(incident["source"], "events-v2");
    assert_eq!(incident["priority"], "high");
    assert_eq!(incident["alertCount"], 1);
    assert_eq!(incident["reportedBy"], Value::Null);
    assert_eq!(incident["serviceId"], service["id"]);
    // A trigger without a dedup key gets one.
    let a = app.enqueue(&trigger(&key, None, "CPU hot")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let generated = a.json()["dedup_key"]
        .as_str()
        .expect("dedup_key")
        .to_owned();
    assert!(!generated.is_empty());
    // The body is read whatever its Content-Type says, or without one.
    let event = trigger(&key, Some("as-text"), "sent by curl").to_string();
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ] {
        let a = app
            .post_bytes("/v2/enqueue", content_type, None, event.clone())
            .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{content_type:?}");
        assert_eq!(a.json()["dedup_key"], "as-text");
    }
    // Acknowledge and resolve with no open alert change nothing.
    for action in ["acknowledge", "resolve"] {
        let a = app
            .enqueue(
                &json!({ "routing_key": key, "event_action": action, "dedup_key": "never-seen" }),
            )
            .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{action}");
        assert_eq!(a.json()["dedup_key"], "never-seen");
    }
    // Resolving the open alert resolves it.
    let a = app
        .enqueue(
            &json!({ "routing_key": key, "event_action": "resolve", "dedup_key": "srv01/HTTP" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let alerts = app
        .get(&format!(
            "/incidents/{}/alerts",
            incident["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(alerts[0]["status"], "resolved", "{alerts}");
    // Not one of those 202s was an alert of another service.
    assert_eq!(
        app.get("/alerts?status=triggered&q=http").await,
        json!([]),
        "resolved"
    );
}

#[tokio::test]
async fn an_invalid_event_names_each_problem() {
    let app = app().await;
    let service = app.service("payments").await;
    let key = app.key(&service, "events-v2").await;
    // A short key and a missing summary: both named.
    let a = app
        .enqueue(&json!({
            "routing_key": "short",
            "event_action": "trigger",
            "payload": { "source": "db-1", "severity": "error" }
        }))
        .await;
    let errors = invalid_event(&a, StatusCode::BAD_REQUEST, "routing_key");
    assert!(errors.iter().any(|e| e.contains("summary")), "{errors:?}");
    assert!(errors.len() >= 2, "{errors:?}");
    let cases = [
        (
            json!({ "routing_key": key, "event_action": "explode" }),
            "event_action",
        ),
        (
            json!({ "routing_key": key, "event_action": "resolve" }),
            "dedup_key",
        ),
        (
            json!({ "routing_key": key, "event_action": "trigger",
                    "payload": { "summary": "s", "source": "x", "severity": "bad" } }),
            "severity",
        ),
        (
            json!({ "routing_key": key, "event_action": "trigger",
                    "payload": { "summary": "s".repeat(1025), "source": "x", "severity": "info" } }),
            "summary",
        ),
        (
            json!({ "routing_key": key, "event_action": "trigger", "dedup_key": "d".repeat(256),
                    "payload": { "summary": "s", "source": "x", "severity": "info" } }),
            "dedup_key",
        ),
    ];
    for (event, word) in cases {
        let a = app.enqueue(&event).await;
        invalid_event(&a, StatusCode::BAD_REQUEST, word);
    }
    // A well-formed key that is nobody's.
    let a = app
        .enqueue(&trigger("abcdefghijklmnopqrstuvwxyz012345", Some("k"), "s"))
        .await;
    invalid_event(&a, StatusCode::BAD_REQUEST, "");
    // A key of the other kind.
    let am = app.key(&service, "alertmanager").await;
    let a = app.enqueue(&trigger(&am, Some("k"), "s")).await;
    invalid_event(&a, StatusCode::BAD_REQUEST, "");
    // Not JSON, and not an object.
    for body in ["summary=disk full", "[1, 2]", ""] {
        let a = app
            .post_bytes("/v2/enqueue", Some("text/plain"), None, body)
            .await;
        invalid_event(&a, StatusCode::BAD_REQUEST, "");
    }
    // Nothing of it opened an incident.
    assert_eq!(app.get("/incidents").await, json!([]));
}

#[tokio::test]
async fn an_event_is_at_most_512_kb() {
    let app = app().await;
    let service = app.service("payments").await;
    let key = app.key(&service, "events-v2").await;
    // An event of exactly MAX_EVENT_BYTES is taken; one byte more is not.
    let mut event = trigger(&key, Some("big"), "big details");
    event["payload"]["custom_details"] = json!({ "pad": "" });
    let size = event.to_string().len();
    let max = imas_core::model::MAX_EVENT_BYTES;
    event["payload"]["custom_details"]["pad"] = json!("x".repeat(max - size));
    let exact = event.to_string();
    assert_eq!(exact.len(), max);
    let a = app
        .post_bytes("/v2/enqueue", Some("application/json"), None, exact.clone())
        .await;
    assert_eq!(
        a.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let over = format!("{exact} ");
    let a = app
        .post_bytes("/v2/enqueue", Some("application/json"), None, over)
        .await;
    invalid_event(&a, StatusCode::PAYLOAD_TOO_LARGE, "too large");
}

#[tokio::test]
async fn over_its_rate_limit_a_key_is_told_when_to_retry() {
    let config = EngineConfig {
        ingest_limit: Some(imas_core::limiter::RateLimit::new(
            2,
            Duration::from_secs(60),
        )),
        ..EngineConfig::default()
    };
    let app = app_with(Arc::new(MemoryStore::new()), config).await;
    let service = app.service("payments").await;
    let key = app.key(&service, "events-v2").await;
    for n in 0..2 {
        let a = app.enqueue(&trigger(&key, Some("k"), "s")).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "event {n}");
    }
    let a = app.enqueue(&trigger(&key, Some("k"), "s")).await;
    refused(&a, StatusCode::TOO_MANY_REQUESTS, "");
    let after: u64 = a
        .header(axum::http::header::RETRY_AFTER)
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&after), "{after}");
    // Another key has its own budget.
    let other = app.key(&service, "events-v2").await;
    let a = app.enqueue(&trigger(&other, Some("k2"), "s")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    // So does an Alertmanager key, limited the same way.
    let am = app.key(&service, "alertmanager").await;
    let body = notification("4", "{}:{alertname=\"A\"}", &[("f1", "firing")]);
    for _ in 0..2 {
        let a = app
            .post_bytes("/integrations/alertmanager", None, Some(&am), body.clone())
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    }
    let a = app
        .post_bytes("/integrations/alertmanager", None, Some(&am), body)
        .await;
    a.error(StatusCode::TOO_MANY_REQUESTS);
    assert!(!a.header(axum::http::header::RETRY_AFTER).is_empty());
}

#[tokio::test]
async fn a_store_failure_is_a_5xx_so_the_sender_retries() {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let app = app_on(store.clone()).await;
    let service = app.service("payments").await;
    let key = app.key(&service, "events-v2").await;
    store.fail_nth_commit(1, Fault::Before);
    let a = app.enqueue(&trigger(&key, Some("k"), "s")).await;
    let errors = refused(&a, StatusCode::INTERNAL_SERVER_ERROR, "");
    assert!(errors.is_empty());
    assert_eq!(a.json()["status"], "error");
    let text = String::from_utf8_lossy(&a.body);
    for piece in imas_core::testkit::fault::INJECTED_PIECES {
        assert!(!text.contains(piece), "{text}");
    }
    // The same event sent again is taken.
    let a = app.enqueue(&trigger(&key, Some("k"), "s")).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let am = app.key(&service, "alertmanager").await;
    store.fail_nth_commit(1, Fault::Before);
    let body = notification("4", "{}:{alertname=\"A\"}", &[("f1", "firing")]);
    let a = app
        .post_bytes("/integrations/alertmanager", None, Some(&am), body.clone())
        .await;
    assert!(a.status.is_server_error(), "{}", a.status);
    a.error(a.status);
    let a = app
        .post_bytes("/integrations/alertmanager", None, Some(&am), body)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
}

/// An Alertmanager notification (version `version`) of group `group` with
/// these (fingerprint, status) alerts.
fn notification(version: &str, group: &str, alerts: &[(&str, &str)]) -> String {
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|(fingerprint, status)| {
            json!({
                "status": status,
                "labels": { "alertname": "DiskFull", "instance": fingerprint, "severity": "critical" },
                "annotations": { "summary": "disk full" },
                "startsAt": "2026-12-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": fingerprint,
            })
        })
        .collect();
    let firing = alerts.iter().any(|a| a["status"] == "firing");
    json!({
        "version": version,
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": "imas",
        "groupLabels": { "alertname": "DiskFull" },
        "commonLabels": { "alertname": "DiskFull", "severity": "critical" },
        "commonAnnotations": { "summary": "disk full on the database hosts" },
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
    .to_string()
}

#[tokio::test]
async fn alertmanager_posts_with_its_key() {
    let app = app().await;
    let service = app.service("payments").await;
    let key = app.key(&service, "alertmanager").await;
    let group = "{}:{alertname=\"DiskFull\"}";
    let body = notification("4", group, &[("aaaa000000000001", "firing")]);
    let app = &app;
    let post = |bearer: Option<String>, uri: String, body: String| async move {
        app.post_bytes(&uri, Some("application/json"), bearer.as_deref(), body)
            .await
    };
    let endpoint = "/integrations/alertmanager".to_string();
    // No key, a bad key, a user's token, a key of the other kind: 401.
    let a = post(None, endpoint.clone(), body.clone()).await;
    a.error(StatusCode::UNAUTHORIZED);
    assert_eq!(a.header(axum::http::header::WWW_AUTHENTICATE), "Bearer");
    let v2 = app.key(&service, "events-v2").await;
    for bad in [
        "abcdefghijklmnopqrstuvwxyz012345".to_string(),
        app.admin.clone(),
        v2,
    ] {
        post(Some(bad), endpoint.clone(), body.clone())
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
    let basic = Request::post("/integrations/alertmanager")
        .header(AUTHORIZATION, format!("Basic {key}"))
        .body(Body::from(body.clone()))
        .expect("request");
    app.send(basic).await.error(StatusCode::UNAUTHORIZED);
    // Version 3 is not understood.
    let a = post(
        Some(key.clone()),
        endpoint.clone(),
        notification("3", group, &[("aaaa000000000001", "firing")]),
    )
    .await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], "version");
    let a = post(Some(key.clone()), endpoint.clone(), "not json".into()).await;
    a.error(StatusCode::BAD_REQUEST);
    // The bearer key opens the group's incident.
    let a = post(Some(key.clone()), endpoint.clone(), body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    let taken = a.json();
    assert_eq!(taken["status"], "success");
    assert_eq!(taken["opened"], 1);
    assert_eq!(taken["resolved"], 0);
    let incident_id = taken["incidentId"].as_str().expect("incident").to_owned();
    // ?key= works too: a second alert joins the same incident.
    let a = post(
        None,
        format!("/integrations/alertmanager?key={key}"),
        notification(
            "4",
            group,
            &[
                ("aaaa000000000001", "firing"),
                ("aaaa000000000002", "firing"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    assert_eq!(a.json()["incidentId"], incident_id.as_str());
    assert_eq!(a.json()["opened"], 1);
    let incident = app.get(&format!("/incidents/{incident_id}")).await;
    assert_eq!(incident["source"], "alertmanager");
    assert_eq!(incident["priority"], "critical");
    assert_eq!(incident["alertCount"], 2);
    assert_eq!(incident["title"], "disk full on the database hosts");
    let alerts = app.get(&format!("/incidents/{incident_id}/alerts")).await;
    let alerts = alerts.as_array().expect("alerts");
    assert_eq!(alerts.len(), 2);
    for alert in alerts {
        assert_eq!(alert["labels"]["alertname"], "DiskFull");
        assert_eq!(alert["incidentId"], incident_id.as_str());
        let dedup = alert["dedupKey"].as_str().expect("dedup");
        assert!(dedup.starts_with(&format!("{group}/")), "{dedup}");
    }
    // Both resolved: the incident resolves itself.
    let a = post(
        Some(key.clone()),
        endpoint.clone(),
        notification(
            "4",
            group,
            &[
                ("aaaa000000000001", "resolved"),
                ("aaaa000000000002", "resolved"),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    assert_eq!(a.json()["resolved"], 2);
    let incident = app.get(&format!("/incidents/{incident_id}")).await;
    assert_eq!(incident["status"], "resolved");
    assert_eq!(incident["alertCount"], 0);
    // Paging through an incident's alerts.
    let a = app
        .call(
            Method::GET,
            &format!("/incidents/{incident_id}/alerts?limit=1"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json().as_array().expect("page").len(), 1);
    assert!(a.header(axum::http::header::LINK).contains("rel=\"next\""));
    // The user who may not read the incident may not read its alerts.
    app.call(
        Method::GET,
        &format!("/incidents/{incident_id}/alerts"),
        Some(&app.user),
        None,
    )
    .await
    .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn alert_lists_filter_and_check_their_parameters() {
    let app = app().await;
    let payments = app.service("payments").await;
    let search = app.service("search").await;
    let k1 = app.key(&payments, "events-v2").await;
    let k2 = app.key(&search, "events-v2").await;
    for (key, dedup, summary) in [
        (&k1, "a", "disk full on db"),
        (&k1, "b", "cpu hot on web"),
        (&k2, "c", "disk slow on index"),
    ] {
        let a = app.enqueue(&trigger(key, Some(dedup), summary)).await;
        assert_eq!(a.status, StatusCode::ACCEPTED);
    }
    let dedups = |v: Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|a| a["dedupKey"].as_str().expect("key").to_owned())
            .collect()
    };
    assert_eq!(dedups(app.get("/alerts").await), ["c", "b", "a"]);
    let uri = format!("/alerts?serviceId={}", payments["id"].as_str().expect("id"));
    assert_eq!(dedups(app.get(&uri).await), ["b", "a"]);
    assert_eq!(dedups(app.get("/alerts?q=disk").await), ["c", "a"]);
    assert_eq!(
        dedups(app.get("/alerts?status=resolved").await),
        Vec::<String>::new()
    );
    assert_eq!(
        dedups(app.get("/alerts?status=triggered&limit=2").await),
        ["c", "b"]
    );
    let a = app
        .call(Method::GET, "/alerts?limit=1", Some(&app.admin), None)
        .await;
    let link = a.header(axum::http::header::LINK).to_owned();
    let next = link
        .trim_start_matches('<')
        .split_once('>')
        .expect("link")
        .0
        .to_owned();
    assert_eq!(dedups(app.get(&next).await), ["b"]);
    for (uri, field) in [
        ("/alerts?serviceId=x", "serviceId"),
        ("/alerts?status=open", "status"),
        ("/alerts?limit=0", "limit"),
    ] {
        let a = app.call(Method::GET, uri, Some(&app.admin), None).await;
        assert_eq!(a.error(StatusCode::BAD_REQUEST)["field"], field, "{uri}");
    }
    app.call(Method::GET, "/alerts", Some(&app.user), None)
        .await
        .error(StatusCode::FORBIDDEN);
    app.call(Method::GET, "/alerts", None, None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    let a = app
        .call(Method::GET, "/alerts", Some(&app.engineer), None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn alerts_received_are_counted_by_integration_and_outcome() {
    let app = app().await;
    let service = app.service("payments").await;
    let key = app.key(&service, "events-v2").await;
    let am = app.key(&service, "alertmanager").await;
    app.enqueue(&trigger(&key, Some("k"), "s")).await;
    app.enqueue(&trigger(&key, Some("k"), "s")).await;
    app.enqueue(&json!({ "event_action": "trigger" })).await;
    app.post_bytes(
        "/integrations/alertmanager",
        None,
        Some(&am),
        notification("4", "{}:{}", &[("f", "firing")]),
    )
    .await;
    app.post_bytes("/integrations/alertmanager", None, None, "{}")
        .await;
    let a = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&a.body).into_owned();
    let sample = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    assert!(
        text.contains("# TYPE imas_alerts_received_total counter"),
        "{text}"
    );
    for (series, n) in [
        (
            "imas_alerts_received_total{integration=\"events-v2\",outcome=\"accepted\"}",
            2.0,
        ),
        (
            "imas_alerts_received_total{integration=\"events-v2\",outcome=\"invalid\"}",
            1.0,
        ),
        (
            "imas_alerts_received_total{integration=\"events-v2\",outcome=\"rate_limited\"}",
            0.0,
        ),
        (
            "imas_alerts_received_total{integration=\"alertmanager\",outcome=\"accepted\"}",
            1.0,
        ),
        (
            "imas_alerts_received_total{integration=\"alertmanager\",outcome=\"unauthorized\"}",
            1.0,
        ),
        (
            "imas_alerts_received_total{integration=\"alertmanager\",outcome=\"failed\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(series), Some(n), "{series}\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_alerts_in() {
    let doc = serde_json::to_value(imas_http::openapi::document()).expect("doc");
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/services", &["get", "post"][..]),
        ("/services/{id}", &["get", "patch", "delete"][..]),
        ("/services/{id}/integrations", &["get", "post"][..]),
        ("/integrations/{id}", &["delete"][..]),
        ("/alerts", &["get"][..]),
        ("/incidents/{id}/alerts", &["get"][..]),
        ("/v2/enqueue", &["post"][..]),
        ("/integrations/alertmanager", &["post"][..]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "{m} {path}");
        }
    }
    let schemas = &doc["components"]["schemas"];
    let refs = |v: &Value| v.to_string();
    // The ingestion routes are not bearer-JWT routes.
    let enqueue = &paths["/v2/enqueue"]["post"];
    assert_eq!(enqueue["security"], json!([{}]), "{enqueue}");
    assert!(refs(&enqueue["requestBody"]).contains("EventBody"));
    for status in ["202", "400", "413", "429", "500"] {
        assert!(enqueue["responses"][status].is_object(), "{status}");
    }
    assert!(refs(&enqueue["responses"]["202"]).contains("EventAccepted"));
    assert!(refs(&enqueue["responses"]["400"]).contains("EventRefused"));
    for field in [
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "links",
    ] {
        assert!(
            schemas["EventBody"]["properties"][field].is_object(),
            "{field}"
        );
    }
    let am = &paths["/integrations/alertmanager"]["post"];
    assert_eq!(
        am["security"],
        json!([{ "integrationKey": [] }, { "integrationKeyQuery": [] }])
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["integrationKeyQuery"]["in"], "query");
    assert_eq!(schemes["integrationKeyQuery"]["name"], "key");
    assert_eq!(schemes["integrationKey"]["scheme"], "bearer");
    for status in ["200", "400", "401", "429", "500"] {
        assert!(am["responses"][status].is_object(), "{status}");
    }
    // The new fields of an incident; an integration's incident has no reporter.
    let incident = &schemas["Incident"];
    for field in ["serviceId", "source", "alertCount", "reportedBy"] {
        assert!(
            incident["properties"][field].is_object(),
            "{field}: {incident}"
        );
    }
    let reported_by = &incident["properties"]["reportedBy"];
    assert!(
        reported_by["oneOf"]
            .as_array()
            .is_some_and(|o| o.contains(&json!({ "type": "null" }))),
        "reportedBy must be nullable: {reported_by}"
    );
    assert!(
        !incident["required"]
            .as_array()
            .expect("required")
            .contains(&json!("reportedBy"))
    );
    assert!(!refs(incident).contains("groupKey"), "groupKey is internal");
    assert!(
        refs(&paths["/incidents"]["get"]["parameters"]).contains("serviceId"),
        "GET /incidents?serviceId"
    );
    assert!(refs(&schemas["CreatedIntegration"]).contains("key"));
    assert!(!refs(&schemas["Integration"]).contains("keyHash"));
    for field in ["dedupKey", "status", "severity", "labels", "eventCount"] {
        assert!(schemas["Alert"]["properties"][field].is_object(), "{field}");
    }
    // Every $ref points at a schema that exists.
    let text = doc.to_string();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').expect("quote")];
        assert!(schemas.get(name).is_some(), "dangling $ref {name}");
    }
}
