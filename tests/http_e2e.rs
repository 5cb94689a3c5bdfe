//! End-to-end tests of the reference server over a real socket with a real HTTP
//! client, on SQLite, PostgreSQL (`DATABASE_URL`) and MongoDB (`MONGODB_URL`):
//! every route for every role, validation, notification ownership, the live
//! breach, a restart, reports.

#![cfg(all(
    feature = "http",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongo",
    feature = "redis"
))]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Backend, Database as Db, TestServer as Server};
use imas::server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "an e2e test secret of 32+ bytes!!";

/// Every store the server runs on.
fn both() -> [Backend; 3] {
    common::backends()
}

async fn routes_by_role(backend: Backend) {
    let Some(db) = Db::fresh(backend) else { return };
    let srv = Server::start_in(&db, &[]).await;
    let admin = srv.token("admin", "admin password").await;
    let (_, user) = srv.user(&admin, "plainuser", "user").await;
    let (eng_id, engineer) = srv.user(&admin, "engineer1", "engineer").await;
    let tokens: [(&str, Option<&str>); 4] = [
        ("none", None),
        ("user", Some(&user)),
        ("engineer", Some(&engineer)),
        ("admin", Some(&admin)),
    ];

    // Each row: method, path, body, expected status for none / user / engineer / admin.
    // Incidents that a row changes are created fresh per role.
    for (role, token) in tokens {
        let (_, inc) = srv
            .call(
                Method::POST,
                "/incidents",
                Some(&admin),
                Some(json!({"title": format!("for {role}")})),
            )
            .await;
        let id = inc["id"].as_str().expect("id").to_string();
        let rows: Vec<(Method, String, Option<Value>, [u16; 4])> = vec![
            (Method::GET, "/healthz".into(), None, [200, 200, 200, 200]),
            (Method::GET, "/incidents".into(), None, [401, 403, 200, 200]),
            (
                Method::POST,
                "/incidents".into(),
                Some(json!({"title": "t"})),
                [401, 201, 201, 201],
            ),
            (
                Method::GET,
                format!("/incidents/{id}"),
                None,
                [401, 404, 200, 200],
            ),
            (
                Method::PUT,
                format!("/incidents/{id}"),
                Some(json!({"description": "d"})),
                [401, 403, 200, 200],
            ),
            (
                Method::POST,
                "/sla/assign-sla".into(),
                Some(json!({"id": id, "priority": "high"})),
                [401, 403, 403, 200],
            ),
            (
                Method::GET,
                "/sla/violations".into(),
                None,
                [401, 403, 200, 200],
            ),
            (
                Method::GET,
                "/api/escalations".into(),
                None,
                [401, 403, 200, 200],
            ),
            (
                Method::POST,
                "/api/escalations/manual".into(),
                Some(json!({"id": id})),
                [401, 403, 403, 200],
            ),
            (
                Method::GET,
                "/notifications".into(),
                None,
                [401, 200, 200, 200],
            ),
            (Method::GET, "/audit".into(), None, [401, 403, 200, 200]),
            (
                Method::GET,
                "/reports/incidents?format=csv".into(),
                None,
                [401, 403, 200, 200],
            ),
            (
                Method::GET,
                "/reports/incidents?format=pdf".into(),
                None,
                [401, 403, 200, 200],
            ),
            (
                Method::PATCH,
                format!("/users/{eng_id}/role"),
                Some(json!({"role": "engineer"})),
                [401, 403, 403, 200],
            ),
            (
                Method::DELETE,
                format!("/incidents/{id}"),
                None,
                [401, 403, 403, 204],
            ),
        ];
        let col = ["none", "user", "engineer", "admin"]
            .iter()
            .position(|r| *r == role)
            .expect("role");
        for (method, path, body, expected) in rows {
            let (status, value) = srv.call(method.clone(), &path, token, body).await;
            assert_eq!(
                status.as_u16(),
                expected[col],
                "{method} {path} as {role}: {value}"
            );
            if !status.is_success() {
                assert!(
                    value["error"].is_string(),
                    "{method} {path} as {role}: JSON error body, got {value}"
                );
            }
        }
    }
    srv.stop().await.expect("graceful stop");
}

