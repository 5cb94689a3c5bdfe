//! People on call through the engine (issue 18): rotations, schedules,
//! overrides, escalation policies, the services that name them and users'
//! profiles, on the memory store with a manual clock. Permissions, every
//! validation error naming its field and changing nothing, audit entries for
//! every change, the 409s of references.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Timelike, Utc};
use common::{World, world};
use imas_core::Error;
use imas_core::model::{
    AuditAction, AuditEntry, AuditFilter, ClockTime, EscalationPolicyPatch, EscalationStep,
    NewEscalationPolicy, NewOverride, NewRotation, NewSchedule, NewService, Override, OverrideId,
    PageRequest, PolicyTarget, ProfilePatch, Role, Rotation, RotationId, RotationPatch,
    RotationType, RuleTarget, Schedule, ScheduleId, SchedulePatch, ScheduleRule, ServicePatch,
    Timestamp, UserId, Weekday, Weekdays,
};
use imas_core::ports::{
    AuditStore, Change, ChangeStore, RotationStore, ScheduleStore, ScheduleWrite, ServiceStore,
};
use imas_core::testkit::store::t0;
use imas_core::{Principal, Result};

// ---------------------------------------------------------------- helpers

fn at_min(m: i64) -> Timestamp {
    t0() + TimeDelta::minutes(m)
}

fn clock(h: u32, m: u32) -> ClockTime {
    ClockTime::new(h, m).expect("clock time")
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T>, expected: &str) {
    match r {
        Err(Error::Validation { field, message }) => {
            assert_eq!(field, expected, "the error names the field ({message})");
            assert!(!message.is_empty());
        }
        other => panic!("expected a validation error on {expected}, got {other:?}"),
    }
}

