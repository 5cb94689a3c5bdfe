//! PagerDuty's official Python client (PyPI `pagerduty` 7.2.0,
//! `EventsApiV2Client`) against IMAS's `POST /v2/enqueue` over TLS, on SQLite
//! and on PostgreSQL (`DATABASE_URL`): the client insists on an `https://`
//! base URL, so IMAS serves HTTPS with a certificate the test makes and the
//! client is handed the test CA as `verify`. Trigger, repeat trigger,
//! acknowledge, resolve, trigger again (SPEC §4): two incidents, the first
//! resolved with its alert (seen twice), the second open; the audit as SPEC §4
//! says, with no entry for the repeat. And `IMAS_INGEST_RATE_LIMIT` reaches the
//! engine: over it, 429 with `Retry-After`.

#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;

use std::process::Command;

use common::ingest::{self, audit, call, service_with_key};
use common::tls::TestCa;
use common::{Backend, Database, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/pagerduty_events.py"
);

/// Whether python3 has the `pagerduty` package (skipped by hand without it,
/// a failure under CI).
fn pagerduty_client_installed() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import pagerduty"])
        .output()
        .is_ok_and(|o| o.status.success());
    ingest::tool(
        found,
        "python3 with PyPI's pagerduty package",
        "pip install pagerduty==7.2.0",
    )
}

