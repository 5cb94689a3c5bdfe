//! Alert ingestion through the engine, on the memory store and a manual clock:
//! PagerDuty Events v2 (trigger, repeat, acknowledge, resolve), Alertmanager
//! groups, auto-resolve, incidents that move their alerts, the per-key rate
//! limit, keys that are refused, services and their permissions.

mod common;

use std::time::Duration;

use common::{World, world, world_with};
use futures::future::join_all;
use imas_core::engine::{EnqueueError, IncidentPatch, NewIncident};
use imas_core::limiter::RateLimit;
use imas_core::model::{
    AlertFilter, AlertStatus, AuditAction, AuditFilter, CreatedIntegration, Incident,
    IncidentFilter, IncidentSource, IntegrationKind, NewIntegration, NewService, PageRequest,
    Priority, Role, Service, ServicePatch, Status,
};
use imas_core::ports::{AuditStore, IntegrationStore};
use imas_core::{EngineConfig, Error, Principal};
use serde_json::json;

struct Setup {
    root: Principal,
    service: Service,
    events: CreatedIntegration,
    am: CreatedIntegration,
}

async fn setup_with(w: &World, auto_resolve: bool) -> Setup {
    let root = w.root().await;
    let service = w
        .engine
        .create_service(
            &root,
            NewService {
                name: "payments".into(),
                description: "the payments API".into(),
                auto_resolve: Some(auto_resolve),
                ..NewService::default()
            },
        )
        .await
        .expect("service");
    let integration = |name: &str, kind| NewIntegration {
        name: name.into(),
        kind,
    };
    let events = w
        .engine
        .create_integration(
            &root,
            service.id,
            integration("pd", IntegrationKind::EventsV2),
        )
        .await
        .expect("events-v2 key");
    let am = w
        .engine
        .create_integration(
            &root,
            service.id,
            integration("prometheus", IntegrationKind::Alertmanager),
        )
        .await
        .expect("alertmanager key");
    Setup {
        root,
        service,
        events,
        am,
    }
}

async fn setup(w: &World) -> Setup {
    setup_with(w, true).await
}

fn event(key: &str, action: &str, dedup: Option<&str>) -> Vec<u8> {
    let mut e = json!({
        "routing_key": key,
        "event_action": action,
        "payload": {
            "summary": "Disk full on db-1",
            "source": "db-1.example.com",
            "severity": "critical",
            "component": "postgres",
            "custom_details": {"free": "1%"},
        },
        "links": [{"href": "https://grafana.example.com/d/1", "text": "dashboard"}],
        "client": "Prometheus",
    });
    if let Some(d) = dedup {
        e["dedup_key"] = json!(d);
    }
    serde_json::to_vec(&e).expect("json")
}

