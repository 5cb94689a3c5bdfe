//! The uniqueness alerts rely on (DESIGN.md invariant 2), enforced by the
//! database's indexes, the repeated trigger's atomic counter, and the new
//! documents read back, in both atomicity modes, on a MongoDB-wire server
//! (`MONGODB_URL`).

use std::sync::Arc;

use imas_core::Error;
use imas_core::model::{
    Alert, AlertFilter, AlertStatus, Incident, IncidentFilter, IncidentSource, Integration,
    IntegrationKind, PageRequest, Service, Status, key_hash,
};
use imas_core::ports::{
    AlertStore, AlertWrite, Change, ChangeStore, IncidentStore, IncidentWrite, IntegrationStore,
    IntegrationWrite, ServiceStore, ServiceWrite,
};
use imas_core::testkit::service_url;
use imas_core::testkit::store::at;
use imas_store_mongo::{Atomicity, MongoStore};
use mongodb::bson::doc;

async fn store(atomicity: Atomicity) -> Option<Arc<MongoStore>> {
    let url = service_url("MONGODB_URL")?;
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let s = MongoStore::connect_with(&url, &name, Some(atomicity))
        .await
        .expect("connect");
    Some(Arc::new(s))
}

/// A service with an Events v2 integration, committed.
async fn service(s: &MongoStore, name: &str) -> (Service, Integration) {
    let svc = Service::new(name, at(0));
    let integ = Integration::new(
        svc.id,
        "prod",
        IntegrationKind::EventsV2,
        key_hash(&format!("key-{name}")),
        at(0),
    );
    s.commit(Change {
        service: Some(ServiceWrite::Insert(svc.clone())),
        ..Change::default()
    })
    .await
    .expect("service");
    s.commit(Change {
        integrations: vec![IntegrationWrite::Insert(integ.clone())],
        ..Change::default()
    })
    .await
    .expect("integration");
    (svc, integ)
}

/// An incident of `svc` and its first alert, as one change.
fn triggered(svc: &Service, integ: &Integration, key: &str, t: i64) -> (Incident, Alert, Change) {
    let mut incident = Incident::opened(format!("{key} fired"), None, at(t));
    incident.service_id = Some(svc.id);
    incident.source = IncidentSource::EventsV2;
    incident.alert_count = 1;
    let mut alert = Alert::triggered(
        incident.id,
        svc.id,
        integ.id,
        key,
        "disk full on db-1",
        at(t),
    );
    alert.labels.insert("team.name".into(), "$ops".into());
    alert.details = serde_json::json!({ "free": 3, "mount": "/var" });
    let change = Change {
        incident: Some(IncidentWrite::Insert(incident.clone())),
        alerts: vec![AlertWrite::Insert(alert.clone())],
        ..Change::default()
    };
    (incident, alert, change)
}

