//! Services, integrations and alerts on SQLite and PostgreSQL
//! (`DATABASE_URL`; skipped without it): the unique indexes the database
//! enforces (one open alert per dedup key, one unresolved incident per alert
//! group, service names, key hashes) with the whole change rolled back, the
//! reads, the repeated trigger under concurrency, and the migration of a
//! database made by the migrations before issue 17.

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use imas_core::error::Error;
use imas_core::model::{
    Alert, AlertFilter, AlertLink, AlertStatus, Incident, IncidentFilter, IncidentSource,
    Integration, IntegrationKind, PageRequest, Service, ServiceId, Severity, Status, UserId,
    key_hash,
};
use imas_core::ports::{AlertWrite, Change, IncidentWrite, IntegrationWrite, ServiceWrite, Store};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{at, incident, t0};
use imas_store_sqlx::{PostgresStore, SqliteStore};

fn sqlite_path() -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("alerts-{}.db", uuid::Uuid::new_v4()));
    format!("sqlite://{}", path.display())
}

async fn sqlite() -> Arc<dyn Store> {
    Arc::new(SqliteStore::connect(&sqlite_path()).await.expect("sqlite"))
}

fn test_schema() -> String {
    format!("imas_test_{}", uuid::Uuid::new_v4().simple())
}

async fn postgres() -> Option<Arc<dyn Store>> {
    let url = service_url("DATABASE_URL")?;
    let store = PostgresStore::connect_in_schema(&url, &test_schema())
        .await
        .expect("postgres");
    Some(Arc::new(store))
}

/// Runs `check` on SQLite, then on PostgreSQL when there is one.
macro_rules! on_both {
    ($name:ident, $check:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$check(super::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(store) = super::postgres().await {
                    super::$check(store).await;
                }
            }
        }
    };
}

fn page(limit: u32) -> PageRequest {
    PageRequest {
        limit,
        cursor: None,
    }
}

