//! What the SQL store adds for people on call (issue 18), beyond the core's
//! conformance suites, on SQLite and on PostgreSQL (`DATABASE_URL`): the
//! foreign key that keeps a used escalation policy (a delete racing the
//! engine's check is a `Conflict`, whatever the order of the writes), whole
//! records (rules, overrides, steps, participants) read back exactly through
//! both read paths (a point read and a page), and a profile update moving the
//! other node's users generation (PostgreSQL's change feed).

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::sync::Arc;
use std::time::Duration;

use imas_core::error::Error;
use imas_core::model::{
    ClockTime, EscalationPolicy, EscalationPolicyId, EscalationStep, Override, OverrideId,
    PageRequest, PolicyTarget, Role, Rotation, RotationId, RotationType, RuleTarget, Schedule,
    ScheduleId, ScheduleRule, Service, Status, UserId, Weekday, Weekdays,
};
use imas_core::ports::{
    Change, EscalationPolicyWrite, IncidentWrite, RotationWrite, ScheduleWrite, ServiceWrite,
    Store, UserWrite,
};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{at, incident, t0, user};
use imas_store_sqlx::{PostgresStore, SqliteStore};

async fn sqlite() -> Arc<dyn Store> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("oncall-{}.db", uuid::Uuid::new_v4()));
    Arc::new(
        SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect"),
    )
}

fn schema() -> String {
    format!("imas_test_{}", uuid::Uuid::new_v4().simple())
}

async fn postgres() -> Option<Arc<dyn Store>> {
    let url = service_url("DATABASE_URL")?;
    Some(Arc::new(
        PostgresStore::connect_in_schema(&url, &schema())
            .await
            .expect("connect"),
    ))
}

/// Runs `$check` on a fresh SQLite store and on a fresh PostgreSQL one.
macro_rules! on_both {
    ($($check:ident),+ $(,)?) => {
        mod sqlite_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                super::$check(super::sqlite().await).await;
            })+
        }
        mod postgres_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(store) = super::postgres().await {
                    super::$check(store).await;
                }
            })+
        }
    };
}

on_both!(
    records_read_back_whole,
    a_used_policy_is_kept,
    a_policy_delete_racing_its_first_use,
    versions_guard_every_write,
    profiles_update_and_list,
    incidents_keep_their_escalation_state,
);

fn page(limit: u32) -> PageRequest {
    PageRequest {
        limit,
        cursor: None,
    }
}

fn rotation(name: &str, created_ms: i64) -> Rotation {
    Rotation {
        id: RotationId::new(),
        name: name.into(),
        description: format!("{name}, described"),
        kind: RotationType::Weekly,
        shift_length: 2,
        start: at(3_600_000),
        time_zone: chrono_tz::Australia::Lord_Howe,
        participants: vec![UserId::new(), UserId::new(), UserId::new()],
        created_at: at(created_ms),
        updated_at: at(created_ms),
        version: 1,
    }
}

fn schedule(rotation: RotationId, created_ms: i64) -> Schedule {
    let clock = |h, m| ClockTime::new(h, m).expect("clock time");
    Schedule {
        id: ScheduleId::new(),
        name: "primary".into(),
        description: "weekdays and nights".into(),
        time_zone: chrono_tz::Europe::Berlin,
        rules: vec![
            ScheduleRule {
                target: RuleTarget::Rotation { id: rotation },
                start: clock(9, 0),
                end: clock(17, 30),
                weekdays: Weekdays::of(&[Weekday::Mon, Weekday::Fri]),
            },
            ScheduleRule {
                target: RuleTarget::User { id: UserId::new() },
                start: clock(22, 0),
                end: clock(6, 0),
                weekdays: Weekdays::ALL,
            },
        ],
        overrides: vec![
            Override {
                id: OverrideId::new(),
                start: at(0),
                end: at(7_200_000),
                add_user_id: Some(UserId::new()),
                remove_user_id: Some(UserId::new()),
                created_by: UserId::new(),
                created_at: at(5),
            },
            Override {
                id: OverrideId::new(),
                start: at(60_000),
                end: at(120_000),
                add_user_id: None,
                remove_user_id: Some(UserId::new()),
                created_by: UserId::new(),
                created_at: at(6),
            },
        ],
        created_at: at(created_ms),
        updated_at: at(created_ms),
        version: 1,
    }
}