#[track_caller]
fn assert_forbidden<T: std::fmt::Debug>(r: Result<T>) {
    assert!(
        matches!(r, Err(Error::Forbidden { .. })),
        "expected Forbidden, got {r:?}"
    );
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: Result<T>, mentions: &str) {
    match r {
        Err(Error::Conflict { message }) => assert!(
            message.contains(mentions),
            "the conflict says {mentions:?}: {message}"
        ),
        other => panic!("expected a Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(r: Result<T>) {
    assert!(
        matches!(r, Err(Error::NotFound { .. })),
        "expected NotFound, got {r:?}"
    );
}

/// The whole audit log, newest first.
async fn audit_log(w: &World) -> Vec<AuditEntry> {
    w.store
        .list_audit(&AuditFilter::default(), PageRequest::first(500))
        .await
        .expect("audit")
        .items
}

/// The entries of one action on one target, newest first.
async fn audit_of(w: &World, action: AuditAction, target: impl ToString) -> Vec<AuditEntry> {
    let f = AuditFilter {
        action: Some(action),
        target: Some(target.to_string()),
        ..Default::default()
    };
    w.store
        .list_audit(&f, PageRequest::first(500))
        .await
        .expect("audit")
        .items
}

struct People {
    admin: Principal,
    eng: Principal,
    other: Principal,
    user: Principal,
}

async fn people(w: &World) -> People {
    let admin = w.root().await;
    let eng = w.user_by(&admin, "eve", Role::Engineer).await.0;
    let other = w.user_by(&admin, "oscar", Role::Engineer).await.0;
    let user = w.user("ursula", Role::User).await;
    People {
        admin,
        eng,
        other,
        user,
    }
}

fn new_rotation(participants: Vec<UserId>) -> NewRotation {
    NewRotation {
        name: "primary".into(),
        description: "the first line".into(),
        kind: RotationType::Daily,
        shift_length: None,
        start: t0(),
        time_zone: None,
        participants,
    }
}

fn user_rule(id: UserId) -> ScheduleRule {
    ScheduleRule {
        target: RuleTarget::User { id },
        start: clock(0, 0),
        end: clock(0, 0),
        weekdays: Weekdays::ALL,
    }
}

fn rotation_rule(id: RotationId) -> ScheduleRule {
    ScheduleRule {
        target: RuleTarget::Rotation { id },
        start: clock(0, 0),
        end: clock(0, 0),
        weekdays: Weekdays::ALL,
    }
}

fn new_schedule(rules: Vec<ScheduleRule>) -> NewSchedule {
    NewSchedule {
        name: "payments on call".into(),
        description: String::new(),
        time_zone: Some("Europe/Berlin".into()),
        rules,
    }
}

fn step(targets: Vec<PolicyTarget>) -> EscalationStep {
    EscalationStep {
        delay_minutes: 10,
        targets,
    }
}

fn new_policy(steps: Vec<EscalationStep>) -> NewEscalationPolicy {
    NewEscalationPolicy {
        name: "payments".into(),
        description: String::new(),
        repeat: None,
        steps,
    }
}

fn adds(user: UserId, from_min: i64, to_min: i64) -> NewOverride {
    NewOverride {
        start: at_min(from_min),
        end: at_min(to_min),
        add_user_id: Some(user),
        remove_user_id: None,
    }
}

async fn rotation_of(w: &World, id: RotationId) -> Option<Rotation> {
    w.store.get_rotation(id).await.expect("get")
}

async fn schedule_of(w: &World, id: ScheduleId) -> Schedule {
    w.store
        .get_schedule(id)
        .await
        .expect("get")
        .expect("exists")
}

// ---------------------------------------------------------------- rotations

#[tokio::test]
async fn rotations_through_the_engine() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;

    let mut new = new_rotation(vec![p.eng.id, p.other.id]);
    new.start = t0() + TimeDelta::seconds(95) + TimeDelta::milliseconds(7);
    let r = e
        .create_rotation(&p.admin, new.clone())
        .await
        .expect("create");
    assert_eq!(r.start, at_min(1), "start is truncated to the minute");
    assert_eq!(r.shift_length, 1, "shift length defaults to 1");
    assert_eq!(r.time_zone, chrono_tz::UTC, "time zone defaults to UTC");
    assert_eq!((r.version, r.created_at), (1, t0()));
    assert_eq!(rotation_of(&w, r.id).await, Some(r.clone()), "stored");
    let created = audit_of(&w, AuditAction::RotationCreated, r.id).await;
    assert_eq!(created.len(), 1, "ROTATION_CREATED");
    assert!(created[0].description.contains("primary"));

    // Who may do what.
    assert_eq!(e.get_rotation(&p.eng, r.id).await.expect("read"), r);
    let listed = e
        .list_rotations(&p.eng, PageRequest::first(10))
        .await
        .expect("list");
    assert_eq!(listed.items, vec![r.clone()]);
    assert_forbidden(e.get_rotation(&p.user, r.id).await);
    assert_forbidden(e.list_rotations(&p.user, PageRequest::first(10)).await);
    assert_forbidden(e.create_rotation(&p.eng, new.clone()).await);
    assert_forbidden(
        e.update_rotation(&p.eng, r.id, RotationPatch::default())
            .await,
    );
    assert_forbidden(e.delete_rotation(&p.eng, r.id).await);
    assert_forbidden(e.rotation_shifts(&p.user, r.id, t0(), at_min(60)).await);
    assert_not_found(e.get_rotation(&p.admin, RotationId::new()).await);

    // Shifts: daily, eve then oscar, from 00:01.
    let shifts = e
        .rotation_shifts(&p.eng, r.id, at_min(1), at_min(1 + 3 * 24 * 60))
        .await
        .expect("shifts");
    assert_eq!(
        shifts.iter().map(|s| s.user_id).collect::<Vec<_>>(),
        vec![p.eng.id, p.other.id, p.eng.id]
    );

    // An update names its fields, bumps the version, is audited.
    w.advance(Duration::from_secs(60));
    let patch = RotationPatch {
        name: Some("  secondary ".into()),
        kind: Some(RotationType::Weekly),
        shift_length: Some(2),
        time_zone: Some("America/New_York".into()),
        participants: Some(vec![p.other.id]),
        ..RotationPatch::default()
    };
    let r2 = e
        .update_rotation(&p.admin, r.id, patch)
        .await
        .expect("update");
    assert_eq!(r2.name, "secondary", "names are trimmed");
    assert_eq!(
        (r2.kind, r2.shift_length, r2.time_zone),
        (RotationType::Weekly, 2, chrono_tz::America::New_York)
    );
    assert_eq!((r2.version, r2.updated_at), (2, at_min(1)));
    assert_eq!(rotation_of(&w, r.id).await, Some(r2.clone()));
    let updated = audit_of(&w, AuditAction::RotationUpdated, r.id).await;
    assert_eq!(updated.len(), 1, "ROTATION_UPDATED");
    for f in ["name", "type", "shiftLength", "timeZone", "participants"] {
        assert!(
            updated[0].description.contains(f),
            "the audit names {f}: {}",
            updated[0].description
        );
    }
    // Nothing to change: nothing written.
    let same = e
        .update_rotation(
            &p.admin,
            r.id,
            RotationPatch {
                name: Some("secondary".into()),
                ..RotationPatch::default()
            },
        )
        .await
        .expect("no-op");
    assert_eq!(same.version, 2);
    assert_eq!(
        audit_of(&w, AuditAction::RotationUpdated, r.id).await.len(),
        1
    );

    e.delete_rotation(&p.admin, r.id).await.expect("delete");
    assert_eq!(rotation_of(&w, r.id).await, None);
    assert_eq!(
        audit_of(&w, AuditAction::RotationDeleted, r.id).await.len(),
        1
    );
    assert_not_found(e.delete_rotation(&p.admin, r.id).await);
    assert_not_found(
        e.update_rotation(&p.admin, r.id, RotationPatch::default())
            .await,
    );
}

#[tokio::test]
async fn rotation_validation_names_the_field_and_changes_nothing() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let before = audit_log(&w).await;
    let good = new_rotation(vec![p.eng.id]);
    let cases: Vec<(&str, NewRotation)> = vec![
        (
            "name",
            NewRotation {
                name: "   ".into(),
                ..good.clone()
            },
        ),
        (
            "name",
            NewRotation {
                name: "x".repeat(101),
                ..good.clone()
            },
        ),
        (
            "description",
            NewRotation {
                description: "x".repeat(10_001),
                ..good.clone()
            },
        ),
        (
            "shiftLength",
            NewRotation {
                shift_length: Some(0),
                ..good.clone()
            },
        ),
        (
            "shiftLength",
            NewRotation {
                shift_length: Some(9001),
                ..good.clone()
            },
        ),
        (
            "timeZone",
            NewRotation {
                time_zone: Some("Mars/Olympus_Mons".into()),
                ..good.clone()
            },
        ),
        (
            "participants",
            NewRotation {
                participants: vec![p.eng.id, UserId::new()],
                ..good.clone()
            },
        ),
        (
            "participants",
            NewRotation {
                participants: vec![p.eng.id; 101],
                ..good.clone()
            },
        ),
        (
            "start",
            NewRotation {
                start: Utc
                    .with_ymd_and_hms(10_000, 1, 1, 0, 0, 0)
                    .single()
                    .expect("date"),
                ..good.clone()
            },
        ),
    ];
    for (field, bad) in cases {
        assert_invalid(e.create_rotation(&p.admin, bad).await, field);
    }
    assert!(
        e.list_rotations(&p.admin, PageRequest::first(10))
            .await
            .expect("list")
            .items
            .is_empty(),
        "no refused rotation is stored"
    );
    assert_eq!(audit_log(&w).await, before, "nor audited");

    let ok = NewRotation {
        participants: vec![p.eng.id; 100],
        shift_length: Some(9000),
        ..good.clone()
    };
    let r = e
        .create_rotation(&p.admin, ok)
        .await
        .expect("limits are inclusive");
    let before = audit_log(&w).await;
    let patches: Vec<(&str, RotationPatch)> = vec![
        (
            "name",
            RotationPatch {
                name: Some(String::new()),
                ..Default::default()
            },
        ),
        (
            "shiftLength",
            RotationPatch {
                shift_length: Some(0),
                ..Default::default()
            },
        ),
        (
            "timeZone",
            RotationPatch {
                time_zone: Some("Europe/Atlantis".into()),
                ..Default::default()
            },
        ),
        (
            "participants",
            RotationPatch {
                participants: Some(vec![UserId::new()]),
                ..Default::default()
            },
        ),
        (
            "description",
            RotationPatch {
                name: Some("fine".into()),
                description: Some("nul\0".into()),
                ..Default::default()
            },
        ),
    ];
    for (field, bad) in patches {
        assert_invalid(e.update_rotation(&p.admin, r.id, bad).await, field);
    }
    assert_eq!(
        rotation_of(&w, r.id).await,
        Some(r),
        "refused updates change nothing"
    );
    assert_eq!(audit_log(&w).await, before);
}

