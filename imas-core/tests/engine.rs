//! Engine scenarios on a manual clock: breach exactly once, at-risk exactly once,
//! escalation levels at the right times, stop on acknowledge, pauses, priority
//! changes, response targets, manual escalation, validation, notifications.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{mins, world, world_on, world_with};
use imas_core::engine::{IncidentPatch, NewIncident, NewUser};
use imas_core::escalation::{EscalationLevel, SlaEscalation, Target};
use imas_core::memory::MemoryStore;
use imas_core::model::{
    AuditAction, IncidentFilter, NotificationType, PageRequest, Priority, Role, Status,
};
use imas_core::ports::{IncidentStore, OutboxStore};
use imas_core::sla::SlaPolicy;
use imas_core::{EngineConfig, Error};

fn titled(title: &str, priority: Priority) -> NewIncident {
    NewIncident {
        title: title.into(),
        priority: Some(priority),
        ..Default::default()
    }
}

#[tokio::test]
async fn breach_is_recorded_exactly_once_after_one_at_risk_warning() {
    let w = world();
    let reporter = w.user("rep", Role::Engineer).await;
    let eng = w.user("eng", Role::Engineer).await;
    let mut input = titled("API down", Priority::Critical);
    input.assigned_to = Some(eng.id);
    let inc = w
        .engine
        .create_incident(&reporter, input)
        .await
        .expect("create");
    assert_eq!(
        inc.sla_deadline,
        w.engine.clock().now() + chrono::Duration::hours(1)
    );
    let id = inc.id.to_string();

    // Acknowledge the response target so only the resolution SLA speaks.
    w.advance(mins(47));
    w.tick().await;
    assert!(
        w.notes_of(eng.id, NotificationType::Warning)
            .await
            .iter()
            .all(|n| !n.message.contains("at risk"))
    );
    w.advance(mins(1)); // 48 minutes: 80% of one hour
    w.tick().await;
    w.tick().await;
    let warnings: Vec<_> = w
        .notes_of(eng.id, NotificationType::Warning)
        .await
        .into_iter()
        .filter(|n| n.message.contains("at risk"))
        .collect();
    assert_eq!(warnings.len(), 1, "exactly one at-risk warning");
    assert_eq!(w.audit_count(AuditAction::SlaAtRisk, &id).await, 1);

    w.advance(Duration::from_millis(12 * 60_000 - 1));
    w.tick().await;
    assert!(
        !w.engine
            .get_incident(&eng, inc.id)
            .await
            .expect("get")
            .sla_breached,
        "not before the deadline"
    );
    w.advance(Duration::from_millis(1));
    for _ in 0..5 {
        w.tick().await;
    }
    let after = w.engine.get_incident(&eng, inc.id).await.expect("get");
    assert!(after.sla_breached);
    assert_eq!(after.breached_at, Some(w.engine.clock().now()));
    assert_eq!(after.escalation_level, 1, "the breach is level 1");
    assert_eq!(w.audit_count(AuditAction::SlaBreach, &id).await, 1);
    let esc = w.notes_of(eng.id, NotificationType::Escalation).await;
    assert_eq!(esc.len(), 1, "exactly one escalation notification");
    assert!(
        esc[0].message.contains("SLA violated for \"API down\""),
        "{}",
        esc[0].message
    );
    assert_eq!(esc[0].incident_id, Some(inc.id));
    assert!(
        w.notes(reporter.id).await.is_empty(),
        "the reporter is not a target"
    );

    w.advance(mins(10));
    w.tick().await;
    assert_eq!(
        w.audit_count(AuditAction::SlaBreach, &id).await,
        1,
        "still once later"
    );
    assert_eq!(
        w.notes_of(eng.id, NotificationType::Escalation).await.len(),
        1
    );
}

