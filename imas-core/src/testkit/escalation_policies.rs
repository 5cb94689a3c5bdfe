//! The escalation policies contract, and the policy state services and
//! incidents carry. Each function takes a fresh, empty store.

use crate::model::{
    EscalationPolicy, EscalationPolicyId, EscalationStep, MAX_ACK_TIMEOUT_SECONDS,
    MAX_DELAY_MINUTES, MAX_REPEAT, MAX_STEPS, MAX_TARGETS, PolicyTarget, Role, RotationId,
    ScheduleId, Timestamp, UserId,
};
use crate::ports::{Change, IncidentWrite, ServiceWrite, Store};

use super::services::{add_service, service};
use super::store::{at, commit, incident};
use super::versioned;

/// Every kind of target, roles all three.
fn every_target() -> Vec<PolicyTarget> {
    vec![
        PolicyTarget::User { id: UserId::new() },
        PolicyTarget::Schedule {
            id: ScheduleId::new(),
        },
        PolicyTarget::Rotation {
            id: RotationId::new(),
        },
        PolicyTarget::Role { role: Role::Admin },
        PolicyTarget::Role {
            role: Role::Engineer,
        },
        PolicyTarget::Role { role: Role::User },
        PolicyTarget::Assignee,
    ]
}

/// A policy of three steps (a user; a schedule and a rotation; every kind of
/// target), repeat 3, created at `created_at`, version 1.
pub fn policy(name: &str, created_at: Timestamp) -> EscalationPolicy {
    EscalationPolicy {
        id: EscalationPolicyId::new(),
        name: name.to_string(),
        description: format!("{name}, described"),
        repeat: 3,
        steps: vec![
            EscalationStep {
                delay_minutes: 5,
                targets: vec![PolicyTarget::User { id: UserId::new() }],
            },
            EscalationStep {
                delay_minutes: 15,
                targets: vec![
                    PolicyTarget::Schedule {
                        id: ScheduleId::new(),
                    },
                    PolicyTarget::Rotation {
                        id: RotationId::new(),
                    },
                ],
            },
            EscalationStep {
                delay_minutes: 30,
                targets: every_target(),
            },
        ],
        created_at,
        updated_at: created_at,
        version: 1,
    }
}

/// Insert, read back, replace whole, stale versions, unknown ids, deletes.
pub async fn escalation_policies_crud(store: &dyn Store) {
    versioned::crud(store, policy("primary", at(0)), |p| {
        let mut steps = p.steps.clone();
        steps.reverse();
        steps.truncate(2);
        steps[0].delay_minutes = 1;
        EscalationPolicy {
            name: "renamed".into(),
            description: String::new(),
            repeat: 0,
            steps,
            updated_at: at(1_000),
            ..p.clone()
        }
    })
    .await;
}

/// Every field of a policy reads back as written: each repeat count, targets
/// of every kind in the order given (duplicates kept), delays at both bounds,
/// and the largest policy the limits allow.
pub async fn escalation_policies_round_trip(store: &dyn Store) {
    for repeat in 0..=MAX_REPEAT {
        let mut p = policy(&format!("repeat {repeat}"), at(i64::from(repeat)));
        p.repeat = repeat;
        versioned::round_trip(store, &p, &format!("repeat {repeat}")).await;
    }
    for (i, target) in every_target().into_iter().enumerate() {
        let mut p = policy(&format!("only {i}"), at(100));
        p.steps = vec![EscalationStep {
            delay_minutes: 1,
            targets: vec![target],
        }];
        versioned::round_trip(store, &p, &format!("one target {target:?}")).await;
    }
    let u = UserId::new();
    let mut dup = policy("duplicates", at(200));
    dup.steps[0].targets = vec![
        PolicyTarget::Assignee,
        PolicyTarget::User { id: u },
        PolicyTarget::User { id: u },
        PolicyTarget::Assignee,
    ];
    versioned::round_trip(store, &dup, "targets in order, repeats kept").await;

    let mut big = policy(&"ß".repeat(100), at(300));
    big.description = "x\u{1F525}\"'\\".repeat(2_000);
    big.repeat = MAX_REPEAT;
    big.steps = (0..MAX_STEPS)
        .map(|i| EscalationStep {
            delay_minutes: if i % 2 == 0 { MAX_DELAY_MINUTES } else { 1 },
            targets: every_target()
                .into_iter()
                .cycle()
                .skip(i)
                .take(MAX_TARGETS)
                .collect(),
        })
        .collect();
    versioned::round_trip(store, &big, "20 steps of 10 targets").await;
}

