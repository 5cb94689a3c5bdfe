//! Alert ingestion through the engine on the SQL stores: racing Events v2
//! triggers of one dedup key open one alert and count every event (the
//! database's unique index decides the race, the repeated trigger counts the
//! rest), racing Alertmanager notifications of a new group share one incident,
//! and resolving every alert resolves the incident.

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use imas_core::auth::JwtKeys;
use imas_core::model::{
    AlertFilter, Incident, IncidentFilter, IntegrationKind, NewIntegration, NewService,
    PageRequest, Status,
};
use imas_core::ports::{ManualClock, Store};
use imas_core::testkit::service_url;
use imas_core::testkit::store::t0;
use imas_core::{Engine, Principal};
use imas_store_sqlx::{PostgresStore, SqliteStore};
use serde_json::json;

async fn stores() -> Vec<(&'static str, Arc<dyn Store>)> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ingest-{}.db", uuid::Uuid::new_v4()));
    let mut out: Vec<(&'static str, Arc<dyn Store>)> = vec![(
        "sqlite",
        Arc::new(
            SqliteStore::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("sqlite"),
        ),
    )];
    if let Some(url) = service_url("DATABASE_URL") {
        let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
        out.push((
            "postgres",
            Arc::new(
                PostgresStore::connect_in_schema(&url, &schema)
                    .await
                    .expect("postgres"),
            ),
        ));
    }
    out
}

struct World {
    engine: Engine,
    root: Principal,
    events_key: String,
    am_key: String,
}

async fn world(store: Arc<dyn Store>) -> World {
    let engine = Engine::builder(store)
        .clock(Arc::new(ManualClock::new(t0())))
        .jwt_keys(JwtKeys::new(&[5u8; 32], Duration::from_secs(3600)).expect("keys"))
        .build()
        .expect("engine");
    engine
        .ensure_admin("root", "root password 123", "root@example.com")
        .await
        .expect("admin");
    let token = engine
        .login("root", "root password 123")
        .await
        .expect("login");
    let root = engine.authenticate(&token).await.expect("auth");
    let service = engine
        .create_service(
            &root,
            NewService {
                name: "payments".into(),
                description: String::new(),
                auto_resolve: Some(true),
                ..NewService::default()
            },
        )
        .await
        .expect("service");
    let key = |name: &str, kind| NewIntegration {
        name: name.into(),
        kind,
    };
    let events_key = engine
        .create_integration(&root, service.id, key("pd", IntegrationKind::EventsV2))
        .await
        .expect("events-v2")
        .key;
    let am_key = engine
        .create_integration(&root, service.id, key("am", IntegrationKind::Alertmanager))
        .await
        .expect("alertmanager")
        .key;
    World {
        engine,
        root,
        events_key,
        am_key,
    }
}

fn event(key: &str, action: &str, dedup: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "routing_key": key,
        "event_action": action,
        "dedup_key": dedup,
        "payload": {"summary": "Disk full on db-1", "source": "db-1", "severity": "critical"},
    }))
    .expect("json")
}

fn notification(group: &str, fingerprint: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "imas",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "HighLatency", "instance": fingerprint},
            "annotations": {"summary": format!("latency high on {fingerprint}")},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": fingerprint,
        }],
    }))
    .expect("json")
}