// ---------------------------------------------------------------- schedules

#[tokio::test]
async fn schedules_through_the_engine() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let rot = e
        .create_rotation(&p.admin, new_rotation(vec![p.other.id]))
        .await
        .expect("rotation");
    let new = new_schedule(vec![user_rule(p.eng.id), rotation_rule(rot.id)]);
    assert_forbidden(e.create_schedule(&p.eng, new.clone()).await);
    assert_forbidden(e.create_schedule(&p.user, new.clone()).await);
    let s = e
        .create_schedule(&p.admin, new.clone())
        .await
        .expect("create");
    assert_eq!(s.time_zone, chrono_tz::Europe::Berlin);
    assert!(s.overrides.is_empty());
    assert_eq!(schedule_of(&w, s.id).await, s);
    assert_eq!(
        audit_of(&w, AuditAction::ScheduleCreated, s.id).await.len(),
        1
    );
    let utc = e
        .create_schedule(
            &p.admin,
            NewSchedule {
                time_zone: None,
                rules: Vec::new(),
                ..new.clone()
            },
        )
        .await
        .expect("create");
    assert_eq!(utc.time_zone, chrono_tz::UTC, "zone defaults to UTC");

    assert_eq!(e.get_schedule(&p.eng, s.id).await.expect("read"), s);
    assert_forbidden(e.get_schedule(&p.user, s.id).await);
    let listed = e
        .list_schedules(&p.eng, PageRequest::first(10))
        .await
        .expect("list");
    assert_eq!(
        listed.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![utc.id, s.id],
        "newest first"
    );
    assert_forbidden(e.list_schedules(&p.user, PageRequest::first(10)).await);

    // Validation: each names its field; nothing is written.
    let before = audit_log(&w).await;
    let mut no_days = user_rule(p.eng.id);
    no_days.weekdays = Weekdays::of(&[]);
    let cases: Vec<(&str, NewSchedule)> = vec![
        (
            "name",
            NewSchedule {
                name: String::new(),
                ..new.clone()
            },
        ),
        (
            "timeZone",
            NewSchedule {
                time_zone: Some("berlin".into()),
                ..new.clone()
            },
        ),
        (
            "rules[1].weekdays",
            NewSchedule {
                rules: vec![user_rule(p.eng.id), no_days],
                ..new.clone()
            },
        ),
        (
            "rules[0].target",
            NewSchedule {
                rules: vec![user_rule(UserId::new())],
                ..new.clone()
            },
        ),
        (
            "rules[2].target",
            NewSchedule {
                rules: vec![
                    user_rule(p.eng.id),
                    rotation_rule(rot.id),
                    rotation_rule(RotationId::new()),
                ],
                ..new.clone()
            },
        ),
        (
            "rules",
            NewSchedule {
                rules: vec![user_rule(p.eng.id); 101],
                ..new.clone()
            },
        ),
    ];
    for (field, bad) in cases {
        assert_invalid(e.create_schedule(&p.admin, bad.clone()).await, field);
        assert_invalid(
            e.update_schedule(
                &p.admin,
                s.id,
                SchedulePatch {
                    name: Some(bad.name),
                    time_zone: bad.time_zone,
                    rules: Some(bad.rules),
                    ..Default::default()
                },
            )
            .await,
            field,
        );
    }
    assert_eq!(audit_log(&w).await, before, "nothing audited");
    assert_eq!(schedule_of(&w, s.id).await, s, "nothing changed");

    // Updates.
    assert_forbidden(
        e.update_schedule(&p.eng, s.id, SchedulePatch::default())
            .await,
    );
    let mut weekend = rotation_rule(rot.id);
    weekend.weekdays = Weekdays::of(&[Weekday::Sat, Weekday::Sun]);
    weekend.start = clock(22, 0);
    weekend.end = clock(6, 0);
    let s2 = e
        .update_schedule(
            &p.admin,
            s.id,
            SchedulePatch {
                time_zone: Some("Asia/Tokyo".into()),
                rules: Some(vec![weekend]),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(s2.version, 2);
    assert_eq!(s2.rules, vec![weekend]);
    assert_eq!(schedule_of(&w, s.id).await, s2);
    let updated = audit_of(&w, AuditAction::ScheduleUpdated, s.id).await;
    assert_eq!(updated.len(), 1);
    assert!(updated[0].description.contains("timeZone"));
    assert!(updated[0].description.contains("rules"));

    assert_forbidden(e.delete_schedule(&p.eng, s.id).await);
    e.delete_schedule(&p.admin, s.id).await.expect("delete");
    assert_eq!(
        audit_of(&w, AuditAction::ScheduleDeleted, s.id).await.len(),
        1
    );
    assert_not_found(e.get_schedule(&p.admin, s.id).await);
    assert_not_found(e.delete_schedule(&p.admin, s.id).await);
}

// ---------------------------------------------------------------- overrides

#[tokio::test]
async fn override_permissions() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let s = e
        .create_schedule(&p.admin, new_schedule(vec![user_rule(p.other.id)]))
        .await
        .expect("schedule");

    // An engineer may add himself, or take someone's place.
    let mine = e
        .add_override(&p.eng, s.id, adds(p.eng.id, 0, 60))
        .await
        .expect("own add");
    assert_eq!(mine.created_by, p.eng.id);
    let replace = NewOverride {
        remove_user_id: Some(p.other.id),
        ..adds(p.eng.id, 60, 120)
    };
    e.add_override(&p.eng, s.id, replace)
        .await
        .expect("own replace");
    let off = NewOverride {
        start: at_min(120),
        end: at_min(180),
        add_user_id: None,
        remove_user_id: Some(p.eng.id),
    };
    e.add_override(&p.eng, s.id, off)
        .await
        .expect("own removal");

    // But not somebody else; a user not at all.
    let before = schedule_of(&w, s.id).await;
    assert_forbidden(e.add_override(&p.eng, s.id, adds(p.other.id, 0, 60)).await);
    let theirs = NewOverride {
        start: at_min(0),
        end: at_min(60),
        add_user_id: None,
        remove_user_id: Some(p.other.id),
    };
    assert_forbidden(e.add_override(&p.eng, s.id, theirs).await);
    assert_forbidden(e.add_override(&p.user, s.id, adds(p.user.id, 0, 60)).await);
    assert_eq!(
        schedule_of(&w, s.id).await,
        before,
        "refused adds change nothing"
    );

    let admins = e
        .add_override(&p.admin, s.id, adds(p.other.id, 200, 260))
        .await
        .expect("an admin adds anybody");
    assert_forbidden(e.delete_override(&p.eng, s.id, admins.id).await);
    assert_forbidden(e.delete_override(&p.user, s.id, mine.id).await);
    assert_eq!(schedule_of(&w, s.id).await.overrides.len(), 4);
    e.delete_override(&p.eng, s.id, mine.id)
        .await
        .expect("an engineer deletes his own");
    e.delete_override(&p.admin, s.id, admins.id)
        .await
        .expect("an admin deletes any");
    let left = schedule_of(&w, s.id).await;
    assert_eq!(left.overrides.len(), 2);
    assert!(
        left.overrides
            .iter()
            .all(|o| o.id != mine.id && o.id != admins.id)
    );
    assert_eq!(
        left.version, 7,
        "each of the four adds and two deletes is an update of the schedule"
    );
    assert_eq!(
        audit_of(&w, AuditAction::OverrideCreated, s.id).await.len(),
        4
    );
    let deleted = audit_of(&w, AuditAction::OverrideDeleted, s.id).await;
    assert_eq!(deleted.len(), 2);
    assert!(
        deleted.iter().any(|a| a.description.contains("adds eve")),
        "the audit says what the override did: {deleted:?}"
    );

    assert_not_found(e.delete_override(&p.admin, s.id, OverrideId::new()).await);
    assert_not_found(
        e.delete_override(&p.admin, ScheduleId::new(), mine.id)
            .await,
    );
    assert_not_found(
        e.add_override(&p.admin, ScheduleId::new(), adds(p.eng.id, 0, 60))
            .await,
    );
}

