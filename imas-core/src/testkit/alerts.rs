//! The alerts contract (and the incident columns alerts brought). Each
//! function takes a fresh, empty store.

use std::collections::BTreeMap;

use futures::future::join_all;

use crate::escalation::{SlaEscalation, next_due};
use crate::model::{
    Actor, Alert, AlertFilter, AlertLink, AlertStatus, AuditAction, Incident, IncidentFilter,
    IncidentSource, Integration, IntegrationKind, PageRequest, Priority, Service, Severity, Status,
    Timestamp,
};
use crate::ports::{AlertWrite, Change, IncidentWrite, Store};
use crate::sla::SlaPolicy;

use super::integrations::{add_integration, integration};
use super::services::{add_service, service};
use super::store::{all_pages, at, audit, commit, first_audit_entries, is_conflict, is_not_found};

/// An incident of `service` as an integration opens it: no reporter, one open
/// alert, default SLA targets.
pub fn alert_incident(service: &Service, title: &str, created_at: Timestamp) -> Incident {
    let mut i = Incident::opened(title, None, created_at);
    i.service_id = Some(service.id);
    i.source = IncidentSource::EventsV2;
    i.alert_count = 1;
    SlaPolicy::default().assign(&mut i, Priority::High);
    i.next_due_at = next_due(&i, &SlaPolicy::default(), &SlaEscalation::default());
    i
}

/// A triggered alert of `incident` with every field set.
pub fn alert(
    incident: &Incident,
    integration: &Integration,
    dedup_key: &str,
    summary: &str,
    started_at: Timestamp,
) -> Alert {
    let mut a = Alert::triggered(
        incident.id,
        integration.service_id,
        integration.id,
        dedup_key,
        summary,
        started_at,
    );
    a.severity = Severity::Error;
    a.source = "db-1.example.com".into();
    a.component = Some("postgres".into());
    a.group = Some("prod".into());
    a.class = Some("disk".into());
    a.labels = BTreeMap::from([
        ("alertname".to_string(), "DiskFull".to_string()),
        ("severity".to_string(), "critical".to_string()),
    ]);
    a.details = serde_json::json!({
        "custom_details": {"free": "1%", "nested": {"n": 3, "list": [1, "two", null]}},
        "client": "Prometheus",
    });
    a.links = vec![
        AlertLink {
            href: "https://grafana.example.com/d/1".into(),
            text: Some("dashboard".into()),
        },
        AlertLink {
            href: "https://runbooks.example.com/disk".into(),
            text: None,
        },
    ];
    a
}

/// A service with an events-v2 integration, both stored.
async fn fixture(store: &dyn Store, name: &str) -> (Service, Integration) {
    let s = service(name, at(0));
    add_service(store, &s).await;
    let i = integration(
        s.id,
        "pd",
        IntegrationKind::EventsV2,
        &format!("key-of-{name}"),
        at(0),
    );
    add_integration(store, &i).await;
    (s, i)
}

fn open_with(incident: &Incident, alerts: Vec<Alert>) -> Change {
    Change {
        incident: Some(IncidentWrite::Insert(incident.clone())),
        alerts: alerts.into_iter().map(AlertWrite::Insert).collect(),
        ..Change::default()
    }
}

async fn set_status(
    store: &dyn Store,
    id: crate::model::AlertId,
    status: AlertStatus,
    at: Timestamp,
) -> crate::Result<()> {
    store
        .commit(Change {
            alerts: vec![AlertWrite::SetStatus { id, status, at }],
            ..Change::default()
        })
        .await
}

async fn get_alert(store: &dyn Store, a: &Alert) -> Alert {
    store
        .get_alert(a.id)
        .await
        .expect("get_alert")
        .unwrap_or_else(|| panic!("alert {} ({}) is missing", a.id, a.summary))
}