/// Policies list newest first by `(created_at, id)` in keyset pages.
pub async fn escalation_policies_paging(store: &dyn Store) {
    versioned::paging(store, |n, created_at| {
        policy(&format!("policy-{n:02}"), created_at)
    })
    .await;
}

/// A service's `escalation_policy_id` and `ack_timeout_seconds` read back as
/// written, set and cleared by updates, at both bounds of the timeout.
pub async fn services_keep_policy_and_ack_timeout(store: &dyn Store) {
    let p = policy("paging", at(0));
    versioned::add(store, &p).await;
    let mut s = service("payments", at(1));
    s.escalation_policy_id = Some(p.id);
    s.ack_timeout_seconds = Some(MAX_ACK_TIMEOUT_SECONDS);
    add_service(store, &s).await;
    assert_eq!(
        store.get_service(s.id).await.expect("get"),
        Some(s.clone()),
        "a service with a policy and an ack timeout reads back as inserted"
    );
    let mut bare = service("search", at(2));
    bare.escalation_policy_id = None;
    bare.ack_timeout_seconds = None;
    add_service(store, &bare).await;
    assert_eq!(
        store.get_service(bare.id).await.expect("get"),
        Some(bare.clone()),
        "a service without either reads back without"
    );

    let mut cleared = s.clone();
    cleared.escalation_policy_id = None;
    cleared.ack_timeout_seconds = None;
    cleared.version = 2;
    commit(
        store,
        Change {
            service: Some(ServiceWrite::Update {
                service: cleared.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_service(s.id).await.expect("get"),
        Some(cleared.clone()),
        "an update clears the policy and the timeout"
    );
    let mut set = cleared.clone();
    set.escalation_policy_id = Some(p.id);
    set.ack_timeout_seconds = Some(1);
    set.version = 3;
    commit(
        store,
        Change {
            service: Some(ServiceWrite::Update {
                service: set.clone(),
                expected_version: 2,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_service(s.id).await.expect("get"),
        Some(set.clone()),
        "an update sets them again"
    );
    let listed = store
        .list_services(crate::model::PageRequest::first(10))
        .await
        .expect("list")
        .items;
    assert_eq!(listed, vec![bare, set], "listed services carry them too");
}

/// An incident's policy state (`escalation_policy_id`, `escalation_step`,
/// `next_escalation_at`, `ack_expires_at`) reads back as written, through
/// `get_incident`, `list_incidents` and `claim_due`, and updates replace it.
pub async fn incidents_keep_policy_state(store: &dyn Store) {
    let reporter = UserId::new();
    let p = EscalationPolicyId::new();
    let mut i = incident(reporter, "paging", at(0));
    i.escalation_policy_id = Some(p);
    i.escalation_step = 7;
    i.next_escalation_at = Some(at(1_234));
    i.ack_expires_at = Some(at(98_765));
    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Insert(i.clone())),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_incident(i.id).await.expect("get"),
        Some(i.clone()),
        "an incident's policy state reads back as inserted"
    );
    let listed = store
        .list_incidents(
            &crate::model::IncidentFilter::default(),
            crate::model::PageRequest::first(10),
        )
        .await
        .expect("list")
        .items;
    assert_eq!(listed, vec![i.clone()], "and lists with it");

    let mut v2 = i.clone();
    v2.escalation_step = 0;
    v2.next_escalation_at = None;
    v2.ack_expires_at = None;
    v2.version = 2;
    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Update {
                incident: v2.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_incident(i.id).await.expect("get"),
        Some(v2.clone()),
        "an update clears next_escalation_at and ack_expires_at and resets the step"
    );
    let mut v3 = v2.clone();
    v3.escalation_policy_id = None;
    v3.escalation_step = u32::MAX;
    v3.next_escalation_at = Some(at(5));
    v3.ack_expires_at = Some(at(6));
    v3.next_due_at = Some(at(5));
    v3.version = 3;
    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Update {
                incident: v3.clone(),
                expected_version: 2,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_incident(i.id).await.expect("get"),
        Some(v3.clone()),
        "an update sets them again (the largest step included)"
    );
    let claimed = store
        .claim_due(at(10), std::time::Duration::from_secs(30), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "the incident is due");
    let mut expected = v3;
    expected.next_due_at = claimed[0].next_due_at;
    assert_eq!(
        claimed[0], expected,
        "a claimed incident carries its policy state"
    );
}

/// A change that writes a rotation, a schedule and a policy (and a service
/// naming the policy) commits all of them or, when one write is refused,
/// none, nor its audit entries.
pub async fn on_call_change_is_atomic(store: &dyn Store) {
    use super::rotations::rotation;
    use super::schedules::schedule;
    use super::store::{audit, first_audit_entries, is_conflict, is_not_found};
    use crate::model::Actor;
    use crate::ports::{EscalationPolicyWrite, RotationWrite, ScheduleWrite};

    let kept = schedule("kept", at(0));
    versioned::add(store, &kept).await;
    let r = rotation("r", at(1));
    let p = policy("p", at(1));
    let mut stale = kept.clone();
    stale.name = "stale".into();
    stale.version = 2;
    let entry = || {
        audit(
            crate::model::AuditAction::RotationCreated,
            Actor::System,
            "all",
            at(2),
        )
    };
    let refused = store
        .commit(Change {
            rotation: Some(RotationWrite::Insert(r.clone())),
            schedule: Some(ScheduleWrite::Update {
                schedule: stale,
                expected_version: 7,
            }),
            escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
            audit: vec![entry()],
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&refused),
        "a stale schedule version refuses the change: {refused:?}"
    );
    let refused = store
        .commit(Change {
            rotation: Some(RotationWrite::Insert(r.clone())),
            escalation_policy: Some(EscalationPolicyWrite::Delete {
                id: p.id,
                expected_version: 1,
            }),
            audit: vec![entry()],
            ..Change::default()
        })
        .await;
    assert!(
        is_not_found(&refused),
        "deleting an unknown policy refuses the change: {refused:?}"
    );
    assert_eq!(store.get_rotation(r.id).await.expect("get"), None);
    assert_eq!(store.get_escalation_policy(p.id).await.expect("get"), None);
    assert_eq!(
        store.get_schedule(kept.id).await.expect("get"),
        Some(kept.clone())
    );
    assert!(first_audit_entries(store).await.is_empty());

    let mut s = service("with policy", at(3));
    s.escalation_policy_id = Some(p.id);
    let mut renamed = kept.clone();
    renamed.name = "renamed".into();
    renamed.version = 2;
    commit(
        store,
        Change {
            rotation: Some(RotationWrite::Insert(r.clone())),
            schedule: Some(ScheduleWrite::Update {
                schedule: renamed.clone(),
                expected_version: 1,
            }),
            escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
            service: Some(ServiceWrite::Insert(s.clone())),
            audit: vec![entry()],
            ..Change::default()
        },
    )
    .await;
    assert_eq!(store.get_rotation(r.id).await.expect("get"), Some(r));
    assert_eq!(
        store.get_escalation_policy(p.id).await.expect("get"),
        Some(p)
    );
    assert_eq!(
        store.get_schedule(kept.id).await.expect("get"),
        Some(renamed)
    );
    assert_eq!(store.get_service(s.id).await.expect("get"), Some(s));
    assert_eq!(first_audit_entries(store).await.len(), 1);
}
