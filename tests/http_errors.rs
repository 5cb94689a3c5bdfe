//! SPEC §2's error paths over HTTP, against the reference server on SQLite,
//! PostgreSQL (`DATABASE_URL`) and MongoDB (`MONGODB_URL`):
//! - 404 for an unknown incident on PUT, DELETE, manual escalation and SLA
//!   assignment (and the other unknown ids), 409 on a closed incident, a stale
//!   `If-Match`, the last admin, a taken username;
//! - 400 naming the field or parameter: unknown and server-owned fields on PUT,
//!   bad values, bad audit and list filters;
//! - 401 for missing, malformed, expired and badly signed tokens, 403 for a role
//!   that may not;
//!
//! and, on every backend, that no answer ever carries a password hash, and that
//! a store failing a commit (testkit `FaultyStore`) is a 500 that says nothing
//! internal, leaves nothing behind and poisons no cached read.

#![cfg(all(
    feature = "http",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongo"
))]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use imas::ports::Store;
use imas_core::testkit::fault::{Call, Fault, FaultyStore, INJECTED_PIECES};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The body of every 5xx caused by a store failure.
const INTERNAL: &str = "internal error; see the server log";

/// Checks an error answer: the status, a JSON `{"error": "..."}` body, and the
/// field it names (`Some`) or that it names none (`None` for non-400s).
fn check_error(what: &str, status: StatusCode, body: &Value, want: u16, field: Option<&str>) {
    assert_eq!(status.as_u16(), want, "{what}: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: a JSON error body, got {body}"
    );
    if want == 400 {
        assert_eq!(
            body["field"].as_str(),
            field,
            "{what}: the 400 names the field at fault: {body}"
        );
    }
}

