//! SLA scenarios through the engine on the SQL stores, on a manual clock: hold
//! and resume move the deadline by the time on hold, acknowledging stops
//! escalation, a priority change moves the deadline, and each step is recorded
//! once however often the monitor sweeps.

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::sync::Arc;
use std::time::Duration;

use imas_core::auth::JwtKeys;
use imas_core::engine::{IncidentPatch, NewIncident};
use imas_core::model::{AuditAction, AuditFilter, PageRequest, Priority, Role, Status};
use imas_core::ports::{Change, ManualClock, Store, UserWrite};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{t0, user};
use imas_core::{Engine, Principal};
use imas_store_sqlx::{PostgresStore, SqliteStore};

async fn stores() -> Vec<(&'static str, Arc<dyn Store>)> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("engine-{}.db", uuid::Uuid::new_v4()));
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

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_rules_hold_on_the_sql_stores() {
    for (name, store) in stores().await {
        let clock = ManualClock::new(t0());
        let engine = Engine::builder(store.clone())
            .clock(Arc::new(clock.clone()))
            .jwt_keys(JwtKeys::new(&[3u8; 32], Duration::from_secs(3600)).expect("keys"))
            .build()
            .expect("engine");
        let (admin, eng) = (user("root", Role::Admin), user("eng", Role::Engineer));
        for u in [&admin, &eng] {
            store
                .commit(Change {
                    user: Some(UserWrite::Insert(u.clone())),
                    ..Change::default()
                })
                .await
                .expect("user");
        }
        let root = Principal {
            id: admin.id,
            role: Role::Admin,
        };
        let new = |title: &str, p: Priority| NewIncident {
            title: title.into(),
            priority: Some(p),
            assigned_to: Some(eng.id),
            ..Default::default()
        };
        let held = engine
            .create_incident(&root, new("held", Priority::High))
            .await
            .expect("create");
        let acked = engine
            .create_incident(&root, new("acked", Priority::Critical))
            .await
            .expect("create");
        let raised = engine
            .create_incident(&root, new("raised", Priority::Low))
            .await
            .expect("create");

        // Hold for two hours: the deadline moves by exactly that.
        clock.advance(mins(30));
        engine
            .change_status(&root, held.id, Status::OnHold)
            .await
            .expect("hold");
        engine
            .update_incident(
                &root,
                raised.id,
                IncidentPatch {
                    priority: Some(Priority::Critical),
                    ..Default::default()
                },
                None,
            )
            .await
            .expect("raise");
        clock.advance(mins(31)); // 61 minutes: critical ones breached
        for _ in 0..3 {
            engine.sweep_all().await.expect("sweep");
        }
        engine
            .change_status(&root, acked.id, Status::Acknowledged)
            .await
            .expect("ack");
        clock.advance(mins(89)); // 150 minutes
        engine
            .change_status(&root, held.id, Status::InProgress)
            .await
            .expect("resume");
        clock.advance(mins(60)); // 210 minutes: past any level-2 time
        for _ in 0..3 {
            engine.sweep_all().await.expect("sweep");
        }

        let held = engine.get_incident(&root, held.id).await.expect("get");
        assert_eq!(
            held.sla_deadline,
            held.created_at + chrono::Duration::hours(6),
            "{name}: 4 h + 2 h on hold"
        );
        assert!(
            !held.sla_breached,
            "{name}: the hold kept it within its SLA"
        );
        let acked = engine.get_incident(&root, acked.id).await.expect("get");
        assert!(acked.sla_breached, "{name}");
        assert_eq!(
            acked.escalation_level, 1,
            "{name}: acknowledged before level 2, so no level 2"
        );
        let raised = engine.get_incident(&root, raised.id).await.expect("get");
        assert_eq!(
            raised.sla_deadline,
            raised.created_at + chrono::Duration::hours(1),
            "{name}: moved by the priority"
        );
        assert!(
            raised.sla_breached && raised.escalation_level == 2,
            "{name}: breached and escalated twice"
        );
        let breaches = store
            .list_audit(
                &AuditFilter {
                    action: Some(AuditAction::SlaBreach),
                    ..Default::default()
                },
                PageRequest::first(50),
            )
            .await
            .expect("audit");
        assert_eq!(
            breaches.items.len(),
            2,
            "{name}: one SLA_BREACH for each breached incident"
        );
    }
}

/// People on call through the engine on the SQL stores: what the engine writes
/// (a rotation with its start truncated, a schedule, an override added by a
/// versioned update, a policy, a service using it, a profile) reads back
/// through it and answers who is on call; a used policy's delete is a
/// Conflict and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_call_through_the_engine_on_the_sql_stores() {
    use imas_core::error::Error;
    use imas_core::model::{
        ClockTime, EscalationStep, NewEscalationPolicy, NewOverride, NewRotation, NewSchedule,
        NewService, PolicyTarget, ProfilePatch, RotationType, RuleTarget, ScheduleRule, Weekdays,
    };
    for (name, store) in stores().await {
        let clock = ManualClock::new(t0());
        let engine = Engine::builder(store.clone())
            .clock(Arc::new(clock.clone()))
            .jwt_keys(JwtKeys::new(&[3u8; 32], Duration::from_secs(3600)).expect("keys"))
            .build()
            .expect("engine");
        let admin = user("root", Role::Admin);
        let (ann, ben) = (user("ann", Role::Engineer), user("ben", Role::Engineer));
        for u in [&admin, &ann, &ben] {
            store
                .commit(Change {
                    user: Some(UserWrite::Insert(u.clone())),
                    ..Change::default()
                })
                .await
                .expect("user");
        }
        let root = Principal {
            id: admin.id,
            role: Role::Admin,
        };
        let rotation = engine
            .create_rotation(
                &root,
                NewRotation {
                    name: "backend".into(),
                    description: String::new(),
                    kind: RotationType::Weekly,
                    shift_length: Some(1),
                    start: t0() + chrono::Duration::seconds(42),
                    time_zone: Some("Europe/Berlin".into()),
                    participants: vec![ann.id, ben.id],
                },
            )
            .await
            .expect("rotation");
        assert_eq!(
            rotation.start,
            t0(),
            "{name}: start truncated to the minute"
        );
        assert_eq!(
            engine.get_rotation(&root, rotation.id).await.expect("get"),
            rotation,
            "{name}"
        );
        let all_day = ClockTime::new(0, 0).expect("00:00");
        let schedule = engine
            .create_schedule(
                &root,
                NewSchedule {
                    name: "primary".into(),
                    description: String::new(),
                    time_zone: Some("Europe/Berlin".into()),
                    rules: vec![ScheduleRule {
                        target: RuleTarget::Rotation { id: rotation.id },
                        start: all_day,
                        end: all_day,
                        weekdays: Weekdays::ALL,
                    }],
                },
            )
            .await
            .expect("schedule");
        let on_call = |at| {
            let (engine, root, id) = (&engine, &root, schedule.id);
            async move {
                engine
                    .schedule_on_call(root, id, Some(at))
                    .await
                    .expect("on call")
                    .users
                    .into_iter()
                    .map(|u| u.id)
                    .collect::<Vec<_>>()
            }
        };
        let noon = t0() + chrono::Duration::hours(12);
        assert_eq!(on_call(noon).await, vec![ann.id], "{name}");
        engine
            .add_override(
                &root,
                schedule.id,
                NewOverride {
                    start: t0(),
                    end: t0() + chrono::Duration::days(1),
                    add_user_id: Some(ben.id),
                    remove_user_id: Some(ann.id),
                },
            )
            .await
            .expect("override");
        assert_eq!(on_call(noon).await, vec![ben.id], "{name}: the override");
        let stored = engine.get_schedule(&root, schedule.id).await.expect("get");
        assert_eq!(
            (stored.overrides.len(), stored.version),
            (1, 2),
            "{name}: the override is a versioned update of its schedule"
        );

        let policy = engine
            .create_escalation_policy(
                &root,
                NewEscalationPolicy {
                    name: "paging".into(),
                    description: String::new(),
                    repeat: None,
                    steps: vec![EscalationStep {
                        delay_minutes: 5,
                        targets: vec![PolicyTarget::Schedule { id: schedule.id }],
                    }],
                },
            )
            .await
            .expect("policy");
        let service = engine
            .create_service(
                &root,
                NewService {
                    name: "checkout".into(),
                    description: String::new(),
                    auto_resolve: None,
                    escalation_policy_id: Some(policy.id),
                    ack_timeout_seconds: Some(900),
                },
            )
            .await
            .expect("service");
        assert_eq!(
            engine.get_service(&root, service.id).await.expect("get"),
            service,
            "{name}"
        );
        let r = engine.delete_escalation_policy(&root, policy.id).await;
        assert!(matches!(r, Err(Error::Conflict { .. })), "{name}: {r:?}");
        assert_eq!(
            engine
                .get_escalation_policy(&root, policy.id)
                .await
                .expect("kept"),
            policy,
            "{name}"
        );

        let me = Principal {
            id: ann.id,
            role: Role::Engineer,
        };
        let updated = engine
            .update_me(
                &me,
                ProfilePatch {
                    time_zone: Some("America/New_York".into()),
                    ..ProfilePatch::default()
                },
            )
            .await
            .expect("profile");
        assert_eq!(updated.time_zone, chrono_tz::America::New_York, "{name}");
        assert_eq!(engine.me(&me).await.expect("me"), updated, "{name}");
    }
}