fn policy(schedule: ScheduleId, rotation: RotationId, created_ms: i64) -> EscalationPolicy {
    EscalationPolicy {
        id: EscalationPolicyId::new(),
        name: "checkout on call".into(),
        description: "the on-call first, the admins later".into(),
        repeat: 2,
        steps: vec![
            EscalationStep {
                delay_minutes: 5,
                targets: vec![
                    PolicyTarget::Schedule { id: schedule },
                    PolicyTarget::Rotation { id: rotation },
                    PolicyTarget::User { id: UserId::new() },
                ],
            },
            EscalationStep {
                delay_minutes: 9000,
                targets: vec![
                    PolicyTarget::Role { role: Role::Admin },
                    PolicyTarget::Assignee,
                ],
            },
        ],
        created_at: at(created_ms),
        updated_at: at(created_ms),
        version: 1,
    }
}

async fn commit(store: &dyn Store, change: Change) {
    store.commit(change).await.expect("commit");
}

fn conflict_message<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Conflict { message }) => message,
        other => panic!("expected a Conflict, got {other:?}"),
    }
}

async fn records_read_back_whole(store: Arc<dyn Store>) {
    let r = rotation("backend", 10);
    let s = schedule(r.id, 20);
    let p = policy(s.id, r.id, 30);
    commit(
        &*store,
        Change {
            rotation: Some(RotationWrite::Insert(r.clone())),
            schedule: Some(ScheduleWrite::Insert(s.clone())),
            escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_rotation(r.id).await.expect("get"),
        Some(r.clone())
    );
    assert_eq!(
        store.get_schedule(s.id).await.expect("get"),
        Some(s.clone())
    );
    assert_eq!(
        store.get_escalation_policy(p.id).await.expect("get"),
        Some(p.clone())
    );
    // Pages (SQLite reads them through another path: one JSON row).
    let r2 = rotation("frontend", 40);
    commit(
        &*store,
        Change {
            rotation: Some(RotationWrite::Insert(r2.clone())),
            ..Change::default()
        },
    )
    .await;
    let first = store.list_rotations(page(1)).await.expect("list");
    assert_eq!(first.items, vec![r2.clone()], "newest first");
    let second = store
        .list_rotations(PageRequest {
            limit: 1,
            cursor: first.next,
        })
        .await
        .expect("list");
    assert_eq!(second.items, vec![r.clone()]);
    assert_eq!(second.next, None, "nothing after the oldest");
    assert_eq!(
        store.list_schedules(page(10)).await.expect("list").items,
        vec![s]
    );
    assert_eq!(
        store
            .list_escalation_policies(page(10))
            .await
            .expect("list")
            .items,
        vec![p]
    );
    assert_eq!(
        store.get_rotation(RotationId::new()).await.expect("get"),
        None
    );
}

async fn a_used_policy_is_kept(store: Arc<dyn Store>) {
    let r = rotation("backend", 10);
    let s = schedule(r.id, 20);
    let p = policy(s.id, r.id, 30);
    // A policy and the service using it, in one change.
    let mut svc = Service::new("checkout", at(40));
    svc.escalation_policy_id = Some(p.id);
    svc.ack_timeout_seconds = Some(600);
    commit(
        &*store,
        Change {
            escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
            service: Some(ServiceWrite::Insert(svc.clone())),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_service(svc.id).await.expect("get"),
        Some(svc.clone())
    );
    // The engine's check raced a service write: the database refuses.
    let r = store
        .commit(Change {
            escalation_policy: Some(EscalationPolicyWrite::Delete {
                id: p.id,
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    let message = conflict_message(r);
    assert!(
        message.contains("used by a service") && message.contains(&p.id.to_string()),
        "{message}"
    );
    assert!(
        store
            .get_escalation_policy(p.id)
            .await
            .expect("get")
            .is_some(),
        "the refused delete changed nothing"
    );
    // A service naming a policy that is gone.
    let mut other = Service::new("payments", at(50));
    let gone = EscalationPolicyId::new();
    other.escalation_policy_id = Some(gone);
    let r = store
        .commit(Change {
            service: Some(ServiceWrite::Insert(other.clone())),
            ..Change::default()
        })
        .await;
    let message = conflict_message(r);
    assert!(
        message.contains("does not exist") && message.contains(&gone.to_string()),
        "{message}"
    );
    assert_eq!(store.get_service(other.id).await.expect("get"), None);
    // The service stops using it and the policy goes, in one change.
    let mut freed = svc.clone();
    freed.escalation_policy_id = None;
    freed.ack_timeout_seconds = None;
    freed.version = 2;
    commit(
        &*store,
        Change {
            service: Some(ServiceWrite::Update {
                service: freed.clone(),
                expected_version: 1,
            }),
            escalation_policy: Some(EscalationPolicyWrite::Delete {
                id: p.id,
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(store.get_escalation_policy(p.id).await.expect("get"), None);
    assert_eq!(store.get_service(svc.id).await.expect("get"), Some(freed));
}

/// A service taking a policy and the policy's delete, committed at once
/// (each past the engine's check): one of them wins, never both, and what
/// is left is consistent: a service never names a policy that is gone.
async fn a_policy_delete_racing_its_first_use(store: Arc<dyn Store>) {
    let mut svc = Service::new("checkout", at(0));
    add_change(
        &*store,
        Change {
            service: Some(ServiceWrite::Insert(svc.clone())),
            ..Change::default()
        },
    )
    .await;
    let (mut deleted, mut used) = (0, 0);
    for round in 0..20 {
        let p = policy(ScheduleId::new(), RotationId::new(), round);
        add_change(
            &*store,
            Change {
                escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
                ..Change::default()
            },
        )
        .await;
        let mut uses = svc.clone();
        uses.escalation_policy_id = Some(p.id);
        uses.version += 1;
        let take = store.commit(Change {
            service: Some(ServiceWrite::Update {
                service: uses.clone(),
                expected_version: svc.version,
            }),
            ..Change::default()
        });
        let delete = store.commit(Change {
            escalation_policy: Some(EscalationPolicyWrite::Delete {
                id: p.id,
                expected_version: 1,
            }),
            ..Change::default()
        });
        let (took, gone) = futures::join!(take, delete);
        let now = store
            .get_service(svc.id)
            .await
            .expect("get")
            .expect("service");
        let policy = store.get_escalation_policy(p.id).await.expect("get");
        match (took, gone) {
            (Ok(()), Err(e)) => {
                assert!(e.to_string().contains("used by a service"), "{e}");
                assert_eq!(now, uses);
                assert!(policy.is_some());
                used += 1;
            }
            (Err(e), Ok(())) => {
                assert!(e.to_string().contains("does not exist"), "{e}");
                assert_eq!(now, svc);
                assert!(policy.is_none());
                deleted += 1;
            }
            other => panic!("round {round}: exactly one wins, got {other:?}"),
        }
        // Free the service for the next round.
        let mut freed = now.clone();
        freed.escalation_policy_id = None;
        freed.version += 1;
        add_change(
            &*store,
            Change {
                service: Some(ServiceWrite::Update {
                    service: freed.clone(),
                    expected_version: now.version,
                }),
                ..Change::default()
            },
        )
        .await;
        svc = freed;
    }
    assert_eq!(deleted + used, 20);
}

async fn add_change(store: &dyn Store, change: Change) {
    commit(store, change).await;
}

async fn versions_guard_every_write(store: Arc<dyn Store>) {
    let r = rotation("backend", 10);
    let s = schedule(r.id, 20);
    let p = policy(s.id, r.id, 30);
    commit(
        &*store,
        Change {
            rotation: Some(RotationWrite::Insert(r.clone())),
            schedule: Some(ScheduleWrite::Insert(s.clone())),
            escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
            ..Change::default()
        },
    )
    .await;
    // A duplicate id.
    let dup = store
        .commit(Change {
            rotation: Some(RotationWrite::Insert(r.clone())),
            ..Change::default()
        })
        .await;
    conflict_message(dup);

    // An override added: the whole schedule, one versioned update.
    let mut s2 = s.clone();
    s2.overrides.remove(0);
    s2.version = 2;
    s2.updated_at = at(99);
    commit(
        &*store,
        Change {
            schedule: Some(ScheduleWrite::Update {
                schedule: s2.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_schedule(s.id).await.expect("get"),
        Some(s2.clone())
    );
    // Stale, then unknown; neither changes anything.
    let stale = store
        .commit(Change {
            schedule: Some(ScheduleWrite::Update {
                schedule: s.clone(),
                expected_version: 1,
            }),
            audit: vec![],
            ..Change::default()
        })
        .await;
    assert!(conflict_message(stale).contains("modified concurrently"));
    assert_eq!(store.get_schedule(s.id).await.expect("get"), Some(s2));
    let mut unknown = p.clone();
    unknown.id = EscalationPolicyId::new();
    let missing = store
        .commit(Change {
            escalation_policy: Some(EscalationPolicyWrite::Update {
                escalation_policy: unknown,
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        matches!(
            missing,
            Err(Error::NotFound {
                entity: "escalation policy"
            })
        ),
        "{missing:?}"
    );
    // A stale delete keeps it; the right one removes it; a second is NotFound.
    let r_stale = store
        .commit(Change {
            rotation: Some(RotationWrite::Delete {
                id: r.id,
                expected_version: 7,
            }),
            ..Change::default()
        })
        .await;
    conflict_message(r_stale);
    for expect_found in [true, false] {
        let done = store
            .commit(Change {
                rotation: Some(RotationWrite::Delete {
                    id: r.id,
                    expected_version: 1,
                }),
                ..Change::default()
            })
            .await;
        if expect_found {
            done.expect("delete");
        } else {
            assert!(
                matches!(done, Err(Error::NotFound { entity: "rotation" })),
                "{done:?}"
            );
        }
    }
    assert_eq!(store.get_rotation(r.id).await.expect("get"), None);
}

async fn profiles_update_and_list(store: Arc<dyn Store>) {
    let mut alice = user("alice", Role::Engineer);
    let mut bob = user("bob", Role::Admin);
    bob.created_at = at(1_000);
    for u in [&alice, &bob] {
        commit(
            &*store,
            Change {
                user: Some(UserWrite::Insert(u.clone())),
                ..Change::default()
            },
        )
        .await;
    }
    let listed = store.list_users(page(1)).await.expect("list");
    assert_eq!(listed.items, vec![bob.clone()], "newest first");
    let rest = store
        .list_users(PageRequest {
            limit: 5,
            cursor: listed.next,
        })
        .await
        .expect("list");
    assert_eq!(rest.items, vec![alice.clone()]);

    alice.name = "Alice Liddell".into();
    alice.email = "alice@wonderland.example".into();
    alice.time_zone = chrono_tz::America::New_York;
    alice.password_hash = "$argon2id$changed".into();
    let mut written = alice.clone();
    // What the port keeps whatever the record says.
    written.role = Role::Admin;
    written.username = "mallory".into();
    commit(
        &*store,
        Change {
            user: Some(UserWrite::UpdateProfile(written)),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_user(alice.id).await.expect("get"),
        Some(alice.clone())
    );
    // Bob takes Alice's email: refused, and nothing changes.
    let mut taker = bob.clone();
    taker.email = alice.email.clone();
    taker.name = "Robert".into();
    let r = store
        .commit(Change {
            user: Some(UserWrite::UpdateProfile(taker)),
            ..Change::default()
        })
        .await;
    assert_eq!(conflict_message(r), "email already registered");
    assert_eq!(
        store.get_user(bob.id).await.expect("get"),
        Some(bob.clone())
    );
    let mut nobody = user("nobody", Role::Engineer);
    nobody.created_at = t0();
    let r = store
        .commit(Change {
            user: Some(UserWrite::UpdateProfile(nobody)),
            ..Change::default()
        })
        .await;
    assert!(
        matches!(r, Err(Error::NotFound { entity: "user" })),
        "{r:?}"
    );
}

async fn incidents_keep_their_escalation_state(store: Arc<dyn Store>) {
    let mut i = incident(UserId::new(), "Checkout down", at(0));
    i.escalation_policy_id = Some(EscalationPolicyId::new());
    i.escalation_step = 3;
    i.next_escalation_at = Some(at(300_000));
    i.ack_expires_at = Some(at(600_000));
    commit(
        &*store,
        Change {
            incident: Some(IncidentWrite::Insert(i.clone())),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_incident(i.id).await.expect("get"),
        Some(i.clone())
    );
    let mut next = i.clone();
    next.status = Status::Acknowledged;
    next.escalation_step = 4;
    next.next_escalation_at = None;
    next.version += 1;
    commit(
        &*store,
        Change {
            incident: Some(IncidentWrite::Update {
                incident: next.clone(),
                expected_version: i.version,
            }),
            ..Change::default()
        },
    )
    .await;
    let listed = store
        .list_incidents(&Default::default(), page(5))
        .await
        .expect("list");
    assert_eq!(listed.items, vec![next]);
}

/// A profile written on one node moves the other node's users generation
/// (the `users` trigger of the change feed), as a role change does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_profile_updates_reach_the_other_node() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = schema();
    let a = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("a");
    use imas_core::ports::ChangeStore;
    let mut u = user("carol", Role::Engineer);
    a.commit(Change {
        user: Some(UserWrite::Insert(u.clone())),
        ..Change::default()
    })
    .await
    .expect("insert");
    // b listens from after the insert: what it hears next is the update.
    let b = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("b");
    let mut before = None;
    for _ in 0..500 {
        before = b.generation();
        if before.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = before.expect("the change feed never went live");
    u.time_zone = chrono_tz::Asia::Tokyo;
    a.commit(Change {
        user: Some(UserWrite::UpdateProfile(u.clone())),
        ..Change::default()
    })
    .await
    .expect("update");
    // Polled: the notification arrives on b's listening connection.
    for _ in 0..500 {
        if b.generation().is_some_and(|g| g.users > before.users) {
            use imas_core::ports::UserStore;
            assert_eq!(b.get_user(u.id).await.expect("get"), Some(u));
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("b's users generation did not move");
}