/// Runs the Python client's sequence against `base` with `key`; its report.
async fn run_client(base: &str, key: &str, ca: &TestCa) -> Value {
    let (base, key, ca) = (
        base.to_string(),
        key.to_string(),
        ca.ca_path.display().to_string(),
    );
    // The client blocks; the server under test runs on this runtime.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(SCRIPT)
            .args([&base, &key, &ca])
            .output()
            .expect("python3")
    })
    .await
    .expect("client thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the PagerDuty client failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

async fn events_v2_with_the_pagerduty_client(backend: Backend) {
    if !pagerduty_client_installed() {
        return;
    }
    let Some(db) = Database::fresh(backend) else {
        return;
    };
    let ca = TestCa::new();
    let tls = ca.vars();
    let vars: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = TestServer::start_in(&db, &vars)
        .await
        .with_client(ca.client());
    let base = server.base.clone();
    assert!(base.starts_with("https://"), "{base}");
    let http = server.http.clone();
    let admin = server.token("admin", common::ADMIN_PASSWORD).await;
    let (service, key) = service_with_key(&http, &base, &admin, "checkout", "events-v2").await;

    let report = run_client(&base, &key, &ca).await;
    assert_eq!(report["version"], json!("7.2.0"), "{report}");
    // The dedup key given comes back from every accepted event.
    for step in [
        "trigger",
        "repeat",
        "acknowledge",
        "resolve",
        "trigger_again",
    ] {
        assert_eq!(report[step], json!("db-1/disk"), "{step}: {report}");
    }
    // Refusals in PagerDuty's 400 shape, each problem named.
    for refusal in ["missing_fields", "unknown_key"] {
        let r = &report[refusal];
        assert_eq!(r["status"], json!(400), "{refusal}: {r}");
        assert_eq!(
            r["body"]["status"],
            json!("invalid event"),
            "{refusal}: {r}"
        );
        assert_eq!(
            r["body"]["message"],
            json!("Event object is invalid"),
            "{refusal}: {r}"
        );
        let errors = r["body"]["errors"].as_array().expect("errors");
        assert!(!errors.is_empty(), "{refusal}: {r}");
    }
    let missing = report["missing_fields"]["body"]["errors"].to_string();
    assert!(
        missing.contains("source") && missing.contains("severity"),
        "each missing field named: {missing}"
    );
    assert!(
        report["unknown_key"]["body"]["errors"]
            .to_string()
            .contains("routing_key"),
        "{report}"
    );

    // Two incidents of the service, newest first.
    let incidents = ingest::all(
        &http,
        &base,
        &format!("{base}/incidents?serviceId={service}"),
        &admin,
    )
    .await;
    assert_eq!(incidents.len(), 2, "{incidents:#?}");
    let (second, first) = (&incidents[0], &incidents[1]);
    for incident in [first, second] {
        assert_eq!(incident["serviceId"], json!(service), "{incident}");
        assert_eq!(incident["source"], json!("events-v2"), "{incident}");
        assert_eq!(incident["reportedBy"], Value::Null, "{incident}");
        assert_eq!(
            incident["priority"],
            json!("high"),
            "error -> high: {incident}"
        );
        assert_eq!(incident["title"], json!("Disk full on db-1"), "{incident}");
    }
    assert_eq!(first["status"], json!("resolved"), "{first}");
    assert_eq!(first["alertCount"], json!(0), "{first}");
    assert_eq!(second["status"], json!("open"), "{second}");
    assert_eq!(second["alertCount"], json!(1), "{second}");

    let alerts_of = |incident: &Value| {
        let url = format!(
            "{base}/incidents/{}/alerts",
            incident["id"].as_str().expect("id")
        );
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move { ingest::all(&http, &base, &url, &admin).await }
    };
    let old = alerts_of(first).await;
    assert_eq!(old.len(), 1, "{old:#?}");
    let old = &old[0];
    assert_eq!(old["status"], json!("resolved"), "{old}");
    assert_eq!(old["eventCount"], json!(2), "trigger and its repeat: {old}");
    assert_eq!(old["dedupKey"], json!("db-1/disk"), "{old}");
    assert_eq!(old["severity"], json!("error"), "{old}");
    assert_eq!(old["source"], json!("db-1.example.com"), "{old}");
    assert_eq!(old["component"], json!("postgres"), "{old}");
    assert_eq!(old["group"], json!("storage"), "{old}");
    assert_eq!(old["class"], json!("disk"), "{old}");
    assert_eq!(
        old["details"]["custom_details"]["free"],
        json!("0%"),
        "{old}"
    );
    assert_eq!(
        old["links"][0]["href"],
        json!("https://runbooks.example.com/disk"),
        "{old}"
    );
    assert!(old["resolvedAt"].is_string(), "{old}");
    let new = alerts_of(second).await;
    assert_eq!(new.len(), 1, "{new:#?}");
    assert_eq!(new[0]["status"], json!("triggered"), "{}", new[0]);
    assert_eq!(new[0]["eventCount"], json!(1), "{}", new[0]);
    assert_ne!(new[0]["id"], old["id"], "a new alert after the resolve");

    // GET /alerts of the service: both, newest first; open ones by status.
    let listed = ingest::all(
        &http,
        &base,
        &format!("{base}/alerts?serviceId={service}"),
        &admin,
    )
    .await;
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(listed[0]["id"], new[0]["id"]);
    let open = ingest::all(
        &http,
        &base,
        &format!("{base}/alerts?serviceId={service}&status=triggered"),
        &admin,
    )
    .await;
    assert_eq!(open.len(), 1, "{open:#?}");

    // The audit: a trigger each time an alert opened, none for the repeat.
    assert_eq!(
        audit(&http, &base, &admin, "ALERT_TRIGGERED").await.len(),
        2
    );
    assert_eq!(
        audit(&http, &base, &admin, "ALERT_ACKNOWLEDGED")
            .await
            .len(),
        1
    );
    assert_eq!(audit(&http, &base, &admin, "ALERT_RESOLVED").await.len(), 1);
    let auto = audit(&http, &base, &admin, "INCIDENT_AUTO_RESOLVED").await;
    assert_eq!(auto.len(), 1, "{auto:#?}");
    assert_eq!(auto[0]["actor"], json!("SYSTEM"), "{}", auto[0]);
    assert_eq!(auto[0]["target"], first["id"], "{}", auto[0]);
    server.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_client_on_sqlite() {
    events_v2_with_the_pagerduty_client(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_client_on_postgres() {
    events_v2_with_the_pagerduty_client(Backend::Postgres).await;
}

/// `IMAS_INGEST_RATE_LIMIT=3`: the fourth event of a key within the minute is
/// refused with 429 and `Retry-After`, and is not ingested; another key is
/// not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_rate_limit_variable_reaches_the_engine() {
    let server = TestServer::start(Backend::Sqlite, &[("IMAS_INGEST_RATE_LIMIT", "3")])
        .await
        .expect("SQLite");
    let (http, base) = (server.http.clone(), server.base.clone());
    let admin = server.token("admin", common::ADMIN_PASSWORD).await;
    let (_, key) = service_with_key(&http, &base, &admin, "limited", "events-v2").await;
    let (_, other) = service_with_key(&http, &base, &admin, "unlimited", "events-v2").await;
    let event = |key: &str, n: u32| {
        json!({
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": format!("event-{n}"),
            "payload": {"summary": format!("event {n}"), "source": "test", "severity": "info"},
        })
    };
    let url = format!("{base}/v2/enqueue");
    for n in 0..3 {
        let (s, v) = call(&http, Method::POST, &url, None, Some(event(&key, n))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "event {n}: {v}");
        assert_eq!(v["status"], json!("success"), "{v}");
    }
    let res = http
        .post(&url)
        .json(&event(&key, 3))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (s, v) = call(&http, Method::POST, &url, None, Some(event(&other, 0))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "another key: {v}");
    let alerts = ingest::all(&http, &base, &format!("{base}/alerts"), &admin).await;
    assert_eq!(
        alerts.len(),
        4,
        "the refused event opened nothing: {alerts:#?}"
    );
    server.stop().await.expect("clean stop");
}