#[tokio::test]
async fn override_validation_names_the_field_and_changes_nothing() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let s = e
        .create_schedule(&p.admin, new_schedule(vec![user_rule(p.other.id)]))
        .await
        .expect("schedule");
    w.advance(Duration::from_secs(3600));
    let before = (schedule_of(&w, s.id).await, audit_log(&w).await);
    let base = adds(p.eng.id, 120, 180);
    let cases: Vec<(&str, NewOverride)> = vec![
        (
            "addUserId",
            NewOverride {
                add_user_id: None,
                ..base.clone()
            },
        ),
        (
            "removeUserId",
            NewOverride {
                remove_user_id: Some(p.eng.id),
                ..base.clone()
            },
        ),
        (
            "end",
            NewOverride {
                end: at_min(120),
                ..base.clone()
            },
        ),
        (
            "end",
            NewOverride {
                end: at_min(100),
                ..base.clone()
            },
        ),
        // Within the same minute as start: empty once taken to the minute.
        (
            "end",
            NewOverride {
                end: at_min(120) + TimeDelta::seconds(59),
                ..base.clone()
            },
        ),
        // Ended before now (the clock is at minute 60).
        (
            "end",
            NewOverride {
                start: at_min(0),
                end: at_min(30),
                ..base.clone()
            },
        ),
        (
            "addUserId",
            NewOverride {
                add_user_id: Some(UserId::new()),
                ..base.clone()
            },
        ),
        (
            "removeUserId",
            NewOverride {
                remove_user_id: Some(UserId::new()),
                ..base.clone()
            },
        ),
        (
            "start",
            NewOverride {
                start: Utc
                    .with_ymd_and_hms(10_000, 1, 1, 0, 0, 0)
                    .single()
                    .expect("date"),
                ..base.clone()
            },
        ),
    ];
    for (field, bad) in cases {
        assert_invalid(e.add_override(&p.admin, s.id, bad).await, field);
    }
    assert_eq!(
        (schedule_of(&w, s.id).await, audit_log(&w).await),
        before,
        "refused overrides change nothing"
    );

    // Whole minutes; an override that started earlier but has not ended is fine.
    let o = e
        .add_override(
            &p.admin,
            s.id,
            NewOverride {
                start: at_min(30) + TimeDelta::seconds(42),
                end: at_min(90) + TimeDelta::milliseconds(999),
                ..base.clone()
            },
        )
        .await
        .expect("valid");
    assert_eq!((o.start, o.end), (at_min(30), at_min(90)));
    assert_eq!(o.start.second(), 0);
    assert_eq!(o.created_at, at_min(60));
}

#[tokio::test]
async fn overrides_are_ordered_pruned_and_bounded() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let s = e
        .create_schedule(&p.admin, new_schedule(vec![]))
        .await
        .expect("schedule");
    // Stored by start, then creation.
    let late = e
        .add_override(&p.admin, s.id, adds(p.eng.id, 300, 400))
        .await
        .expect("add");
    w.advance(Duration::from_millis(5));
    let early = e
        .add_override(&p.admin, s.id, adds(p.other.id, 100, 200))
        .await
        .expect("add");
    w.advance(Duration::from_millis(5));
    let early_too = e
        .add_override(&p.admin, s.id, adds(p.eng.id, 100, 150))
        .await
        .expect("add");
    let ids: Vec<OverrideId> = schedule_of(&w, s.id)
        .await
        .overrides
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, vec![early.id, early_too.id, late.id]);

    // 91 days on: the ones that ended more than 90 days ago go at the next add.
    let keep = e
        .add_override(&p.admin, s.id, adds(p.eng.id, 100, 60 * 24 * 2))
        .await
        .expect("add");
    w.clock.set(at_min(60 * 24 * 92));
    let fresh = e
        .add_override(&p.admin, s.id, adds(p.eng.id, 60 * 24 * 92, 60 * 24 * 93))
        .await
        .expect("add");
    let ids: Vec<OverrideId> = schedule_of(&w, s.id)
        .await
        .overrides
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(
        ids,
        vec![keep.id, fresh.id],
        "overrides ended more than 90 days ago are dropped, later ones kept"
    );

    // At most 1,000.
    let now = 60 * 24 * 92;
    for i in 2..1000 {
        e.add_override(&p.admin, s.id, adds(p.eng.id, now + i, now + i + 10))
            .await
            .expect("add");
    }
    let full = schedule_of(&w, s.id).await;
    assert_eq!(full.overrides.len(), 1000);
    assert!(
        full.overrides
            .windows(2)
            .all(|w| (w[0].start, w[0].created_at) <= (w[1].start, w[1].created_at)),
        "ordered by start, then creation"
    );
    assert_conflict(
        e.add_override(&p.admin, s.id, adds(p.eng.id, now, now + 5))
            .await,
        "1000",
    );
    assert_eq!(
        schedule_of(&w, s.id).await,
        full,
        "the refused add changes nothing"
    );
}

