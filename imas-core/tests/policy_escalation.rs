//! Escalation policies as data, stepped by the engine (SPEC §5), on the memory
//! store and a manual clock: step 1 pages when an incident of the service
//! opens, each next step after its delay unless acknowledged or resolved,
//! targets resolved when the step runs, empty steps skipped at once, repeats,
//! manual escalation, the acknowledgement timeout, and every step exactly once
//! with two engines sweeping one store. Policies, schedules and rotations are
//! written through the store; services through the engine, with their policy
//! and acknowledgement timeout set by a store update.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{World, mins, world};
use imas_core::engine::{IncidentPatch, NewIncident};
use imas_core::escalation::{SlaEscalation, Step, next_due, next_step};
use imas_core::memory::{MemoryQueue, MemoryStore};
use imas_core::model::{
    AuditAction, AuditFilter, ClockTime, EscalationPolicy, EscalationPolicyId, EscalationStep,
    Incident, IncidentId, IntegrationKind, NewIntegration, NewService, Notification, Override,
    OverrideId, PageRequest, PolicyTarget, Priority, Role, Rotation, RotationId, RotationType,
    RuleTarget, Schedule, ScheduleId, ScheduleRule, Service, Status, UserId, Weekdays, plus,
};
use imas_core::ports::{
    Change, ChangeStore, EscalationPolicyWrite, RotationWrite, ScheduleWrite, ServiceWrite, Store,
};
use imas_core::sla::SlaPolicy;
use imas_core::testkit::store::{incident, t0};
use imas_core::{Engine, Principal};
use serde_json::json;

/// A world with an admin and three engineers.
struct Team {
    w: World,
    root: Principal,
    alice: Principal,
    bob: Principal,
    carol: Principal,
}

async fn team() -> Team {
    let w = world();
    let root = w.root().await;
    let alice = w.user("alice", Role::Engineer).await;
    let bob = w.user("bob", Role::Engineer).await;
    let carol = w.user("carol", Role::Engineer).await;
    Team {
        w,
        root,
        alice,
        bob,
        carol,
    }
}

fn step(delay_minutes: u32, targets: Vec<PolicyTarget>) -> EscalationStep {
    EscalationStep {
        delay_minutes,
        targets,
    }
}

fn user(p: &Principal) -> PolicyTarget {
    PolicyTarget::User { id: p.id }
}

async fn commit(store: &Arc<dyn Store>, change: Change) {
    store.commit(change).await.expect("commit");
}

impl Team {
    fn store(&self) -> &Arc<dyn Store> {
        self.w.engine.store()
    }