async fn error_paths(backend: Backend) {
    let Some(srv) = TestServer::start(backend, &[]).await else {
        return;
    };
    let admin = srv.token("admin", common::ADMIN_PASSWORD).await;
    let admin_id = srv.admin().await.id.to_string();
    let (_, user) = srv.user(&admin, "plain", "user").await;
    let (eng_id, eng) = srv.user(&admin, "eng", "engineer").await;
    let create = async |title: &str| {
        let (s, v) = srv
            .call(
                Method::POST,
                "/incidents",
                Some(&admin),
                Some(json!({ "title": title })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    };
    let open = create("open one").await;
    let open_id = open["id"].as_str().expect("id").to_string();
    let closed_id = create("closed one").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (s, v) = srv
        .call(
            Method::PUT,
            &format!("/incidents/{closed_id}"),
            Some(&admin),
            Some(json!({"status": "closed"})),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("closed")));
    let unknown = uuid::Uuid::new_v4().to_string();
    let a = Some(admin.as_str());

    // Each case: what, method, path, token, body, status, field named by a 400.
    type Case<'a> = (
        String,
        Method,
        String,
        Option<&'a str>,
        Option<Value>,
        u16,
        Option<&'a str>,
    );
    let mut cases: Vec<Case<'_>> = vec![
        // 404: unknown ids.
        (
            "PUT unknown".into(),
            Method::PUT,
            format!("/incidents/{unknown}"),
            a,
            Some(json!({"title": "x"})),
            404,
            None,
        ),
        (
            "DELETE unknown".into(),
            Method::DELETE,
            format!("/incidents/{unknown}"),
            a,
            None,
            404,
            None,
        ),
        (
            "escalate unknown".into(),
            Method::POST,
            "/api/escalations/manual".into(),
            a,
            Some(json!({"id": unknown})),
            404,
            None,
        ),
        (
            "assign-sla unknown".into(),
            Method::POST,
            "/sla/assign-sla".into(),
            a,
            Some(json!({"id": unknown, "priority": "high"})),
            404,
            None,
        ),
        (
            "GET unknown".into(),
            Method::GET,
            format!("/incidents/{unknown}"),
            a,
            None,
            404,
            None,
        ),
        (
            "role of unknown user".into(),
            Method::PATCH,
            format!("/users/{unknown}/role"),
            a,
            Some(json!({"role": "engineer"})),
            404,
            None,
        ),
        (
            "read unknown notification".into(),
            Method::PATCH,
            format!("/notifications/{unknown}/read"),
            Some(&eng),
            None,
            404,
            None,
        ),
        (
            "redrive unknown".into(),
            Method::POST,
            "/admin/dead-letters/no-such-key/redrive".into(),
            a,
            None,
            404,
            None,
        ),
        (
            "unknown route".into(),
            Method::GET,
            "/no/such/route".into(),
            a,
            None,
            404,
            None,
        ),
        // 409: conflicts.
        (
            "escalate closed".into(),
            Method::POST,
            "/api/escalations/manual".into(),
            a,
            Some(json!({"id": closed_id})),
            409,
            None,
        ),
        (
            "demote the last admin".into(),
            Method::PATCH,
            format!("/users/{admin_id}/role"),
            a,
            Some(json!({"role": "user"})),
            409,
            None,
        ),
        (
            "taken username".into(),
            Method::POST,
            "/auth/register".into(),
            None,
            Some(
                json!({"name": "P", "username": "plain", "password": "password 123", "email": "other@example.com"}),
            ),
            409,
            None,
        ),
        // 400 on other bodies.
        (
            "assign-sla bad priority".into(),
            Method::POST,
            "/sla/assign-sla".into(),
            a,
            Some(json!({"id": open_id, "priority": "urgent"})),
            400,
            Some("priority"),
        ),
        (
            "escalate bad id".into(),
            Method::POST,
            "/api/escalations/manual".into(),
            a,
            Some(json!({"id": "not-a-uuid"})),
            400,
            Some("id"),
        ),
        (
            "escalate long reason".into(),
            Method::POST,
            "/api/escalations/manual".into(),
            a,
            Some(json!({"id": open_id, "reason": "r".repeat(1_001)})),
            400,
            Some("reason"),
        ),
        (
            "unknown role".into(),
            Method::PATCH,
            format!("/users/{eng_id}/role"),
            a,
            Some(json!({"role": "root"})),
            400,
            Some("role"),
        ),
        (
            "register with a role".into(),
            Method::POST,
            "/auth/register".into(),
            None,
            Some(
                json!({"name": "R", "username": "roled", "password": "password 123", "email": "roled@example.com", "role": "admin"}),
            ),
            400,
            Some("role"),
        ),
        (
            "PUT a bad id".into(),
            Method::PUT,
            "/incidents/not-a-uuid".into(),
            a,
            Some(json!({"title": "x"})),
            400,
            Some("id"),
        ),
        // 403: a role that may not.
        (
            "user updates".into(),
            Method::PUT,
            format!("/incidents/{open_id}"),
            Some(&user),
            Some(json!({"title": "x"})),
            403,
            None,
        ),
        (
            "engineer deletes".into(),
            Method::DELETE,
            format!("/incidents/{open_id}"),
            Some(&eng),
            None,
            403,
            None,
        ),
        (
            "engineer escalates".into(),
            Method::POST,
            "/api/escalations/manual".into(),
            Some(&eng),
            Some(json!({"id": open_id})),
            403,
            None,
        ),
        (
            "user reads the audit log".into(),
            Method::GET,
            "/audit".into(),
            Some(&user),
            None,
            403,
            None,
        ),
    ];
    // 409: every status change of a closed incident.
    for status in ["open", "acknowledged", "in-progress", "on-hold", "resolved"] {
        cases.push((
            format!("closed -> {status}"),
            Method::PUT,
            format!("/incidents/{closed_id}"),
            a,
            Some(json!({ "status": status })),
            409,
            None,
        ));
    }
    // 400: unknown and server-owned fields, and bad values, on PUT.
    let put = format!("/incidents/{open_id}");
    let server_owned = [
        ("id", json!(open_id)),
        ("reportedBy", json!(eng_id)),
        ("createdAt", json!("2026-01-01T00:00:00Z")),
        ("updatedAt", json!("2026-01-01T00:00:00Z")),
        ("slaHours", json!(999)),
        ("slaDeadline", json!("2999-01-01T00:00:00Z")),
        ("slaBreached", json!(false)),
        ("breachedAt", json!(null)),
        ("escalationLevel", json!(0)),
        ("escalatedAt", json!(null)),
        ("acknowledgedAt", json!(null)),
        ("resolvedAt", json!(null)),
        ("closedAt", json!(null)),
        ("version", json!(99)),
        ("severity", json!("sev1")),
        ("__proto__", json!({})),
    ];
    for (field, value) in server_owned {
        let mut body = json!({"title": "mass assigned"});
        body[field] = value;
        cases.push((
            format!("PUT with {field}"),
            Method::PUT,
            put.clone(),
            a,
            Some(body),
            400,
            Some(field),
        ));
    }
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"title": "t".repeat(201)}), "title"),
        (json!({"description": "d".repeat(10_001)}), "description"),
        (json!({"priority": "urgent"}), "priority"),
        (json!({"type": "epic"}), "type"),
        (json!({"status": "done"}), "status"),
        (json!({"assignedTo": "me"}), "assignedTo"),
        (json!({"assignedTo": unknown}), "assignedTo"),
        (json!({"title": 5}), "title"),
    ] {
        cases.push((
            format!("PUT {body}"),
            Method::PUT,
            put.clone(),
            a,
            Some(body),
            400,
            Some(field),
        ));
    }
    // 400: bad list and audit parameters, each named.
    for (query, field) in [
        ("/audit?action=NOPE", "action"),
        ("/audit?actor=nobody", "actor"),
        ("/audit?startDate=yesterday", "startDate"),
        ("/audit?endDate=2026-13-01", "endDate"),
        ("/audit?from=soon", "from"),
        ("/audit?to=later", "to"),
        ("/audit?limit=0", "limit"),
        ("/audit?limit=501", "limit"),
        ("/audit?cursor=zzz", "cursor"),
        ("/incidents?limit=abc", "limit"),
        ("/incidents?status=bogus", "status"),
        ("/incidents?priority=urgent", "priority"),
        ("/incidents?assignedTo=me", "assignedTo"),
        ("/incidents?startDate=yesterday", "startDate"),
        ("/incidents?cursor=zzz", "cursor"),
        ("/notifications?limit=0", "limit"),
        ("/api/escalations?limit=501", "limit"),
        ("/sla/violations?cursor=zzz", "cursor"),
        ("/reports/incidents?format=csv&priority=urgent", "priority"),
    ] {
        cases.push((
            format!("GET {query}"),
            Method::GET,
            query.into(),
            a,
            None,
            400,
            Some(field),
        ));
    }
    for (what, method, path, token, body, want, field) in cases {
        let (s, v) = srv.call(method, &path, token, body).await;
        check_error(&format!("{backend:?} {what}"), s, &v, want, field);
    }

    // If-Match: stale is a 409, malformed a 400 naming the header.
    for (header, want, field) in [("\"7\"", 409, None), ("abc", 400, Some("If-Match"))] {
        let res = srv
            .http
            .put(format!("{}{put}", srv.base))
            .bearer_auth(&admin)
            .header("if-match", header)
            .json(&json!({"title": "guarded"}))
            .send()
            .await
            .expect("send");
        let s = res.status();
        let v: Value = res.json().await.expect("json");
        check_error(
            &format!("{backend:?} If-Match {header}"),
            s,
            &v,
            want,
            field,
        );
    }

    // 401: missing, malformed, badly signed, expired.
    let admin_principal = srv.admin().await;
    let other = imas_core::auth::JwtKeys::new(
        b"another secret of at least 32 bytes!!",
        Duration::from_secs(3600),
    )
    .expect("keys");
    let forged = other
        .issue(admin_principal.id, admin_principal.role, srv.engine.now())
        .expect("forged");
    let ours = imas_core::auth::JwtKeys::new(common::SECRET.as_bytes(), Duration::from_secs(60))
        .expect("keys");
    let expired = ours
        .issue(
            admin_principal.id,
            admin_principal.role,
            srv.engine.now() - chrono::Duration::hours(2),
        )
        .expect("expired");
    for (what, header) in [
        ("missing", None),
        ("not bearer", Some("Basic YWRtaW46eA==".to_string())),
        ("malformed", Some("Bearer not.a.jwt".to_string())),
        ("badly signed", Some(format!("Bearer {forged}"))),
        ("expired", Some(format!("Bearer {expired}"))),
    ] {
        for path in ["/incidents", "/audit", "/notifications"] {
            let mut req = srv.http.get(format!("{}{path}", srv.base));
            if let Some(h) = &header {
                req = req.header("authorization", h);
            }
            let res = req.send().await.expect("send");
            let s = res.status();
            let v: Value = res.json().await.expect("json");
            check_error(
                &format!("{backend:?} {what} token {path}"),
                s,
                &v,
                401,
                None,
            );
        }
    }
    // The same token, well signed and current, works (so the 401s were about
    // the token).
    let fresh = ours
        .issue(admin_principal.id, admin_principal.role, srv.engine.now())
        .expect("fresh");
    let (s, _) = srv
        .call(Method::GET, "/incidents", Some(&fresh), None)
        .await;
    assert_eq!(s, StatusCode::OK);

    // Nothing of the refused requests was written.
    let (_, now) = srv.call(Method::GET, &put, a, None).await;
    assert_eq!(
        (now["title"].as_str(), now["version"].as_i64()),
        (open["title"].as_str(), Some(1)),
        "{backend:?}: the open incident is unchanged: {now}"
    );
    let (_, closed) = srv
        .call(Method::GET, &format!("/incidents/{closed_id}"), a, None)
        .await;
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["escalationLevel"], 0);
    let (_, updates) = srv
        .call(
            Method::GET,
            &format!("/audit?action=INCIDENT_UPDATED&target={open_id}"),
            a,
            None,
        )
        .await;
    assert_eq!(updates, json!([]), "{backend:?}: no update was audited");
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_error_paths_on_every_backend() {
    for b in common::backends() {
        error_paths(b).await;
    }
}