// ---------------------------------------------------------------- on call

#[tokio::test]
async fn who_is_on_call() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let rot = e
        .create_rotation(&p.admin, new_rotation(vec![p.other.id, p.admin.id]))
        .await
        .expect("rotation");
    let ghost = UserId::new();
    let s = e
        .create_schedule(
            &p.admin,
            NewSchedule {
                time_zone: Some("UTC".into()),
                ..new_schedule(vec![user_rule(p.eng.id), rotation_rule(rot.id)])
            },
        )
        .await
        .expect("schedule");
    e.add_override(&p.eng, s.id, adds(p.user.id, 0, 60))
        .await
        .expect_err("eve may not add ursula");
    e.add_override(&p.admin, s.id, adds(p.user.id, 0, 60))
        .await
        .expect("override");

    let now = e
        .schedule_on_call(&p.eng, s.id, None)
        .await
        .expect("on call");
    assert_eq!(now.at, t0(), "now by default");
    assert_eq!(
        now.users.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![p.eng.id, p.other.id, p.user.id],
        "rules in order, then the override"
    );
    assert_eq!(now.users[0].username, "eve");
    assert_eq!(now.users[0].time_zone, chrono_tz::UTC);
    let tomorrow = e
        .schedule_on_call(&p.eng, s.id, Some(at_min(24 * 60 + 5)))
        .await
        .expect("on call");
    assert_eq!(
        tomorrow.users.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![p.eng.id, p.admin.id],
        "the rotation handed over; the override ended"
    );
    assert_forbidden(e.schedule_on_call(&p.user, s.id, None).await);
    assert_not_found(e.schedule_on_call(&p.eng, ScheduleId::new(), None).await);
    assert_invalid(
        e.schedule_on_call(
            &p.eng,
            s.id,
            Some(
                Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0)
                    .single()
                    .expect("date"),
            ),
        )
        .await,
        "at",
    );

    // A user missing from the store is left out.
    let mut stored = schedule_of(&w, s.id).await;
    stored.rules.insert(0, user_rule(ghost));
    stored.version += 1;
    w.store
        .commit(Change {
            schedule: Some(ScheduleWrite::Update {
                schedule: stored.clone(),
                expected_version: stored.version - 1,
            }),
            ..Change::default()
        })
        .await
        .expect("commit");
    let now = e
        .schedule_on_call(&p.eng, s.id, None)
        .await
        .expect("on call");
    assert_eq!(
        now.users.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![p.eng.id, p.other.id, p.user.id]
    );

    let other = e
        .create_schedule(
            &p.admin,
            NewSchedule {
                name: "nobody".into(),
                ..new_schedule(vec![])
            },
        )
        .await
        .expect("schedule");
    let all = e
        .on_call_everywhere(&p.eng, None)
        .await
        .expect("everywhere");
    assert_eq!(all.at, t0());
    assert_eq!(
        all.schedules
            .iter()
            .map(|s| (s.schedule_id, s.users.len()))
            .collect::<Vec<_>>(),
        vec![(other.id, 0), (s.id, 3)],
        "every schedule, newest first"
    );
    assert_eq!(all.schedules[1].name, "payments on call");
    assert_forbidden(e.on_call_everywhere(&p.user, None).await);

    // Shifts and their ranges.
    let shifts = e
        .schedule_shifts(&p.eng, s.id, t0(), at_min(60 * 24))
        .await
        .expect("shifts");
    assert!(
        shifts
            .iter()
            .any(|sh| sh.user_id == p.user.id && sh.start == t0() && sh.end == at_min(60)),
        "the override's shift: {shifts:?}"
    );
    assert!(
        e.schedule_shifts(&p.eng, s.id, t0(), t0() + TimeDelta::days(90))
            .await
            .is_ok(),
        "90 days is the longest range"
    );
    for check in ["schedule", "rotation"] {
        let call = |a: Timestamp, b: Timestamp| async move {
            if check == "schedule" {
                e.schedule_shifts(&p.eng, s.id, a, b).await.map(|_| ())
            } else {
                e.rotation_shifts(&p.eng, rot.id, a, b).await.map(|_| ())
            }
        };
        assert_invalid(call(t0(), t0()).await, "end");
        assert_invalid(call(at_min(10), t0()).await, "end");
        assert_invalid(
            call(
                t0(),
                t0() + TimeDelta::days(90) + TimeDelta::milliseconds(1),
            )
            .await,
            "end",
        );
        assert_invalid(
            call(
                Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0)
                    .single()
                    .expect("date"),
                t0(),
            )
            .await,
            "start",
        );
    }
    assert_forbidden(e.schedule_shifts(&p.user, s.id, t0(), at_min(60)).await);
}

// ---------------------------------------------------------------- policies

