//! People on call (issue 18) on MongoDB, in both atomicity modes: rotations,
//! schedules (rules and overrides embedded) and escalation policies read back
//! whole, their versioned writes, a policy a service uses cannot be deleted,
//! profile updates, the users' page, and documents written before these fields
//! existed still decode (`MONGODB_URL`).

use std::sync::Arc;

use chrono::Duration;
use imas_core::Error;
use imas_core::model::{
    Actor, AuditAction, AuditEntry, AuditFilter, ClockTime, EscalationPolicy, EscalationPolicyId,
    EscalationStep, Incident, Override, OverrideId, PageRequest, PolicyTarget, Role, Rotation,
    RotationId, RotationType, RuleTarget, Schedule, ScheduleId, ScheduleRule, Service, UserId,
    Weekday, Weekdays,
};
use imas_core::ports::{
    AuditStore, Change, ChangeStore, EscalationPolicyStore, EscalationPolicyWrite, IncidentStore,
    IncidentWrite, RotationStore, RotationWrite, ScheduleStore, ScheduleWrite, ServiceStore,
    ServiceWrite, UserStore, UserWrite,
};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{at, incident, user};
use imas_store_mongo::{Atomicity, MongoStore};
use mongodb::bson::{Document, doc};

async fn store(atomicity: Atomicity) -> Option<Arc<MongoStore>> {
    let url = service_url("MONGODB_URL")?;
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let s = MongoStore::connect_with(&url, &name, Some(atomicity))
        .await
        .expect("connect");
    Some(Arc::new(s))
}

fn rotation(name: &str, t: i64) -> Rotation {
    Rotation {
        id: RotationId::new(),
        name: name.into(),
        description: format!("{name} rotation"),
        kind: RotationType::Weekly,
        shift_length: 2,
        start: at(0),
        time_zone: chrono_tz::Europe::Berlin,
        // A user may appear twice.
        participants: {
            let (a, b) = (UserId::new(), UserId::new());
            vec![a, b, a]
        },
        created_at: at(t),
        updated_at: at(t),
        version: 1,
    }
}

fn clock(h: u32, m: u32) -> ClockTime {
    ClockTime::new(h, m).expect("clock time")
}

fn schedule(name: &str, rotation: RotationId, t: i64) -> Schedule {
    let by = UserId::new();
    Schedule {
        id: ScheduleId::new(),
        name: name.into(),
        description: String::new(),
        time_zone: chrono_tz::America::New_York,
        rules: vec![
            ScheduleRule {
                target: RuleTarget::User { id: UserId::new() },
                start: clock(9, 0),
                end: clock(17, 30),
                weekdays: Weekdays::of(&[Weekday::Mon, Weekday::Wed, Weekday::Sun]),
            },
            ScheduleRule {
                target: RuleTarget::Rotation { id: rotation },
                start: clock(22, 0),
                end: clock(6, 0),
                weekdays: Weekdays::ALL,
            },
        ],
        overrides: vec![
            Override {
                id: OverrideId::new(),
                start: at(1_000),
                end: at(2_000),
                add_user_id: Some(UserId::new()),
                remove_user_id: None,
                created_by: by,
                created_at: at(10),
            },
            Override {
                id: OverrideId::new(),
                start: at(1_500),
                end: at(3_000),
                add_user_id: Some(UserId::new()),
                remove_user_id: Some(UserId::new()),
                created_by: by,
                created_at: at(11),
            },
        ],
        created_at: at(t),
        updated_at: at(t),
        version: 1,
    }
}

fn policy(name: &str, schedule: ScheduleId, rotation: RotationId, t: i64) -> EscalationPolicy {
    EscalationPolicy {
        id: EscalationPolicyId::new(),
        name: name.into(),
        description: "pages".into(),
        repeat: 2,
        steps: vec![
            EscalationStep {
                delay_minutes: 5,
                targets: vec![
                    PolicyTarget::User { id: UserId::new() },
                    PolicyTarget::Schedule { id: schedule },
                ],
            },
            EscalationStep {
                delay_minutes: 9000,
                targets: vec![
                    PolicyTarget::Rotation { id: rotation },
                    PolicyTarget::Role { role: Role::Admin },
                    PolicyTarget::Assignee,
                ],
            },
        ],
        created_at: at(t),
        updated_at: at(t),
        version: 1,
    }
}