async fn one_open_alert_per_dedup_key(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let (svc, integ) = service(&s, "db").await;
    let (first, alert, change) = triggered(&svc, &integ, "disk", 0);
    s.commit(change).await.expect("first trigger");
    assert_eq!(
        s.get_alert(alert.id).await.expect("get"),
        Some(alert.clone())
    );
    assert_eq!(
        s.open_alert(svc.id, "disk")
            .await
            .expect("open")
            .map(|a| a.id),
        Some(alert.id)
    );
    assert_eq!(
        s.get_incident(first.id).await.expect("get"),
        Some(first.clone())
    );

    // A second open alert with the key is refused, and its incident with it.
    let (second, _, change) = triggered(&svc, &integ, "disk", 5);
    let e = s.commit(change).await.expect_err("duplicate open alert");
    assert!(
        matches!(&e, Error::Conflict { message } if message.contains("alerts_open_dedup")),
        "{e}"
    );
    assert_eq!(
        s.get_incident(second.id).await.expect("get"),
        None,
        "nothing committed"
    );
    assert_eq!(
        s.count_incidents(&IncidentFilter::default())
            .await
            .expect("count"),
        1
    );
    let all = s
        .list_alerts(&AlertFilter::default(), PageRequest::first(10))
        .await
        .expect("list");
    assert_eq!(all.items.len(), 1);

    // Another service may use the same key.
    let (other, other_integ) = service(&s, "web").await;
    let (_, _, change) = triggered(&other, &other_integ, "disk", 6);
    s.commit(change).await.expect("same key, other service");

    // Resolving frees the key; resolving twice changes nothing.
    for _ in 0..2 {
        s.commit(Change {
            alerts: vec![AlertWrite::SetStatus {
                id: alert.id,
                status: AlertStatus::Resolved,
                at: at(10),
            }],
            ..Change::default()
        })
        .await
        .expect("resolve");
    }
    let resolved = s.get_alert(alert.id).await.expect("get").expect("alert");
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.resolved_at, Some(at(10)));
    assert_eq!(s.open_alert(svc.id, "disk").await.expect("open"), None);
    let (_, again, change) = triggered(&svc, &integ, "disk", 20);
    s.commit(change)
        .await
        .expect("a new alert after the resolve");
    assert_eq!(
        s.open_alert(svc.id, "disk")
            .await
            .expect("open")
            .map(|a| a.id),
        Some(again.id)
    );
    // Acknowledging moves only a triggered alert; a resolved one stays.
    s.commit(Change {
        alerts: vec![
            AlertWrite::SetStatus {
                id: again.id,
                status: AlertStatus::Acknowledged,
                at: at(21),
            },
            AlertWrite::SetStatus {
                id: alert.id,
                status: AlertStatus::Acknowledged,
                at: at(21),
            },
        ],
        ..Change::default()
    })
    .await
    .expect("acknowledge");
    assert_eq!(
        s.get_alert(again.id).await.expect("get").map(|a| a.status),
        Some(AlertStatus::Acknowledged)
    );
    assert_eq!(
        s.get_alert(alert.id).await.expect("get").map(|a| a.status),
        Some(AlertStatus::Resolved)
    );
    let e = s
        .commit(Change {
            alerts: vec![AlertWrite::SetStatus {
                id: imas_core::model::AlertId::new(),
                status: AlertStatus::Resolved,
                at: at(22),
            }],
            ..Change::default()
        })
        .await
        .expect_err("unknown alert");
    assert!(matches!(e, Error::NotFound { .. }), "{e}");

    // Lists: newest first by started_at, filters, pages.
    let mine = AlertFilter {
        service_id: Some(svc.id),
        ..AlertFilter::default()
    };
    let p1 = s
        .list_alerts(&mine, PageRequest::first(1))
        .await
        .expect("page 1");
    assert_eq!(
        p1.items.iter().map(|a| a.id).collect::<Vec<_>>(),
        [again.id]
    );
    let cursor = p1.next.expect("more");
    let p2 = s
        .list_alerts(
            &mine,
            PageRequest {
                limit: 1,
                cursor: Some(cursor),
            },
        )
        .await
        .expect("page 2");
    assert_eq!(
        p2.items.iter().map(|a| a.id).collect::<Vec<_>>(),
        [alert.id]
    );
    assert_eq!(p2.next, None);
    let open = AlertFilter {
        status: Some(AlertStatus::Resolved),
        ..AlertFilter::default()
    };
    let r = s
        .list_alerts(&open, PageRequest::first(10))
        .await
        .expect("resolved");
    assert_eq!(r.items.iter().map(|a| a.id).collect::<Vec<_>>(), [alert.id]);
    let q = AlertFilter {
        q: Some("DISK db".into()),
        incident_id: Some(first.id),
        ..AlertFilter::default()
    };
    assert_eq!(
        s.list_alerts(&q, PageRequest::first(10))
            .await
            .expect("q")
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn one_open_alert_per_dedup_key_with_transactions() {
    one_open_alert_per_dedup_key(Atomicity::Transactions).await;
}

#[tokio::test]
async fn one_open_alert_per_dedup_key_with_single_documents() {
    one_open_alert_per_dedup_key(Atomicity::SingleDocument).await;
}

async fn racing_triggers_open_one_alert(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let (svc, integ) = service(&s, "db").await;
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let s = s.clone();
            let (_, _, change) = triggered(&svc, &integ, "cpu", n);
            tokio::spawn(async move { s.commit(change).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => won += 1,
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1, "exactly one racing trigger opens the alert");
    assert_eq!(
        s.count_incidents(&IncidentFilter::default())
            .await
            .expect("count"),
        1,
        "the losers' incidents are not committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_triggers_open_one_alert_with_transactions() {
    racing_triggers_open_one_alert(Atomicity::Transactions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_triggers_open_one_alert_with_single_documents() {
    racing_triggers_open_one_alert(Atomicity::SingleDocument).await;
}

async fn repeat_trigger_counts_every_call(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let (svc, integ) = service(&s, "db").await;
    assert_eq!(
        s.repeat_trigger(svc.id, "mem", at(1)).await.expect("none"),
        None
    );
    let (_, alert, change) = triggered(&svc, &integ, "mem", 0);
    s.commit(change).await.expect("trigger");
    let calls: i64 = 40;
    let tasks: Vec<_> = (0..calls)
        .map(|n| {
            let s = s.clone();
            tokio::spawn(async move { s.repeat_trigger(svc.id, "mem", at(100 + n)).await })
        })
        .collect();
    let mut counts = Vec::new();
    for t in tasks {
        let a = t.await.expect("task").expect("repeat").expect("open alert");
        assert_eq!(a.id, alert.id);
        counts.push(a.event_count);
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (2..=calls + 1).collect::<Vec<_>>(),
        "no lost update"
    );
    let now = s.get_alert(alert.id).await.expect("get").expect("alert");
    assert_eq!(now.event_count, calls + 1);
    assert_eq!(
        now.last_event_at,
        at(100 + calls - 1),
        "the latest instant wins"
    );
    // An earlier instant does not move last_event_at back.
    let a = s
        .repeat_trigger(svc.id, "mem", at(5))
        .await
        .expect("repeat")
        .expect("open");
    assert_eq!(a.last_event_at, at(100 + calls - 1));
    // It is a point read on the partial unique index (the store's query and
    // hint, explained).
    let plan = s
        .database()
        .run_command(doc! {
            "explain": {
                "findAndModify": "alerts",
                "query": {
                    "service_id": svc.id.to_string(), "dedup_key": "mem", "open": true,
                    "_cid": { "$exists": false },
                },
                "update": { "$inc": { "event_count": 1_i64 } },
                "hint": "alerts_open_dedup",
            },
        })
        .await
        .expect("explain");
    let plan = plan.to_string();
    assert!(
        plan.contains("IXSCAN") && plan.contains("alerts_open_dedup"),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_trigger_counts_every_call_with_transactions() {
    repeat_trigger_counts_every_call(Atomicity::Transactions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_trigger_counts_every_call_with_single_documents() {
    repeat_trigger_counts_every_call(Atomicity::SingleDocument).await;
}

async fn one_open_incident_per_group_key(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let (svc, _) = service(&s, "db").await;
    let group = |t: i64| {
        let mut i = Incident::opened("group fired", None, at(t));
        i.service_id = Some(svc.id);
        i.source = IncidentSource::Alertmanager;
        i.group_key = Some("{}:{alertname=\"Disk\"}".into());
        i
    };
    let first = group(0);
    s.commit(Change {
        incident: Some(IncidentWrite::Insert(first.clone())),
        ..Change::default()
    })
    .await
    .expect("first");
    let found = s
        .list_incidents(
            &IncidentFilter {
                service_id: Some(svc.id),
                group_key: first.group_key.clone(),
                ..IncidentFilter::default()
            },
            PageRequest::first(5),
        )
        .await
        .expect("by group");
    assert_eq!(found.items, vec![first.clone()]);
    let e = s
        .commit(Change {
            incident: Some(IncidentWrite::Insert(group(1))),
            ..Change::default()
        })
        .await
        .expect_err("second open group incident");
    assert!(
        matches!(&e, Error::Conflict { message } if message.contains("incidents_open_group")),
        "{e}"
    );
    // Once resolved, the group may open a new incident.
    let mut done = first.clone();
    done.status = Status::Resolved;
    done.resolved_at = Some(at(2));
    done.version += 1;
    s.commit(Change {
        incident: Some(IncidentWrite::Update {
            incident: done,
            expected_version: first.version,
        }),
        ..Change::default()
    })
    .await
    .expect("resolve");
    s.commit(Change {
        incident: Some(IncidentWrite::Insert(group(3))),
        ..Change::default()
    })
    .await
    .expect("a new group incident");
}

#[tokio::test]
async fn one_open_incident_per_group_key_with_transactions() {
    one_open_incident_per_group_key(Atomicity::Transactions).await;
}

#[tokio::test]
async fn one_open_incident_per_group_key_with_single_documents() {
    one_open_incident_per_group_key(Atomicity::SingleDocument).await;
}

async fn services_and_integrations(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let (svc, integ) = service(&s, "db").await;
    assert_eq!(s.get_service(svc.id).await.expect("get"), Some(svc.clone()));
    assert_eq!(
        s.integration_by_key_hash(&integ.key_hash)
            .await
            .expect("by hash"),
        Some(integ.clone())
    );
    let e = s
        .commit(Change {
            service: Some(ServiceWrite::Insert(Service::new("db", at(1)))),
            ..Change::default()
        })
        .await
        .expect_err("same name");
    assert!(
        matches!(&e, Error::Conflict { message } if message.contains("services_name")),
        "{e}"
    );
    let twin = Integration::new(
        svc.id,
        "twin",
        IntegrationKind::Alertmanager,
        integ.key_hash.clone(),
        at(1),
    );
    let e = s
        .commit(Change {
            integrations: vec![IntegrationWrite::Insert(twin)],
            ..Change::default()
        })
        .await
        .expect_err("same key hash");
    assert!(
        matches!(&e, Error::Conflict { message } if message.contains("integrations_key_hash")),
        "{e}"
    );
    // A renamed service at a stale version is a conflict; at the right one it
    // is renamed.
    let (web, _) = service(&s, "web").await;
    let mut renamed = web.clone();
    renamed.name = "db".into();
    renamed.version = 2;
    let e = s
        .commit(Change {
            service: Some(ServiceWrite::Update {
                service: renamed.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await
        .expect_err("name taken");
    assert!(
        matches!(&e, Error::Conflict { message } if message.contains("services_name")),
        "{e}"
    );
    renamed.name = "frontend".into();
    s.commit(Change {
        service: Some(ServiceWrite::Update {
            service: renamed.clone(),
            expected_version: 1,
        }),
        ..Change::default()
    })
    .await
    .expect("rename");
    let e = s
        .commit(Change {
            service: Some(ServiceWrite::Update {
                service: renamed.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await
        .expect_err("stale");
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    let page = s.list_services(PageRequest::first(10)).await.expect("list");
    assert_eq!(
        page.items
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["frontend", "db"]
    );
    // Deleting a service revokes its integrations in the same change.
    s.commit(Change {
        service: Some(ServiceWrite::Delete {
            id: svc.id,
            expected_version: 1,
        }),
        integrations: vec![IntegrationWrite::Revoke {
            id: integ.id,
            at: at(9),
        }],
        ..Change::default()
    })
    .await
    .expect("delete");
    assert_eq!(s.get_service(svc.id).await.expect("get"), None);
    assert_eq!(s.list_integrations(svc.id).await.expect("list"), vec![]);
    let revoked = s
        .get_integration(integ.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(revoked.revoked_at, Some(at(9)));
    // A second revoke keeps the first instant.
    s.commit(Change {
        integrations: vec![IntegrationWrite::Revoke {
            id: integ.id,
            at: at(20),
        }],
        ..Change::default()
    })
    .await
    .expect("revoke again");
    assert_eq!(
        s.get_integration(integ.id)
            .await
            .expect("get")
            .and_then(|i| i.revoked_at),
        Some(at(9))
    );
}

#[tokio::test]
async fn services_and_integrations_with_transactions() {
    services_and_integrations(Atomicity::Transactions).await;
}

#[tokio::test]
async fn services_and_integrations_with_single_documents() {
    services_and_integrations(Atomicity::SingleDocument).await;
}

/// Incident documents written before services existed decode as manual, with
/// no service, no reporter field problem, no alerts and no group.
#[tokio::test]
async fn old_incident_documents_decode_as_manual() {
    let Some(s) = store(Atomicity::Transactions).await else {
        return;
    };
    let i = Incident::open("old", imas_core::model::UserId::new(), at(0));
    s.commit(Change {
        incident: Some(IncidentWrite::Insert(i.clone())),
        ..Change::default()
    })
    .await
    .expect("insert");
    s.database()
        .collection::<mongodb::bson::Document>("incidents")
        .update_one(
            doc! { "_id": i.id.to_string() },
            doc! { "$unset": { "service_id": "", "source": "", "alert_count": "", "group_key": "", "group_open": "" } },
        )
        .await
        .expect("strip");
    let back = s.get_incident(i.id).await.expect("get").expect("found");
    assert_eq!(back.source, IncidentSource::Manual);
    assert_eq!(back.service_id, None);
    assert_eq!(back.alert_count, 0);
    assert_eq!(back.group_key, None);
    assert_eq!(back, i);
}