/// An incident and its alert inserted by one change read back whole (every
/// alert field; the incident's serviceId, source, alertCount, groupKey and no
/// reporter); `open_alert` finds it by (service, dedup key) only.
pub async fn alerts_insert_and_read(store: &dyn Store) {
    let (s, integ) = fixture(store, "db").await;
    let (other, _) = fixture(store, "other").await;
    let mut i = alert_incident(&s, "Disk full on db-1", at(1000));
    i.group_key = Some("{}:{alertname=\"DiskFull\"}".into());
    i.source = IncidentSource::Alertmanager;
    let a = alert(&i, &integ, "disk/db-1", "Disk full on db-1", at(1000));
    commit(store, open_with(&i, vec![a.clone()])).await;

    assert_eq!(
        get_alert(store, &a).await,
        a,
        "an alert reads back as inserted"
    );
    let found = store
        .get_incident(i.id)
        .await
        .expect("get")
        .expect("incident");
    assert_eq!(found, i, "the incident reads back as inserted");
    assert_eq!(
        found.reported_by, None,
        "an integration's incident has no reporter"
    );
    assert_eq!(found.service_id, Some(s.id), "serviceId round-trips");
    assert_eq!(
        found.source,
        IncidentSource::Alertmanager,
        "source round-trips"
    );
    assert_eq!(found.alert_count, 1, "alertCount round-trips");
    assert_eq!(found.group_key, i.group_key, "groupKey round-trips");

    assert_eq!(
        store.open_alert(s.id, "disk/db-1").await.expect("open"),
        Some(a.clone()),
        "open_alert finds the open alert by (service, dedup key)"
    );
    assert_eq!(
        store.open_alert(s.id, "disk/db-2").await.expect("open"),
        None,
        "another dedup key finds nothing"
    );
    assert_eq!(
        store.open_alert(other.id, "disk/db-1").await.expect("open"),
        None,
        "the same dedup key of another service finds nothing"
    );
    assert_eq!(
        store
            .get_alert(crate::model::AlertId::new())
            .await
            .expect("get"),
        None
    );

    // The same dedup key in another service is another alert.
    let j = alert_incident(&other, "elsewhere", at(2000));
    let mut b = alert(&j, &integ, "disk/db-1", "elsewhere", at(2000));
    b.service_id = other.id;
    commit(store, open_with(&j, vec![b.clone()])).await;
    assert_eq!(
        store.open_alert(other.id, "disk/db-1").await.expect("open"),
        Some(b),
        "dedup keys are per service"
    );
}

/// `SetStatus`: acknowledge only from triggered, resolve from either open
/// status setting `resolvedAt`; a repeated or impossible move leaves the alert
/// as it is (no error); an unknown alert is `NotFound`.
pub async fn alert_status_semantics(store: &dyn Store) {
    let (s, integ) = fixture(store, "status").await;
    let i = alert_incident(&s, "two alerts", at(0));
    let a = alert(&i, &integ, "a", "first", at(0));
    let b = alert(&i, &integ, "b", "second", at(0));
    commit(store, open_with(&i, vec![a.clone(), b.clone()])).await;

    set_status(store, a.id, AlertStatus::Acknowledged, at(10))
        .await
        .expect("ack");
    let acked = get_alert(store, &a).await;
    assert_eq!(
        acked.status,
        AlertStatus::Acknowledged,
        "ack from triggered"
    );
    assert_eq!(
        acked.resolved_at, None,
        "an acknowledged alert is not resolved"
    );
    assert_eq!(
        store
            .open_alert(s.id, "a")
            .await
            .expect("open")
            .map(|x| x.status),
        Some(AlertStatus::Acknowledged),
        "an acknowledged alert is still open"
    );
    set_status(store, a.id, AlertStatus::Acknowledged, at(11))
        .await
        .expect("a second ack is no error");
    assert_eq!(
        get_alert(store, &a).await,
        acked,
        "a second ack changes nothing"
    );

    set_status(store, a.id, AlertStatus::Resolved, at(20))
        .await
        .expect("resolve");
    let resolved = get_alert(store, &a).await;
    assert_eq!(
        resolved.status,
        AlertStatus::Resolved,
        "resolve from acknowledged"
    );
    assert_eq!(
        resolved.resolved_at,
        Some(at(20)),
        "resolve sets resolvedAt"
    );
    set_status(store, a.id, AlertStatus::Resolved, at(30))
        .await
        .expect("a second resolve is no error");
    assert_eq!(
        get_alert(store, &a).await,
        resolved,
        "a second resolve keeps the first resolvedAt"
    );
    set_status(store, a.id, AlertStatus::Acknowledged, at(40))
        .await
        .expect("ack of a resolved alert is no error");
    assert_eq!(
        get_alert(store, &a).await,
        resolved,
        "a resolved alert cannot be acknowledged"
    );
    assert_eq!(
        store.open_alert(s.id, "a").await.expect("open"),
        None,
        "a resolved alert is not open"
    );

    set_status(store, b.id, AlertStatus::Resolved, at(50))
        .await
        .expect("resolve from triggered");
    let b2 = get_alert(store, &b).await;
    assert_eq!(
        (b2.status, b2.resolved_at),
        (AlertStatus::Resolved, Some(at(50))),
        "resolve straight from triggered"
    );

    let r = set_status(
        store,
        crate::model::AlertId::new(),
        AlertStatus::Resolved,
        at(60),
    )
    .await;
    assert!(
        is_not_found(&r),
        "SetStatus of an unknown alert is NotFound: {r:?}"
    );
}