fn conflict_text(e: Error) -> String {
    match e {
        Error::Conflict { message } => message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// A service, committed.
async fn service(store: &Arc<dyn Store>, name: &str) -> Service {
    let s = Service::new(name, t0());
    store
        .commit(Change {
            service: Some(ServiceWrite::Insert(s.clone())),
            ..Change::default()
        })
        .await
        .expect("service");
    s
}

/// An integration of `service`, committed.
async fn integration(store: &Arc<dyn Store>, service: ServiceId, key: &str) -> Integration {
    let i = Integration::new(
        service,
        "prometheus",
        IntegrationKind::Alertmanager,
        key_hash(key),
        t0(),
    );
    store
        .commit(Change {
            integrations: vec![IntegrationWrite::Insert(i.clone())],
            ..Change::default()
        })
        .await
        .expect("integration");
    i
}

/// An incident of `service` opened by an alert, and that alert, in one change.
fn alert_change(
    service: ServiceId,
    integration: &Integration,
    key: &str,
    summary: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> (Change, Incident, Alert) {
    let mut i = Incident::opened(summary, None, now);
    imas_core::sla::SlaPolicy::default().assign(&mut i, imas_core::model::Priority::High);
    i.service_id = Some(service);
    i.source = IncidentSource::EventsV2;
    i.alert_count = 1;
    let mut a = Alert::triggered(i.id, service, integration.id, key, summary, now);
    a.severity = Severity::Error;
    a.component = Some("disk".into());
    a.labels = BTreeMap::from([("team".to_string(), "db".to_string())]);
    a.details = serde_json::json!({"free": "3%", "nested": {"x": [1, 2]}});
    a.links = vec![AlertLink {
        href: "https://example.com/graph".into(),
        text: Some("graph".into()),
    }];
    let change = Change {
        incident: Some(IncidentWrite::Insert(i.clone())),
        alerts: vec![AlertWrite::Insert(a.clone())],
        ..Change::default()
    };
    (change, i, a)
}

async fn one_open_alert_per_dedup_key(store: Arc<dyn Store>) {
    let s = service(&store, "db").await;
    let int = integration(&store, s.id, "k1").await;
    let (first, _, a) = alert_change(s.id, &int, "disk-full", "disk full on db1", at(0));
    store.commit(first).await.expect("first alert");
    assert_eq!(store.get_alert(a.id).await.expect("get"), Some(a.clone()));
    assert_eq!(
        store.open_alert(s.id, "disk-full").await.expect("open"),
        Some(a.clone())
    );

    // A second open alert with the same key: conflict, and its incident is
    // not committed either.
    let (second, lost, _) = alert_change(s.id, &int, "disk-full", "again", at(1));
    let e = store
        .commit(second)
        .await
        .expect_err("duplicate open alert");
    assert_eq!(conflict_text(e), "an open alert with this dedup key exists");
    assert_eq!(store.get_incident(lost.id).await.expect("read"), None);

    // The same key on another service is another alert.
    let other = service(&store, "web").await;
    let (elsewhere, _, _) = alert_change(other.id, &int, "disk-full", "web disk", at(2));
    store.commit(elsewhere).await.expect("other service");

    // Acknowledged is still open; resolved frees the key.
    let set = |status, t| Change {
        alerts: vec![AlertWrite::SetStatus {
            id: a.id,
            status,
            at: at(t),
        }],
        ..Change::default()
    };
    store
        .commit(set(AlertStatus::Acknowledged, 3))
        .await
        .expect("ack");
    let (while_acked, _, _) = alert_change(s.id, &int, "disk-full", "still", at(4));
    assert!(matches!(
        store.commit(while_acked).await,
        Err(Error::Conflict { .. })
    ));
    store
        .commit(set(AlertStatus::Resolved, 5))
        .await
        .expect("resolve");
    // A second resolve is not an error and keeps the first instant.
    store
        .commit(set(AlertStatus::Resolved, 6))
        .await
        .expect("resolve twice");
    // Acknowledging a resolved alert leaves it resolved.
    store
        .commit(set(AlertStatus::Acknowledged, 7))
        .await
        .expect("ack resolved");
    let resolved = store.get_alert(a.id).await.expect("get").expect("there");
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.resolved_at, Some(at(5)));
    assert_eq!(
        store.open_alert(s.id, "disk-full").await.expect("open"),
        None
    );
    let (again, _, b) = alert_change(s.id, &int, "disk-full", "back", at(8));
    store
        .commit(again)
        .await
        .expect("a new alert after resolve");
    assert_eq!(
        store.open_alert(s.id, "disk-full").await.expect("open"),
        Some(b)
    );

    // An unknown alert is NotFound.
    let unknown = Change {
        alerts: vec![AlertWrite::SetStatus {
            id: imas_core::model::AlertId::new(),
            status: AlertStatus::Resolved,
            at: at(9),
        }],
        ..Change::default()
    };
    assert!(matches!(
        store.commit(unknown).await,
        Err(Error::NotFound { entity: "alert" })
    ));
}
on_both!(open_alerts, one_open_alert_per_dedup_key);

async fn one_unresolved_incident_per_group(store: Arc<dyn Store>) {
    let s = service(&store, "cluster").await;
    let grouped = |title: &str, group: Option<&str>| {
        let mut i = incident(UserId::new(), title, at(0));
        i.reported_by = None;
        i.service_id = Some(s.id);
        i.source = IncidentSource::Alertmanager;
        i.group_key = group.map(str::to_string);
        i
    };
    let insert = |i: &Incident| Change {
        incident: Some(IncidentWrite::Insert(i.clone())),
        ..Change::default()
    };
    let first = grouped("first", Some("{}:{alertname=\"Down\"}"));
    store.commit(insert(&first)).await.expect("first");
    let second = grouped("second", Some("{}:{alertname=\"Down\"}"));
    let e = store.commit(insert(&second)).await.expect_err("same group");
    assert_eq!(
        conflict_text(e),
        "an unresolved incident of this alert group exists"
    );
    // Incidents without a group key never conflict.
    store
        .commit(insert(&grouped("a", None)))
        .await
        .expect("no group a");
    store
        .commit(insert(&grouped("b", None)))
        .await
        .expect("no group b");
    // A duplicate id is still "a record", not the group.
    let e = store.commit(insert(&first)).await.expect_err("same id");
    assert_eq!(
        conflict_text(e),
        "a record with this id or key already exists"
    );

    // The group's open incident is found by service and group key.
    let filter = IncidentFilter {
        service_id: Some(s.id),
        group_key: first.group_key.clone(),
        ..IncidentFilter::default()
    };
    let found = store.list_incidents(&filter, page(10)).await.expect("list");
    assert_eq!(found.items, vec![first.clone()]);
    let by_service = IncidentFilter {
        service_id: Some(s.id),
        ..IncidentFilter::default()
    };
    assert_eq!(store.count_incidents(&by_service).await.expect("count"), 3);

    // Once resolved, the group may open a new incident.
    let mut resolved = first.clone();
    resolved.status = Status::Resolved;
    resolved.resolved_at = Some(at(10));
    resolved.version += 1;
    store
        .commit(Change {
            incident: Some(IncidentWrite::Update {
                incident: resolved,
                expected_version: first.version,
            }),
            ..Change::default()
        })
        .await
        .expect("resolve");
    store
        .commit(insert(&second))
        .await
        .expect("a new incident of the group");
    let back = store
        .get_incident(second.id)
        .await
        .expect("get")
        .expect("there");
    assert_eq!(back, second);
    assert_eq!(back.reported_by, None);
}
on_both!(open_groups, one_unresolved_incident_per_group);

async fn services_and_integrations(store: Arc<dyn Store>) {
    let s = service(&store, "payments").await;
    assert_eq!(store.get_service(s.id).await.expect("get"), Some(s.clone()));
    let dup = Service::new("payments", t0());
    let e = store
        .commit(Change {
            service: Some(ServiceWrite::Insert(dup)),
            ..Change::default()
        })
        .await
        .expect_err("same name");
    assert_eq!(conflict_text(e), "service name already taken");

    // Update at the right version; a stale one conflicts; an unknown one is
    // NotFound; a rename to a taken name conflicts.
    let other = service(&store, "search").await;
    let mut renamed = s.clone();
    renamed.name = "billing".into();
    renamed.auto_resolve = false;
    renamed.version = 2;
    let update = |svc: &Service, expected| Change {
        service: Some(ServiceWrite::Update {
            service: svc.clone(),
            expected_version: expected,
        }),
        ..Change::default()
    };
    store.commit(update(&renamed, 1)).await.expect("update");
    assert_eq!(
        store.get_service(s.id).await.expect("get"),
        Some(renamed.clone())
    );
    assert!(matches!(
        store.commit(update(&renamed, 1)).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        store.commit(update(&Service::new("ghost", t0()), 1)).await,
        Err(Error::NotFound { entity: "service" })
    ));
    let mut clash = other.clone();
    clash.name = "billing".into();
    clash.version = 2;
    assert_eq!(
        conflict_text(store.commit(update(&clash, 1)).await.expect_err("clash")),
        "service name already taken"
    );
    let listed = store.list_services(page(1)).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    let rest = store
        .list_services(PageRequest {
            limit: 10,
            cursor: listed.next,
        })
        .await
        .expect("next page");
    let mut names: Vec<String> = listed
        .items
        .iter()
        .chain(&rest.items)
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["billing", "search"]);

    // Integrations: by key hash, listed oldest first without the revoked.
    let one = integration(&store, s.id, "key-one").await;
    let two = integration(&store, s.id, "key-two").await;
    let e = store
        .commit(Change {
            integrations: vec![IntegrationWrite::Insert(Integration::new(
                other.id,
                "copy",
                IntegrationKind::EventsV2,
                key_hash("key-one"),
                t0(),
            ))],
            ..Change::default()
        })
        .await
        .expect_err("same key");
    assert_eq!(
        conflict_text(e),
        "an integration with this key already exists"
    );
    assert_eq!(
        store
            .integration_by_key_hash(&key_hash("key-two"))
            .await
            .expect("by key"),
        Some(two.clone())
    );
    assert_eq!(
        store
            .integration_by_key_hash(&key_hash("nope"))
            .await
            .expect("by key"),
        None
    );
    let revoke = |id, t| Change {
        integrations: vec![IntegrationWrite::Revoke { id, at: at(t) }],
        ..Change::default()
    };
    store.commit(revoke(one.id, 100)).await.expect("revoke");
    store
        .commit(revoke(one.id, 200))
        .await
        .expect("revoke again");
    let revoked = store
        .get_integration(one.id)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(revoked.revoked_at, Some(at(100)));
    assert_eq!(
        store.list_integrations(s.id).await.expect("list"),
        vec![two.clone()]
    );
    assert!(matches!(
        store
            .commit(revoke(imas_core::model::IntegrationId::new(), 1))
            .await,
        Err(Error::NotFound {
            entity: "integration"
        })
    ));

    // Deleting the service with its integrations revoked, in one change.
    store
        .commit(Change {
            service: Some(ServiceWrite::Delete {
                id: s.id,
                expected_version: 2,
            }),
            integrations: vec![IntegrationWrite::Revoke {
                id: two.id,
                at: at(300),
            }],
            ..Change::default()
        })
        .await
        .expect("delete");
    assert_eq!(store.get_service(s.id).await.expect("get"), None);
    assert!(
        store
            .list_integrations(s.id)
            .await
            .expect("list")
            .is_empty()
    );
}
on_both!(services, services_and_integrations);

async fn alert_lists(store: Arc<dyn Store>) {
    let s = service(&store, "api").await;
    let int = integration(&store, s.id, "k").await;
    let mut all = Vec::new();
    for n in 0..7 {
        let summary = if n % 2 == 0 {
            format!("Disk FULL on host{n}")
        } else {
            format!("latency high on host{n}")
        };
        let (c, _, a) = alert_change(s.id, &int, &format!("key{n}"), &summary, at(n));
        store.commit(c).await.expect("alert");
        all.push(a);
    }
    // Newest first by started_at, page by page.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = store
            .list_alerts(&AlertFilter::default(), PageRequest { limit: 3, cursor })
            .await
            .expect("page");
        seen.extend(p.items.into_iter().map(|a| a.id));
        match p.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<_> = all.iter().rev().map(|a| a.id).collect();
    assert_eq!(seen, expected);

    let q = AlertFilter {
        q: Some("full DISK".into()),
        ..AlertFilter::default()
    };
    let found = store.list_alerts(&q, page(50)).await.expect("search");
    assert_eq!(found.items.len(), 4);
    assert!(found.items.iter().all(|a| q.matches(a)));
    // Whole words only.
    let partial = AlertFilter {
        q: Some("dis".into()),
        ..AlertFilter::default()
    };
    assert!(
        store
            .list_alerts(&partial, page(50))
            .await
            .expect("search")
            .items
            .is_empty()
    );
    let by_incident = AlertFilter {
        incident_id: Some(all[3].incident_id),
        status: Some(AlertStatus::Triggered),
        service_id: Some(s.id),
        q: None,
    };
    assert_eq!(
        store
            .list_alerts(&by_incident, page(50))
            .await
            .expect("list")
            .items,
        vec![all[3].clone()]
    );
    let resolved = AlertFilter {
        status: Some(AlertStatus::Resolved),
        ..AlertFilter::default()
    };
    assert!(
        store
            .list_alerts(&resolved, page(50))
            .await
            .expect("list")
            .items
            .is_empty()
    );
}
on_both!(lists, alert_lists);

async fn concurrent_repeat_triggers_all_count(store: Arc<dyn Store>) {
    let s = service(&store, "noisy").await;
    let int = integration(&store, s.id, "k").await;
    assert_eq!(
        store
            .repeat_trigger(s.id, "nothing-open", at(1))
            .await
            .expect("repeat"),
        None
    );
    let (c, _, a) = alert_change(s.id, &int, "cpu", "cpu hot", at(0));
    store.commit(c).await.expect("alert");
    let (c, _, b) = alert_change(s.id, &int, "mem", "mem low", at(0));
    store.commit(c).await.expect("alert");

    // 600 calls at once on two keys, with instants out of order.
    let calls = (0..600).map(|n| {
        let store = store.clone();
        let key = if n % 3 == 0 { "mem" } else { "cpu" };
        async move {
            let t = at(1_000 + (n * 7919) % 600);
            tokio::spawn(async move { store.repeat_trigger(s.id, key, t).await })
                .await
                .expect("task")
        }
    });
    let answers = join_all(calls).await;
    for answer in &answers {
        let alert = answer.as_ref().expect("repeat").as_ref().expect("open");
        assert!(alert.event_count >= 2, "{alert:?}");
    }
    let cpu = store.get_alert(a.id).await.expect("get").expect("cpu");
    let mem = store.get_alert(b.id).await.expect("get").expect("mem");
    assert_eq!(cpu.event_count, 1 + 400);
    assert_eq!(mem.event_count, 1 + 200);
    assert_eq!(cpu.last_event_at, at(1_599));
    // The counter writes no status: the rest of the row is as it was.
    assert_eq!(
        Alert {
            event_count: a.event_count,
            last_event_at: a.last_event_at,
            ..cpu.clone()
        },
        a
    );
    // An earlier instant leaves last_event_at alone.
    let back = store
        .repeat_trigger(s.id, "cpu", at(5))
        .await
        .expect("repeat")
        .expect("open");
    assert_eq!((back.event_count, back.last_event_at), (402, at(1_599)));
    // A resolved alert is not counted.
    store
        .commit(Change {
            alerts: vec![AlertWrite::SetStatus {
                id: b.id,
                status: AlertStatus::Resolved,
                at: at(2_000),
            }],
            ..Change::default()
        })
        .await
        .expect("resolve");
    assert_eq!(
        store
            .repeat_trigger(s.id, "mem", at(2_001))
            .await
            .expect("repeat"),
        None
    );
}
on_both!(repeat_trigger, concurrent_repeat_triggers_all_count);

/// The change feed: an alert's status change committed by one node (no
/// incident write in the change) moves the other node's incident generation,
/// so its cached incident reads are not served stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_alert_changes_reach_the_other_node() {
    use imas_core::testkit::store::expect_generation;
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = test_schema();
    let a: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("a"),
    );
    let b = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("b");
    let s = service(&a, "feed").await;
    let int = integration(&a, s.id, "k").await;
    // Services and integrations are not in the feed; alerts are.
    let g0 = expect_generation(&b).await;
    let (_, _, alert) = alert_change(s.id, &int, "x", "x", at(0));
    a.commit(Change {
        alerts: vec![AlertWrite::Insert(alert.clone())],
        ..Change::default()
    })
    .await
    .expect("alert");
    let heard = heard_after(&b, g0).await;
    a.commit(Change {
        alerts: vec![AlertWrite::SetStatus {
            id: alert.id,
            status: AlertStatus::Acknowledged,
            at: at(1),
        }],
        ..Change::default()
    })
    .await
    .expect("ack");
    heard_after(&b, heard).await;
}