// ----- no password hash in any answer -------------------------------------------------

/// Reads Server-Sent Events until one whose data contains `needle`; returns the
/// text read.
async fn stream_until(res: reqwest::Response, needle: &str) -> String {
    use futures::StreamExt;
    let mut body = Box::pin(res.bytes_stream());
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !text.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk"))),
            _ => panic!("no event with {needle:?}; read {text:?}"),
        }
    }
    text
}

async fn no_hash_in_answers(backend: Backend) {
    let Some(srv) = TestServer::start(backend, &[]).await else {
        return;
    };
    let mut answers: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, text: String| answers.push((what.to_string(), text));
    let admin = srv.token("admin", common::ADMIN_PASSWORD).await;
    let a = Some(admin.as_str());

    let register = json!({"name": "Hana", "username": "hana", "password": "hana's password", "email": "hana@example.com"});
    let (s, text) = srv
        .call_text(Method::POST, "/auth/register", None, Some(register.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{text}");
    let hana: Value = serde_json::from_str(&text).expect("json");
    let hana_id = hana["id"].as_str().expect("id").to_string();
    keep("register", text);
    let (s, text) = srv
        .call_text(Method::POST, "/auth/register", None, Some(register))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    keep("register again", text);
    let (s, text) = srv
        .call_text(
            Method::PATCH,
            &format!("/users/{hana_id}/role"),
            a,
            Some(json!({"role": "engineer"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    keep("change role", text);
    for (what, password) in [
        ("login", "hana's password"),
        ("failed login", "wrong password"),
    ] {
        let (_, text) = srv
            .call_text(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"username": "hana", "password": password})),
            )
            .await;
        keep(what, text);
    }
    let hana_token = srv.token("hana", "hana's password").await;

    let stream = srv
        .http
        .get(format!("{}/notifications/stream", srv.base))
        .bearer_auth(&hana_token)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let (s, text) = srv
        .call_text(
            Method::POST,
            "/incidents",
            a,
            Some(json!({"title": "for hana", "assignedTo": hana_id})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{text}");
    let incident: Value = serde_json::from_str(&text).expect("json");
    let id = incident["id"].as_str().expect("id").to_string();
    keep("create incident", text);
    keep("live stream", stream_until(stream, "for hana").await);

    for path in [
        "/incidents".to_string(),
        format!("/incidents/{id}"),
        "/audit?limit=500".into(),
        "/notifications".into(),
        "/sla/violations".into(),
        "/api/escalations".into(),
        "/admin/dead-letters".into(),
        "/reports/incidents?format=csv".into(),
        "/metrics".into(),
        "/healthz".into(),
        "/openapi.json".into(),
    ] {
        let token = if path == "/notifications" {
            &hana_token
        } else {
            &admin
        };
        let (s, text) = srv.call_text(Method::GET, &path, Some(token), None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {text}");
        keep(&path, text);
    }
    let (_, notes) = srv
        .call(Method::GET, "/notifications", Some(&hana_token), None)
        .await;
    let note = notes[0]["id"].as_str().expect("a notification").to_string();
    let (_, text) = srv
        .call_text(
            Method::PATCH,
            &format!("/notifications/{note}/read"),
            Some(&hana_token),
            None,
        )
        .await;
    keep("mark read", text);
    let pdf = srv
        .http
        .get(format!("{}/reports/incidents?format=pdf", srv.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("pdf")
        .bytes()
        .await
        .expect("pdf body");
    keep("pdf bytes", String::from_utf8_lossy(&pdf).into_owned());
    if let Some(pages) = imas_core::testkit::pdf_text(&pdf) {
        keep("pdf text", pages.join("\n"));
    }

    // The hashes as the store holds them.
    let mut hashes = Vec::new();
    for name in ["admin", "hana"] {
        let user = srv
            .store()
            .user_by_username(name)
            .await
            .expect("read")
            .expect("stored");
        assert!(user.password_hash.starts_with("$argon2"), "{name}");
        hashes.push(user.password_hash);
    }
    let audit = answers
        .iter()
        .find(|(w, _)| w == "/audit?limit=500")
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    assert!(
        audit.contains("USER_REGISTERED") && audit.contains("LOGIN_FAILED"),
        "the audit answer holds the user entries it must not leak from: {audit}"
    );
    assert!(answers.len() >= 20, "{} answers", answers.len());
    for (what, text) in &answers {
        for hash in &hashes {
            assert!(
                !text.contains(hash.as_str()),
                "{backend:?} {what}: carries a password hash"
            );
        }
        for word in ["$argon2", "password_hash", "passwordHash"] {
            assert!(
                !text.contains(word),
                "{backend:?} {what}: carries {word:?}: {text}"
            );
        }
    }
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_carries_a_password_hash() {
    for b in common::backends() {
        no_hash_in_answers(b).await;
    }
}

// ----- a store that fails -------------------------------------------------------------

/// The store `Database::fresh(backend)` names, opened here (the server's own
/// assembly cannot be handed a wrapper around it).
async fn open_store(backend: Backend) -> Option<Arc<dyn Store>> {
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    Some(match backend {
        Backend::Sqlite => {
            let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.db"));
            let url = format!("sqlite://{}", path.display());
            Arc::new(
                imas::store_sqlx::SqliteStore::connect(&url)
                    .await
                    .expect("sqlite"),
            )
        }
        Backend::Postgres => {
            let url = imas_core::testkit::service_url("DATABASE_URL")?;
            Arc::new(
                imas::store_sqlx::PostgresStore::connect_in_schema(&url, &name)
                    .await
                    .expect("postgres"),
            )
        }
        Backend::Mongo => {
            let url = imas_core::testkit::service_url("MONGODB_URL")?;
            Arc::new(
                imas::store_mongo::MongoStore::connect_to(&url, &name)
                    .await
                    .expect("mongodb"),
            )
        }
    })
}

/// A 5xx answer of a store failure: exactly the generic body, none of the
/// driver's text.
fn check_internal(what: &str, status: StatusCode, text: &str) {
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{what}: {text}");
    let body: Value = serde_json::from_str(text).expect("a JSON body");
    assert_eq!(body, json!({ "error": INTERNAL }), "{what}");
    for piece in INJECTED_PIECES {
        assert!(!text.contains(piece), "{what}: leaks {piece:?}: {text}");
    }
}

async fn store_failures(backend: Backend) {
    let Some(inner) = open_store(backend).await else {
        return;
    };
    let store = Arc::new(FaultyStore::new(inner));
    let srv = TestServer::start_on(store.clone(), &[]).await;
    let admin = srv.token("admin", common::ADMIN_PASSWORD).await;
    let a = Some(admin.as_str());
    let titles = async || {
        let (s, v) = srv.call(Method::GET, "/incidents", a, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v.as_array()
            .expect("list")
            .iter()
            .map(|i| {
                (
                    i["title"].as_str().unwrap_or_default().to_string(),
                    i["version"].as_i64().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    let created = async || {
        let (_, v) = srv
            .call(
                Method::GET,
                "/audit?action=INCIDENT_CREATED&limit=500",
                a,
                None,
            )
            .await;
        v.as_array().map(Vec::len).unwrap_or_default()
    };
    assert!(titles().await.is_empty());
    assert!(titles().await.is_empty(), "read twice, so a cache holds it");

    // A create whose commit fails.
    store.fail_nth_commit(1, Fault::Before);
    let (s, text) = srv
        .call_text(
            Method::POST,
            "/incidents",
            a,
            Some(json!({"title": "lost"})),
        )
        .await;
    check_internal(&format!("{backend:?} create"), s, &text);
    assert_eq!(store.injected(), 1, "the fault struck that request");
    assert!(titles().await.is_empty(), "{backend:?}: nothing listed");
    assert_eq!(created().await, 0, "{backend:?}: nothing audited");
    assert_eq!(
        store.inner().pending_outbox().await.expect("outbox"),
        0,
        "{backend:?}: nothing to notify"
    );
    let (s, v) = srv
        .call(
            Method::POST,
            "/incidents",
            a,
            Some(json!({"title": "kept"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let path = format!("/incidents/{}", v["id"].as_str().expect("id"));
    assert_eq!(titles().await, [("kept".to_string(), 1)], "{backend:?}");
    assert_eq!(created().await, 1);

    // An update whose commit fails, then one whose answer is lost.
    store.fail_nth_commit(1, Fault::Before);
    let (s, text) = srv
        .call_text(
            Method::PUT,
            &path,
            a,
            Some(json!({"title": "renamed", "priority": "high"})),
        )
        .await;
    check_internal(&format!("{backend:?} update"), s, &text);
    assert_eq!(
        titles().await,
        [("kept".to_string(), 1)],
        "{backend:?}: version unchanged"
    );
    store.fail_nth_commit(1, Fault::After);
    let (s, text) = srv
        .call_text(Method::PUT, &path, a, Some(json!({"title": "renamed"})))
        .await;
    check_internal(&format!("{backend:?} update, answer lost"), s, &text);
    assert_eq!(
        titles().await,
        [("renamed".to_string(), 2)],
        "{backend:?}: what the store holds, at once"
    );

    // Failed reads: a list, the audit log, a sign-in's user lookup.
    for (call, method, path, token, body) in [
        // (A filter not read before: the page the other lists read is cached.)
        (
            Call::ListIncidents,
            Method::GET,
            "/incidents?status=acknowledged",
            a,
            None,
        ),
        (Call::ListAudit, Method::GET, "/audit", a, None),
        (
            Call::UserByUsername,
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": "admin", "password": common::ADMIN_PASSWORD})),
        ),
    ] {
        store.fail_nth(call, 1, Fault::Before);
        let (s, text) = srv.call_text(method.clone(), path, token, body).await;
        check_internal(&format!("{backend:?} {call:?}"), s, &text);
        assert_eq!(store.armed(), 0, "{call:?} struck");
    }
    // A report whose first rows cannot be read: the first page is fetched
    // before the answer starts, so it is a clean 500 like any other read.
    for format in ["csv", "pdf"] {
        store.fail_nth(Call::ListIncidents, 1, Fault::Before);
        let (s, text) = srv
            .call_text(
                Method::GET,
                &format!("/reports/incidents?format={format}"),
                Some(&admin),
                None,
            )
            .await;
        check_internal(&format!("{backend:?} {format} report"), s, &text);
        assert!(
            !text.contains("renamed"),
            "{backend:?}: the rows were not read"
        );
        assert_eq!(store.armed(), 0, "the {format} report's read struck");
    }
    assert_eq!(
        titles().await,
        [("renamed".to_string(), 2)],
        "{backend:?}: and the server goes on"
    );
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_is_a_500_that_says_nothing_internal() {
    for b in common::backends() {
        store_failures(b).await;
    }
}