    async fn policy(&self, steps: Vec<EscalationStep>, repeat: u32) -> EscalationPolicy {
        let now = self.w.engine.now();
        let p = EscalationPolicy {
            id: EscalationPolicyId::new(),
            name: "Primary".into(),
            description: String::new(),
            repeat,
            steps,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        commit(
            self.store(),
            Change {
                escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
                ..Change::default()
            },
        )
        .await;
        p
    }

    /// A daily rotation from `t0` in UTC: `participants[k]` on day k.
    async fn rotation(&self, participants: &[&Principal]) -> Rotation {
        let r = Rotation {
            id: RotationId::new(),
            name: "primary".into(),
            description: String::new(),
            kind: RotationType::Daily,
            shift_length: 1,
            start: t0(),
            time_zone: chrono_tz::UTC,
            participants: participants.iter().map(|p| p.id).collect(),
            created_at: t0(),
            updated_at: t0(),
            version: 1,
        };
        commit(
            self.store(),
            Change {
                rotation: Some(RotationWrite::Insert(r.clone())),
                ..Change::default()
            },
        )
        .await;
        r
    }

    /// A schedule whose one rule puts the rotation on call all day, every day.
    async fn schedule(&self, rotation: &Rotation) -> Schedule {
        let midnight = ClockTime::new(0, 0).expect("00:00");
        let s = Schedule {
            id: ScheduleId::new(),
            name: "ops".into(),
            description: String::new(),
            time_zone: chrono_tz::Europe::Berlin,
            rules: vec![ScheduleRule {
                target: RuleTarget::Rotation { id: rotation.id },
                start: midnight,
                end: midnight,
                weekdays: Weekdays::ALL,
            }],
            overrides: Vec::new(),
            created_at: t0(),
            updated_at: t0(),
            version: 1,
        };
        commit(
            self.store(),
            Change {
                schedule: Some(ScheduleWrite::Insert(s.clone())),
                ..Change::default()
            },
        )
        .await;
        s
    }

    /// Adds an override to a stored schedule (a version-checked update).
    async fn add_override(&self, id: ScheduleId, o: Override) {
        let before = self
            .store()
            .get_schedule(id)
            .await
            .expect("read")
            .expect("schedule");
        let mut after = before.clone();
        after.overrides.push(o);
        after.version += 1;
        commit(
            self.store(),
            Change {
                schedule: Some(ScheduleWrite::Update {
                    schedule: after,
                    expected_version: before.version,
                }),
                ..Change::default()
            },
        )
        .await;
    }

    /// A service (created through the engine) with this policy and
    /// acknowledgement timeout.
    async fn service(
        &self,
        name: &str,
        policy: Option<&EscalationPolicy>,
        ack_timeout_seconds: Option<u32>,
    ) -> Service {
        let created = self
            .w
            .engine
            .create_service(
                &self.root,
                NewService {
                    name: name.into(),
                    ..NewService::default()
                },
            )
            .await
            .expect("service");
        let mut service = created.clone();
        service.escalation_policy_id = policy.map(|p| p.id);
        service.ack_timeout_seconds = ack_timeout_seconds;
        service.version += 1;
        commit(
            self.store(),
            Change {
                service: Some(ServiceWrite::Update {
                    service: service.clone(),
                    expected_version: created.version,
                }),
                ..Change::default()
            },
        )
        .await;
        service
    }

    async fn open(&self, title: &str, service: &Service) -> Incident {
        self.w
            .engine
            .create_incident(
                &self.root,
                NewIncident {
                    title: title.into(),
                    service_id: Some(service.id),
                    ..NewIncident::default()
                },
            )
            .await
            .expect("create")
    }

    async fn get(&self, id: IncidentId) -> Incident {
        self.w
            .engine
            .get_incident(&self.root, id)
            .await
            .expect("get")
    }

    async fn set_status(&self, id: IncidentId, status: Status) -> Incident {
        self.w
            .engine
            .change_status(&self.alice, id, status)
            .await
            .expect("status")
    }

    /// The policy pages `user` received about `incident`.
    async fn pages(&self, user: &Principal, incident: IncidentId) -> Vec<Notification> {
        pages_in(self.w.notes(user.id).await, incident)
    }

    async fn page_count(&self, user: &Principal, incident: IncidentId) -> usize {
        self.pages(user, incident).await.len()
    }

    async fn audit(&self, action: AuditAction, incident: IncidentId) -> usize {
        self.w.audit_count(action, &incident.to_string()).await
    }

    async fn audit_texts(&self, action: AuditAction, incident: IncidentId) -> Vec<String> {
        let f = AuditFilter {
            action: Some(action),
            target: Some(incident.to_string()),
            ..Default::default()
        };
        self.store()
            .list_audit(&f, PageRequest::first(500))
            .await
            .expect("audit")
            .items
            .into_iter()
            .map(|e| e.description)
            .collect()
    }
}

/// Of `notes`, the policy pages about `incident` (their key names the
/// position and level).
fn pages_in(notes: Vec<Notification>, incident: IncidentId) -> Vec<Notification> {
    notes
        .into_iter()
        .filter(|n| n.incident_id == Some(incident) && n.key.contains(":policy-"))
        .collect()
}

#[tokio::test]
async fn step_one_pages_the_on_call_user_at_open_and_the_next_step_after_its_delay() {
    let t = team().await;
    let rotation = t.rotation(&[&t.alice, &t.bob]).await;
    let schedule = t.schedule(&rotation).await;
    let policy = t
        .policy(
            vec![
                step(5, vec![PolicyTarget::Schedule { id: schedule.id }]),
                step(10, vec![user(&t.carol)]),
            ],
            0,
        )
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let inc = t.open("db down", &service).await;
    assert_eq!(inc.escalation_policy_id, Some(policy.id), "the snapshot");
    assert_eq!(inc.next_escalation_at, Some(t0()), "step 1 due at once");

    t.w.tick().await;
    let now = t.get(inc.id).await;
    assert_eq!(t.page_count(&t.alice, inc.id).await, 1, "alice is on call");
    assert_eq!(t.page_count(&t.bob, inc.id).await, 0, "bob is not");
    assert_eq!((now.escalation_level, now.escalated_at), (1, Some(t0())));
    assert_eq!(now.next_escalation_at, Some(plus(t0(), mins(5))));
    assert_eq!(t.audit(AuditAction::Escalation, inc.id).await, 1);

    t.w.advance(mins(5) - Duration::from_millis(1));
    t.w.tick().await;
    assert_eq!(t.page_count(&t.carol, inc.id).await, 0, "not yet");
    t.w.advance(Duration::from_millis(1));
    t.w.tick().await;
    assert_eq!(
        t.page_count(&t.carol, inc.id).await,
        1,
        "step 2 at its delay"
    );
    let now = t.get(inc.id).await;
    assert_eq!(now.escalation_level, 2);
    assert_eq!(now.next_escalation_at, None, "no step left, no repeat");

    t.w.advance(Duration::from_secs(3 * 3600));
    t.w.tick().await;
    assert_eq!(t.page_count(&t.alice, inc.id).await, 1);
    assert_eq!(t.page_count(&t.carol, inc.id).await, 1);
    assert_eq!(t.get(inc.id).await.escalation_level, 2);
    let texts = t.audit_texts(AuditAction::Escalation, inc.id).await;
    assert!(
        texts
            .iter()
            .any(|d| d.contains("step 2 of escalation policy \"Primary\"")
                && d.contains("level 2")),
        "{texts:?}"
    );
}

#[tokio::test]
async fn acknowledging_or_resolving_stops_the_steps() {
    let t = team().await;
    let policy = t
        .policy(
            vec![step(5, vec![user(&t.alice)]), step(5, vec![user(&t.bob)])],
            3,
        )
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let acked = t.open("acked", &service).await;
    let resolved = t.open("resolved", &service).await;
    t.w.tick().await;
    t.w.advance(mins(2));
    let a = t.set_status(acked.id, Status::Acknowledged).await;
    assert_eq!(a.next_escalation_at, None, "leaving open stops the policy");
    assert_eq!(a.ack_expires_at, None, "no timeout on this service");
    let r = t.set_status(resolved.id, Status::Resolved).await;
    assert_eq!(r.next_escalation_at, None);
    t.w.advance(Duration::from_secs(3600));
    t.w.tick().await;
    for id in [acked.id, resolved.id] {
        assert_eq!(t.page_count(&t.alice, id).await, 1, "step 1 only");
        assert_eq!(t.page_count(&t.bob, id).await, 0, "step 2 never ran");
        assert_eq!(t.get(id).await.escalation_level, 1);
    }
}

#[tokio::test]
async fn an_incident_opened_by_an_alert_pages_step_one() {
    let t = team().await;
    let rotation = t.rotation(&[&t.bob, &t.alice]).await;
    let policy = t
        .policy(
            vec![step(5, vec![PolicyTarget::Rotation { id: rotation.id }])],
            0,
        )
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let key =
        t.w.engine
            .create_integration(
                &t.root,
                service.id,
                NewIntegration {
                    name: "pd".into(),
                    kind: IntegrationKind::EventsV2,
                },
            )
            .await
            .expect("integration")
            .key;
    let event = json!({
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": "disk/db-1",
        "payload": {"summary": "Disk full", "source": "db-1", "severity": "critical"},
    });
    t.w.engine
        .enqueue_event(&serde_json::to_vec(&event).expect("json"))
        .await
        .expect("enqueue");
    t.w.tick().await;
    let notes = t.w.notes(t.bob.id).await;
    let page = notes
        .iter()
        .find(|n| n.key.contains(":policy-0-1:"))
        .expect("bob, on call, is paged by step 1");
    let inc = t.get(page.incident_id.expect("incident")).await;
    assert_eq!(inc.service_id, Some(service.id));
    assert_eq!(inc.escalation_policy_id, Some(policy.id));
    assert_eq!(inc.escalation_level, 1);
    assert_eq!(t.page_count(&t.alice, inc.id).await, 0);
}

#[tokio::test]
async fn targets_are_resolved_when_the_step_runs() {
    let t = team().await;
    let rotation = t.rotation(&[&t.alice, &t.bob]).await;
    let schedule = t.schedule(&rotation).await;
    let on_call = PolicyTarget::Schedule { id: schedule.id };
    let policy = t
        .policy(vec![step(5, vec![on_call]), step(5, vec![on_call])], 0)
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let inc = t.open("db down", &service).await;
    t.w.tick().await;
    assert_eq!(t.page_count(&t.alice, inc.id).await, 1);
    // Between the steps, carol takes alice's shift.
    t.w.advance(mins(1));
    t.add_override(
        schedule.id,
        Override {
            id: OverrideId::new(),
            start: plus(t0(), mins(1)),
            end: plus(t0(), mins(60)),
            add_user_id: Some(t.carol.id),
            remove_user_id: Some(t.alice.id),
            created_by: t.root.id,
            created_at: t.w.engine.now(),
        },
    )
    .await;
    t.w.advance(mins(4));
    t.w.tick().await;
    assert_eq!(
        t.page_count(&t.carol, inc.id).await,
        1,
        "step 2 pages carol"
    );
    assert_eq!(t.page_count(&t.alice, inc.id).await, 1, "and not alice");
    assert_eq!(t.page_count(&t.bob, inc.id).await, 0);
}

#[tokio::test]
async fn an_empty_step_is_skipped_at_once_and_the_next_pages_at_the_same_instant() {
    let t = team().await;
    let nobody = t.rotation(&[]).await;
    let policy = t
        .policy(
            vec![
                // Unassigned and an empty rotation: nobody.
                step(
                    30,
                    vec![
                        PolicyTarget::Assignee,
                        PolicyTarget::Rotation { id: nobody.id },
                    ],
                ),
                step(30, vec![user(&t.alice)]),
                step(30, vec![user(&t.bob)]),
            ],
            0,
        )
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let inc = t.open("db down", &service).await;
    let report = t.w.engine.sweep_all().await.expect("sweep");
    assert_eq!((report.skipped, report.escalations), (1, 1), "{report:?}");
    t.w.engine.flush_notifications().await.expect("flush");
    assert_eq!(t.audit(AuditAction::EscalationSkipped, inc.id).await, 1);
    let skipped = t.audit_texts(AuditAction::EscalationSkipped, inc.id).await;
    assert!(
        skipped[0].contains("step 1 of escalation policy \"Primary\""),
        "names the step and the policy: {skipped:?}"
    );
    let pages = t.pages(&t.alice, inc.id).await;
    assert_eq!(pages.len(), 1, "step 2 at once");
    assert_eq!(pages[0].created_at, t0(), "at the same instant");
    let now = t.get(inc.id).await;
    assert_eq!(now.escalation_level, 1, "only steps that paged count");
    assert_eq!(
        now.next_escalation_at,
        Some(plus(t0(), mins(30))),
        "step 3 after step 2's delay"
    );
}

#[tokio::test]
async fn the_steps_repeat_then_stop() {
    let t = team().await;
    let policy = t
        .policy(
            vec![step(1, vec![user(&t.alice)]), step(2, vec![user(&t.bob)])],
            2,
        )
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let inc = t.open("db down", &service).await;
    for _ in 0..30 {
        t.w.tick().await;
        t.w.advance(mins(1));
    }
    // 2 steps x (repeat 2 + 1) = 6 runs: alice at 0, 3, 6; bob at 1, 4, 7.
    let at: Vec<_> = t
        .pages(&t.alice, inc.id)
        .await
        .iter()
        .map(|n| n.created_at)
        .collect();
    assert_eq!(at.len(), 3, "{at:?}");
    for m in [0, 3, 6] {
        assert!(at.contains(&plus(t0(), mins(m))), "alice at +{m}m: {at:?}");
    }
    assert_eq!(t.page_count(&t.bob, inc.id).await, 3);
    let now = t.get(inc.id).await;
    assert_eq!(now.escalation_level, 6);
    assert_eq!(now.escalation_step, 6);
    assert_eq!(now.next_escalation_at, None);
    assert_eq!(t.audit(AuditAction::Escalation, inc.id).await, 6);
}

#[tokio::test]
async fn a_policy_of_only_empty_steps_runs_out_in_one_sweep() {
    let t = team().await;
    // The longest policy there is, every step resolving to nobody: 20 x 6
    // positions skipped at once, within the sweep's bound for one incident.
    let steps = (0..imas_core::model::MAX_STEPS)
        .map(|_| step(1, vec![PolicyTarget::Assignee]))
        .collect();
    let policy = t.policy(steps, imas_core::model::MAX_REPEAT).await;
    let service = t.service("payments", Some(&policy), None).await;
    let inc = t.open("db down", &service).await;
    let report = t.w.engine.sweep_all().await.expect("sweep");
    assert_eq!(report.skipped, 120, "{report:?}");
    assert_eq!(t.audit(AuditAction::EscalationSkipped, inc.id).await, 120);
    let now = t.get(inc.id).await;
    assert_eq!((now.escalation_level, now.escalation_step), (0, 120));
    assert_eq!(now.next_escalation_at, None, "the run is over");
    assert_ne!(now.next_due_at, Some(t0()), "nothing left due now");
    let again = t.w.engine.sweep_all().await.expect("sweep");
    assert_eq!(again.claimed, 0, "{again:?}");
}

#[tokio::test]
async fn manual_escalation_moves_one_step() {
    let t = team().await;
    let policy = t
        .policy(
            vec![
                step(30, vec![user(&t.alice)]),
                step(30, vec![PolicyTarget::Assignee]),
                step(30, vec![user(&t.bob)]),
                step(30, vec![user(&t.carol)]),
            ],
            0,
        )
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let inc = t.open("db down", &service).await;
    t.w.tick().await;
    assert_eq!(t.page_count(&t.alice, inc.id).await, 1);
    t.w.advance(mins(2));
    let acked = t.set_status(inc.id, Status::Acknowledged).await;
    assert_eq!(acked.next_escalation_at, None);

    // Acknowledged: the next step runs at once (step 2 is empty: skipped on
    // to step 3), and nothing is due after it.
    let e =
        t.w.engine
            .escalate_manually(&t.root, inc.id, Some("db team asleep".into()))
            .await
            .expect("escalate");
    t.w.tick().await;
    assert_eq!(t.page_count(&t.bob, inc.id).await, 1, "step 3 pages bob");
    assert_eq!(e.escalation_level, 2);
    assert_eq!(e.escalation_step, 3);
    assert_eq!(e.next_escalation_at, None, "only while open");
    assert_eq!(t.audit(AuditAction::EscalationSkipped, inc.id).await, 1);
    let texts = t.audit_texts(AuditAction::Escalation, inc.id).await;
    assert!(
        texts
            .iter()
            .any(|d| d.contains("manually") && d.contains("db team asleep")),
        "{texts:?}"
    );
    let e =
        t.w.engine
            .escalate_manually(&t.root, inc.id, None)
            .await
            .expect("escalate");
    assert_eq!((e.escalation_level, e.escalation_step), (3, 4));
    // Past the end: the last step again.
    let e =
        t.w.engine
            .escalate_manually(&t.root, inc.id, None)
            .await
            .expect("escalate");
    assert_eq!((e.escalation_level, e.escalation_step), (4, 4));
    t.w.tick().await;
    assert_eq!(t.page_count(&t.carol, inc.id).await, 2);
    assert_eq!(t.page_count(&t.alice, inc.id).await, 1);
    assert_eq!(t.page_count(&t.bob, inc.id).await, 1);

    // Open: the step after the manual one is due its delay later.
    let other = t.open("cache down", &service).await;
    t.w.tick().await;
    let e =
        t.w.engine
            .escalate_manually(&t.root, other.id, None)
            .await
            .expect("escalate");
    assert_eq!(e.escalation_level, 2);
    assert_eq!(e.next_escalation_at, Some(plus(t.w.engine.now(), mins(30))));
    let done = t.set_status(other.id, Status::Resolved).await;
    let refused = t.w.engine.escalate_manually(&t.root, done.id, None).await;
    assert!(
        matches!(refused, Err(imas_core::Error::Conflict { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_ack_timeout_opens_the_incident_again_and_pages_the_step_reached() {
    let t = team().await;
    let policy = t
        .policy(
            vec![step(5, vec![user(&t.alice)]), step(5, vec![user(&t.bob)])],
            0,
        )
        .await;
    let service = t.service("payments", Some(&policy), Some(600)).await;
    let inc = t.open("db down", &service).await;
    t.w.tick().await;
    t.w.advance(mins(1));
    let acked = t.set_status(inc.id, Status::Acknowledged).await;
    assert_eq!(acked.ack_expires_at, Some(plus(t0(), mins(11))));
    t.w.advance(mins(1));
    let working = t.set_status(inc.id, Status::InProgress).await;
    assert_eq!(
        working.ack_expires_at,
        Some(plus(t0(), mins(11))),
        "acknowledged -> in-progress keeps it"
    );
    t.w.advance(mins(9) - Duration::from_millis(1));
    t.w.tick().await;
    assert_eq!(t.get(inc.id).await.status, Status::InProgress, "not yet");
    t.w.advance(Duration::from_millis(1));
    t.w.tick().await;
    let now = t.get(inc.id).await;
    assert_eq!(now.status, Status::Open, "open again");
    assert_eq!(now.ack_expires_at, None);
    assert_eq!(t.audit(AuditAction::AckExpired, inc.id).await, 1);
    let changes = t.audit_texts(AuditAction::StatusChanged, inc.id).await;
    assert_eq!(
        changes.len(),
        3,
        "ack, in-progress, back to open: {changes:?}"
    );
    // Step 1 (the one it had reached) pages again at once.
    let pages = t.pages(&t.alice, inc.id).await;
    assert_eq!(pages.len(), 2, "paged again");
    assert!(pages.iter().any(|n| n.created_at == plus(t0(), mins(11))));
    assert_eq!(now.escalation_level, 2);
    assert_eq!(now.next_escalation_at, Some(plus(t0(), mins(16))));
    assert_eq!(t.page_count(&t.bob, inc.id).await, 0);
    t.w.advance(mins(5));
    t.w.tick().await;
    assert_eq!(t.page_count(&t.bob, inc.id).await, 1, "then step 2");
    // The response target was met by the first acknowledgement.
    t.w.advance(Duration::from_secs(5 * 3600));
    t.w.tick().await;
    assert_eq!(t.audit(AuditAction::SlaResponseBreach, inc.id).await, 0);
}

#[tokio::test]
async fn the_ack_timeout_is_cleared_by_on_hold_and_resolve() {
    let t = team().await;
    let policy = t.policy(vec![step(5, vec![user(&t.alice)])], 0).await;
    let service = t.service("payments", Some(&policy), Some(60)).await;
    let inc = t.open("db down", &service).await;
    t.w.tick().await;
    assert!(
        t.set_status(inc.id, Status::Acknowledged)
            .await
            .ack_expires_at
            .is_some()
    );
    let held = t.set_status(inc.id, Status::OnHold).await;
    assert_eq!(held.ack_expires_at, None, "on hold clears it");
    t.w.advance(mins(5));
    t.w.tick().await;
    assert_eq!(t.get(inc.id).await.status, Status::OnHold);
    let resumed = t.set_status(inc.id, Status::InProgress).await;
    assert_eq!(
        resumed.ack_expires_at,
        Some(plus(t.w.engine.now(), Duration::from_secs(60))),
        "on-hold -> in-progress starts it again"
    );
    let resolved = t.set_status(inc.id, Status::Resolved).await;
    assert_eq!(resolved.ack_expires_at, None);
    t.w.advance(mins(5));
    t.w.tick().await;
    let now = t.get(inc.id).await;
    assert_eq!(now.status, Status::Resolved);
    assert_eq!(t.audit(AuditAction::AckExpired, inc.id).await, 0);
    // Reopened (resolved -> in-progress): no timeout, nothing stepping.
    let reopened = t.set_status(inc.id, Status::InProgress).await;
    assert_eq!(
        (reopened.ack_expires_at, reopened.next_escalation_at),
        (None, None)
    );
}

#[tokio::test]
async fn without_a_policy_an_expired_ack_tells_the_assignee() {
    let t = team().await;
    let service = t.service("payments", None, Some(120)).await;
    let inc =
        t.w.engine
            .create_incident(
                &t.root,
                NewIncident {
                    title: "db down".into(),
                    service_id: Some(service.id),
                    assigned_to: Some(t.bob.id),
                    ..NewIncident::default()
                },
            )
            .await
            .expect("create");
    assert_eq!(inc.escalation_policy_id, None);
    assert_eq!(inc.next_escalation_at, None);
    t.w.engine
        .update_incident(
            &t.bob,
            inc.id,
            IncidentPatch {
                status: Some(Status::Acknowledged),
                ..IncidentPatch::default()
            },
            None,
        )
        .await
        .expect("ack");
    t.w.advance(Duration::from_secs(120));
    t.w.tick().await;
    assert_eq!(t.get(inc.id).await.status, Status::Open);
    assert_eq!(t.audit(AuditAction::AckExpired, inc.id).await, 1);
    let told: Vec<_> =
        t.w.notes(t.bob.id)
            .await
            .into_iter()
            .filter(|n| n.key.contains(":ack-expired-"))
            .collect();
    assert_eq!(told.len(), 1, "the assignee");
    assert!(
        told[0].message.contains("open again"),
        "{}",
        told[0].message
    );
    assert!(
        t.w.notes(t.alice.id)
            .await
            .iter()
            .all(|n| !n.key.contains("ack-expired"))
    );
}

#[tokio::test]
async fn the_sla_levels_apply_only_to_incidents_without_a_policy() {
    let t = team().await;
    let policy = t.policy(vec![step(9000, vec![user(&t.alice)])], 0).await;
    let with = t.service("with-policy", Some(&policy), None).await;
    let without = t.service("without", None, None).await;
    let mut ids = Vec::new();
    for service in [&with, &without] {
        let inc =
            t.w.engine
                .create_incident(
                    &t.root,
                    NewIncident {
                        title: format!("{} down", service.name),
                        priority: Some(Priority::Critical),
                        service_id: Some(service.id),
                        ..NewIncident::default()
                    },
                )
                .await
                .expect("create");
        ids.push(inc.id);
    }
    let manual =
        t.w.engine
            .create_incident(
                &t.root,
                NewIncident {
                    title: "no service".into(),
                    priority: Some(Priority::Critical),
                    ..NewIncident::default()
                },
            )
            .await
            .expect("create");
    ids.push(manual.id);
    t.w.tick().await;
    // Past the 1 h breach and the 30 min to SLA level 2.
    for _ in 0..4 {
        t.w.advance(mins(30));
        t.w.tick().await;
    }
    let with_policy = t.get(ids[0]).await;
    assert!(with_policy.sla_breached, "the breach is recorded");
    assert_eq!(t.audit(AuditAction::SlaBreach, ids[0]).await, 1);
    assert_eq!(
        with_policy.escalation_level, 1,
        "step 1 only, no SLA levels"
    );
    assert_eq!(t.audit(AuditAction::Escalation, ids[0]).await, 1);
    for id in &ids[1..] {
        let i = t.get(*id).await;
        assert!(i.sla_breached);
        assert_eq!(i.escalation_level, 2, "breach = level 1, then level 2");
        assert_eq!(i.escalation_policy_id, None);
    }
}

#[test]
fn next_due_covers_policy_steps_and_ack_expiry() {
    let (sla, esc) = (SlaPolicy::default(), SlaEscalation::default());
    let mut i = incident(UserId::new(), "t", t0());
    sla.assign(&mut i, Priority::Medium);
    i.escalation_policy_id = Some(EscalationPolicyId::new());
    i.next_escalation_at = Some(t0());
    assert_eq!(next_step(&i, &sla, &esc), Some((Step::PolicyStep, t0())));
    assert_eq!(next_due(&i, &sla, &esc), Some(t0()));
    // Acknowledged: no policy step; the acknowledgement's expiry instead.
    i.status = Status::Acknowledged;
    i.acknowledged_at = Some(t0());
    let expiry = plus(t0(), mins(10));
    i.ack_expires_at = Some(expiry);
    assert_eq!(next_step(&i, &sla, &esc), Some((Step::AckExpired, expiry)));
    i.status = Status::InProgress;
    assert_eq!(next_due(&i, &sla, &esc), Some(expiry));
    i.status = Status::OnHold;
    assert_ne!(
        next_step(&i, &sla, &esc).map(|(s, _)| s),
        Some(Step::AckExpired)
    );
    // Breached with a policy: no SLA level is pending.
    i.status = Status::Open;
    (i.next_escalation_at, i.ack_expires_at, i.acknowledged_at) = (None, None, None);
    (i.sla_breached, i.breached_at, i.response_breached_at) = (true, Some(t0()), Some(t0()));
    i.at_risk_at = Some(t0());
    assert_eq!(next_step(&i, &sla, &esc), None);
    i.escalation_policy_id = None;
    assert!(matches!(
        next_step(&i, &sla, &esc),
        Some((Step::Escalate(_), _))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_store_run_every_step_exactly_once() {
    let t = team().await;
    let second = Engine::builder(t.w.store.clone() as Arc<dyn Store>)
        .clock(Arc::new(t.w.clock.clone()))
        .queue(Arc::new(MemoryQueue::new(
            Arc::new(t.w.clock.clone()),
            Default::default(),
        )))
        .jwt_keys(
            imas_core::auth::JwtKeys::new(common::SECRET, Duration::from_secs(3600)).expect("keys"),
        )
        .build()
        .expect("second engine");
    let policy = t
        .policy(
            vec![
                step(1, vec![user(&t.alice)]),
                step(1, vec![PolicyTarget::Assignee]),
                step(1, vec![user(&t.bob), user(&t.carol)]),
            ],
            1,
        )
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(t.open(&format!("incident {n}"), &service).await.id);
    }
    for _ in 0..8 {
        let (a, b) = (t.w.engine.clone(), second.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { a.sweep_all().await }),
            tokio::spawn(async move { b.sweep_all().await }),
        );
        ra.expect("join").expect("sweep");
        rb.expect("join").expect("sweep");
        t.w.advance(mins(1));
    }
    t.w.engine.flush_notifications().await.expect("flush");
    second.flush_notifications().await.expect("flush");
    let notes_of = |p: Principal| {
        let w = &t.w;
        async move { w.notes(p.id).await }
    };
    let (alice, bob, carol) = (
        notes_of(t.alice).await,
        notes_of(t.bob).await,
        notes_of(t.carol).await,
    );
    for id in ids {
        // 3 steps x 2 passes; step 2 (the unassigned assignee) is skipped.
        let i = t.get(id).await;
        assert_eq!(i.escalation_level, 4, "{id}");
        assert_eq!(i.next_escalation_at, None);
        assert_eq!(t.audit(AuditAction::Escalation, id).await, 4, "{id}");
        assert_eq!(t.audit(AuditAction::EscalationSkipped, id).await, 2, "{id}");
        let keys = |notes: &[Notification]| {
            let mut k: Vec<String> = pages_in(notes.to_vec(), id)
                .into_iter()
                .map(|n| n.key.split(':').nth(1).unwrap_or_default().to_string())
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&alice), ["policy-0-1", "policy-3-3"], "{id}");
        assert_eq!(keys(&bob), ["policy-2-2", "policy-5-4"], "{id}");
        assert_eq!(keys(&carol), ["policy-2-2", "policy-5-4"], "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_wakes_for_an_ack_timeout_due_in_two_seconds() {
    // Real time: the monitor polls once a minute, so only its re-arm by the
    // commits (the new incident, then the acknowledgement) and its sleep until
    // the next due instant can make it act in time.
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder(store.clone())
        .jwt_keys(
            imas_core::auth::JwtKeys::new(common::SECRET, Duration::from_secs(60)).expect("keys"),
        )
        .build()
        .expect("engine");
    engine
        .ensure_admin("root", "root password 123", "root@example.com")
        .await
        .expect("admin");
    let root = engine
        .authenticate(
            &engine
                .login("root", "root password 123")
                .await
                .expect("login"),
        )
        .await
        .expect("auth");
    let now = engine.now();
    let policy = EscalationPolicy {
        id: EscalationPolicyId::new(),
        name: "Primary".into(),
        description: String::new(),
        repeat: 0,
        steps: vec![step(60, vec![PolicyTarget::User { id: root.id }])],
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let created = engine
        .create_service(
            &root,
            NewService {
                name: "payments".into(),
                ..NewService::default()
            },
        )
        .await
        .expect("service");
    let mut service = created.clone();
    service.escalation_policy_id = Some(policy.id);
    service.ack_timeout_seconds = Some(2);
    service.version += 1;
    store
        .commit(Change {
            escalation_policy: Some(EscalationPolicyWrite::Insert(policy)),
            service: Some(ServiceWrite::Update {
                service,
                expected_version: created.version,
            }),
            ..Change::default()
        })
        .await
        .expect("policy");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let monitor = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run_sla_monitor(Duration::from_secs(60), stop_rx)
                .await
        })
    };
    // Let the monitor sweep once and go to sleep (it exposes no signal).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let inc = engine
        .create_incident(
            &root,
            NewIncident {
                title: "db down".into(),
                service_id: Some(created.id),
                ..NewIncident::default()
            },
        )
        .await
        .expect("create");
    let wait_for = |what: &'static str, done: fn(&Incident) -> bool| {
        let (engine, root) = (engine.clone(), root);
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let i = engine.get_incident(&root, inc.id).await.expect("get");
                if done(&i) {
                    return i;
                }
                assert!(std::time::Instant::now() < deadline, "never: {what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let paged = wait_for("step 1", |i| i.escalation_level == 1).await;
    let late = paged.escalated_at.expect("at") - inc.created_at;
    assert!(
        late < chrono::Duration::seconds(1),
        "step 1 at once ({late})"
    );
    let acked = engine
        .change_status(&root, inc.id, Status::Acknowledged)
        .await
        .expect("ack");
    let expires = acked.ack_expires_at.expect("a timeout");
    let again = wait_for("the ack expiry", |i| i.escalation_level == 2).await;
    assert_eq!(again.status, Status::Open);
    let late = again.escalated_at.expect("at") - expires;
    assert!(
        late >= chrono::Duration::zero() && late < chrono::Duration::seconds(1),
        "re-paged within a second of the expiry ({late})"
    );
    let _ = stop_tx.send(true);
    monitor.await.expect("monitor");
}

#[tokio::test]
async fn a_changed_policy_applies_from_the_next_step_and_a_deleted_one_ends() {
    let t = team().await;
    let policy = t
        .policy(
            vec![step(5, vec![user(&t.alice)]), step(5, vec![user(&t.bob)])],
            0,
        )
        .await;
    let service = t.service("payments", Some(&policy), None).await;
    let changed = t.open("changed", &service).await;
    let second = t.open("second", &service).await;
    t.w.tick().await;
    // Step 2 now pages carol: the running incidents read it when it runs.
    let mut edited = policy.clone();
    edited.steps[1].targets = vec![user(&t.carol)];
    edited.version += 1;
    commit(
        t.store(),
        Change {
            escalation_policy: Some(EscalationPolicyWrite::Update {
                escalation_policy: edited,
                expected_version: policy.version,
            }),
            ..Change::default()
        },
    )
    .await;
    t.w.advance(mins(5));
    t.w.tick().await;
    assert_eq!(t.page_count(&t.carol, changed.id).await, 1);
    assert_eq!(t.page_count(&t.bob, changed.id).await, 0);

    // A second policy whose incident outlives it.
    let short = t.policy(vec![step(5, vec![user(&t.alice)])], 1).await;
    let other = t.service("search", Some(&short), None).await;
    let orphan = t.open("orphan", &other).await;
    t.w.tick().await;
    commit(
        t.store(),
        Change {
            escalation_policy: Some(EscalationPolicyWrite::Delete {
                id: short.id,
                expected_version: short.version,
            }),
            ..Change::default()
        },
    )
    .await;
    t.w.advance(mins(5));
    t.w.tick().await;
    let now = t.get(orphan.id).await;
    assert_eq!(now.next_escalation_at, None, "the policy has ended");
    assert_eq!(now.escalation_level, 1);
    let texts = t
        .audit_texts(AuditAction::EscalationSkipped, orphan.id)
        .await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("no longer exists"), "{texts:?}");
    assert_eq!(t.page_count(&t.alice, orphan.id).await, 1);
    // The other incident of the first policy went on as before.
    assert_eq!(t.page_count(&t.carol, second.id).await, 1);
}

/// An acknowledgement that expires when the run has nobody left to page (its
/// last step found nobody on call) is not left unheard: the engineers are told
/// (the incident is unassigned), with the ACK_EXPIRED entry.
#[tokio::test]
async fn an_expired_ack_with_nobody_left_in_the_policy_tells_the_engineers() {
    let t = team().await;
    let nobody = t.rotation(&[]).await;
    let policy = t
        .policy(
            vec![
                step(5, vec![user(&t.alice)]),
                step(5, vec![PolicyTarget::Rotation { id: nobody.id }]),
            ],
            0,
        )
        .await;
    let service = t.service("payments", Some(&policy), Some(600)).await;
    let inc = t.open("db down", &service).await;
    t.w.tick().await;
    assert_eq!(t.page_count(&t.alice, inc.id).await, 1, "step 1");
    t.w.advance(mins(5));
    t.w.tick().await;
    assert_eq!(
        t.audit(AuditAction::EscalationSkipped, inc.id).await,
        1,
        "step 2 finds nobody; the run is over"
    );
    assert_eq!(t.get(inc.id).await.next_escalation_at, None);
    t.w.advance(mins(1));
    t.set_status(inc.id, Status::Acknowledged).await;
    t.w.advance(mins(10));
    t.w.tick().await;
    let now = t.get(inc.id).await;
    assert_eq!(now.status, Status::Open, "open again");
    assert_eq!(t.audit(AuditAction::AckExpired, inc.id).await, 1);
    let mut counts = [0; 3];
    for (n, engineer) in [&t.alice, &t.bob, &t.carol].into_iter().enumerate() {
        counts[n] =
            t.w.notes(engineer.id)
                .await
                .iter()
                .filter(|n| n.incident_id == Some(inc.id))
                .count();
    }
    assert_eq!(
        counts,
        [2, 1, 1],
        "every engineer hears of the expired acknowledgement (Alice had step 1 before); skipped: {}",
        t.audit(AuditAction::EscalationSkipped, inc.id).await
    );
}