#[tokio::test]
async fn escalation_levels_fire_at_their_times_and_stop_on_acknowledge() {
    let w = world();
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let admin2 = w.user("admin2", Role::Admin).await;
    let mut a = titled("first", Priority::Critical);
    a.assigned_to = Some(eng.id);
    let a = w.engine.create_incident(&root, a).await.expect("a");
    let mut b = titled("second", Priority::Critical);
    b.assigned_to = Some(eng.id);
    let b = w.engine.create_incident(&root, b).await.expect("b");

    w.advance(mins(60));
    w.tick().await;
    for id in [a.id, b.id] {
        assert_eq!(
            w.engine
                .get_incident(&root, id)
                .await
                .expect("get")
                .escalation_level,
            1
        );
    }
    // b is acknowledged ten minutes after the breach.
    w.advance(mins(10));
    w.engine
        .change_status(&eng, b.id, Status::Acknowledged)
        .await
        .expect("ack");
    w.advance(Duration::from_millis(20 * 60_000 - 1));
    w.tick().await;
    assert_eq!(
        w.engine
            .get_incident(&root, a.id)
            .await
            .expect("get")
            .escalation_level,
        1,
        "not before 30 minutes"
    );
    w.advance(Duration::from_millis(1));
    w.tick().await;
    w.tick().await;
    let a_now = w.engine.get_incident(&root, a.id).await.expect("get");
    assert_eq!(
        a_now.escalation_level, 2,
        "level 2 thirty minutes after level 1"
    );
    assert_eq!(a_now.escalated_at, Some(w.engine.clock().now()));
    assert_eq!(
        w.engine
            .get_incident(&root, b.id)
            .await
            .expect("get")
            .escalation_level,
        1,
        "acknowledged: stopped"
    );
    for admin in [root.id, admin2.id] {
        let esc = w.notes_of(admin, NotificationType::Escalation).await;
        assert_eq!(
            esc.len(),
            1,
            "each admin gets level 2 of the unacknowledged incident once"
        );
        assert!(esc[0].message.contains("level 2") && esc[0].message.contains("first"));
    }
    assert_eq!(
        w.audit_count(AuditAction::Escalation, &a.id.to_string())
            .await,
        2
    );
    w.advance(mins(600));
    w.tick().await;
    assert_eq!(
        w.engine
            .get_incident(&root, a.id)
            .await
            .expect("get")
            .escalation_level,
        2,
        "no level past the policy"
    );
    let listed = w
        .engine
        .list_escalations(&root, PageRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    w.engine
        .change_status(&root, b.id, Status::Closed)
        .await
        .expect("close");
    let listed = w
        .engine
        .list_escalations(&root, PageRequest::default())
        .await
        .expect("list");
    assert_eq!(
        listed.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![a.id],
        "closed ones are not listed"
    );
}

#[tokio::test]
async fn repeated_levels_and_delayed_level_one() {
    let policy = SlaEscalation::new(
        vec![
            EscalationLevel {
                delay: mins(5),
                targets: vec![Target::Assignee],
            },
            EscalationLevel {
                delay: mins(10),
                targets: vec![Target::Role(Role::Admin)],
            },
        ],
        2,
    )
    .expect("policy");
    let w = world_with(EngineConfig {
        escalation: policy,
        ..Default::default()
    });
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let mut input = titled("slow burn", Priority::Critical);
    input.assigned_to = Some(eng.id);
    let inc = w
        .engine
        .create_incident(&root, input)
        .await
        .expect("create");
    w.advance(mins(60));
    w.tick().await;
    let now = w.engine.get_incident(&root, inc.id).await.expect("get");
    assert!(now.sla_breached);
    assert_eq!(now.escalation_level, 0, "level 1 waits for its delay");
    assert_eq!(
        w.notes_of(eng.id, NotificationType::Escalation).await.len(),
        1,
        "the breach itself notifies level 1's targets"
    );
    let expected = [(5, 1), (10, 2), (10, 3), (10, 4)];
    for (delay, level) in expected {
        w.advance(mins(delay));
        w.tick().await;
        assert_eq!(
            w.engine
                .get_incident(&root, inc.id)
                .await
                .expect("get")
                .escalation_level,
            level
        );
    }
    w.advance(mins(100));
    w.tick().await;
    assert_eq!(
        w.engine
            .get_incident(&root, inc.id)
            .await
            .expect("get")
            .escalation_level,
        4,
        "two repeats, then stop"
    );
    assert_eq!(
        w.notes_of(root.id, NotificationType::Escalation)
            .await
            .len(),
        3,
        "levels 2, 3 and 4 notify admins"
    );
}

#[tokio::test]
async fn unassigned_breaches_notify_every_engineer() {
    let w = world();
    let user = w.user("reporter", Role::User).await;
    let e1 = w.user("eng1", Role::Engineer).await;
    let e2 = w.user("eng2", Role::Engineer).await;
    w.engine
        .create_incident(&user, titled("nobody's", Priority::High))
        .await
        .expect("create");
    w.advance(Duration::from_secs(4 * 3600));
    w.tick().await;
    for e in [e1.id, e2.id] {
        assert_eq!(w.notes_of(e, NotificationType::Escalation).await.len(), 1);
        // And the response-target warning and the at-risk warning before it.
        assert_eq!(w.notes_of(e, NotificationType::Warning).await.len(), 2);
    }
}

#[tokio::test]
async fn hold_pauses_the_sla_and_resume_moves_the_deadline() {
    let w = world();
    let eng = w.user("eng", Role::Engineer).await;
    let inc = w
        .engine
        .create_incident(&eng, titled("waiting on vendor", Priority::High))
        .await
        .expect("create");
    let deadline = inc.sla_deadline;
    w.advance(mins(30));
    w.engine
        .change_status(&eng, inc.id, Status::OnHold)
        .await
        .expect("hold");
    w.advance(Duration::from_secs(10 * 3600)); // far past the original deadline
    w.tick().await;
    let held = w.engine.get_incident(&eng, inc.id).await.expect("get");
    assert!(!held.sla_breached, "no breach while on hold");
    assert_eq!(held.next_due_at, None, "nothing is due while on hold");
    let resumed = w
        .engine
        .change_status(&eng, inc.id, Status::InProgress)
        .await
        .expect("resume");
    assert_eq!(
        resumed.sla_deadline,
        deadline + chrono::Duration::hours(10),
        "moved by the time on hold"
    );
    let violations = w
        .engine
        .list_violations(&eng, PageRequest::default())
        .await
        .expect("violations");
    assert_eq!(violations.total, 0);
    w.advance(Duration::from_secs(3 * 3600 + 30 * 60));
    w.tick().await;
    assert!(
        w.engine
            .get_incident(&eng, inc.id)
            .await
            .expect("get")
            .sla_breached,
        "breached at the moved deadline"
    );
}

#[tokio::test]
async fn priority_changes_move_the_deadline_and_rearm_the_warning() {
    let w = world();
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let mut input = titled("creeping", Priority::Low);
    input.assigned_to = Some(eng.id);
    let inc = w
        .engine
        .create_incident(&root, input)
        .await
        .expect("create");
    w.advance(mins(30));
    let raised = w
        .engine
        .update_incident(
            &root,
            inc.id,
            IncidentPatch {
                priority: Some(Priority::Critical),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("raise");
    assert_eq!(
        raised.sla_deadline,
        inc.created_at + chrono::Duration::hours(1)
    );
    assert_eq!(raised.sla_target_ms, 3_600_000);
    w.advance(mins(30));
    w.tick().await;
    assert!(
        w.engine
            .get_incident(&root, inc.id)
            .await
            .expect("get")
            .sla_breached,
        "breached at the new, earlier deadline"
    );

    // assign-sla (admin) does the same with an audit entry.
    let other = w
        .engine
        .create_incident(&root, titled("other", Priority::Critical))
        .await
        .expect("create");
    let moved = w
        .engine
        .assign_sla(&root, other.id, Priority::Low)
        .await
        .expect("assign");
    assert_eq!(
        moved.sla_deadline,
        other.created_at + chrono::Duration::hours(48)
    );
    assert_eq!(moved.priority, Priority::Low);
    assert_eq!(
        w.audit_count(AuditAction::SlaAssigned, &other.id.to_string())
            .await,
        1
    );
}

#[tokio::test]
async fn missed_response_target_warns_once_without_escalating() {
    let w = world();
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let mut input = titled("quiet", Priority::Medium);
    input.assigned_to = Some(eng.id);
    let inc = w
        .engine
        .create_incident(&root, input)
        .await
        .expect("create");
    w.advance(Duration::from_secs(4 * 3600));
    w.tick().await;
    w.tick().await;
    let now = w.engine.get_incident(&root, inc.id).await.expect("get");
    assert!(now.response_breached_at.is_some());
    assert_eq!(
        now.escalation_level, 0,
        "a missed response does not escalate"
    );
    assert_eq!(
        w.audit_count(AuditAction::SlaResponseBreach, &inc.id.to_string())
            .await,
        1
    );
    let warnings = w.notes_of(eng.id, NotificationType::Warning).await;
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].message.contains("Response target missed"));

    // Acknowledged in time: no response breach.
    let quick = w
        .engine
        .create_incident(&root, titled("quick", Priority::Medium))
        .await
        .expect("create");
    w.engine
        .change_status(&eng, quick.id, Status::Acknowledged)
        .await
        .expect("ack");
    w.advance(Duration::from_secs(5 * 3600));
    w.tick().await;
    assert_eq!(
        w.engine
            .get_incident(&root, quick.id)
            .await
            .expect("get")
            .response_breached_at,
        None
    );
}

#[tokio::test]
async fn manual_escalation() {
    let w = world();
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let mut input = titled("needs eyes", Priority::Low);
    input.assigned_to = Some(eng.id);
    let inc = w
        .engine
        .create_incident(&root, input)
        .await
        .expect("create");
    let one = w
        .engine
        .escalate_manually(&root, inc.id, Some("customer called".into()))
        .await
        .expect("escalate");
    assert_eq!(one.escalation_level, 1);
    let two = w
        .engine
        .escalate_manually(&root, inc.id, None)
        .await
        .expect("escalate");
    assert_eq!(two.escalation_level, 2);
    w.tick().await;
    let esc = w.notes_of(eng.id, NotificationType::Escalation).await;
    assert_eq!(esc.len(), 1, "level 1 notifies the assignee");
    assert!(esc[0].message.contains("customer called"));
    assert_eq!(
        w.notes_of(root.id, NotificationType::Escalation)
            .await
            .len(),
        1,
        "level 2 notifies admins"
    );
    assert_eq!(
        w.audit_count(AuditAction::Escalation, &inc.id.to_string())
            .await,
        2
    );
    w.engine
        .change_status(&root, inc.id, Status::Closed)
        .await
        .expect("close");
    let e = w
        .engine
        .escalate_manually(&root, inc.id, None)
        .await
        .expect_err("closed");
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    let e = w
        .engine
        .escalate_manually(&root, inc.id, Some("x".repeat(1001)))
        .await
        .expect_err("long");
    assert!(
        matches!(e, Error::Validation { ref field, .. } if field == "reason"),
        "{e}"
    );
}

#[tokio::test]
async fn violations_count_recorded_and_pending_breaches() {
    let w = world();
    let root = w.root().await;
    for n in 0..3 {
        w.engine
            .create_incident(&root, titled(&format!("c{n}"), Priority::Critical))
            .await
            .expect("create");
    }
    w.engine
        .create_incident(&root, titled("slow", Priority::Low))
        .await
        .expect("create");
    w.advance(mins(61));
    let before = w
        .engine
        .list_violations(&root, PageRequest::default())
        .await
        .expect("violations");
    assert_eq!(
        (before.total, before.notified, before.skipped),
        (3, 0, 3),
        "past due, not yet recorded"
    );
    w.tick().await;
    let after = w
        .engine
        .list_violations(&root, PageRequest::default())
        .await
        .expect("violations");
    assert_eq!((after.total, after.notified, after.skipped), (3, 3, 0));
    assert_eq!(after.page.items.len(), 3);
    let one = after.page.items[0].id;
    w.engine
        .change_status(&root, one, Status::Resolved)
        .await
        .expect("resolve");
    assert_eq!(
        w.engine
            .list_violations(&root, PageRequest::default())
            .await
            .expect("v")
            .total,
        2
    );
}

#[tokio::test]
async fn validation_names_the_field_and_changes_nothing() {
    let w = world();
    let eng = w.user("eng", Role::Engineer).await;
    let cases: Vec<(NewIncident, &str)> = vec![
        (
            NewIncident {
                title: String::new(),
                ..Default::default()
            },
            "title",
        ),
        (
            NewIncident {
                title: "   ".into(),
                ..Default::default()
            },
            "title",
        ),
        (
            NewIncident {
                title: "x".repeat(201),
                ..Default::default()
            },
            "title",
        ),
        (
            NewIncident {
                title: "ok".into(),
                description: Some("d".repeat(10_001)),
                ..Default::default()
            },
            "description",
        ),
        (
            NewIncident {
                title: "ok".into(),
                assigned_to: Some(imas_core::model::UserId::new()),
                ..Default::default()
            },
            "assignedTo",
        ),
    ];
    for (input, field) in cases {
        let e = w
            .engine
            .create_incident(&eng, input)
            .await
            .expect_err(field);
        assert!(
            matches!(&e, Error::Validation { field: f, .. } if f == field),
            "{field}: {e}"
        );
    }
    assert_eq!(
        w.engine
            .create_incident(
                &eng,
                NewIncident {
                    title: "é".repeat(200),
                    ..Default::default()
                }
            )
            .await
            .map(|i| i.title.chars().count())
            .expect("200 chars"),
        200
    );
    let listed = w
        .engine
        .list_incidents(&eng, &IncidentFilter::default(), PageRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1, "refused input wrote nothing");
    for limit in [0, 501] {
        let e = w
            .engine
            .list_incidents(&eng, &IncidentFilter::default(), PageRequest::first(limit))
            .await
            .expect_err("limit");
        assert!(matches!(&e, Error::Validation { field, .. } if field == "limit"));
    }

    let user = |name: &str, username: &str, email: &str, password: &str| NewUser {
        name: name.into(),
        username: username.into(),
        email: email.into(),
        password: password.into(),
    };
    let bad = [
        (user("", "okname", "a@b.co", "tulip kettle 42"), "name"),
        (user("N", "ab", "a@b.co", "tulip kettle 42"), "username"),
        (
            user("N", "has space", "a@b.co", "tulip kettle 42"),
            "username",
        ),
        (
            user("N", "okname", "not-an-email", "tulip kettle 42"),
            "email",
        ),
        (user("N", "okname", "a@b", "tulip kettle 42"), "email"),
        (user("N", "okname", "a@b.co", "short"), "password"),
    ];
    for (input, field) in bad {
        let e = w.engine.register(input).await.expect_err(field);
        assert!(
            matches!(&e, Error::Validation { field: f, .. } if f == field),
            "{field}: {e}"
        );
    }
    let (u, token) = w
        .engine
        .register(user("Ada", "ada", "Ada@Example.COM", "tulip kettle 42"))
        .await
        .expect("register");
    assert_eq!((u.role, u.email.as_str()), (Role::User, "ada@example.com"));
    assert!(!token.is_empty());
    let e = w
        .engine
        .register(user("Ada", "ada", "other@example.com", "tulip kettle 42"))
        .await
        .expect_err("taken");
    assert!(matches!(e, Error::Conflict { .. }));
    let e = w
        .engine
        .register(user("Ada", "ada2", "ADA@example.com", "tulip kettle 42"))
        .await
        .expect_err("taken");
    assert!(
        matches!(e, Error::Conflict { .. }),
        "emails compare case-insensitively"
    );
}

#[tokio::test]
async fn stale_versions_are_conflicts() {
    let w = world();
    let eng = w.user("eng", Role::Engineer).await;
    let inc = w
        .engine
        .create_incident(&eng, titled("v", Priority::Low))
        .await
        .expect("create");
    let patch = IncidentPatch {
        title: Some("v2".into()),
        ..Default::default()
    };
    w.engine
        .update_incident(&eng, inc.id, patch.clone(), Some(1))
        .await
        .expect("v1");
    let e = w
        .engine
        .update_incident(&eng, inc.id, patch, Some(1))
        .await
        .expect_err("stale");
    assert!(matches!(e, Error::Conflict { .. }));
}

#[tokio::test]
async fn delete_keeps_the_audit_trail_and_assignments_notify() {
    let w = world();
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let inc = w
        .engine
        .create_incident(&root, titled("doomed", Priority::Low))
        .await
        .expect("create");
    w.engine
        .update_incident(
            &root,
            inc.id,
            IncidentPatch {
                assigned_to: Some(Some(eng.id)),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("assign");
    w.tick().await;
    let info = w.notes_of(eng.id, NotificationType::Info).await;
    assert_eq!(info.len(), 1);
    assert!(info[0].message.contains("doomed"));
    w.engine
        .delete_incident(&root, inc.id)
        .await
        .expect("delete");
    assert!(matches!(
        w.engine.get_incident(&root, inc.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.engine.delete_incident(&root, inc.id).await,
        Err(Error::NotFound { .. })
    ));
    let id = inc.id.to_string();
    assert_eq!(w.audit_count(AuditAction::IncidentCreated, &id).await, 1);
    assert_eq!(w.audit_count(AuditAction::IncidentUpdated, &id).await, 1);
    assert_eq!(w.audit_count(AuditAction::IncidentDeleted, &id).await, 1);
}

#[tokio::test]
async fn notifications_are_private_and_marked_read_by_their_owner() {
    let w = world();
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let other = w.user("other", Role::Engineer).await;
    let mut input = titled("for eng", Priority::Low);
    input.assigned_to = Some(eng.id);
    w.engine
        .create_incident(&root, input)
        .await
        .expect("create");
    w.tick().await;
    let mine = w
        .engine
        .list_notifications(&eng, PageRequest::default())
        .await
        .expect("list");
    assert_eq!(mine.items.len(), 1);
    assert!(
        w.engine
            .list_notifications(&other, PageRequest::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let id = mine.items[0].id;
    let e = w
        .engine
        .mark_notification_read(&other, id)
        .await
        .expect_err("not theirs");
    assert!(matches!(e, Error::NotFound { .. }));
    assert!(
        w.engine
            .mark_notification_read(&eng, id)
            .await
            .expect("mark")
            .read
    );
}

#[tokio::test]
async fn two_engines_on_one_store_record_each_breach_once() {
    let shared = Arc::new(MemoryStore::new());
    let clock = imas_core::ports::ManualClock::new(imas_core::testkit::store::t0());
    let config = EngineConfig {
        sweep_batch: 7,
        ..Default::default()
    };
    let a = world_on(shared.clone(), clock.clone(), config.clone());
    let b = world_on(shared.clone(), clock.clone(), config);
    let root = a.root().await;
    let eng = a.user("eng", Role::Engineer).await;
    let mut ids = Vec::new();
    for n in 0..50 {
        let mut input = titled(&format!("inc {n}"), Priority::Critical);
        input.assigned_to = Some(eng.id);
        ids.push(
            a.engine
                .create_incident(&root, input)
                .await
                .expect("create")
                .id,
        );
    }
    clock.advance(mins(61));
    let (ra, rb) = tokio::join!(a.engine.sweep_all(), b.engine.sweep_all());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(
        ra.breaches + rb.breaches,
        50,
        "every breach recorded once across both"
    );
    let (fa, fb) = tokio::join!(
        a.engine.flush_notifications(),
        b.engine.flush_notifications()
    );
    fa.expect("a");
    fb.expect("b");
    for id in &ids {
        assert_eq!(
            a.audit_count(AuditAction::SlaBreach, &id.to_string()).await,
            1
        );
    }
    assert_eq!(
        a.notes_of(eng.id, NotificationType::Escalation).await.len(),
        50
    );
}

#[tokio::test]
async fn a_lost_queue_job_is_published_again_and_delivered_once() {
    let w = world();
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let mut input = titled("lost", Priority::Low);
    input.assigned_to = Some(eng.id);
    w.engine
        .create_incident(&root, input)
        .await
        .expect("create");
    assert_eq!(w.engine.relay_step().await.expect("relay"), 1);
    // The queue loses the job (a Redis restart without persistence, say): drain
    // and drop it without delivering.
    let lost = w
        .engine
        .queue()
        .reserve(10, Duration::from_secs(3600))
        .await
        .expect("reserve");
    assert_eq!(lost.len(), 1);
    for job in &lost {
        w.engine.queue().ack(job).await.expect("drop");
    }
    w.engine.flush_notifications().await.expect("flush");
    assert!(w.notes(eng.id).await.is_empty(), "lost for now");
    assert_eq!(
        w.store.pending_outbox().await.expect("pending"),
        1,
        "but still in the outbox"
    );
    w.advance(w.engine.config().outbox_lease);
    w.engine.flush_notifications().await.expect("flush");
    assert_eq!(
        w.notes(eng.id).await.len(),
        1,
        "published again and delivered"
    );
    assert_eq!(w.store.pending_outbox().await.expect("pending"), 0);
    // A duplicate delivery of the same intent is absorbed by its key.
    let delivered = &w.notes(eng.id).await[0];
    let again = imas_core::model::NotificationIntent {
        key: delivered.key.clone(),
        user: eng.id,
        message: "again".into(),
        kind: NotificationType::Info,
        incident_id: None,
        created_at: w.engine.clock().now(),
    };
    let payload = serde_json::to_value(again).expect("json");
    w.engine
        .queue()
        .enqueue(vec![imas_core::ports::NewJob::new("dup", payload)])
        .await
        .expect("enqueue");
    let r = w.engine.flush_notifications().await.expect("flush");
    assert_eq!((r.delivered, r.duplicates), (0, 1));
    assert_eq!(w.notes(eng.id).await.len(), 1);
}

#[tokio::test]
async fn a_poison_job_is_dead_lettered_and_the_rest_flow() {
    let w = world();
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    w.engine
        .queue()
        .enqueue(vec![imas_core::ports::NewJob::new(
            "poison",
            serde_json::json!({"not": "an intent"}),
        )])
        .await
        .expect("enqueue");
    let mut input = titled("fine", Priority::Low);
    input.assigned_to = Some(eng.id);
    w.engine
        .create_incident(&root, input)
        .await
        .expect("create");
    for _ in 0..20 {
        w.engine.flush_notifications().await.expect("flush");
        w.advance(Duration::from_secs(600));
    }
    assert_eq!(w.notes(eng.id).await.len(), 1);
    let dead = w.engine.queue().dead_letters(10).await.expect("dead");
    assert_eq!(
        dead.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        ["poison"]
    );
    assert!(dead[0].error.contains("job payload"));
}

#[tokio::test]
async fn sweeping_skips_incidents_changed_since_their_claim() {
    let w = world_with(EngineConfig {
        sla: SlaPolicy::default(),
        ..Default::default()
    });
    let root = w.root().await;
    let inc = w
        .engine
        .create_incident(&root, titled("race", Priority::Critical))
        .await
        .expect("create");
    w.advance(mins(61));
    // Another node claims it, then a user resolves it before that node commits.
    let claimed = w
        .store
        .claim_due(w.engine.clock().now(), Duration::from_secs(30), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    w.engine
        .change_status(&root, inc.id, Status::Resolved)
        .await
        .expect("resolve");
    w.tick().await;
    let now = w.engine.get_incident(&root, inc.id).await.expect("get");
    assert!(!now.sla_breached, "resolved before the breach was recorded");
    assert_eq!(now.next_due_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_wakes_for_a_new_incident_instead_of_waiting_for_its_poll() {
    // Real time here: the monitor's poll is a minute, so only the re-arm on the
    // new incident can make it act on a 300 ms SLA in time.
    let store = Arc::new(MemoryStore::new());
    let sla = SlaPolicy::default()
        .with_resolution(Priority::Critical, Duration::from_millis(300))
        .expect("sla");
    let engine = imas_core::Engine::builder(store.clone())
        .jwt_keys(
            imas_core::auth::JwtKeys::new(common::SECRET, Duration::from_secs(60)).expect("keys"),
        )
        .config(EngineConfig {
            sla,
            ..Default::default()
        })
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let monitor = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run_sla_monitor(Duration::from_secs(60), stop_rx)
                .await
        })
    };
    // Let the monitor finish its first sweep and go to sleep on a store with
    // nothing due (it exposes no "asleep" signal to wait for).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let inc = engine
        .create_incident(&root, titled("wake up", Priority::Critical))
        .await
        .expect("create");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = engine.get_incident(&root, inc.id).await.expect("get");
        if now.sla_breached {
            let late = now.breached_at.expect("at") - now.sla_deadline;
            assert!(
                late < chrono::Duration::seconds(1),
                "acted on within a second of the deadline ({late})"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the monitor never woke"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    monitor.await.expect("monitor");
}

#[tokio::test]
async fn a_user_holds_at_most_three_live_streams() {
    let w = world();
    let eng = w.user("eng", Role::Engineer).await;
    let other = w.user("other", Role::User).await;
    let mut open: Vec<_> = (0..3)
        .map(|_| w.engine.subscribe_notifications(&eng).expect("stream"))
        .collect();
    let refused = w.engine.subscribe_notifications(&eng).map(|_| ());
    assert!(
        matches!(refused, Err(Error::RateLimited { retry_after, .. }) if !retry_after.is_zero()),
        "{refused:?}"
    );
    let theirs = w
        .engine
        .subscribe_notifications(&other)
        .expect("another user");
    drop(open.pop());
    open.push(
        w.engine
            .subscribe_notifications(&eng)
            .expect("a place came back"),
    );
    assert!(w.engine.subscribe_notifications(&eng).is_err());
    drop(open);
    drop(theirs);
    let back: Vec<_> = (0..3)
        .map(|_| w.engine.subscribe_notifications(&eng).expect("all back"))
        .collect();
    assert_eq!(back.len(), 3);
}

/// A channel that refuses for good until told otherwise.
#[derive(Debug, Default)]
struct Gone {
    fixed: std::sync::atomic::AtomicBool,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl imas_core::ports::Channel for Gone {
    fn name(&self) -> &'static str {
        "gone"
    }
    async fn deliver(
        &self,
        _: &imas_core::model::Notification,
        _: Option<&imas_core::ports::Recipient>,
    ) -> imas_core::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        self.calls.fetch_add(1, SeqCst);
        if self.fixed.load(SeqCst) {
            Ok(())
        } else {
            Err(Error::undeliverable(
                "gone",
                "the endpoint answered 410 Gone",
            ))
        }
    }
}

#[tokio::test]
async fn an_undeliverable_notification_is_dead_lettered_at_once_and_redriven_by_an_admin() {
    use std::sync::atomic::Ordering::SeqCst;
    let channel = Arc::new(Gone::default());
    let w = common::world_with_channel(channel.clone());
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let mut input = titled("gone", Priority::Low);
    input.assigned_to = Some(eng.id);
    w.engine
        .create_incident(&root, input)
        .await
        .expect("create");
    let r = w.engine.flush_notifications().await.expect("flush");
    assert_eq!((r.failed, r.dead_lettered), (1, 1));
    assert_eq!(channel.calls.load(SeqCst), 1);
    assert_eq!(w.store.pending_outbox().await.expect("pending"), 0);
    // However long one waits, nothing publishes or retries it again.
    for _ in 0..5 {
        w.advance(Duration::from_secs(3600));
        let r = w.engine.flush_notifications().await.expect("flush");
        assert_eq!(r.jobs, 0);
    }
    assert_eq!(channel.calls.load(SeqCst), 1);
    let dead = w.engine.list_dead_letters(&root, 50).await.expect("list");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1);
    assert!(dead[0].error.contains("410"), "{}", dead[0].error);
    let key = dead[0].key.clone();

    assert!(matches!(
        w.engine.list_dead_letters(&eng, 50).await,
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        w.engine.redrive_dead_letter(&eng, &key).await,
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        w.engine.list_dead_letters(&root, 0).await,
        Err(Error::Validation { .. })
    ));
    assert!(matches!(
        w.engine.redrive_dead_letter(&root, "nope").await,
        Err(Error::NotFound { .. })
    ));

    channel.fixed.store(true, SeqCst);
    w.engine
        .redrive_dead_letter(&root, &key)
        .await
        .expect("redrive");
    let r = w.engine.flush_notifications().await.expect("flush");
    assert_eq!((r.jobs, r.failed, r.duplicates), (1, 0, 1));
    assert_eq!(channel.calls.load(SeqCst), 2);
    assert!(
        w.engine
            .list_dead_letters(&root, 50)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(w.notes(eng.id).await.len(), 1, "one in-app notification");
    let audit = w
        .engine
        .list_audit(
            &root,
            &imas_core::model::AuditFilter {
                action: Some(AuditAction::DeadLetterRedriven),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 1);
    assert_eq!(audit.items[0].target.as_deref(), Some(key.as_str()));
}

/// A channel that always fails in a way a retry might fix.
#[derive(Debug, Default)]
struct Down(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl imas_core::ports::Channel for Down {
    fn name(&self) -> &'static str {
        "down"
    }
    async fn deliver(
        &self,
        _: &imas_core::model::Notification,
        _: Option<&imas_core::ports::Recipient>,
    ) -> imas_core::Result<()> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(Error::backend("down", "connection refused"))
    }
}

#[tokio::test]
async fn a_transient_failure_retries_then_dead_letters_and_the_relay_stops() {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = imas_core::ports::ManualClock::new(imas_core::testkit::store::t0());
    let store = Arc::new(MemoryStore::new());
    let channel = Arc::new(Down::default());
    let retry = imas_core::ports::RetryPolicy {
        max_attempts: 3,
        base: Duration::from_secs(1),
        cap: Duration::from_secs(1),
    };
    let engine = imas_core::Engine::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .queue(Arc::new(imas_core::memory::MemoryQueue::new(
            Arc::new(clock.clone()),
            retry,
        )))
        .channel(channel.clone())
        .config(EngineConfig {
            outbox_lease: Duration::from_secs(60),
            ..Default::default()
        })
        .build()
        .expect("engine");
    let w = common::World {
        engine,
        clock,
        store,
    };
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    let mut input = titled("down", Priority::Low);
    input.assigned_to = Some(eng.id);
    w.engine
        .create_incident(&root, input)
        .await
        .expect("create");
    let first = w.engine.flush_notifications().await.expect("flush");
    assert_eq!(
        (first.failed, first.dead_lettered),
        (1, 0),
        "retried, not dead"
    );
    assert_eq!(w.store.pending_outbox().await.expect("pending"), 1);
    for _ in 0..2 {
        w.advance(Duration::from_secs(1));
        w.engine.flush_notifications().await.expect("flush");
    }
    assert_eq!(channel.0.load(SeqCst), 3, "three attempts");
    let dead = w.engine.list_dead_letters(&root, 10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(
        w.store.pending_outbox().await.expect("pending"),
        0,
        "the last attempt completes the outbox entry"
    );
    for _ in 0..5 {
        w.advance(Duration::from_secs(3600));
        assert_eq!(w.engine.flush_notifications().await.expect("flush").jobs, 0);
    }
    assert_eq!(channel.0.load(SeqCst), 3, "never republished");
}