/// An Alertmanager notification of group `group` with (fingerprint, status,
/// severity) alerts.
fn notification(group: &str, alerts: &[(&str, &str, &str)]) -> Vec<u8> {
    let firing = alerts.iter().any(|(_, s, _)| *s == "firing");
    let alerts: Vec<_> = alerts
        .iter()
        .map(|(fp, status, severity)| {
            json!({
                "status": status,
                "labels": {"alertname": "HighLatency", "instance": format!("web-{fp}"), "severity": severity},
                "annotations": {"summary": format!("latency high on web-{fp}")},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": format!("http://prometheus:9090/graph?g0.expr={fp}"),
                "fingerprint": fp,
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": "imas",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }))
    .expect("json")
}

async fn audit_of(w: &World, action: AuditAction) -> usize {
    w.store
        .list_audit(
            &AuditFilter {
                action: Some(action),
                ..AuditFilter::default()
            },
            PageRequest::first(500),
        )
        .await
        .expect("audit")
        .items
        .len()
}

async fn incidents_of(w: &World, s: &Setup) -> Vec<Incident> {
    w.engine
        .list_incidents(
            &s.root,
            &IncidentFilter {
                service_id: Some(s.service.id),
                ..IncidentFilter::default()
            },
            PageRequest::first(100),
        )
        .await
        .expect("incidents")
        .items
}

async fn alerts_of(w: &World, s: &Setup, incident: &Incident) -> Vec<imas_core::model::Alert> {
    w.engine
        .incident_alerts(&s.root, incident.id, PageRequest::first(100))
        .await
        .expect("alerts")
        .items
}

async fn only_incident(w: &World, s: &Setup) -> Incident {
    let mut all = incidents_of(w, s).await;
    assert_eq!(all.len(), 1, "one incident: {all:?}");
    all.remove(0)
}

#[tokio::test]
async fn the_pagerduty_sequence_opens_repeats_acknowledges_resolves_and_reopens() {
    let w = world();
    let s = setup(&w).await;
    let key = &s.events.key;

    let ok = w
        .engine
        .enqueue_event(&event(key, "trigger", Some("disk/db-1")))
        .await
        .expect("trigger");
    assert_eq!(ok.dedup_key, "disk/db-1");
    let incident = only_incident(&w, &s).await;
    assert_eq!(incident.title, "Disk full on db-1");
    assert_eq!(
        incident.priority,
        Priority::Critical,
        "severity critical → priority critical"
    );
    assert_eq!(incident.source, IncidentSource::EventsV2);
    assert_eq!(incident.service_id, Some(s.service.id));
    assert_eq!(incident.reported_by, None, "an integration reports nobody");
    assert_eq!(incident.alert_count, 1);
    assert!(
        incident.sla_target_ms > 0 && incident.next_due_at.is_some(),
        "the SLA runs"
    );
    let alerts = alerts_of(&w, &s, &incident).await;
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(alert.dedup_key, "disk/db-1");
    assert_eq!(alert.source, "db-1.example.com");
    assert_eq!(alert.component.as_deref(), Some("postgres"));
    assert_eq!(alert.details["custom_details"]["free"], "1%");
    assert_eq!(alert.details["client"], "Prometheus");
    assert_eq!(alert.links.len(), 1);
    assert_eq!(alert.integration_id, s.events.integration.id);

    // Two repeats: counted, nobody paged, nothing audited.
    w.advance(Duration::from_secs(30));
    w.engine
        .enqueue_event(&event(key, "trigger", Some("disk/db-1")))
        .await
        .expect("repeat");
    w.advance(Duration::from_secs(30));
    w.engine
        .enqueue_event(&event(key, "trigger", Some("disk/db-1")))
        .await
        .expect("repeat");
    let incident = only_incident(&w, &s).await;
    let alert = &alerts_of(&w, &s, &incident).await[0];
    assert_eq!(alert.event_count, 3);
    assert_eq!(alert.last_event_at, w.engine.now());
    assert_eq!(
        audit_of(&w, AuditAction::AlertTriggered).await,
        1,
        "no entry per repeat"
    );
    assert_eq!(audit_of(&w, AuditAction::IncidentCreated).await, 1);

    w.engine
        .enqueue_event(&event(key, "acknowledge", Some("disk/db-1")))
        .await
        .expect("ack");
    let incident = only_incident(&w, &s).await;
    assert_eq!(
        incident.status,
        Status::Acknowledged,
        "acknowledging the alert acknowledges its incident"
    );
    assert!(incident.acknowledged_at.is_some());
    assert_eq!(
        alerts_of(&w, &s, &incident).await[0].status,
        AlertStatus::Acknowledged
    );
    assert_eq!(audit_of(&w, AuditAction::AlertAcknowledged).await, 1);
    assert_eq!(audit_of(&w, AuditAction::StatusChanged).await, 1);

    w.engine
        .enqueue_event(&event(key, "resolve", Some("disk/db-1")))
        .await
        .expect("resolve");
    let incident = only_incident(&w, &s).await;
    assert_eq!(
        incident.status,
        Status::Resolved,
        "its last alert resolved: it resolves itself"
    );
    assert_eq!(incident.alert_count, 0);
    assert!(incident.resolved_at.is_some());
    let alert = &alerts_of(&w, &s, &incident).await[0];
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(alert.resolved_at, Some(w.engine.now()));
    assert_eq!(audit_of(&w, AuditAction::AlertResolved).await, 1);
    assert_eq!(audit_of(&w, AuditAction::IncidentAutoResolved).await, 1);

    // A second resolve changes nothing.
    w.engine
        .enqueue_event(&event(key, "resolve", Some("disk/db-1")))
        .await
        .expect("resolve again");
    assert_eq!(audit_of(&w, AuditAction::AlertResolved).await, 1);

    w.engine
        .enqueue_event(&event(key, "trigger", Some("disk/db-1")))
        .await
        .expect("trigger again");
    let all = incidents_of(&w, &s).await;
    assert_eq!(all.len(), 2, "after a resolve the key opens a new incident");
    assert_eq!(all[0].status, Status::Open);
    assert_eq!(alerts_of(&w, &s, &all[0]).await[0].event_count, 1);
    assert_eq!(audit_of(&w, AuditAction::AlertTriggered).await, 2);
}

#[tokio::test]
async fn acknowledge_and_resolve_without_an_open_alert_change_nothing() {
    let w = world();
    let s = setup(&w).await;
    for action in ["acknowledge", "resolve"] {
        let ok = w
            .engine
            .enqueue_event(&event(&s.events.key, action, Some("nothing-open")))
            .await
            .unwrap_or_else(|e| panic!("{action}: {e:?}"));
        assert_eq!(ok.dedup_key, "nothing-open");
    }
    assert!(incidents_of(&w, &s).await.is_empty());
    assert_eq!(audit_of(&w, AuditAction::AlertAcknowledged).await, 0);
    assert_eq!(audit_of(&w, AuditAction::AlertResolved).await, 0);

    // A trigger without a dedup key gets a generated one, so it always opens.
    let a = w
        .engine
        .enqueue_event(&event(&s.events.key, "trigger", None))
        .await
        .expect("trigger");
    let b = w
        .engine
        .enqueue_event(&event(&s.events.key, "trigger", None))
        .await
        .expect("trigger");
    assert_ne!(a.dedup_key, b.dedup_key);
    assert!(
        uuid::Uuid::parse_str(&a.dedup_key).is_ok(),
        "a UUID: {}",
        a.dedup_key
    );
    assert_eq!(incidents_of(&w, &s).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_triggers_open_one_alert_and_count_the_rest() {
    let w = world();
    let s = setup(&w).await;
    let body = event(&s.events.key, "trigger", Some("race"));
    let results = join_all((0..32).map(|_| w.engine.enqueue_event(&body))).await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let incident = only_incident(&w, &s).await;
    let alerts = alerts_of(&w, &s, &incident).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].event_count, 32, "every racing trigger counted");
    assert_eq!(audit_of(&w, AuditAction::IncidentCreated).await, 1);
}

#[tokio::test]
async fn an_alertmanager_group_opens_grows_and_resolves_one_incident() {
    let w = world();
    let s = setup(&w).await;
    let key = &s.am.key;
    let group = "{}:{alertname=\"HighLatency\"}";

    let r = w
        .engine
        .receive_alertmanager(
            key,
            &notification(
                group,
                &[("a", "firing", "warning"), ("b", "firing", "critical")],
            ),
        )
        .await
        .expect("open");
    assert_eq!((r.opened, r.resolved), (2, 0));
    let incident = only_incident(&w, &s).await;
    assert_eq!(r.incident_id, Some(incident.id));
    assert_eq!(incident.alert_count, 2);
    assert_eq!(incident.source, IncidentSource::Alertmanager);
    assert_eq!(
        incident.priority,
        Priority::Critical,
        "the highest severity"
    );
    assert_eq!(incident.title, "[HighLatency]");
    let alerts = alerts_of(&w, &s, &incident).await;
    assert_eq!(alerts.len(), 2);
    let a = alerts
        .iter()
        .find(|x| x.dedup_key == format!("{group}/a"))
        .expect("a");
    assert_eq!(a.labels["instance"], "web-a");
    assert_eq!(a.details["externalURL"], "http://alertmanager:9093");
    assert_eq!(a.details["annotations"]["summary"], "latency high on web-a");
    assert_eq!(a.links[0].href, "http://prometheus:9090/graph?g0.expr=a");

    // Alertmanager repeats the group with a third alert: it joins.
    w.advance(Duration::from_secs(60));
    let r = w
        .engine
        .receive_alertmanager(
            key,
            &notification(
                group,
                &[
                    ("a", "firing", "warning"),
                    ("b", "firing", "critical"),
                    ("c", "firing", "info"),
                ],
            ),
        )
        .await
        .expect("join");
    assert_eq!(
        (r.incident_id, r.opened, r.resolved),
        (Some(incident.id), 1, 0)
    );
    let incident = only_incident(&w, &s).await;
    assert_eq!(incident.alert_count, 3);
    let alerts = alerts_of(&w, &s, &incident).await;
    assert_eq!(alerts.len(), 3);
    for x in &alerts {
        let want = if x.dedup_key.ends_with("/c") { 1 } else { 2 };
        assert_eq!(x.event_count, want, "{}", x.dedup_key);
    }

    let r = w
        .engine
        .receive_alertmanager(
            key,
            &notification(
                group,
                &[
                    ("a", "resolved", "warning"),
                    ("b", "firing", "critical"),
                    ("c", "firing", "info"),
                ],
            ),
        )
        .await
        .expect("resolve one");
    assert_eq!(r.resolved, 1);
    let incident = only_incident(&w, &s).await;
    assert_eq!((incident.alert_count, incident.status), (2, Status::Open));

    let r = w
        .engine
        .receive_alertmanager(
            key,
            &notification(
                group,
                &[
                    ("a", "resolved", "warning"),
                    ("b", "resolved", "critical"),
                    ("c", "resolved", "info"),
                ],
            ),
        )
        .await
        .expect("resolve the rest");
    assert_eq!(r.resolved, 2, "a was resolved already");
    let incident = only_incident(&w, &s).await;
    assert_eq!(
        (incident.alert_count, incident.status),
        (0, Status::Resolved)
    );
    assert_eq!(audit_of(&w, AuditAction::IncidentAutoResolved).await, 1);
    assert_eq!(audit_of(&w, AuditAction::AlertResolved).await, 3);
    assert_eq!(audit_of(&w, AuditAction::AlertTriggered).await, 3);

    // Only resolved alerts and no open incident: nothing to do.
    let r = w
        .engine
        .receive_alertmanager(key, &notification(group, &[("a", "resolved", "warning")]))
        .await
        .expect("late resolve");
    assert_eq!((r.incident_id, r.opened, r.resolved), (None, 0, 0));

    // The group fires again: a new incident.
    let r = w
        .engine
        .receive_alertmanager(key, &notification(group, &[("a", "firing", "warning")]))
        .await
        .expect("fires again");
    assert_ne!(r.incident_id, Some(incident.id));
    assert_eq!(incidents_of(&w, &s).await.len(), 2);
}

#[tokio::test]
async fn without_auto_resolve_the_incident_stays_open() {
    let w = world();
    let s = setup_with(&w, false).await;
    w.engine
        .enqueue_event(&event(&s.events.key, "trigger", Some("k")))
        .await
        .expect("trigger");
    w.engine
        .enqueue_event(&event(&s.events.key, "resolve", Some("k")))
        .await
        .expect("resolve");
    let incident = only_incident(&w, &s).await;
    assert_eq!((incident.status, incident.alert_count), (Status::Open, 0));
    assert_eq!(audit_of(&w, AuditAction::IncidentAutoResolved).await, 0);

    let group = "g";
    w.engine
        .receive_alertmanager(
            &s.am.key,
            &notification(group, &[("x", "firing", "warning")]),
        )
        .await
        .expect("open");
    w.engine
        .receive_alertmanager(
            &s.am.key,
            &notification(group, &[("x", "resolved", "warning")]),
        )
        .await
        .expect("resolve");
    let all = incidents_of(&w, &s).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|i| i.status == Status::Open), "{all:?}");
}

#[tokio::test]
async fn an_incident_changed_through_the_api_moves_its_alerts() {
    let w = world();
    let s = setup(&w).await;
    let key = &s.events.key;
    w.engine
        .enqueue_event(&event(key, "trigger", Some("k")))
        .await
        .expect("trigger");
    let incident = only_incident(&w, &s).await;
    let engineer = w.user("eng", Role::Engineer).await;
    let status = |to| IncidentPatch {
        status: Some(to),
        ..IncidentPatch::default()
    };

    w.engine
        .update_incident(&engineer, incident.id, status(Status::Acknowledged), None)
        .await
        .expect("ack");
    assert_eq!(
        alerts_of(&w, &s, &incident).await[0].status,
        AlertStatus::Acknowledged
    );

    let resolved = w
        .engine
        .update_incident(&engineer, incident.id, status(Status::Resolved), None)
        .await
        .expect("resolve");
    assert_eq!(resolved.alert_count, 0);
    assert_eq!(
        alerts_of(&w, &s, &incident).await[0].status,
        AlertStatus::Resolved
    );
    assert_eq!(audit_of(&w, AuditAction::AlertResolved).await, 1);
    assert_eq!(audit_of(&w, AuditAction::IncidentAutoResolved).await, 0);

    w.engine
        .enqueue_event(&event(key, "trigger", Some("k")))
        .await
        .expect("trigger again");
    let all = incidents_of(&w, &s).await;
    assert_eq!(all.len(), 2, "the key opened a new incident");

    // Deleting an incident frees its dedup key at once.
    w.engine
        .delete_incident(&s.root, all[0].id)
        .await
        .expect("delete");
    w.engine
        .enqueue_event(&event(key, "trigger", Some("k")))
        .await
        .expect("trigger after delete");
    let all = incidents_of(&w, &s).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].status, Status::Open);
    assert_eq!(all[0].alert_count, 1);
}