#[tokio::test]
async fn escalation_policies_through_the_engine() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let rot = e
        .create_rotation(&p.admin, new_rotation(vec![p.eng.id]))
        .await
        .expect("rotation");
    let s = e
        .create_schedule(&p.admin, new_schedule(vec![]))
        .await
        .expect("schedule");
    let every = vec![
        PolicyTarget::User { id: p.eng.id },
        PolicyTarget::Schedule { id: s.id },
        PolicyTarget::Rotation { id: rot.id },
        PolicyTarget::Role {
            role: Role::Engineer,
        },
        PolicyTarget::Assignee,
    ];
    let new = new_policy(vec![
        step(vec![PolicyTarget::Assignee]),
        step(every.clone()),
    ]);
    assert_forbidden(e.create_escalation_policy(&p.eng, new.clone()).await);
    let pol = e
        .create_escalation_policy(&p.admin, new.clone())
        .await
        .expect("create");
    assert_eq!(pol.repeat, 3, "GoAlert's default repeat");
    assert_eq!(pol.steps[1].targets, every);
    assert_eq!(
        audit_of(&w, AuditAction::EscalationPolicyCreated, pol.id)
            .await
            .len(),
        1
    );
    assert_eq!(
        e.get_escalation_policy(&p.eng, pol.id).await.expect("read"),
        pol
    );
    assert_forbidden(e.get_escalation_policy(&p.user, pol.id).await);
    assert_eq!(
        e.list_escalation_policies(&p.eng, PageRequest::first(5))
            .await
            .expect("list")
            .items,
        vec![pol.clone()]
    );

    let before = audit_log(&w).await;
    let s0 = step(vec![PolicyTarget::Assignee]);
    let cases: Vec<(&str, NewEscalationPolicy)> = vec![
        (
            "name",
            NewEscalationPolicy {
                name: " ".into(),
                ..new.clone()
            },
        ),
        (
            "repeat",
            NewEscalationPolicy {
                repeat: Some(6),
                ..new.clone()
            },
        ),
        ("steps", new_policy(vec![])),
        ("steps", new_policy(vec![s0.clone(); 21])),
        (
            "steps[1].delayMinutes",
            new_policy(vec![
                s0.clone(),
                EscalationStep {
                    delay_minutes: 0,
                    ..s0.clone()
                },
            ]),
        ),
        (
            "steps[0].delayMinutes",
            new_policy(vec![EscalationStep {
                delay_minutes: 9001,
                ..s0.clone()
            }]),
        ),
        ("steps[0].targets", new_policy(vec![step(vec![])])),
        (
            "steps[0].targets",
            new_policy(vec![step(vec![PolicyTarget::Assignee; 11])]),
        ),
        (
            "steps[1].targets[2]",
            new_policy(vec![
                s0.clone(),
                step(vec![
                    PolicyTarget::Assignee,
                    PolicyTarget::User { id: p.eng.id },
                    PolicyTarget::User { id: UserId::new() },
                ]),
            ]),
        ),
        (
            "steps[0].targets[0]",
            new_policy(vec![step(vec![PolicyTarget::Schedule {
                id: ScheduleId::new(),
            }])]),
        ),
        (
            "steps[0].targets[1]",
            new_policy(vec![step(vec![
                PolicyTarget::Rotation { id: rot.id },
                PolicyTarget::Rotation {
                    id: RotationId::new(),
                },
            ])]),
        ),
    ];
    for (field, bad) in cases {
        assert_invalid(
            e.create_escalation_policy(&p.admin, bad.clone()).await,
            field,
        );
        assert_invalid(
            e.update_escalation_policy(
                &p.admin,
                pol.id,
                EscalationPolicyPatch {
                    name: Some(bad.name),
                    repeat: bad.repeat,
                    steps: Some(bad.steps),
                    ..Default::default()
                },
            )
            .await,
            field,
        );
    }
    assert_eq!(audit_log(&w).await, before, "nothing audited");
    assert_eq!(
        e.get_escalation_policy(&p.admin, pol.id)
            .await
            .expect("read"),
        pol,
        "nothing changed"
    );
    let max = new_policy(vec![
        EscalationStep {
            delay_minutes: 9000,
            targets: vec![PolicyTarget::Assignee; 10],
        };
        20
    ]);
    e.create_escalation_policy(
        &p.admin,
        NewEscalationPolicy {
            repeat: Some(0),
            ..max
        },
    )
    .await
    .expect("the limits are inclusive");

    let p2 = e
        .update_escalation_policy(
            &p.admin,
            pol.id,
            EscalationPolicyPatch {
                repeat: Some(5),
                steps: Some(vec![s0.clone()]),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!((p2.repeat, p2.version, p2.steps.len()), (5, 2, 1));
    let updated = audit_of(&w, AuditAction::EscalationPolicyUpdated, pol.id).await;
    assert_eq!(updated.len(), 1);
    assert!(updated[0].description.contains("repeat"));
    assert!(updated[0].description.contains("steps"));
    assert_forbidden(e.delete_escalation_policy(&p.eng, pol.id).await);
    e.delete_escalation_policy(&p.admin, pol.id)
        .await
        .expect("delete");
    assert_eq!(
        audit_of(&w, AuditAction::EscalationPolicyDeleted, pol.id)
            .await
            .len(),
        1
    );
    assert_not_found(e.get_escalation_policy(&p.admin, pol.id).await);
}

#[tokio::test]
async fn references_block_deletes() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let rot = e
        .create_rotation(&p.admin, new_rotation(vec![p.eng.id]))
        .await
        .expect("rotation");
    let rot2 = e
        .create_rotation(&p.admin, new_rotation(vec![p.eng.id]))
        .await
        .expect("rotation");
    let s = e
        .create_schedule(&p.admin, new_schedule(vec![rotation_rule(rot.id)]))
        .await
        .expect("schedule");
    let pol = e
        .create_escalation_policy(
            &p.admin,
            new_policy(vec![step(vec![
                PolicyTarget::Schedule { id: s.id },
                PolicyTarget::Rotation { id: rot2.id },
            ])]),
        )
        .await
        .expect("policy");
    let svc = e
        .create_service(
            &p.admin,
            NewService {
                name: "payments".into(),
                escalation_policy_id: Some(pol.id),
                ..Default::default()
            },
        )
        .await
        .expect("service");

    let before = audit_log(&w).await;
    assert_conflict(
        e.delete_rotation(&p.admin, rot.id).await,
        "payments on call",
    );
    assert_conflict(
        e.delete_rotation(&p.admin, rot2.id).await,
        "escalation policy",
    );
    assert_conflict(e.delete_schedule(&p.admin, s.id).await, "escalation policy");
    assert_conflict(
        e.delete_escalation_policy(&p.admin, pol.id).await,
        "service",
    );
    assert_eq!(
        audit_log(&w).await,
        before,
        "refused deletes are not audited"
    );
    assert!(rotation_of(&w, rot.id).await.is_some());
    assert!(rotation_of(&w, rot2.id).await.is_some());

    // Remove the references, then each goes.
    e.update_service(
        &p.admin,
        svc.id,
        serde_json::from_str::<ServicePatch>(r#"{"escalationPolicyId": null}"#).expect("patch"),
    )
    .await
    .expect("clear");
    e.delete_escalation_policy(&p.admin, pol.id)
        .await
        .expect("unused policy");
    e.delete_schedule(&p.admin, s.id)
        .await
        .expect("unused schedule");
    e.delete_rotation(&p.admin, rot.id)
        .await
        .expect("unused rotation");
    e.delete_rotation(&p.admin, rot2.id)
        .await
        .expect("unused rotation");
}

// ---------------------------------------------------------------- services

#[tokio::test]
async fn services_take_a_policy_and_an_ack_timeout() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let pol = e
        .create_escalation_policy(
            &p.admin,
            new_policy(vec![step(vec![PolicyTarget::Assignee])]),
        )
        .await
        .expect("policy");
    let before = audit_log(&w).await;
    let base = NewService {
        name: "payments".into(),
        ..Default::default()
    };
    let cases: Vec<(&str, NewService)> = vec![
        (
            "escalationPolicyId",
            NewService {
                escalation_policy_id: Some(imas_core::model::EscalationPolicyId::new()),
                ..base.clone()
            },
        ),
        (
            "ackTimeoutSeconds",
            NewService {
                ack_timeout_seconds: Some(0),
                ..base.clone()
            },
        ),
        (
            "ackTimeoutSeconds",
            NewService {
                ack_timeout_seconds: Some(604_801),
                ..base.clone()
            },
        ),
    ];
    for (field, bad) in cases {
        assert_invalid(e.create_service(&p.admin, bad).await, field);
    }
    assert_eq!(audit_log(&w).await, before);
    assert!(
        e.list_services(&p.admin, PageRequest::first(5))
            .await
            .expect("list")
            .items
            .is_empty()
    );

    let svc = e
        .create_service(
            &p.admin,
            NewService {
                escalation_policy_id: Some(pol.id),
                ack_timeout_seconds: Some(604_800),
                ..base.clone()
            },
        )
        .await
        .expect("create");
    assert_eq!(
        (svc.escalation_policy_id, svc.ack_timeout_seconds),
        (Some(pol.id), Some(604_800))
    );
    assert_eq!(
        w.store.get_service(svc.id).await.expect("get"),
        Some(svc.clone())
    );

    for (field, body) in [
        (
            "escalationPolicyId",
            format!(r#"{{"escalationPolicyId": "{}"}}"#, UserId::new()),
        ),
        (
            "ackTimeoutSeconds",
            r#"{"ackTimeoutSeconds": 0}"#.to_string(),
        ),
    ] {
        let patch: ServicePatch = serde_json::from_str(&body).expect("patch");
        assert_invalid(e.update_service(&p.admin, svc.id, patch).await, field);
    }
    assert_eq!(
        w.store.get_service(svc.id).await.expect("get"),
        Some(svc.clone())
    );

    // null clears; absent keeps.
    let patch: ServicePatch =
        serde_json::from_str(r#"{"ackTimeoutSeconds": null, "description": "x"}"#).expect("patch");
    let s2 = e
        .update_service(&p.admin, svc.id, patch)
        .await
        .expect("update");
    assert_eq!(
        (s2.escalation_policy_id, s2.ack_timeout_seconds, s2.version),
        (Some(pol.id), None, 2)
    );
    let patch: ServicePatch =
        serde_json::from_str(r#"{"escalationPolicyId": null, "ackTimeoutSeconds": 1}"#)
            .expect("patch");
    let s3 = e
        .update_service(&p.admin, svc.id, patch)
        .await
        .expect("update");
    assert_eq!(
        (s3.escalation_policy_id, s3.ack_timeout_seconds),
        (None, Some(1))
    );
    let updates = audit_of(&w, AuditAction::ServiceUpdated, svc.id).await;
    assert_eq!(updates.len(), 2);
    assert!(updates[0].description.contains("escalationPolicyId"));
    assert!(updates[0].description.contains("ackTimeoutSeconds"));
    assert!(updates[1].description.contains("ackTimeoutSeconds"));
    assert!(!updates[1].description.contains("escalationPolicyId"));
}

// ---------------------------------------------------------------- users

#[tokio::test]
async fn users_and_their_profiles() {
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;

    let me = e.me(&p.eng).await.expect("me");
    assert_eq!((me.id, me.username.as_str()), (p.eng.id, "eve"));
    assert_eq!(me.time_zone, chrono_tz::UTC, "registration is UTC");
    assert_eq!(e.me(&p.user).await.expect("any role").id, p.user.id);

    let listed = e
        .list_users(&p.eng, PageRequest::first(10))
        .await
        .expect("list");
    assert_eq!(
        listed
            .items
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        vec!["ursula", "oscar", "eve", "root"],
        "newest first"
    );
    assert_eq!(listed.items[2].role, Role::Engineer);
    assert_forbidden(e.list_users(&p.user, PageRequest::first(10)).await);
    let page = e
        .list_users(&p.admin, PageRequest::first(3))
        .await
        .expect("list");
    let rest = e
        .list_users(
            &p.admin,
            PageRequest {
                limit: 3,
                cursor: page.next,
            },
        )
        .await
        .expect("list");
    assert_eq!(rest.items.len(), 1, "keyset pages");
    assert_eq!(rest.items[0].username, "root");

    // Profile fields.
    let patch = ProfilePatch {
        name: Some("  Eve Moneypenny ".into()),
        email: Some(" EVE.M@Example.com ".into()),
        time_zone: Some("Europe/London".into()),
        ..Default::default()
    };
    let updated = e.update_me(&p.eng, patch).await.expect("update");
    assert_eq!(updated.name, "Eve Moneypenny");
    assert_eq!(updated.email, "eve.m@example.com");
    assert_eq!(updated.time_zone, chrono_tz::Europe::London);
    assert_eq!(updated.username, "eve");
    assert_eq!(updated.role, Role::Engineer);
    assert_eq!(e.me(&p.eng).await.expect("me"), updated);
    let audit = audit_of(&w, AuditAction::ProfileUpdated, p.eng.id).await;
    assert_eq!(audit.len(), 1);
    for f in ["name", "email", "timeZone"] {
        assert!(audit[0].description.contains(f), "{}", audit[0].description);
    }
    // Nothing new: nothing written.
    let same = ProfilePatch {
        name: Some("Eve Moneypenny".into()),
        ..Default::default()
    };
    e.update_me(&p.eng, same).await.expect("no-op");
    assert_eq!(
        audit_of(&w, AuditAction::ProfileUpdated, p.eng.id)
            .await
            .len(),
        1
    );

    // Each refused change names its field and changes nothing.
    let before = (e.me(&p.eng).await.expect("me"), audit_log(&w).await);
    let cases: Vec<(&str, ProfilePatch)> = vec![
        (
            "name",
            ProfilePatch {
                name: Some(" ".into()),
                ..Default::default()
            },
        ),
        (
            "name",
            ProfilePatch {
                name: Some("n".repeat(101)),
                ..Default::default()
            },
        ),
        (
            "email",
            ProfilePatch {
                email: Some("eve@localhost".into()),
                ..Default::default()
            },
        ),
        (
            "timeZone",
            ProfilePatch {
                time_zone: Some("CEST+2".into()),
                ..Default::default()
            },
        ),
        (
            "password",
            ProfilePatch {
                password: Some("password".into()),
                current_password: Some("correct horse battery".into()),
                ..Default::default()
            },
        ),
        (
            "currentPassword",
            ProfilePatch {
                name: Some("Changed".into()),
                password: Some("a brand new passphrase".into()),
                ..Default::default()
            },
        ),
        (
            "currentPassword",
            ProfilePatch {
                name: Some("Changed".into()),
                password: Some("a brand new passphrase".into()),
                current_password: Some("not my password".into()),
                ..Default::default()
            },
        ),
    ];
    for (field, bad) in cases {
        assert_invalid(e.update_me(&p.eng, bad).await, field);
    }
    assert_eq!(
        (e.me(&p.eng).await.expect("me"), audit_log(&w).await),
        before,
        "refused profile changes change nothing"
    );
    e.login("eve", "correct horse battery")
        .await
        .expect("the old password still works");

    // Another user's email.
    assert_conflict(
        e.update_me(
            &p.other,
            ProfilePatch {
                email: Some("Eve.M@example.com".into()),
                ..Default::default()
            },
        )
        .await,
        "email",
    );
    assert_eq!(e.me(&p.other).await.expect("me").email, "oscar@example.com");

    // A new password with the current one.
    let changed = e
        .update_me(
            &p.eng,
            ProfilePatch {
                password: Some("a brand new passphrase".into()),
                current_password: Some("correct horse battery".into()),
                ..Default::default()
            },
        )
        .await
        .expect("password");
    assert_ne!(changed.password_hash, before.0.password_hash);
    assert_eq!(
        audit_of(&w, AuditAction::PasswordChanged, p.eng.id)
            .await
            .len(),
        1,
        "PASSWORD_CHANGED"
    );
    assert_eq!(
        audit_of(&w, AuditAction::ProfileUpdated, p.eng.id)
            .await
            .len(),
        1,
        "a password change alone is no profile update"
    );
    e.login("eve", "a brand new passphrase")
        .await
        .expect("the new password works");
    assert!(
        e.login("eve", "correct horse battery").await.is_err(),
        "the old one no longer does"
    );
}

#[tokio::test]
async fn a_stale_version_is_a_conflict() {
    // Two admins read the same schedule and both change it: the store's
    // version check refuses the second commit, which the engine passes on.
    let w = world();
    let p = people(&w).await;
    let e = &w.engine;
    let s = e
        .create_schedule(&p.admin, new_schedule(vec![]))
        .await
        .expect("schedule");
    let mut concurrent = schedule_of(&w, s.id).await;
    concurrent.name = "renamed elsewhere".into();
    concurrent.version = 2;
    w.store
        .commit(Change {
            schedule: Some(ScheduleWrite::Update {
                schedule: concurrent.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await
        .expect("commit");
    // The engine reads the current version, so its own writes go through.
    let o: Override = e
        .add_override(&p.admin, s.id, adds(p.eng.id, 0, 60))
        .await
        .expect("override");
    let stored = schedule_of(&w, s.id).await;
    assert_eq!(stored.version, 3);
    assert_eq!(stored.name, "renamed elsewhere", "the other change is kept");
    assert_eq!(stored.overrides, vec![o]);
    // A write computed from version 1 is refused.
    let r = w
        .store
        .commit(Change {
            schedule: Some(ScheduleWrite::Update {
                schedule: s.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    assert_conflict(r, "version");
}

/// A password change (slow: it verifies and hashes) racing a time-zone change
/// of the same profile does not undo it, nor is the new password undone.
#[tokio::test]
async fn a_password_change_does_not_undo_a_profile_change_made_meanwhile() {
    let w = world();
    let me = w.user("racer", Role::Engineer).await;
    let e = w.engine.clone();
    let password = {
        let e = e.clone();
        tokio::spawn(async move {
            e.update_me(
                &me,
                ProfilePatch {
                    password: Some("an entirely new passphrase".into()),
                    current_password: Some("correct horse battery".into()),
                    ..Default::default()
                },
            )
            .await
        })
    };
    e.update_me(
        &me,
        ProfilePatch {
            time_zone: Some("Asia/Tokyo".into()),
            ..Default::default()
        },
    )
    .await
    .expect("time zone");
    password.await.expect("task").expect("password");
    let stored = e.me(&me).await.expect("me");
    assert_eq!(
        stored.time_zone,
        chrono_tz::Asia::Tokyo,
        "the time zone stays"
    );
    e.login("racer", "an entirely new passphrase")
        .await
        .expect("the new password stays");
}