fn entry(action: AuditAction, t: i64) -> AuditEntry {
    AuditEntry::new(action, Actor::System, None, format!("{action}"), at(t))
}

fn conflict(e: &Error) -> &str {
    match e {
        Error::Conflict { message } => message,
        other => panic!("expected a conflict, got {other}"),
    }
}

async fn round_trips(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let r = rotation("primary", 0);
    let sc = schedule("ops", r.id, 1);
    let p = policy("default", sc.id, r.id, 2);
    s.commit(Change {
        rotation: Some(RotationWrite::Insert(r.clone())),
        audit: vec![entry(AuditAction::RotationCreated, 0)],
        ..Change::default()
    })
    .await
    .expect("rotation");
    s.commit(Change {
        schedule: Some(ScheduleWrite::Insert(sc.clone())),
        ..Change::default()
    })
    .await
    .expect("schedule");
    s.commit(Change {
        escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
        ..Change::default()
    })
    .await
    .expect("policy");
    assert_eq!(s.get_rotation(r.id).await.expect("get"), Some(r.clone()));
    assert_eq!(s.get_schedule(sc.id).await.expect("get"), Some(sc.clone()));
    assert_eq!(
        s.get_escalation_policy(p.id).await.expect("get"),
        Some(p.clone())
    );
    let audit = s
        .list_audit(&AuditFilter::default(), PageRequest::first(10))
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 1, "the change's audit entry, once");

    // A duplicate id is a conflict.
    let e = s
        .commit(Change {
            rotation: Some(RotationWrite::Insert(r.clone())),
            ..Change::default()
        })
        .await
        .expect_err("duplicate id");
    assert!(conflict(&e).contains("rotation id"), "{e}");

    // Versioned updates: the right version replaces, a stale one conflicts,
    // an absent one is NotFound.
    let mut r2 = r.clone();
    r2.name = "renamed".into();
    r2.participants.reverse();
    r2.kind = RotationType::Monthly;
    r2.version = 2;
    s.commit(Change {
        rotation: Some(RotationWrite::Update {
            rotation: r2.clone(),
            expected_version: 1,
        }),
        ..Change::default()
    })
    .await
    .expect("update");
    assert_eq!(s.get_rotation(r.id).await.expect("get"), Some(r2.clone()));
    let e = s
        .commit(Change {
            rotation: Some(RotationWrite::Update {
                rotation: r2.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await
        .expect_err("stale");
    assert!(conflict(&e).contains("modified concurrently"), "{e}");
    let mut sc2 = sc.clone();
    sc2.overrides.remove(0);
    sc2.rules[0].weekdays = Weekdays::of(&[Weekday::Sat]);
    sc2.version = 2;
    s.commit(Change {
        schedule: Some(ScheduleWrite::Update {
            schedule: sc2.clone(),
            expected_version: 1,
        }),
        ..Change::default()
    })
    .await
    .expect("schedule update");
    assert_eq!(s.get_schedule(sc.id).await.expect("get"), Some(sc2.clone()));
    let ghost = rotation("ghost", 3);
    let e = s
        .commit(Change {
            rotation: Some(RotationWrite::Update {
                rotation: ghost.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await
        .expect_err("absent");
    assert!(matches!(e, Error::NotFound { entity: "rotation" }), "{e}");

    // Pages, newest first by (created_at, id).
    let more: Vec<Rotation> = (10..13).map(|t| rotation(&format!("r{t}"), t)).collect();
    for m in &more {
        s.commit(Change {
            rotation: Some(RotationWrite::Insert(m.clone())),
            ..Change::default()
        })
        .await
        .expect("insert");
    }
    let first = s.list_rotations(PageRequest::first(2)).await.expect("page");
    assert_eq!(
        first.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![more[2].id, more[1].id]
    );
    let second = s
        .list_rotations(PageRequest {
            limit: 2,
            cursor: first.next,
        })
        .await
        .expect("page 2");
    assert_eq!(
        second.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![more[0].id, r.id]
    );
    assert!(second.next.is_none());
    assert_eq!(
        s.list_schedules(PageRequest::first(5))
            .await
            .expect("list")
            .items,
        vec![sc2.clone()]
    );
    assert_eq!(
        s.list_escalation_policies(PageRequest::first(5))
            .await
            .expect("list")
            .items,
        vec![p.clone()]
    );

    // Deletes at a version.
    let e = s
        .commit(Change {
            schedule: Some(ScheduleWrite::Delete {
                id: sc.id,
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await
        .expect_err("stale delete");
    assert!(conflict(&e).contains("modified concurrently"), "{e}");
    s.commit(Change {
        schedule: Some(ScheduleWrite::Delete {
            id: sc.id,
            expected_version: 2,
        }),
        audit: vec![entry(AuditAction::ScheduleDeleted, 5)],
        ..Change::default()
    })
    .await
    .expect("delete");
    assert_eq!(s.get_schedule(sc.id).await.expect("get"), None);
    assert!(
        s.list_schedules(PageRequest::first(5))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let e = s
        .commit(Change {
            schedule: Some(ScheduleWrite::Delete {
                id: sc.id,
                expected_version: 2,
            }),
            ..Change::default()
        })
        .await
        .expect_err("gone");
    assert!(matches!(e, Error::NotFound { entity: "schedule" }), "{e}");

    // Several versioned writes in one change (in single-document mode the
    // first carries, the others are reserved or applied after it).
    let svc = Service::new("checkout", at(20));
    let r3 = rotation("third", 20);
    let mut p2 = p.clone();
    p2.repeat = 0;
    p2.version = 2;
    s.commit(Change {
        service: Some(ServiceWrite::Insert(svc.clone())),
        rotation: Some(RotationWrite::Insert(r3.clone())),
        escalation_policy: Some(EscalationPolicyWrite::Update {
            escalation_policy: p2.clone(),
            expected_version: 1,
        }),
        audit: vec![entry(AuditAction::ServiceCreated, 20)],
        ..Change::default()
    })
    .await
    .expect("several");
    assert_eq!(s.get_service(svc.id).await.expect("get"), Some(svc.clone()));
    assert_eq!(s.get_rotation(r3.id).await.expect("get"), Some(r3.clone()));
    assert_eq!(
        s.get_escalation_policy(p.id).await.expect("get"),
        Some(p2.clone())
    );
    // ... and a failing one among them commits nothing.
    let r4 = rotation("fourth", 21);
    let e = s
        .commit(Change {
            rotation: Some(RotationWrite::Insert(r4.clone())),
            escalation_policy: Some(EscalationPolicyWrite::Update {
                escalation_policy: p2.clone(),
                expected_version: 1,
            }),
            audit: vec![entry(AuditAction::RotationCreated, 21)],
            ..Change::default()
        })
        .await
        .expect_err("stale policy");
    assert!(conflict(&e).contains("modified concurrently"), "{e}");
    assert_eq!(s.get_rotation(r4.id).await.expect("get"), None);
    s.recover().await.expect("recover");
    assert_eq!(s.get_rotation(r4.id).await.expect("get"), None);
    let audit = s
        .list_audit(&AuditFilter::default(), PageRequest::first(10))
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 3, "{:?}", audit.items);
}

async fn policy_in_use(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let p = policy("default", ScheduleId::new(), RotationId::new(), 0);
    s.commit(Change {
        escalation_policy: Some(EscalationPolicyWrite::Insert(p.clone())),
        ..Change::default()
    })
    .await
    .expect("policy");
    let mut svc = Service::new("payments", at(1));
    svc.escalation_policy_id = Some(p.id);
    svc.ack_timeout_seconds = Some(600);
    s.commit(Change {
        service: Some(ServiceWrite::Insert(svc.clone())),
        ..Change::default()
    })
    .await
    .expect("service");
    assert_eq!(s.get_service(svc.id).await.expect("get"), Some(svc.clone()));
    let delete = || Change {
        escalation_policy: Some(EscalationPolicyWrite::Delete {
            id: p.id,
            expected_version: 1,
        }),
        audit: vec![entry(AuditAction::EscalationPolicyDeleted, 2)],
        ..Change::default()
    };
    let e = s.commit(delete()).await.expect_err("in use");
    assert!(conflict(&e).contains("payments"), "{e}");
    assert_eq!(
        s.get_escalation_policy(p.id).await.expect("get"),
        Some(p.clone())
    );
    let audit = s
        .list_audit(&AuditFilter::default(), PageRequest::first(10))
        .await
        .expect("audit");
    assert!(audit.items.is_empty(), "nothing committed");

    let mut free = svc.clone();
    free.escalation_policy_id = None;
    free.ack_timeout_seconds = None;
    free.version = 2;
    s.commit(Change {
        service: Some(ServiceWrite::Update {
            service: free.clone(),
            expected_version: 1,
        }),
        ..Change::default()
    })
    .await
    .expect("service update");
    assert_eq!(s.get_service(svc.id).await.expect("get"), Some(free));
    s.commit(delete()).await.expect("no longer in use");
    assert_eq!(s.get_escalation_policy(p.id).await.expect("get"), None);
}

async fn profiles_and_users_page(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let mut ada = user("ada", Role::Admin);
    let mut bob = user("bob", Role::Engineer);
    bob.created_at = at(10);
    let mut cyd = user("cyd", Role::User);
    cyd.created_at = at(10);
    cyd.time_zone = chrono_tz::Asia::Tokyo;
    for u in [&ada, &bob, &cyd] {
        s.commit(Change {
            user: Some(UserWrite::Insert(u.clone())),
            ..Change::default()
        })
        .await
        .expect("user");
    }
    assert_eq!(s.get_user(cyd.id).await.expect("get"), Some(cyd.clone()));

    // The page: newest first by (created_at, id).
    let mut newest = [bob.clone(), cyd.clone()];
    newest.sort_by_key(|u| std::cmp::Reverse(u.id.0));
    let first = s.list_users(PageRequest::first(2)).await.expect("page");
    assert_eq!(first.items, newest.to_vec());
    let rest = s
        .list_users(PageRequest {
            limit: 2,
            cursor: first.next,
        })
        .await
        .expect("page 2");
    assert_eq!(rest.items, vec![ada.clone()]);
    assert!(rest.next.is_none());

    // A profile update changes name, email, time zone and password hash only.
    let before = s.generation();
    let mut patch = ada.clone();
    patch.name = "Ada L.".into();
    patch.email = "ada@lovelace.example".into();
    patch.time_zone = chrono_tz::Europe::London;
    patch.password_hash = "$argon2id$new".into();
    patch.username = "not-ada".into();
    patch.role = Role::User;
    s.commit(Change {
        user: Some(UserWrite::UpdateProfile(patch.clone())),
        audit: vec![entry(AuditAction::ProfileUpdated, 20)],
        ..Change::default()
    })
    .await
    .expect("profile");
    ada.name = patch.name.clone();
    ada.email = patch.email.clone();
    ada.time_zone = patch.time_zone;
    ada.password_hash = patch.password_hash.clone();
    assert_eq!(s.get_user(ada.id).await.expect("get"), Some(ada.clone()));
    if let (Some(b), Some(a)) = (before, s.generation()) {
        assert!(a.users > b.users, "the users generation moves");
    }
    let audit = s
        .list_audit(&AuditFilter::default(), PageRequest::first(10))
        .await
        .expect("audit");
    assert_eq!(audit.items.len(), 1);

    // Another user's email is taken.
    let mut taken = bob.clone();
    taken.email = cyd.email.clone();
    let e = s
        .commit(Change {
            user: Some(UserWrite::UpdateProfile(taken)),
            audit: vec![entry(AuditAction::ProfileUpdated, 21)],
            ..Change::default()
        })
        .await
        .expect_err("email taken");
    assert_eq!(conflict(&e), "email already registered");
    assert_eq!(s.get_user(bob.id).await.expect("get"), Some(bob.clone()));
    // Keeping one's own email is fine.
    let mut same = bob.clone();
    same.name = "Bob B.".into();
    s.commit(Change {
        user: Some(UserWrite::UpdateProfile(same.clone())),
        ..Change::default()
    })
    .await
    .expect("own email");
    assert_eq!(s.get_user(bob.id).await.expect("get"), Some(same));
    let ghost = user("ghost", Role::User);
    let e = s
        .commit(Change {
            user: Some(UserWrite::UpdateProfile(ghost)),
            ..Change::default()
        })
        .await
        .expect_err("absent");
    assert!(matches!(e, Error::NotFound { entity: "user" }), "{e}");
}

async fn old_documents_decode(atomicity: Atomicity) {
    let Some(s) = store(atomicity).await else {
        return;
    };
    let ada = user("ada", Role::Admin);
    let mut svc = Service::new("legacy", at(0));
    let mut i: Incident = incident(ada.id, "old", at(0));
    svc.escalation_policy_id = Some(EscalationPolicyId::new());
    svc.ack_timeout_seconds = Some(30);
    i.service_id = Some(svc.id);
    i.escalation_policy_id = svc.escalation_policy_id;
    i.escalation_step = 3;
    i.next_escalation_at = Some(at(5_000));
    i.ack_expires_at = Some(at(9_000) + Duration::seconds(30));
    s.commit(Change {
        user: Some(UserWrite::Insert(ada.clone())),
        incident: Some(IncidentWrite::Insert(i.clone())),
        service: Some(ServiceWrite::Insert(svc.clone())),
        ..Change::default()
    })
    .await
    .expect("insert");
    // The new fields round-trip ...
    assert_eq!(s.get_service(svc.id).await.expect("get"), Some(svc.clone()));
    let read = s.get_incident(i.id).await.expect("get").expect("incident");
    assert_eq!(read, i);
    assert_eq!(read.escalation_step, 3, "the step is stored");

    // ... and documents written before them decode with the defaults.
    let strip = async |coll: &str, id: String, fields: &[&str]| {
        let mut unset = Document::new();
        for f in fields {
            unset.insert(*f, "");
        }
        let done = s
            .database()
            .collection::<Document>(coll)
            .update_one(doc! { "_id": id }, doc! { "$unset": unset })
            .await
            .expect("unset");
        assert_eq!(done.modified_count, 1);
    };
    strip("users", ada.id.to_string(), &["time_zone"]).await;
    strip(
        "services",
        svc.id.to_string(),
        &["escalation_policy_id", "ack_timeout_seconds"],
    )
    .await;
    strip(
        "incidents",
        i.id.to_string(),
        &[
            "escalation_policy_id",
            "escalation_step",
            "next_escalation_at",
            "ack_expires_at",
        ],
    )
    .await;
    let u = s.get_user(ada.id).await.expect("get").expect("user");
    assert_eq!(u.time_zone, chrono_tz::UTC);
    let v = s.get_service(svc.id).await.expect("get").expect("service");
    assert_eq!(
        (v.escalation_policy_id, v.ack_timeout_seconds),
        (None, None)
    );
    let old = s.get_incident(i.id).await.expect("get").expect("incident");
    assert_eq!(old.escalation_policy_id, None);
    assert_eq!(old.escalation_step, 0);
    assert_eq!(old.next_escalation_at, None);
    assert_eq!(old.ack_expires_at, None);
}

/// Single-document mode: a rotation whose delete was marked (`_deleting`, with
/// its pending entry) and then interrupted is invisible at once and removed by
/// recovery, as incidents and services are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_finishes_an_interrupted_rotation_delete() {
    let Some(s) = store(Atomicity::SingleDocument).await else {
        return;
    };
    let (gone, kept) = (rotation("gone", 0), rotation("kept", 1));
    for r in [&gone, &kept] {
        s.commit(Change {
            rotation: Some(RotationWrite::Insert(r.clone())),
            ..Change::default()
        })
        .await
        .expect("rotation");
    }
    let rotations = s.database().collection::<Document>("rotations");
    rotations
        .update_one(
            doc! { "_id": gone.id.to_string() },
            doc! {
                "$set": { "_deleting": "c-interrupted" },
                "$push": { "_pending": { "cid": "c-interrupted", "audit": [], "outbox": [] } },
            },
        )
        .await
        .expect("mark");
    assert_eq!(s.get_rotation(gone.id).await.expect("get"), None);
    assert_eq!(
        s.list_rotations(PageRequest::first(5))
            .await
            .expect("list")
            .items,
        vec![kept.clone()]
    );
    s.recover().await.expect("recover");
    let left = rotations.count_documents(doc! {}).await.expect("count");
    assert_eq!(left, 1, "the marked rotation is removed, the other kept");
    assert_eq!(s.get_rotation(kept.id).await.expect("get"), Some(kept));
}

macro_rules! both_modes {
    ($($name:ident),+ $(,)?) => {
        mod with_transactions {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Atomicity::Transactions).await;
                }
            )+
        }
        mod with_single_documents {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Atomicity::SingleDocument).await;
                }
            )+
        }
    };
}

both_modes!(
    round_trips,
    policy_in_use,
    profiles_and_users_page,
    old_documents_decode,
);