#[tokio::test]
async fn the_per_key_rate_limit_refuses_with_retry_after_until_the_window_passes() {
    let w = world_with(EngineConfig {
        ingest_limit: Some(RateLimit::new(3, Duration::from_secs(60))),
        ..EngineConfig::default()
    });
    let s = setup(&w).await;
    let body = event(&s.events.key, "trigger", Some("k"));
    for n in 0..3 {
        w.engine
            .enqueue_event(&body)
            .await
            .unwrap_or_else(|e| panic!("event {n}: {e:?}"));
        w.advance(Duration::from_secs(1));
    }
    match w.engine.enqueue_event(&body).await {
        Err(EnqueueError::Failed(Error::RateLimited { retry_after, .. })) => {
            assert_eq!(
                retry_after,
                Duration::from_secs(57),
                "when the first leaves the window"
            );
        }
        other => panic!("the fourth event must be rate limited: {other:?}"),
    }
    // The other key has a window of its own.
    w.engine
        .receive_alertmanager(&s.am.key, &notification("g", &[("x", "firing", "warning")]))
        .await
        .expect("another key");
    w.advance(Duration::from_secs(57));
    w.engine
        .enqueue_event(&body)
        .await
        .expect("after the window");
    let incident = only_incident_of_source(&w, &s, IncidentSource::EventsV2).await;
    assert_eq!(
        alerts_of(&w, &s, &incident).await[0].event_count,
        4,
        "the refused one did not count"
    );

    for _ in 0..2 {
        w.engine
            .receive_alertmanager(&s.am.key, &notification("g", &[("x", "firing", "warning")]))
            .await
            .expect("within the limit");
    }
    let refused = w
        .engine
        .receive_alertmanager(&s.am.key, &notification("g", &[("x", "firing", "warning")]))
        .await;
    assert!(
        matches!(refused, Err(Error::RateLimited { .. })),
        "{refused:?}"
    );
}