async fn validation(backend: Backend) {
    let Some(db) = Db::fresh(backend) else { return };
    let srv = Server::start_in(&db, &[]).await;
    let admin = srv.token("admin", "admin password").await;
    let t = Some(admin.as_str());
    let cases: Vec<(Method, &str, Value, u16, Option<&str>)> = vec![
        (
            Method::POST,
            "/auth/register",
            json!({"name": "X", "username": "xx1", "password": "password1", "email": "x@e.io", "role": "admin"}),
            400,
            Some("role"),
        ),
        (
            Method::POST,
            "/auth/register",
            json!({"name": "X", "username": "xx1", "password": "short", "email": "x@e.io"}),
            400,
            Some("password"),
        ),
        (
            Method::POST,
            "/auth/register",
            json!({"name": "X", "username": "xx1", "password": "password1", "email": "nope"}),
            400,
            Some("email"),
        ),
        (
            Method::POST,
            "/auth/register",
            json!({"name": "X", "username": "x y", "password": "password1", "email": "x@e.io"}),
            400,
            Some("username"),
        ),
        (
            Method::POST,
            "/auth/login",
            json!({"username": "admin", "password": "wrong"}),
            401,
            None,
        ),
        (
            Method::POST,
            "/auth/login",
            json!({"username": "ghost", "password": "wrong"}),
            401,
            None,
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": ""}),
            400,
            Some("title"),
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": "x".repeat(201)}),
            400,
            Some("title"),
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": "ok", "description": "d".repeat(10_001)}),
            400,
            Some("description"),
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": "ok", "priority": "urgent"}),
            400,
            Some("priority"),
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": "ok", "type": "epic"}),
            400,
            Some("type"),
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": "ok", "status": "closed"}),
            400,
            Some("status"),
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": "ok", "slaBreached": true}),
            400,
            Some("slaBreached"),
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": "ok", "reportedBy": "x"}),
            400,
            Some("reportedBy"),
        ),
        (
            Method::POST,
            "/incidents",
            json!({"title": "ok", "assignedTo": uuid::Uuid::new_v4()}),
            400,
            Some("assignedTo"),
        ),
        (
            Method::POST,
            "/sla/assign-sla",
            json!({"id": uuid::Uuid::new_v4(), "priority": "high"}),
            404,
            None,
        ),
        (
            Method::POST,
            "/api/escalations/manual",
            json!({"id": "not-a-uuid"}),
            400,
            Some("id"),
        ),
        (
            Method::PATCH,
            "/users/not-a-uuid/role",
            json!({"role": "admin"}),
            400,
            Some("id"),
        ),
    ];
    for (method, path, body, expected, field) in cases {
        let (status, value) = srv.call(method.clone(), path, t, Some(body.clone())).await;
        assert_eq!(status.as_u16(), expected, "{method} {path} {body}: {value}");
        assert!(value["error"].is_string(), "{value}");
        if let Some(f) = field {
            assert_eq!(value["field"], f, "{method} {path}: {value}");
        }
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("status=bogus", "status"),
        ("priority=urgent", "priority"),
        ("startDate=yesterday", "startDate"),
        ("cursor=zzz", "cursor"),
        ("assignedTo=me", "assignedTo"),
    ] {
        let (status, value) = srv
            .call(Method::GET, &format!("/incidents?{query}"), t, None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {value}");
        assert!(value["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert_eq!(value["field"], field, "{query}: {value}");
    }
    let (status, value) = srv
        .call(
            Method::GET,
            &format!("/incidents/{}", uuid::Uuid::new_v4()),
            t,
            None,
        )
        .await;
    assert_eq!(
        (status, value["error"].is_string()),
        (StatusCode::NOT_FOUND, true)
    );
    // Wrong content type, malformed JSON, oversized body, bad tokens.
    let url = format!("{}/incidents", srv.base);
    let res = srv
        .http
        .post(&url)
        .bearer_auth(&admin)
        .body(r#"{"title":"x"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = srv
        .http
        .post(&url)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"title": "#)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let huge = json!({"title": "x", "description": "d".repeat(1_100_000)});
    let res = srv
        .http
        .post(&url)
        .bearer_auth(&admin)
        .json(&huge)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = res.json().await.expect("json");
    assert!(v["error"].is_string());
    for bad in [
        "Bearer",
        "Bearer not.a.jwt",
        "Basic YWRtaW46eA==",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ] {
        let res = srv
            .http
            .get(&url)
            .header("authorization", bad)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
    // Transitions: allowed, then refused with 409.
    let (_, inc) = srv
        .call(
            Method::POST,
            "/incidents",
            t,
            Some(json!({"title": "flow"})),
        )
        .await;
    let path = format!("/incidents/{}", inc["id"].as_str().expect("id"));
    let (s, v) = srv
        .call(Method::PUT, &path, t, Some(json!({"status": "closed"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "closed");
    let (s, v) = srv
        .call(Method::PUT, &path, t, Some(json!({"status": "open"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Nothing of the refused requests was written.
    let (_, list) = srv.call(Method::GET, "/incidents?limit=500", t, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    srv.stop().await.expect("graceful stop");
}

/// SPEC §7 (input): hostile values are a 400 naming the parameter on every
/// backend, never a 500; a long word in a description is stored and found by its
/// first 64 characters.
async fn hostile_input(backend: Backend) {
    let Some(db) = Db::fresh(backend) else { return };
    let srv = Server::start_in(&db, &[]).await;
    let admin = srv.token("admin", "admin password").await;
    let t = Some(admin.as_str());
    let word = "w".repeat(3_000);
    let (s, created) = srv
        .call(
            Method::POST,
            "/incidents",
            t,
            Some(json!({"title": "long word", "description": format!("before {word} after")})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{backend:?}: {created}");
    let id = created["id"].as_str().expect("id");
    let (s, read) = srv
        .call(Method::GET, &format!("/incidents/{id}"), t, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{backend:?}: {read}");
    assert_eq!(read["description"], format!("before {word} after"));
    let found = |v: &Value| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|i| i["id"].as_str() == Some(id)))
    };
    for q in [
        "w".repeat(64),
        format!("{} after", "W".repeat(64)),
        "before".into(),
    ] {
        let (s, list) = srv
            .call(Method::GET, &format!("/incidents?q={q}"), t, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{backend:?} q={q}: {list}");
        assert!(found(&list), "{backend:?}: q={q} finds the long word");
    }
    let (s, list) = srv
        .call(
            Method::GET,
            &format!("/incidents?q={}", "w".repeat(63)),
            t,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(!found(&list), "{backend:?}: terms are whole words");
    let many: Vec<String> = (0..33).map(|n| format!("t{n}")).collect();
    let (s, list) = srv
        .call(
            Method::GET,
            &format!("/incidents?q={}", many[..32].join("+")),
            t,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{backend:?}: 32 terms: {list}");
    let hex = uuid::Uuid::new_v4().simple().to_string();
    let cases: Vec<(String, &str)> = vec![
        (format!("/incidents?q={word}"), "q"),
        (format!("/incidents?q={}", "w".repeat(65)), "q"),
        (format!("/incidents?q={}", many.join("+")), "q"),
        ("/incidents?startDate=-5000-01-01".into(), "startDate"),
        ("/incidents?startDate=0000-12-31".into(), "startDate"),
        ("/incidents?endDate=%2B10000-01-01".into(), "endDate"),
        (
            "/incidents?startDate=0000-12-31T23:59:59Z".into(),
            "startDate",
        ),
        (
            format!("/incidents?cursor=-9223372036854775808.{hex}"),
            "cursor",
        ),
        (
            format!("/incidents?cursor=9223372036854775807.{hex}"),
            "cursor",
        ),
        (format!("/incidents?cursor=-62135596800001.{hex}"), "cursor"),
        (
            format!("/audit?cursor=-9223372036854775808.{hex}"),
            "cursor",
        ),
        (
            format!("/notifications?cursor=-9223372036854775808.{hex}"),
            "cursor",
        ),
        (
            format!("/api/escalations?cursor=-9223372036854775808.{hex}"),
            "cursor",
        ),
        (
            format!("/sla/violations?cursor=-9223372036854775808.{hex}"),
            "cursor",
        ),
        ("/audit?startDate=-0001-01-01".into(), "startDate"),
        ("/audit?endDate=-0001-01-01".into(), "endDate"),
        ("/audit?from=-5000-01-01".into(), "from"),
        ("/audit?to=0000-01-01".into(), "to"),
        ("/audit?target=a%00b".into(), "target"),
        (
            "/reports/incidents?format=csv&startDate=-5000-01-01".into(),
            "startDate",
        ),
    ];
    for (path, field) in cases {
        let (s, v) = srv.call(Method::GET, &path, t, None).await;
        let shown: String = path.chars().take(120).collect();
        assert_eq!(s, StatusCode::BAD_REQUEST, "{backend:?} {shown}: {v}");
        assert_eq!(v["field"], field, "{backend:?} {shown}: {v}");
    }
    // The first and last instants of the accepted range are fine.
    for path in [
        "/incidents?startDate=0001-01-01&endDate=9999-12-31",
        "/audit?startDate=0001-01-01&endDate=9999-12-31",
        "/incidents?cursor=-62135596800000.0190f3c27b1e7c3a9d4e1f2a3b4c5d6e",
        "/incidents?cursor=253402300799999.0190f3c27b1e7c3a9d4e1f2a3b4c5d6e",
    ] {
        let (s, v) = srv.call(Method::GET, path, t, None).await;
        assert_eq!(s, StatusCode::OK, "{backend:?} {path}: {v}");
    }
    // NUL characters: refused in stored text, unknown in a sign-in.
    for (path, body, field) in [
        ("/incidents", json!({"title": "a\u{0}b"}), "title"),
        (
            "/incidents",
            json!({"title": "ok", "description": "a\u{0}b"}),
            "description",
        ),
        (
            "/auth/register",
            json!({"name": "n\u{0}", "username": "nul1", "password": "password 123", "email": "nul1@example.com"}),
            "name",
        ),
    ] {
        let (s, v) = srv.call(Method::POST, path, t, Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{backend:?} {path}: {v}");
        assert_eq!(v["field"], field, "{backend:?} {path}: {v}");
    }
    let (s, v) = srv
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"username": "ad\u{0}min", "password": "admin password"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{backend:?}: {v}");
    srv.stop().await.expect("graceful stop");
}

async fn ownership_and_pagination(backend: Backend) {
    let Some(db) = Db::fresh(backend) else { return };
    let srv = Server::start_in(&db, &[]).await;
    let admin = srv.token("admin", "admin password").await;
    let (alice_id, alice) = srv.user(&admin, "alice", "engineer").await;
    let (_, bob) = srv.user(&admin, "bob", "engineer").await;
    for n in 0..7 {
        let body = json!({"title": format!("for alice {n}"), "assignedTo": alice_id});
        let (s, _) = srv
            .call(Method::POST, "/incidents", Some(&admin), Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let notes = loop {
        let (_, v) = srv
            .call(Method::GET, "/notifications", Some(&alice), None)
            .await;
        if v.as_array().map(Vec::len) == Some(7) || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(notes.as_array().map(Vec::len), Some(7), "{notes}");
    let id = notes[0]["id"].as_str().expect("id");
    let (s, v) = srv
        .call(
            Method::PATCH,
            &format!("/notifications/{id}/read"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another user's notification: {v}");
    let (s, v) = srv
        .call(
            Method::PATCH,
            &format!("/notifications/{id}/read"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((s, v["read"].as_bool()), (StatusCode::OK, Some(true)));
    let (_, v) = srv
        .call(Method::GET, "/notifications", Some(&bob), None)
        .await;
    assert_eq!(v, json!([]), "bob sees none of alice's");

    // Keyset pages through the Link header.
    let mut url = format!("{}/incidents?limit=3&status=open", srv.base);
    let mut seen = Vec::new();
    loop {
        let res = srv
            .http
            .get(&url)
            .bearer_auth(&admin)
            .send()
            .await
            .expect("page");
        assert_eq!(res.status(), StatusCode::OK);
        let link = res
            .headers()
            .get("link")
            .map(|l| l.to_str().expect("link").to_string());
        let items: Vec<Value> = res.json().await.expect("json");
        seen.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_string()),
        );
        match link {
            Some(l) => {
                assert!(
                    l.ends_with("; rel=\"next\"")
                        && l.contains("status=open")
                        && l.contains("limit=3"),
                    "{l}"
                );
                url = format!("{}{}", srv.base, &l[1..l.find('>').expect(">")]);
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 7, "each incident once across pages");
    srv.stop().await.expect("graceful stop");
}

async fn live_breach(backend: Backend, redis: Option<&str>) {
    let Some(db) = Db::fresh(backend) else { return };
    let mut vars = vec![("IMAS_SLA_POLICY", "critical=2s")];
    if let Some(url) = redis {
        vars.push(("REDIS_URL", url));
    }
    let srv = Server::start_in(&db, &vars).await;
    let admin = srv.token("admin", "admin password").await;
    let (eng_id, eng) = srv.user(&admin, "oncall", "engineer").await;
    let body = json!({"title": "Checkout 502", "priority": "critical", "assignedTo": eng_id});
    let (s, inc) = srv
        .call(Method::POST, "/incidents", Some(&admin), Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inc}");
    assert_eq!(inc["slaBreached"], false);
    let id = inc["id"].as_str().expect("id").to_string();
    let escalations = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().filter(|n| n["type"] == "escalation").count())
            .unwrap_or_default()
    };
    // No request touches the incident while we wait: only reads of the results.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, notes) = srv
            .call(Method::GET, "/notifications", Some(&eng), None)
            .await;
        if escalations(&notes) >= 1 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let check = async || {
        let (_, i) = srv
            .call(Method::GET, &format!("/incidents/{id}"), Some(&admin), None)
            .await;
        assert_eq!(i["slaBreached"], true, "{i}");
        assert_eq!(i["escalationLevel"], 1);
        let (_, notes) = srv
            .call(Method::GET, "/notifications", Some(&eng), None)
            .await;
        assert_eq!(
            escalations(&notes),
            1,
            "exactly one escalation notification: {notes}"
        );
        let (_, audit) = srv
            .call(
                Method::GET,
                &format!("/audit?action=SLA_BREACH&target={id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(
            audit.as_array().map(Vec::len),
            Some(1),
            "exactly one SLA_BREACH: {audit}"
        );
    };
    check().await;
    // Still exactly once after more monitor cycles.
    let later = Instant::now() + Duration::from_secs(2);
    while Instant::now() < later {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check().await;
    let (_, v) = srv
        .call(Method::GET, "/sla/violations", Some(&admin), None)
        .await;
    assert_eq!(
        (v["totalViolations"].as_u64(), v["notified"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    srv.stop().await.expect("graceful stop");
}

async fn restart_keeps_everything(backend: Backend) {
    let Some(db) = Db::fresh(backend) else { return };
    let srv = Server::start_in(&db, &[]).await;
    let admin = srv.token("admin", "admin password").await;
    let (_, eng) = srv.user(&admin, "keeper", "engineer").await;
    let (_, inc) = srv
        .call(
            Method::POST,
            "/incidents",
            Some(&admin),
            Some(json!({"title": "survives"})),
        )
        .await;
    srv.stop().await.expect("graceful stop");

    let srv = Server::start_in(&db, &[]).await;
    let (s, v) = srv
        .call(
            Method::GET,
            &format!("/incidents/{}", inc["id"].as_str().expect("id")),
            Some(&eng),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the old token and the incident survive a restart: {v}"
    );
    assert_eq!(v["title"], "survives");
    srv.token("keeper", "password 123").await;
    let (_, audit) = srv
        .call(
            Method::GET,
            "/audit?action=INCIDENT_CREATED",
            Some(&eng),
            None,
        )
        .await;
    assert_eq!(audit.as_array().map(Vec::len), Some(1));
    srv.stop().await.expect("graceful stop");
}

async fn csv_reports(backend: Backend) {
    let Some(db) = Db::fresh(backend) else { return };
    let srv = Server::start_in(&db, &[]).await;
    let admin = srv.token("admin", "admin password").await;
    let titles = [
        "comma, here",
        "quote \" here",
        "new\nline",
        "é ü – ß 漢字",
        "plain",
    ];
    for (n, t) in titles.iter().enumerate() {
        let priority = if n % 2 == 0 { "high" } else { "low" };
        let (s, v) = srv
            .call(
                Method::POST,
                "/incidents",
                Some(&admin),
                Some(json!({"title": t, "priority": priority})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let get = |query: &str| {
        let req = srv
            .http
            .get(format!("{}/reports/incidents?{query}", srv.base))
            .bearer_auth(&admin);
        async move { req.send().await.expect("report") }
    };
    let res = get("format=csv").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    let body = res.bytes().await.expect("body");
    let mut reader = csv::Reader::from_reader(body.as_ref());
    let mut got: Vec<String> = reader
        .records()
        .map(|r| r.expect("record")[1].to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = titles.iter().map(|t| t.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "titles round-trip through the CSV");
    let high = get("format=csv&priority=high")
        .await
        .bytes()
        .await
        .expect("body");
    assert_eq!(csv::Reader::from_reader(high.as_ref()).records().count(), 3);
    let none = get("format=csv&status=closed").await;
    assert_eq!(none.status(), StatusCode::OK);
    let none = none.bytes().await.expect("body");
    assert_eq!(
        csv::Reader::from_reader(none.as_ref()).records().count(),
        0,
        "an empty report is valid"
    );
    let pdf = get("format=pdf&priority=high").await;
    assert_eq!(pdf.status(), StatusCode::OK);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let pdf = pdf.bytes().await.expect("body");
    assert!(pdf.starts_with(b"%PDF-"));
    if let Some(pages) = imas_core::testkit::pdf_text(&pdf) {
        let text = pages.join("\n");
        for want in [
            "Incident report",
            "Filters: priority = high",
            "comma, here",
            "new line",
            "plain",
            "page 1 of 1",
        ] {
            assert!(
                text.contains(want),
                "{want:?} missing from the PDF:\n{text}"
            );
        }
        assert!(text.contains("Incidents: 3"), "{text}");
        assert!(
            !text.contains("quote \" here") && !text.contains("é ü"),
            "low-priority ones are filtered out"
        );
    }
    let empty = get("format=pdf&status=closed").await;
    assert_eq!(empty.status(), StatusCode::OK);
    let empty = empty.bytes().await.expect("body");
    if let Some(pages) = imas_core::testkit::pdf_text(&empty) {
        assert!(pages[0].contains("No incidents match"), "{}", pages[0]);
    }
    for (query, status) in [
        ("", 400),
        ("format=xls", 400),
        ("format=pdf&endDate=later", 400),
        ("format=csv&startDate=soon", 400),
    ] {
        let res = get(query).await;
        assert_eq!(res.status().as_u16(), status, "{query}");
        let v: Value = res.json().await.expect("json error");
        if status == 400 && !query.contains("Date") {
            assert_eq!(v["error"], "Invalid format. Use 'csv' or 'pdf'.");
        }
        if query.contains("startDate") {
            assert_eq!(v["field"], "startDate");
        }
        if query.contains("endDate") {
            assert_eq!(v["field"], "endDate");
        }
    }
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_pdf_reports_stream_the_filtered_incidents() {
    for b in both() {
        csv_reports(b).await;
    }
}

/// Reads Server-Sent Events until one whose data contains `needle`; returns every
/// `data:` line seen on the way.
async fn read_events_until(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    needle: &str,
) -> Vec<String> {
    use futures::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for line in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                seen.push(line.trim().to_string());
                if line.contains(needle) {
                    return seen;
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no event with {needle:?}; saw {seen:?}");
        match tokio::time::timeout(left, body.next()).await {
            Ok(Some(chunk)) => buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk"))),
            _ => panic!("stream ended or timed out before {needle:?}; saw {seen:?}"),
        }
    }
}

async fn live_stream(backend: Backend) {
    let Some(db) = Db::fresh(backend) else { return };
    let srv = Server::start_in(&db, &[]).await;
    let admin = srv.token("admin", "admin password").await;
    let (alice_id, alice) = srv.user(&admin, "alice", "engineer").await;
    let (bob_id, _) = srv.user(&admin, "bob", "engineer").await;
    let res = srv
        .http
        .get(format!("{}/notifications/stream", srv.base))
        .send()
        .await
        .expect("stream");
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the stream needs a token"
    );
    let res = srv
        .http
        .get(format!("{}/notifications/stream", srv.base))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("stream");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    let mut body = Box::pin(res.bytes_stream());
    let mut buf = String::new();
    let assign = |title: &str, to: &str| {
        let body = json!({"title": title, "assignedTo": to});
        srv.call(Method::POST, "/incidents", Some(&admin), Some(body))
    };
    assign("first for alice", &alice_id).await;
    let seen = read_events_until(&mut body, &mut buf, "first for alice").await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    let event: Value = serde_json::from_str(&seen[0]).expect("JSON data");
    assert_eq!(event["user"], alice_id.as_str());
    assign("secret for bob", &bob_id).await;
    assign("second for alice", &alice_id).await;
    let seen = read_events_until(&mut body, &mut buf, "second for alice").await;
    assert!(
        seen.iter().all(|d| !d.contains("secret for bob")),
        "another user's notification leaked: {seen:?}"
    );
    // A graceful shutdown ends open streams instead of waiting for them forever.
    tokio::time::timeout(Duration::from_secs(10), srv.stop())
        .await
        .expect("shutdown with a stream open")
        .expect("graceful stop");
    use futures::StreamExt;
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ends at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_carries_only_the_callers_notifications() {
    for b in both() {
        live_stream(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_role() {
    for b in both() {
        routes_by_role(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_and_errors() {
    for b in both() {
        validation(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_a_400_naming_the_parameter_never_a_500() {
    for b in both() {
        hostile_input(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_private_and_lists_paginate() {
    for b in both() {
        ownership_and_pagination(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_is_detected_live_and_recorded_once() {
    for b in both() {
        live_breach(b, None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_is_notified_once_through_the_redis_queue() {
    let Some(url) = imas_core::testkit::service_url("REDIS_URL") else {
        return;
    };
    live_breach(Backend::Sqlite, Some(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_everything() {
    for b in both() {
        restart_keeps_everything(b).await;
    }
}

#[test]
fn bad_configuration_names_the_variable() {
    let cases = [
        ("PORT", "http"),
        ("JWT_SECRET", "short"),
        ("IMAS_SLA_POLICY", "critical=soon"),
        ("IMAS_SLA_RESPONSE_POLICY", "urgent=1h"),
        ("IMAS_ESCALATION_DELAYS", "0s,later"),
        ("IMAS_SLA_AT_RISK", "1.5"),
        ("DATABASE_URL", "mysql://x"),
        ("IMAS_ADMIN_USERNAME", "root"),
        ("IMAS_WEBHOOK_URL", "https://example.com/hook"),
        ("REDIS_URL", "localhost:6379"),
        ("MONGODB_URL", "localhost:27017"),
    ];
    for (var, value) in cases {
        let e = ServerConfig::from_vars(|k| (k == var).then(|| value.to_string())).expect_err(var);
        let text = e.to_string();
        let named = text.contains(var)
            || (var == "IMAS_ADMIN_USERNAME" && text.contains("IMAS_ADMIN_PASSWORD"))
            || (var == "IMAS_WEBHOOK_URL" && text.contains("IMAS_WEBHOOK_SECRET"));
        assert!(named, "{var}={value}: {text}");
    }
    // Deployments on different databases get different Redis prefixes; nodes of
    // one deployment agree on theirs.
    let prefix = |db: &str| {
        ServerConfig::from_vars(|k| match k {
            "DATABASE_URL" => Some(db.to_string()),
            "JWT_SECRET" => Some(SECRET.to_string()),
            _ => None,
        })
        .expect("config")
        .queue_prefix
    };
    assert_eq!(prefix("postgres://a/x"), prefix("postgres://a/x"));
    assert_ne!(prefix("postgres://a/x"), prefix("postgres://a/y"));
    let both = ServerConfig::from_vars(|k| match k {
        "DATABASE_URL" => Some("postgres://a/x".into()),
        "MONGODB_URL" => Some("mongodb://a/x".into()),
        _ => None,
    })
    .expect_err("two databases");
    assert!(both.to_string().contains("MONGODB_URL"), "{both}");
    let ok = ServerConfig::from_vars(|_| None).expect("defaults");
    assert_eq!(
        (ok.port, ok.database_url.as_str()),
        (3000, "sqlite://imas.db")
    );
    assert!(ok.jwt.is_none(), "development mode without JWT_SECRET");
}

/// With `MONGODB_URL` the reference server's engine stores everything in that
/// MongoDB database: the bootstrap admin signs in and an incident it creates is
/// there when the database is opened afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_on_mongodb_when_mongodb_url_is_set() {
    use imas::ports::IncidentStore as _;
    let Some(url) = imas_core::testkit::service_url("MONGODB_URL") else {
        return;
    };
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let with_db = common::mongodb_url_with_database(&url, &name);
    let vars: HashMap<&str, String> = HashMap::from([
        ("MONGODB_URL", with_db),
        ("JWT_SECRET", SECRET.to_string()),
        ("IMAS_ADMIN_USERNAME", "root".to_string()),
        ("IMAS_ADMIN_PASSWORD", "root password".to_string()),
    ]);
    let config = ServerConfig::from_vars(|k| vars.get(k).cloned()).expect("config");
    let engine = imas::server::engine(&config)
        .await
        .expect("engine on MongoDB");
    let token = engine
        .login("root", "root password")
        .await
        .expect("bootstrap admin");
    let root = engine.authenticate(&token).await.expect("auth");
    let created = engine
        .create_incident(
            &root,
            imas_core::engine::NewIncident {
                title: "stored in MongoDB".into(),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    let fresh = imas::store_mongo::MongoStore::connect_to(&url, &name)
        .await
        .expect("mongodb");
    let stored = fresh
        .get_incident(created.id)
        .await
        .expect("read")
        .expect("the incident is in the named database");
    assert_eq!(stored.title, "stored in MongoDB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route() {
    let Some(db) = Db::fresh(Backend::Sqlite) else {
        return;
    };
    let srv = Server::start_in(&db, &[]).await;
    let (status, doc) = srv.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let expected = [
        ("post", "/auth/register"),
        ("post", "/auth/login"),
        ("get", "/incidents"),
        ("post", "/incidents"),
        ("get", "/incidents/{id}"),
        ("put", "/incidents/{id}"),
        ("delete", "/incidents/{id}"),
        ("post", "/sla/assign-sla"),
        ("get", "/sla/violations"),
        ("get", "/api/escalations"),
        ("post", "/api/escalations/manual"),
        ("get", "/notifications"),
        ("patch", "/notifications/{id}/read"),
        ("get", "/notifications/stream"),
        ("get", "/audit"),
        ("get", "/reports/incidents"),
        ("patch", "/users/{id}/role"),
        ("get", "/healthz"),
        ("get", "/admin/dead-letters"),
        ("post", "/admin/dead-letters/{key}/redrive"),
        ("get", "/metrics"),
        ("get", "/services"),
        ("post", "/services"),
        ("get", "/services/{id}"),
        ("patch", "/services/{id}"),
        ("delete", "/services/{id}"),
        ("get", "/services/{id}/integrations"),
        ("post", "/services/{id}/integrations"),
        ("delete", "/integrations/{id}"),
        ("get", "/alerts"),
        ("get", "/incidents/{id}/alerts"),
        ("post", "/v2/enqueue"),
        ("post", "/integrations/alertmanager"),
        ("get", "/rotations"),
        ("post", "/rotations"),
        ("get", "/rotations/{id}"),
        ("patch", "/rotations/{id}"),
        ("delete", "/rotations/{id}"),
        ("get", "/rotations/{id}/shifts"),
        ("get", "/schedules"),
        ("post", "/schedules"),
        ("get", "/schedules/{id}"),
        ("patch", "/schedules/{id}"),
        ("delete", "/schedules/{id}"),
        ("post", "/schedules/{id}/overrides"),
        ("delete", "/schedules/{id}/overrides/{oid}"),
        ("get", "/schedules/{id}/on-call"),
        ("get", "/schedules/{id}/shifts"),
        ("get", "/oncall"),
        ("get", "/escalation-policies"),
        ("post", "/escalation-policies"),
        ("get", "/escalation-policies/{id}"),
        ("patch", "/escalation-policies/{id}"),
        ("delete", "/escalation-policies/{id}"),
        ("get", "/users"),
        ("get", "/users/me"),
        ("patch", "/users/me"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    let described: usize = paths
        .values()
        .map(|item| {
            item.as_object()
                .map_or(0, |m| m.keys().filter(|k| *k != "parameters").count())
        })
        .sum();
    for (method, path) in expected {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    assert_eq!(
        described,
        expected.len(),
        "no undocumented extras, none missing"
    );
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Incident",
        "User",
        "Notification",
        "AuditEntry",
        "Status",
        "Priority",
        "Role",
        "ErrorAnswer",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every $ref points at a schema that exists.
    let text = doc.to_string();
    for piece in text.split("\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').expect("quote")];
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
    srv.stop().await.expect("graceful stop");
}

#[test]
fn mongodb_urls_name_the_database() {
    for (url, want) in [
        (
            "mongodb://127.0.0.1:27018/?directConnection=true",
            "mongodb://127.0.0.1:27018/t?directConnection=true",
        ),
        ("mongodb://127.0.0.1:27018", "mongodb://127.0.0.1:27018/t"),
        (
            "mongodb://h1,h2/old?replicaSet=r",
            "mongodb://h1,h2/t?replicaSet=r",
        ),
        ("mongodb://u:p@h/", "mongodb://u:p@h/t"),
    ] {
        assert_eq!(common::mongodb_url_with_database(url, "t"), want, "{url}");
    }
}

/// Compression as a client that asks for it meets it: answers above 1 KiB (a
/// list, the OpenAPI document) come gzipped, small ones (a created incident,
/// the health check) as they are, however the client asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_compressed_and_small_ones_are_not() {
    let Some(db) = Db::fresh(Backend::Sqlite) else {
        return;
    };
    let srv = Server::start_in(&db, &[]).await;
    let token = srv.token("admin", common::ADMIN_PASSWORD).await;
    // A client that decodes nothing itself, to see what the server sent.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .build()
        .expect("client");
    let encoding = |res: &reqwest::Response| {
        res.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("?").to_string())
    };
    let mut created = None;
    for n in 0..20 {
        let res = raw
            .post(format!("{}/incidents", srv.base))
            .bearer_auth(&token)
            .header("accept-encoding", "gzip, deflate, br, zstd")
            .json(&serde_json::json!({ "title": format!("disk full on node {n}"), "priority": "high" }))
            .send()
            .await
            .expect("create");
        assert_eq!(res.status(), StatusCode::CREATED);
        created = Some(encoding(&res));
        let body = res.bytes().await.expect("body");
        assert!(body.len() < 1024, "one incident is small: {}", body.len());
    }
    assert_eq!(created, Some(None), "a small answer is sent as it is");
    for (path, auth) in [("/incidents?limit=50", true), ("/openapi.json", false)] {
        let mut req = raw
            .get(format!("{}{path}", srv.base))
            .header("accept-encoding", "gzip");
        if auth {
            req = req.bearer_auth(&token);
        }
        let res = req.send().await.expect("get");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(encoding(&res).as_deref(), Some("gzip"), "{path}");
        let gz = res.bytes().await.expect("body");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain)
            .expect("valid gzip");
        assert!(plain.len() > 1024 && gz.len() < plain.len(), "{path}");
        let _: serde_json::Value = serde_json::from_slice(&plain).expect("JSON inside");
    }
    let res = raw
        .get(format!("{}/healthz", srv.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("healthz");
    assert_eq!(encoding(&res), None, "the health check is tiny");
    srv.stop().await.expect("graceful stop");
}
