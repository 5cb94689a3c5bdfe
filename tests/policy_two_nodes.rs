//! Escalation policies across nodes (SPEC §5, DESIGN invariant 3): two real
//! `imas-server` processes on one PostgreSQL database (`DATABASE_URL`), a
//! policy of two steps (the on-call engineer of a schedule, then the admins
//! one minute later) used by a service, incidents of it opened on both nodes.
//! Step 1 pages within a second of the opening; at step 2's instant a third
//! claimer takes some of the due incidents and dies holding them, and node A
//! is killed outright: node B finishes the work, and every step happened
//! exactly once (one `ESCALATION` entry and one notification per recipient),
//! within the claim lease of its due instant.

#![cfg(all(feature = "http", feature = "postgres", feature = "server-bin"))]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::ingest::{self, call, login};
use common::node::start;
use imas::ports::IncidentStore;
use imas::store_sqlx::PostgresStore;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const INCIDENTS: usize = 40;
const LEASE: Duration = Duration::from_secs(2);

async fn post(http: &Client, url: String, token: &str, body: Value) -> Value {
    let (status, v) = call(http, Method::POST, &url, Some(token), Some(body)).await;
    assert!(status.is_success(), "{url}: {status}: {v}");
    v
}

fn instant(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("an RFC 3339 instant: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_step_once_when_a_node_dies_mid_step() {
    let Some(url) = imas_core::testkit::service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let env = vec![
        ("DATABASE_URL", url.clone()),
        ("IMAS_DB_SCHEMA", schema.clone()),
        ("JWT_SECRET", "a two-node policy secret of 32+ bytes".into()),
        ("IMAS_ADMIN_USERNAME", "admin".into()),
        ("IMAS_ADMIN_PASSWORD", "admin password".into()),
        ("IMAS_CLAIM_LEASE", "2s".into()),
    ];
    // One after the other, so that the migrations run once.
    let mut a = start(&env).await;
    let b = start(&env).await;
    let http = Client::new();
    let admin = login(&http, &a.base, "admin", "admin password").await;

    // The on-call engineer, a weekly rotation of him, a schedule of it.
    let eng = post(
        &http,
        format!("{}/auth/register", a.base),
        &admin,
        json!({"name": "On call", "username": "oncall", "password": "oncall password", "email": "oncall@example.com"}),
    )
    .await;
    let eng_id = eng["id"].as_str().expect("id").to_string();
    let (s, v) = call(
        &http,
        Method::PATCH,
        &format!("{}/users/{eng_id}/role", a.base),
        Some(&admin),
        Some(json!({"role": "engineer"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let eng_token = login(&http, &a.base, "oncall", "oncall password").await;
    let rotation = post(
        &http,
        format!("{}/rotations", a.base),
        &admin,
        json!({"name": "primary", "type": "weekly", "start": "2026-01-05T09:00:00Z", "participants": [eng_id]}),
    )
    .await;
    let schedule = post(
        &http,
        format!("{}/schedules", a.base),
        &admin,
        json!({"name": "payments on call", "timeZone": "UTC", "rules": [
            {"target": {"type": "rotation", "id": rotation["id"]}, "start": "00:00", "end": "00:00"},
        ]}),
    )
    .await;
    let policy = post(
        &http,
        format!("{}/escalation-policies", a.base),
        &admin,
        json!({"name": "payments", "repeat": 0, "steps": [
            {"delayMinutes": 1, "targets": [{"type": "schedule", "id": schedule["id"]}]},
            {"delayMinutes": 1, "targets": [{"type": "role", "role": "admin"}]},
        ]}),
    )
    .await;
    let service = post(
        &http,
        format!("{}/services", a.base),
        &admin,
        json!({"name": "payments", "escalationPolicyId": policy["id"]}),
    )
    .await;

    // Incidents opened on both nodes (low priority: no SLA step in the way).
    let mut created: HashMap<String, DateTime<Utc>> = HashMap::new();
    for k in 0..INCIDENTS {
        let base = if k % 2 == 0 { &a.base } else { &b.base };
        let i = post(
            &http,
            format!("{base}/incidents"),
            &admin,
            json!({"title": format!("incident {k}"), "priority": "low", "serviceId": service["id"]}),
        )
        .await;
        assert_eq!(i["escalationPolicyId"], policy["id"], "{i}");
        created.insert(
            i["id"].as_str().expect("id").to_string(),
            instant(&i["createdAt"]),
        );
    }
    let incidents_url = format!(
        "{}/incidents?serviceId={}&limit=100",
        b.base,
        service["id"].as_str().expect("id")
    );
    let levels = |want: u64| {
        let (http, url, admin, base) = (
            http.clone(),
            incidents_url.clone(),
            admin.clone(),
            b.base.clone(),
        );
        async move {
            let list = ingest::all(&http, &base, &url, &admin).await;
            let done = list.iter().filter(|i| i["escalationLevel"] == want).count();
            if done == INCIDENTS {
                Ok(list)
            } else {
                Err(format!("{done} of {INCIDENTS} at level {want}"))
            }
        }
    };
    // Step 1 pages at once: within a second of the opening.
    let step1 = ingest::eventually(Duration::from_secs(10), "step 1", || levels(1)).await;
    for i in &step1 {
        let id = i["id"].as_str().expect("id");
        let late = instant(&i["escalatedAt"]) - created[id];
        assert!(
            late < chrono::Duration::seconds(1),
            "step 1 of {id} {late} after the opening"
        );
    }

    // Step 2 falls due a minute after each opening. A third claimer takes
    // some of them as they fall due and dies holding them; node A is killed
    // while the steps run.
    let ghost = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("ghost");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut held = 0;
    while held == 0 {
        let now = imas::model::truncate_millis(Utc::now());
        held = ghost.claim_due(now, LEASE, 5).await.expect("claim").len();
        assert!(Instant::now() < deadline, "step 2 never fell due");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(ghost);
    a.child.kill().expect("SIGKILL");
    let _ = a.child.wait();

    let step2 = ingest::eventually(Duration::from_secs(60), "step 2", || levels(2)).await;
    for i in &step2 {
        let id = i["id"].as_str().expect("id");
        let due = created[id] + chrono::Duration::minutes(1);
        let late = instant(&i["escalatedAt"]) - due;
        assert!(
            late >= chrono::Duration::zero()
                && late < chrono::Duration::from_std(LEASE + Duration::from_secs(1)).expect("d"),
            "step 2 of {id} {late} after its due instant"
        );
        assert_eq!(i["nextEscalationAt"], Value::Null, "no step left: {i}");
    }
    // Exactly once: two ESCALATION entries per incident, one page each to
    // the on-call engineer (step 1) and to the admin (step 2).
    let entries = ingest::audit(&http, &b.base, &admin, "ESCALATION").await;
    let mut per: HashMap<String, usize> = HashMap::new();
    for e in &entries {
        *per.entry(e["target"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    assert_eq!(per.len(), INCIDENTS, "{per:?}");
    assert!(per.values().all(|n| *n == 2), "two steps each: {per:?}");
    let pages = |token: String| {
        let (http, base) = (http.clone(), b.base.clone());
        async move {
            let notes = ingest::all(
                &http,
                &base,
                &format!("{base}/notifications?limit=500"),
                &token,
            )
            .await;
            let mut per: HashMap<String, usize> = HashMap::new();
            for n in notes.iter().filter(|n| n["type"] == "escalation") {
                *per.entry(n["incidentId"].as_str().unwrap_or_default().to_string())
                    .or_default() += 1;
            }
            if per.len() == INCIDENTS {
                Ok(per)
            } else {
                Err(format!("{} of {INCIDENTS} incidents paged", per.len()))
            }
        }
    };
    let eng_pages = ingest::eventually(Duration::from_secs(30), "step 1 pages", || {
        pages(eng_token.clone())
    })
    .await;
    let admin_pages = ingest::eventually(Duration::from_secs(30), "step 2 pages", || {
        pages(admin.clone())
    })
    .await;
    assert!(eng_pages.values().all(|n| *n == 1), "{eng_pages:?}");
    assert!(admin_pages.values().all(|n| *n == 1), "{admin_pages:?}");
    assert!(held > 0);
}