async fn only_incident_of_source(w: &World, s: &Setup, source: IncidentSource) -> Incident {
    let mut all: Vec<Incident> = incidents_of(w, s)
        .await
        .into_iter()
        .filter(|i| i.source == source)
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[tokio::test]
async fn revoked_unknown_and_wrong_kind_keys_are_refused() {
    let w = world();
    let s = setup(&w).await;
    let invalid = |r: Result<_, EnqueueError>| match r {
        Err(EnqueueError::Invalid(errors)) => errors,
        other => panic!("expected an invalid event, got {other:?}"),
    };
    let errors = invalid(
        w.engine
            .enqueue_event(&event(&s.am.key, "trigger", Some("k")))
            .await,
    );
    assert!(errors[0].contains("'routing_key'"), "{errors:?}");
    invalid(
        w.engine
            .enqueue_event(&event(&"x".repeat(32), "trigger", Some("k")))
            .await,
    );
    let r = w
        .engine
        .receive_alertmanager(&s.events.key, &notification("g", &[("a", "firing", "")]))
        .await;
    assert!(matches!(r, Err(Error::Unauthorized { .. })), "{r:?}");
    let r = w
        .engine
        .receive_alertmanager("", &notification("g", &[("a", "firing", "")]))
        .await;
    assert!(matches!(r, Err(Error::Unauthorized { .. })), "{r:?}");
    let r = w.engine.receive_alertmanager(&s.am.key, b"{not json").await;
    assert!(matches!(r, Err(Error::Validation { .. })), "{r:?}");

    w.engine
        .revoke_integration(&s.root, s.events.integration.id)
        .await
        .expect("revoke");
    invalid(
        w.engine
            .enqueue_event(&event(&s.events.key, "trigger", Some("k")))
            .await,
    );
    let again = w
        .engine
        .revoke_integration(&s.root, s.events.integration.id)
        .await;
    assert!(matches!(again, Err(Error::NotFound { .. })), "{again:?}");
    let listed = w
        .engine
        .list_integrations(&s.root, s.service.id)
        .await
        .expect("list");
    assert_eq!(
        listed,
        vec![s.am.integration.clone()],
        "the revoked key is not listed"
    );
    assert!(
        incidents_of(&w, &s).await.is_empty(),
        "no refused event opened anything"
    );
    assert_eq!(audit_of(&w, AuditAction::IntegrationRevoked).await, 1);
    assert_eq!(audit_of(&w, AuditAction::IntegrationCreated).await, 2);
}

#[tokio::test]
async fn a_service_with_open_incidents_cannot_be_deleted() {
    let w = world();
    let s = setup(&w).await;
    w.engine
        .enqueue_event(&event(&s.events.key, "trigger", Some("k")))
        .await
        .expect("trigger");
    let r = w.engine.delete_service(&s.root, s.service.id).await;
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    w.engine
        .enqueue_event(&event(&s.events.key, "resolve", Some("k")))
        .await
        .expect("resolve");
    w.engine
        .delete_service(&s.root, s.service.id)
        .await
        .expect("delete once nothing is open");
    let gone = w.engine.get_service(&s.root, s.service.id).await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    let r = w
        .engine
        .enqueue_event(&event(&s.events.key, "trigger", Some("k")))
        .await;
    assert!(
        matches!(r, Err(EnqueueError::Invalid(_))),
        "its keys are revoked: {r:?}"
    );
    assert_eq!(audit_of(&w, AuditAction::ServiceDeleted).await, 1);
    assert_eq!(audit_of(&w, AuditAction::IntegrationRevoked).await, 2);
}

#[tokio::test]
async fn services_are_validated_and_changed_by_admins() {
    let w = world();
    let root = w.root().await;
    let engineer = w.user("eng", Role::Engineer).await;
    let user = w.user("someone", Role::User).await;
    let new = |name: &str| NewService {
        name: name.into(),
        ..NewService::default()
    };

    let r = w.engine.create_service(&engineer, new("db")).await;
    assert!(
        matches!(r, Err(Error::Forbidden { .. })),
        "an engineer cannot create a service: {r:?}"
    );
    for (name, field) in [("   ", "name"), (&*"x".repeat(101), "name")] {
        match w.engine.create_service(&root, new(name)).await {
            Err(Error::Validation { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    match w
        .engine
        .create_service(
            &root,
            NewService {
                name: "db".into(),
                description: "d".repeat(10_001),
                auto_resolve: None,
                ..NewService::default()
            },
        )
        .await
    {
        Err(Error::Validation { field, .. }) => assert_eq!(field, "description"),
        other => panic!("{other:?}"),
    }
    let db = w
        .engine
        .create_service(&root, new("  db  "))
        .await
        .expect("create");
    assert_eq!(db.name, "db", "names are trimmed");
    assert!(db.auto_resolve, "auto-resolve by default");
    let dup = w.engine.create_service(&root, new("db")).await;
    assert!(matches!(dup, Err(Error::Conflict { .. })), "{dup:?}");

    let listed = w
        .engine
        .list_services(&engineer, PageRequest::first(10))
        .await
        .expect("an engineer reads services");
    assert_eq!(listed.items, vec![db.clone()]);
    let r = w.engine.list_services(&user, PageRequest::first(10)).await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "{r:?}");

    let updated = w
        .engine
        .update_service(
            &root,
            db.id,
            ServicePatch {
                auto_resolve: Some(false),
                ..ServicePatch::default()
            },
        )
        .await
        .expect("update");
    assert!(!updated.auto_resolve);
    assert_eq!(updated.version, 2);
    assert_eq!(audit_of(&w, AuditAction::ServiceUpdated).await, 1);
    let r = w
        .engine
        .update_service(&engineer, db.id, ServicePatch::default())
        .await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "{r:?}");

    let r = w
        .engine
        .create_integration(
            &engineer,
            db.id,
            NewIntegration {
                name: "pd".into(),
                kind: IntegrationKind::EventsV2,
            },
        )
        .await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "{r:?}");
    let r = w.engine.list_integrations(&engineer, db.id).await;
    assert!(matches!(r, Err(Error::Forbidden { .. })), "{r:?}");
    let created = w
        .engine
        .create_integration(
            &root,
            db.id,
            NewIntegration {
                name: "pd".into(),
                kind: IntegrationKind::EventsV2,
            },
        )
        .await
        .expect("key");
    assert_eq!(created.key.len(), 32);
    assert!(
        created
            .key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    let stored = w
        .store
        .get_integration(created.integration.id)
        .await
        .expect("get")
        .expect("stored");
    assert_ne!(
        stored.key_hash, created.key,
        "the store keeps a hash, not the key"
    );

    // Incidents reported by hand may name a service that exists.
    let mut input = NewIncident {
        title: "by hand".into(),
        service_id: Some(imas_core::model::ServiceId::new()),
        ..NewIncident::default()
    };
    match w.engine.create_incident(&engineer, input.clone()).await {
        Err(Error::Validation { field, .. }) => assert_eq!(field, "serviceId"),
        other => panic!("{other:?}"),
    }
    input.service_id = Some(db.id);
    let by_hand = w
        .engine
        .create_incident(&engineer, input)
        .await
        .expect("create");
    assert_eq!(by_hand.service_id, Some(db.id));
    assert_eq!(by_hand.source, IncidentSource::Manual);
    assert_eq!(by_hand.reported_by, Some(engineer.id));
    let r = w.engine.delete_service(&root, db.id).await;
    assert!(
        matches!(r, Err(Error::Conflict { .. })),
        "its incident is open: {r:?}"
    );
}

#[tokio::test]
async fn alerts_are_listed_by_admins_and_engineers_and_with_the_incident() {
    let w = world();
    let s = setup(&w).await;
    w.engine
        .enqueue_event(&event(&s.events.key, "trigger", Some("k")))
        .await
        .expect("trigger");
    let engineer = w.user("eng", Role::Engineer).await;
    let user = w.user("someone", Role::User).await;
    let page = w
        .engine
        .list_alerts(
            &engineer,
            AlertFilter {
                service_id: Some(s.service.id),
                q: Some("disk".into()),
                ..AlertFilter::default()
            },
            PageRequest::first(10),
        )
        .await
        .expect("an engineer lists alerts");
    assert_eq!(page.items.len(), 1);
    let r = w
        .engine
        .list_alerts(&user, AlertFilter::default(), PageRequest::first(10))
        .await;
    assert!(
        matches!(r, Err(Error::Forbidden { .. })),
        "a user cannot list alerts: {r:?}"
    );
    let incident = only_incident(&w, &s).await;
    let r = w
        .engine
        .incident_alerts(&user, incident.id, PageRequest::first(10))
        .await;
    assert!(
        matches!(r, Err(Error::NotFound { .. })),
        "a user cannot read an incident they did not report, nor its alerts: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_alertmanager_notifications_of_a_new_group_share_one_incident() {
    let w = world();
    let s = setup(&w).await;
    let bodies: Vec<Vec<u8>> = (0..16)
        .map(|n| {
            let fp = format!("fp{}", n % 4);
            notification("race", &[(fp.as_str(), "firing", "warning")])
        })
        .collect();
    let results = join_all(
        bodies
            .iter()
            .map(|b| w.engine.receive_alertmanager(&s.am.key, b)),
    )
    .await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let incident = only_incident(&w, &s).await;
    assert_eq!(incident.alert_count, 4, "one alert per fingerprint");
    let alerts = alerts_of(&w, &s, &incident).await;
    assert_eq!(alerts.len(), 4);
    assert_eq!(
        alerts.iter().map(|a| a.event_count).sum::<i64>(),
        16,
        "every notification counted once"
    );
    assert_eq!(
        results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|r| r.opened)
            .sum::<usize>(),
        4
    );
}