/// At most one open alert per (service, dedup key): a second open insert is a
/// `Conflict` and the incident and audit entry inserted beside it are not
/// committed (nor is a change inserting the key twice); once the alert is
/// resolved the key opens a new alert.
pub async fn alert_dedup_is_enforced(store: &dyn Store) {
    let (s, integ) = fixture(store, "dedup").await;
    let first = alert_incident(&s, "first", at(0));
    let a = alert(&first, &integ, "k", "first", at(0));
    commit(store, open_with(&first, vec![a.clone()])).await;

    let second = alert_incident(&s, "second", at(10));
    let b = alert(&second, &integ, "k", "second", at(10));
    let mut change = open_with(&second, vec![b.clone()]);
    change.audit = vec![audit(
        AuditAction::AlertTriggered,
        Actor::System,
        &b.id.to_string(),
        at(10),
    )];
    let r = store.commit(change).await;
    assert!(
        is_conflict(&r),
        "a second open alert with the same (service, dedup key) is a Conflict: {r:?}"
    );
    assert_eq!(
        store.get_incident(second.id).await.expect("get"),
        None,
        "the incident inserted beside the conflicting alert is not committed"
    );
    assert_eq!(store.get_alert(b.id).await.expect("get"), None);
    assert!(
        first_audit_entries(store).await.is_empty(),
        "nor its audit entry"
    );

    let third = alert_incident(&s, "third", at(15));
    let c1 = alert(&third, &integ, "twice", "c1", at(15));
    let c2 = alert(&third, &integ, "twice", "c2", at(15));
    let r = store.commit(open_with(&third, vec![c1, c2])).await;
    assert!(
        is_conflict(&r),
        "one change opening a key twice is a Conflict: {r:?}"
    );
    assert_eq!(store.get_incident(third.id).await.expect("get"), None);

    set_status(store, a.id, AlertStatus::Resolved, at(20))
        .await
        .expect("resolve");
    let fourth = alert_incident(&s, "fourth", at(30));
    let d = alert(&fourth, &integ, "k", "fourth", at(30));
    commit(store, open_with(&fourth, vec![d.clone()])).await;
    assert_eq!(
        store.open_alert(s.id, "k").await.expect("open"),
        Some(d),
        "after a resolve, the dedup key opens a new alert"
    );
    assert_eq!(get_alert(store, &a).await.status, AlertStatus::Resolved);
}

/// 64 concurrent changes, each inserting an incident and an alert with one
/// dedup key: exactly one commits, every other is a `Conflict` and leaves no
/// incident behind.
pub async fn concurrent_alert_dedup(store: &dyn Store) {
    let (s, integ) = fixture(store, "race").await;
    let racers: Vec<(Incident, Change)> = (0..64)
        .map(|n| {
            let i = alert_incident(&s, &format!("racer {n}"), at(n));
            let a = alert(&i, &integ, "the-key", &format!("racer {n}"), at(n));
            let change = open_with(&i, vec![a]);
            (i, change)
        })
        .collect();
    let results = join_all(racers.iter().map(|(_, c)| store.commit(c.clone()))).await;
    let mut won = Vec::new();
    for ((i, _), r) in racers.iter().zip(&results) {
        match r {
            Ok(()) => won.push(i.id),
            Err(crate::Error::Conflict { .. }) => {}
            Err(e) => panic!("{}: a losing racer must be a Conflict, got {e:?}", i.title),
        }
    }
    assert_eq!(won.len(), 1, "exactly one of 64 racing opens commits");
    let incidents = store
        .list_incidents(
            &IncidentFilter {
                service_id: Some(s.id),
                ..IncidentFilter::default()
            },
            PageRequest::first(100),
        )
        .await
        .expect("list");
    assert_eq!(
        incidents.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        won,
        "only the winner's incident exists"
    );
    let open = store.open_alert(s.id, "the-key").await.expect("open");
    assert_eq!(open.map(|a| a.incident_id), won.first().copied());
    let alerts = store
        .list_alerts(&AlertFilter::default(), PageRequest::first(100))
        .await
        .expect("alerts");
    assert_eq!(alerts.items.len(), 1, "one alert in all");
}