async fn incidents(w: &World) -> Vec<Incident> {
    w.engine
        .list_incidents(&w.root, &IncidentFilter::default(), PageRequest::first(100))
        .await
        .expect("incidents")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_triggers_open_one_alert_on_the_sql_stores() {
    for (name, store) in stores().await {
        let w = world(store.clone()).await;
        let body = event(&w.events_key, "trigger", "disk/db-1");
        let results = join_all((0..48).map(|_| w.engine.enqueue_event(&body))).await;
        for r in &results {
            assert!(r.is_ok(), "{name}: {r:?}");
        }
        let all = incidents(&w).await;
        assert_eq!(all.len(), 1, "{name}: one incident");
        let alerts = store
            .list_alerts(&AlertFilter::default(), PageRequest::first(10))
            .await
            .expect("alerts")
            .items;
        assert_eq!(alerts.len(), 1, "{name}: one alert");
        assert_eq!(alerts[0].event_count, 48, "{name}: every trigger counted");

        w.engine
            .enqueue_event(&event(&w.events_key, "resolve", "disk/db-1"))
            .await
            .expect("resolve");
        let incident = w
            .engine
            .get_incident(&w.root, all[0].id)
            .await
            .expect("incident");
        assert_eq!(incident.status, Status::Resolved, "{name}: auto-resolved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_alertmanager_notifications_share_one_incident_on_the_sql_stores() {
    for (name, store) in stores().await {
        let w = world(store.clone()).await;
        let bodies: Vec<Vec<u8>> = (0..16)
            .map(|n| notification("race", &format!("fp{}", n % 4), "firing"))
            .collect();
        let results = join_all(
            bodies
                .iter()
                .map(|b| w.engine.receive_alertmanager(&w.am_key, b)),
        )
        .await;
        for r in &results {
            assert!(r.is_ok(), "{name}: {r:?}");
        }
        let all = incidents(&w).await;
        assert_eq!(all.len(), 1, "{name}: one incident for the group");
        assert_eq!(all[0].alert_count, 4, "{name}: one alert per fingerprint");
        let alerts = store
            .list_alerts(&AlertFilter::default(), PageRequest::first(10))
            .await
            .expect("alerts")
            .items;
        assert_eq!(alerts.iter().map(|a| a.event_count).sum::<i64>(), 16);
        for n in 0..4 {
            w.engine
                .receive_alertmanager(
                    &w.am_key,
                    &notification("race", &format!("fp{n}"), "resolved"),
                )
                .await
                .expect("resolved");
        }
        let incident = w
            .engine
            .get_incident(&w.root, all[0].id)
            .await
            .expect("incident");
        assert_eq!(incident.status, Status::Resolved, "{name}: auto-resolved");
    }
}

/// Each node's engine caches integration keys; a key revoked through another
/// node is refused by this one as soon as the change feed tells it (bounded
/// wait), and a new key made on the other node is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_node_is_refused_by_the_other() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let a: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("node a"),
    );
    let b: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("node b"),
    );
    let w = world(a).await;
    let other = Engine::builder(b)
        .clock(Arc::new(ManualClock::new(t0())))
        .jwt_keys(JwtKeys::new(&[5u8; 32], Duration::from_secs(3600)).expect("keys"))
        .build()
        .expect("engine b");
    // Node a has the key in its cache now.
    for n in 0..3 {
        w.engine
            .enqueue_event(&event(&w.events_key, "trigger", &format!("k{n}")))
            .await
            .expect("accepted before the revoke");
    }
    let listed = other
        .list_integrations(&w.root, incidents(&w).await[0].service_id.expect("service"))
        .await
        .expect("integrations");
    let pd = listed
        .iter()
        .find(|i| i.kind == IntegrationKind::EventsV2)
        .expect("the events-v2 key");
    other
        .revoke_integration(&w.root, pd.id)
        .await
        .expect("revoked on node b");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match w
            .engine
            .enqueue_event(&event(&w.events_key, "trigger", "after"))
            .await
        {
            Err(imas_core::engine::EnqueueError::Invalid(errors)) => {
                assert!(errors[0].contains("routing_key"), "{errors:?}");
                break;
            }
            Ok(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "node a still takes a key node b revoked 10 s ago"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("unexpected answer: {e}"),
        }
    }
}

/// First triggers of many keys at once commit together (PostgreSQL batches
/// insert-only changes, alerts included): each alert reads back whole — its
/// details, links and search terms — with its own incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_triggers_each_open_their_own_alert() {
    for (name, store) in stores().await {
        let w = world(store.clone()).await;
        let bodies: Vec<Vec<u8>> = (0..40)
            .map(|n| {
                serde_json::to_vec(&json!({
                    "routing_key": w.events_key,
                    "event_action": "trigger",
                    "dedup_key": format!("disk/db-{n}"),
                    "payload": {
                        "summary": format!("Disk almost full on shard{n}"),
                        "source": format!("db-{n}"),
                        "severity": "error",
                        "custom_details": {"free": n, "mount": "/var"},
                    },
                    "links": [{"href": format!("https://grafana/d/{n}"), "text": "dashboard"}],
                }))
                .expect("json")
            })
            .collect();
        let results = join_all(bodies.iter().map(|b| w.engine.enqueue_event(b))).await;
        for r in &results {
            assert!(r.is_ok(), "{name}: {r:?}");
        }
        assert_eq!(incidents(&w).await.len(), 40, "{name}: an incident each");
        for n in [0, 17, 39] {
            let found = store
                .list_alerts(
                    &AlertFilter {
                        q: Some(format!("shard{n}")),
                        ..AlertFilter::default()
                    },
                    PageRequest::first(10),
                )
                .await
                .expect("alerts")
                .items;
            assert_eq!(found.len(), 1, "{name}: shard{n} found by its summary");
            let a = &found[0];
            assert_eq!(a.dedup_key, format!("disk/db-{n}"), "{name}");
            assert_eq!(
                a.details["custom_details"]["free"], n,
                "{name}: details kept"
            );
            assert_eq!(a.links[0].href, format!("https://grafana/d/{n}"), "{name}");
            assert_eq!(a.event_count, 1, "{name}");
            let incident = w
                .engine
                .get_incident(&w.root, a.incident_id)
                .await
                .expect("its incident");
            assert_eq!(incident.alert_count, 1, "{name}");
            assert_eq!(
                incident.title,
                format!("Disk almost full on shard{n}"),
                "{name}"
            );
        }
    }
}
