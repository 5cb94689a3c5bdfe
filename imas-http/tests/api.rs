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
use imas_core::Engine;
use imas_core::auth::JwtKeys;
use imas_core::memory::MemoryStore;
use imas_core::ports::Store;
use imas_core::testkit::fault::{Call, Fault, FaultyStore};
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "a long and unusual passphrase";

/// The router over an engine, with an admin's and a plain user's tokens.
struct App {
    router: Router,
    admin: String,
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

fn engine(store: Arc<dyn Store>) -> Engine {
    Engine::builder(store)
        .jwt_keys(JwtKeys::new(&[7; 32], Duration::from_secs(3600)).expect("keys"))
        .build()
        .expect("engine")
}

async fn app_on(store: Arc<dyn Store>) -> App {
    let engine = engine(store);
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
    App {
        router: imas_http::router(engine),
        admin,
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
    assert_eq!(paths.len(), 18, "{:?}", paths.keys());
    let mut operations = 0;
    for (path, item) in paths {
        let uri = path
            .replace("{id}", "7f1c6b1e-4a0e-4f57-9d3b-6f9a3c1d2e4f")
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
    assert_eq!(operations, 21);
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