/// `repeat_trigger`: 64 concurrent calls all count (event count 1 + 64) and
/// `lastEventAt` ends at the latest; an earlier instant does not move it
/// back; no open alert (unknown key, or resolved) → `None`, and a resolved
/// alert is not counted.
pub async fn repeat_trigger_counts(store: &dyn Store) {
    let (s, integ) = fixture(store, "repeat").await;
    let i = alert_incident(&s, "flapping", at(0));
    let a = alert(&i, &integ, "flap", "flapping", at(0));
    commit(store, open_with(&i, vec![a.clone()])).await;

    let results = join_all((1..=64).map(|n| store.repeat_trigger(s.id, "flap", at(n * 10)))).await;
    for (n, r) in results.iter().enumerate() {
        let got = r
            .as_ref()
            .unwrap_or_else(|e| panic!("repeat {n}: {e:?}"))
            .as_ref()
            .unwrap_or_else(|| panic!("repeat {n}: the open alert was not found"));
        assert_eq!(got.id, a.id, "repeat {n} counts on the open alert");
        assert!(
            (2..=65).contains(&got.event_count),
            "repeat {n} returns the alert as it is now (count {})",
            got.event_count
        );
    }
    let now = get_alert(store, &a).await;
    assert_eq!(now.event_count, 65, "1 + 64 concurrent repeats, none lost");
    assert_eq!(
        now.last_event_at,
        at(640),
        "lastEventAt is the latest repeat"
    );
    assert_eq!(now.started_at, at(0), "startedAt stays");

    let earlier = store
        .repeat_trigger(s.id, "flap", at(5))
        .await
        .expect("repeat")
        .expect("open");
    assert_eq!(
        earlier.event_count, 66,
        "an out-of-order repeat still counts"
    );
    assert_eq!(
        earlier.last_event_at,
        at(640),
        "but does not move lastEventAt back"
    );

    assert_eq!(
        store
            .repeat_trigger(s.id, "nothing", at(700))
            .await
            .expect("repeat"),
        None,
        "no open alert with that key: None (the caller opens one)"
    );
    set_status(store, a.id, AlertStatus::Resolved, at(800))
        .await
        .expect("resolve");
    assert_eq!(
        store
            .repeat_trigger(s.id, "flap", at(900))
            .await
            .expect("repeat"),
        None,
        "a resolved alert is not repeated"
    );
    assert_eq!(get_alert(store, &a).await.event_count, 66, "nor counted");
}

/// `list_alerts`: every filter (service, incident, status, q) as
/// [`AlertFilter::matches`], newest first by `(startedAt, id)` in keyset
/// pages.
pub async fn alert_filters_and_paging(store: &dyn Store) {
    let (s1, i1) = fixture(store, "one").await;
    let (s2, i2) = fixture(store, "two").await;
    let summaries = [
        "Disk full on db-1",
        "CPU high on web-3",
        "disk latency high",
        "Memory pressure",
        "Replication lag on db-2",
        "DISK FULL again",
    ];
    let mut all: Vec<Alert> = Vec::new();
    let mut incidents = Vec::new();
    for (n, (svc, integ)) in [(&s1, &i1), (&s2, &i2), (&s1, &i1)].into_iter().enumerate() {
        let n = n as i64;
        let inc = alert_incident(svc, &format!("incident {n}"), at(n * 100));
        let alerts: Vec<Alert> = summaries
            .iter()
            .enumerate()
            .map(|(k, summary)| {
                // Pairs share an instant, so the id breaks ties.
                let started = at(n * 100 + (k as i64) / 2);
                alert(&inc, integ, &format!("{n}-{k}"), summary, started)
            })
            .collect();
        commit(store, open_with(&inc, alerts.clone())).await;
        all.extend(alerts);
        incidents.push(inc);
    }
    // Some acknowledged, some resolved.
    for (k, a) in all.iter_mut().enumerate() {
        let to = match k % 3 {
            1 => AlertStatus::Acknowledged,
            2 => AlertStatus::Resolved,
            _ => continue,
        };
        set_status(store, a.id, to, at(1000)).await.expect("status");
        *a = get_alert(store, a).await;
    }
    all.sort_by_key(|a| std::cmp::Reverse((a.started_at, a.id.0)));

    let filters = [
        AlertFilter::default(),
        AlertFilter {
            service_id: Some(s1.id),
            ..AlertFilter::default()
        },
        AlertFilter {
            incident_id: Some(incidents[1].id),
            ..AlertFilter::default()
        },
        AlertFilter {
            status: Some(AlertStatus::Resolved),
            ..AlertFilter::default()
        },
        AlertFilter {
            status: Some(AlertStatus::Triggered),
            service_id: Some(s1.id),
            ..AlertFilter::default()
        },
        AlertFilter {
            q: Some("disk".into()),
            ..AlertFilter::default()
        },
        AlertFilter {
            q: Some("FULL disk".into()),
            service_id: Some(s2.id),
            ..AlertFilter::default()
        },
        AlertFilter {
            q: Some("nothing-matches-this".into()),
            ..AlertFilter::default()
        },
        AlertFilter {
            service_id: Some(crate::model::ServiceId::new()),
            ..AlertFilter::default()
        },
    ];
    for filter in filters {
        let want: Vec<&Alert> = all.iter().filter(|a| filter.matches(a)).collect();
        for limit in [4, 100] {
            let got = all_pages(limit, |p| store.list_alerts(&filter, p)).await;
            assert_eq!(
                got.iter().collect::<Vec<_>>(),
                want,
                "list_alerts({filter:?}) in pages of {limit}: the matching alerts, newest first by (startedAt, id)"
            );
        }
    }
}

