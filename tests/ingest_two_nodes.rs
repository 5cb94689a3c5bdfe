//! Deduplication across nodes (SPEC §4, DESIGN invariant 2): two real
//! `imas-server` processes on one PostgreSQL database (`DATABASE_URL`), 64
//! concurrent identical Events v2 triggers spread over both: every one is
//! accepted, and together they make exactly one alert, seen 64 times, in
//! exactly one incident. Only the database's unique index on open alerts can
//! make that hold: neither node sees the other's requests.

#![cfg(all(feature = "http", feature = "postgres", feature = "server-bin"))]

mod common;

use common::ingest::{self, call, login, service_with_key};
use common::node::start;
use futures::future::join_all;
use reqwest::{Client, Method, StatusCode};
use serde_json::json;

const TRIGGERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_triggers_on_two_nodes_make_one_alert() {
    let Some(url) = imas_core::testkit::service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let env = vec![
        ("DATABASE_URL", url),
        ("IMAS_DB_SCHEMA", schema),
        (
            "JWT_SECRET",
            "a two-node ingest secret of 32+ bytes".to_string(),
        ),
        ("IMAS_ADMIN_USERNAME", "admin".to_string()),
        ("IMAS_ADMIN_PASSWORD", "admin password".to_string()),
    ];
    // One after the other, so that the migrations run once.
    let a = start(&env).await;
    let b = start(&env).await;
    let http = Client::new();
    let admin = login(&http, &a.base, "admin", "admin password").await;
    let (service, key) = service_with_key(&http, &a.base, &admin, "payments", "events-v2").await;

    let event = json!({
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": "payments/latency",
        "payload": {"summary": "p99 latency over 2s", "source": "lb-1", "severity": "critical"},
    });
    let answers = join_all((0..TRIGGERS).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let (http, url, event) = (http.clone(), format!("{base}/v2/enqueue"), event.clone());
        async move { call(&http, Method::POST, &url, None, Some(event)).await }
    }))
    .await;
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, StatusCode::ACCEPTED, "trigger {i}: {body}");
        assert_eq!(
            body["dedup_key"],
            json!("payments/latency"),
            "trigger {i}: {body}"
        );
    }

    // Both nodes see the same single alert and incident.
    for base in [&a.base, &b.base] {
        let alerts = ingest::all(
            &http,
            base,
            &format!("{base}/alerts?serviceId={service}"),
            &admin,
        )
        .await;
        assert_eq!(alerts.len(), 1, "{base}: {alerts:#?}");
        assert_eq!(alerts[0]["eventCount"], json!(TRIGGERS), "{}", alerts[0]);
        assert_eq!(alerts[0]["status"], json!("triggered"), "{}", alerts[0]);
        let incidents = ingest::all(
            &http,
            base,
            &format!("{base}/incidents?serviceId={service}"),
            &admin,
        )
        .await;
        assert_eq!(incidents.len(), 1, "{base}: {incidents:#?}");
        assert_eq!(incidents[0]["id"], alerts[0]["incidentId"]);
        assert_eq!(incidents[0]["alertCount"], json!(1), "{}", incidents[0]);
    }
    // One first trigger, 63 repeats: one audit entry.
    let triggered = ingest::audit(&http, &a.base, &admin, "ALERT_TRIGGERED").await;
    assert_eq!(triggered.len(), 1, "{triggered:#?}");
    let created = ingest::all(&http, &a.base, &format!("{}/incidents", a.base), &admin).await;
    assert_eq!(created.len(), 1, "no incident left over from a lost race");
}