/// Waits (bounded) until `store` has heard of an incident change after `g`;
/// the notification arrives through its listener connection.
async fn heard_after(
    store: &PostgresStore,
    g: imas_core::ports::Generation,
) -> imas_core::ports::Generation {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = imas_core::ports::ChangeStore::generation(store).expect("live");
        if now.incidents > g.incidents {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the alert change never reached the other node"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Two nodes' repeated triggers on the same alerts (batches of several lanes
/// and two stores touching the same rows at once) all count, and none fails
/// with a deadlock: the batches lock their rows in one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_repeat_triggers_of_two_nodes_all_count() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = test_schema();
    let a: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("a"),
    );
    let b: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("b"),
    );
    let s = service(&a, "shared").await;
    let int = integration(&a, s.id, "k").await;
    let mut alerts = Vec::new();
    for n in 0..16 {
        let (c, _, alert) = alert_change(s.id, &int, &format!("k{n}"), "x", at(0));
        a.commit(c).await.expect("alert");
        alerts.push(alert);
    }
    let calls = (0..1_600).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let key = format!("k{}", (n * 7) % 16);
        tokio::spawn(async move { store.repeat_trigger(s.id, &key, at(n)).await })
    });
    for answer in join_all(calls).await {
        answer.expect("task").expect("no deadlock").expect("open");
    }
    for alert in alerts {
        let now = a.get_alert(alert.id).await.expect("get").expect("there");
        assert_eq!(now.event_count, 1 + 100, "{}", now.dedup_key);
    }
}