/// At most one open incident per (service, group key): a second is a
/// `Conflict`; other keys, other services and incidents without a key are
/// free; resolving the incident frees the key (and reopening the old one is
/// then a `Conflict`). The serviceId and groupKey filters find a group's
/// open incident.
pub async fn incident_group_key_unique(store: &dyn Store) {
    let (s, _) = fixture(store, "groups").await;
    let (other, _) = fixture(store, "other-groups").await;
    let grouped = |svc: &Service, title: &str, key: Option<&str>, n: i64| {
        let mut i = alert_incident(svc, title, at(n));
        i.source = IncidentSource::Alertmanager;
        i.group_key = key.map(str::to_string);
        i
    };
    let a = grouped(&s, "a", Some("g"), 0);
    commit(store, open_with(&a, vec![])).await;

    let dup = grouped(&s, "dup", Some("g"), 1);
    let mut change = open_with(&dup, vec![]);
    change.audit = vec![audit(
        AuditAction::IncidentCreated,
        Actor::System,
        "dup",
        at(1),
    )];
    let r = store.commit(change).await;
    assert!(
        is_conflict(&r),
        "a second open incident for (service, group key) is a Conflict: {r:?}"
    );
    assert_eq!(store.get_incident(dup.id).await.expect("get"), None);
    assert!(
        first_audit_entries(store).await.is_empty(),
        "nothing of the conflicting change is written"
    );

    let other_key = grouped(&s, "other key", Some("h"), 2);
    let other_service = grouped(&other, "other service", Some("g"), 3);
    let no_key_1 = grouped(&s, "no key 1", None, 4);
    let no_key_2 = grouped(&s, "no key 2", None, 5);
    for i in [&other_key, &other_service, &no_key_1, &no_key_2] {
        commit(store, open_with(i, vec![])).await;
    }

    let group_filter = IncidentFilter {
        service_id: Some(s.id),
        group_key: Some("g".into()),
        status: vec![
            Status::Open,
            Status::Acknowledged,
            Status::InProgress,
            Status::OnHold,
        ],
        ..IncidentFilter::default()
    };
    let open_of_group = async || {
        store
            .list_incidents(&group_filter, PageRequest::first(1))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        open_of_group().await,
        vec![a.id],
        "service + group key + open statuses finds the group's open incident"
    );
    assert_eq!(
        store
            .count_incidents(&IncidentFilter {
                service_id: Some(s.id),
                ..IncidentFilter::default()
            })
            .await
            .expect("count"),
        4,
        "the serviceId filter counts the service's incidents only"
    );

    let mut resolved = a.clone();
    resolved.status = Status::Resolved;
    resolved.resolved_at = Some(at(10));
    resolved.alert_count = 0;
    resolved.updated_at = at(10);
    resolved.version = 2;
    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Update {
                incident: resolved.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        open_of_group().await,
        Vec::new(),
        "a resolved incident is not open"
    );
    let next = grouped(&s, "next", Some("g"), 20);
    commit(store, open_with(&next, vec![])).await;
    assert_eq!(
        open_of_group().await,
        vec![next.id],
        "resolving the incident frees its group key"
    );

    let mut reopened = resolved.clone();
    reopened.status = Status::InProgress;
    reopened.resolved_at = None;
    reopened.version = 3;
    let r = store
        .commit(Change {
            incident: Some(IncidentWrite::Update {
                incident: reopened,
                expected_version: 2,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "reopening an incident whose group key another open incident holds is a Conflict: {r:?}"
    );
    assert_eq!(
        store.get_incident(a.id).await.expect("get"),
        Some(resolved),
        "the failed reopen changes nothing"
    );

    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Delete {
                id: next.id,
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    let after_delete = grouped(&s, "after delete", Some("g"), 30);
    commit(store, open_with(&after_delete, vec![])).await;
    assert_eq!(
        open_of_group().await,
        vec![after_delete.id],
        "deleting the incident frees its group key"
    );
}
