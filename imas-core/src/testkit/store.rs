//! The store contract. Each function takes a fresh, empty store.

use std::collections::HashSet;
use std::time::Duration;

use chrono::TimeZone;
use futures::future::join_all;

use crate::error::Error;
use crate::escalation::{SlaEscalation, next_due};
use crate::model::plus_ms;
use crate::model::{
    Actor, AuditAction, AuditEntry, AuditFilter, Cursor, Incident, IncidentFilter, IncidentId,
    Notification, NotificationId, NotificationIntent, NotificationType, Page, PageRequest,
    Priority, Role, Status, Timestamp, User, UserId,
};
use crate::ports::{Change, Generation, IncidentWrite, Store, UserWrite};
use crate::sla::SlaPolicy;

pub use super::cancel::{dropped_commits_are_whole, dropped_commits_move_generation};

/// The instant the suites start from: 2026-01-01T00:00:00Z.
pub fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// `t0() + ms`.
pub fn at(ms: i64) -> Timestamp {
    plus_ms(t0(), ms)
}

/// A user (with a placeholder hash) created at `t0()`.
pub fn user(username: &str, role: Role) -> User {
    User {
        id: UserId::new(),
        name: format!("{username} name"),
        username: username.to_string(),
        email: format!("{username}@example.com"),
        password_hash: "$argon2id$placeholder".into(),
        role,
        time_zone: chrono_tz::UTC,
        created_at: t0(),
    }
}

/// An incident as the engine would create it, with default SLA targets.
pub fn incident(reporter: UserId, title: &str, created_at: Timestamp) -> Incident {
    let mut i = Incident::open(title, reporter, created_at);
    SlaPolicy::default().assign(&mut i, Priority::Medium);
    i.next_due_at = next_due(&i, &SlaPolicy::default(), &SlaEscalation::default());
    i
}

pub(crate) fn audit(action: AuditAction, actor: Actor, target: &str, at: Timestamp) -> AuditEntry {
    AuditEntry::new(
        action,
        actor,
        Some(target.to_string()),
        format!("{action} on {target}"),
        at,
    )
}

fn intent(key: &str, user: UserId, at: Timestamp) -> NotificationIntent {
    NotificationIntent {
        key: key.to_string(),
        user,
        message: format!("message {key}"),
        kind: NotificationType::Warning,
        incident_id: None,
        created_at: at,
    }
}

pub(crate) async fn commit(store: &dyn Store, change: Change) {
    store.commit(change).await.expect("commit");
}

async fn add_user(store: &dyn Store, u: &User) {
    commit(
        store,
        Change {
            user: Some(UserWrite::Insert(u.clone())),
            ..Change::default()
        },
    )
    .await;
}

async fn add_incident(store: &dyn Store, i: &Incident) {
    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Insert(i.clone())),
            ..Change::default()
        },
    )
    .await;
}

async fn add_audit(store: &dyn Store, e: &AuditEntry) {
    commit(
        store,
        Change {
            audit: vec![e.clone()],
            ..Change::default()
        },
    )
    .await;
}

/// The first ten entries of the audit log: what a suite reads to check that a
/// failed change left none behind.
pub(crate) async fn first_audit_entries(store: &dyn Store) -> Vec<AuditEntry> {
    store
        .list_audit(&AuditFilter::default(), PageRequest::first(10))
        .await
        .expect("audit")
        .items
}

pub(crate) fn is_conflict<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Conflict { .. }))
}

pub(crate) fn is_not_found<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

/// Reads every page of a list, checking the page-size bound on the way.
pub(crate) async fn all_pages<T, F, Fut>(limit: u32, mut fetch: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = crate::Result<Page<T>>>,
{
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    for _ in 0..10_000 {
        let page = fetch(PageRequest { limit, cursor }).await.expect("list");
        assert!(
            page.items.len() <= limit as usize,
            "a page holds at most `limit` items"
        );
        let done = page.next.is_none();
        if !done {
            assert_eq!(
                page.items.len(),
                limit as usize,
                "only the last page may be short"
            );
        }
        out.extend(page.items);
        if done {
            return out;
        }
        cursor = page.next;
    }
    panic!("pagination never ended");
}

/// Users: insert and read back, lookups, role listing; a taken username or email
/// is a `Conflict` that writes nothing; role changes; unknown ids are `NotFound`.
pub async fn users_and_uniqueness(store: &dyn Store) {
    let ada = user("ada", Role::Engineer);
    let bob = user("bob", Role::Admin);
    add_user(store, &ada).await;
    add_user(store, &bob).await;
    assert_eq!(
        store.get_user(ada.id).await.expect("get"),
        Some(ada.clone())
    );
    assert_eq!(
        store.user_by_username("ada").await.expect("by name"),
        Some(ada.clone())
    );
    assert_eq!(
        store.user_by_username("ADA").await.expect("by name"),
        None,
        "usernames are exact"
    );
    assert_eq!(
        store.user_by_username("nobody").await.expect("by name"),
        None
    );
    assert_eq!(store.get_user(UserId::new()).await.expect("get"), None);

    let mut same_name = user("ada", Role::User);
    same_name.email = "other@example.com".into();
    let r = store
        .commit(Change {
            user: Some(UserWrite::Insert(same_name.clone())),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "duplicate username must be a Conflict, got {r:?}"
    );
    let mut same_email = user("carol", Role::User);
    same_email.email = ada.email.clone();
    let r = store
        .commit(Change {
            user: Some(UserWrite::Insert(same_email.clone())),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "duplicate email must be a Conflict, got {r:?}"
    );
    assert_eq!(store.get_user(same_name.id).await.expect("get"), None);
    assert_eq!(store.get_user(same_email.id).await.expect("get"), None);

    let engineers = store.users_with_role(Role::Engineer).await.expect("role");
    assert_eq!(
        engineers.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![ada.id]
    );
    commit(
        store,
        Change {
            user: Some(UserWrite::SetRole {
                id: ada.id,
                role: Role::Admin,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.get_user(ada.id).await.expect("get").map(|u| u.role),
        Some(Role::Admin)
    );
    assert!(
        store
            .users_with_role(Role::Engineer)
            .await
            .expect("role")
            .is_empty()
    );
    let admins: HashSet<UserId> = store
        .users_with_role(Role::Admin)
        .await
        .expect("role")
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(admins, HashSet::from([ada.id, bob.id]));
    let r = store
        .commit(Change {
            user: Some(UserWrite::SetRole {
                id: UserId::new(),
                role: Role::Admin,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_not_found(&r),
        "role change of an unknown user must be NotFound, got {r:?}"
    );
}

/// Incidents: insert and read back unchanged (every field, hostile text
/// included), optimistic updates, stale versions, deletes that keep audit.
pub async fn incident_versions(store: &dyn Store) {
    let reporter = UserId::new();
    let mut i = incident(
        reporter,
        "Robert'); DROP TABLE incidents;-- \"é ü – ß 漢字\" 100% _x_",
        at(0),
    );
    i.description =
        "line one\nline two, with \"quotes\" and \\backslashes\\ and NUL-free \u{1F525}".into();
    i.assigned_to = Some(UserId::new());
    i.held_ms = 1234;
    i.hold_started_at = Some(at(99));
    i.response_breached_at = Some(at(5));
    i.at_risk_at = Some(at(6));
    add_incident(store, &i).await;
    assert_eq!(
        store.get_incident(i.id).await.expect("get"),
        Some(i.clone()),
        "an incident reads back unchanged"
    );
    assert_eq!(
        store.get_incident(IncidentId::new()).await.expect("get"),
        None
    );

    let r = store
        .commit(Change {
            incident: Some(IncidentWrite::Insert(i.clone())),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a duplicate incident id must be a Conflict, got {r:?}"
    );

    let mut v2 = i.clone();
    v2.status = Status::Acknowledged;
    v2.acknowledged_at = Some(at(10));
    v2.sla_breached = true;
    v2.breached_at = Some(at(11));
    v2.escalation_level = 2;
    v2.escalated_at = Some(at(12));
    v2.assigned_to = None;
    v2.next_due_at = None;
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
        Some(v2.clone())
    );

    let mut stale = i.clone();
    stale.title = "stale".into();
    stale.version = 2;
    let r = store
        .commit(Change {
            incident: Some(IncidentWrite::Update {
                incident: stale,
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a stale update must be a Conflict, got {r:?}"
    );
    assert_eq!(
        store.get_incident(i.id).await.expect("get"),
        Some(v2.clone()),
        "a stale update changes nothing"
    );

    let mut ghost = incident(reporter, "ghost", at(0));
    ghost.version = 2;
    let r = store
        .commit(Change {
            incident: Some(IncidentWrite::Update {
                incident: ghost.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_not_found(&r),
        "updating a missing incident must be NotFound, got {r:?}"
    );

    let r = store
        .commit(Change {
            incident: Some(IncidentWrite::Delete {
                id: i.id,
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a stale delete must be a Conflict, got {r:?}"
    );
    let trail = audit(
        AuditAction::IncidentDeleted,
        Actor::User(reporter),
        &i.id.to_string(),
        at(20),
    );
    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Delete {
                id: i.id,
                expected_version: 2,
            }),
            audit: vec![trail.clone()],
            ..Change::default()
        },
    )
    .await;
    assert_eq!(store.get_incident(i.id).await.expect("get"), None);
    let r = store
        .commit(Change {
            incident: Some(IncidentWrite::Delete {
                id: i.id,
                expected_version: 2,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_not_found(&r),
        "deleting a missing incident must be NotFound, got {r:?}"
    );
    let kept = store
        .list_audit(
            &AuditFilter {
                target: Some(i.id.to_string()),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .expect("audit");
    assert_eq!(
        kept.items,
        vec![trail],
        "deleting an incident keeps its audit trail"
    );
}

/// A change whose last part fails leaves nothing behind: not the incident
/// write, not the audit entries, not the outbox rows.
pub async fn change_is_atomic(store: &dyn Store) {
    let reporter = user("rep", Role::User);
    add_user(store, &reporter).await;
    let base = incident(reporter.id, "base", at(0));
    add_incident(store, &base).await;
    let existing = audit(
        AuditAction::IncidentCreated,
        Actor::User(reporter.id),
        "x",
        at(1),
    );
    add_audit(store, &existing).await;

    // 1. The audit insert violates its unique id: the new incident and the
    //    outbox row must not appear.
    let fresh = incident(reporter.id, "fresh", at(2));
    let mut dup = audit(
        AuditAction::IncidentCreated,
        Actor::User(reporter.id),
        "y",
        at(2),
    );
    dup.id = existing.id;
    let r = store
        .commit(Change {
            incident: Some(IncidentWrite::Insert(fresh.clone())),
            audit: vec![
                audit(AuditAction::IncidentCreated, Actor::System, "z", at(2)),
                dup,
            ],
            outbox: vec![intent("atomic-1", reporter.id, at(2))],
            ..Change::default()
        })
        .await;
    assert!(r.is_err(), "a duplicate audit id must fail the change");

    // 2. A stale incident update with audit and outbox: nothing of it lands.
    let mut stale = base.clone();
    stale.title = "changed".into();
    stale.version = 5;
    let r = store
        .commit(Change {
            incident: Some(IncidentWrite::Update {
                incident: stale,
                expected_version: 4,
            }),
            audit: vec![audit(
                AuditAction::IncidentUpdated,
                Actor::System,
                "w",
                at(3),
            )],
            outbox: vec![intent("atomic-2", reporter.id, at(3))],
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a stale update must be a Conflict, got {r:?}"
    );

    // 3. A user insert that conflicts, with an incident insert beside it.
    let clash = user("rep", Role::User);
    let other = incident(reporter.id, "other", at(4));
    let r = store
        .commit(Change {
            user: Some(UserWrite::Insert(clash)),
            incident: Some(IncidentWrite::Insert(other.clone())),
            audit: vec![audit(
                AuditAction::UserRegistered,
                Actor::System,
                "v",
                at(4),
            )],
            outbox: vec![intent("atomic-3", reporter.id, at(4))],
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a duplicate username must be a Conflict, got {r:?}"
    );

    assert_eq!(store.get_incident(fresh.id).await.expect("get"), None);
    assert_eq!(store.get_incident(other.id).await.expect("get"), None);
    assert_eq!(
        store.get_incident(base.id).await.expect("get"),
        Some(base.clone())
    );
    let log = store
        .list_audit(&AuditFilter::default(), PageRequest::first(50))
        .await
        .expect("audit");
    assert_eq!(
        log.items,
        vec![existing],
        "no audit entry of a failed change is visible"
    );
    assert_eq!(
        store.pending_outbox().await.expect("pending"),
        0,
        "no outbox row of a failed change is visible"
    );
    assert!(
        store
            .claim_outbox(at(1_000_000), Duration::from_secs(1), 10)
            .await
            .expect("claim")
            .is_empty()
    );
}

/// Changes committed at the same time (which a store may write together, in
/// one transaction) each succeed or fail on their own: a failing one leaves
/// nothing, and takes nothing of the others with it.
pub async fn concurrent_changes_fail_alone(store: &dyn Store) {
    let reporter = user("rep", Role::User);
    add_user(store, &reporter).await;
    let existing = audit(AuditAction::IncidentCreated, Actor::System, "x", at(0));
    add_audit(store, &existing).await;
    let changes: Vec<(bool, Incident, Change)> = (0..60)
        .map(|n| {
            let i = incident(reporter.id, &format!("together {n}"), at(n + 1));
            let mut entry = audit(
                AuditAction::IncidentCreated,
                Actor::User(reporter.id),
                &i.id.to_string(),
                at(n + 1),
            );
            // Every fifth reuses an audit id, so it must fail.
            let fails = n % 5 == 0;
            if fails {
                entry.id = existing.id;
            }
            let change = Change {
                incident: Some(IncidentWrite::Insert(i.clone())),
                audit: vec![entry],
                outbox: vec![intent(&format!("together-{n}"), reporter.id, at(n + 1))],
                ..Change::default()
            };
            (fails, i, change)
        })
        .collect();
    let results = join_all(changes.iter().map(|(_, _, c)| store.commit(c.clone()))).await;
    let mut expected_log = vec![existing];
    for ((fails, i, change), result) in changes.iter().zip(results) {
        let found = store.get_incident(i.id).await.expect("get");
        if *fails {
            assert!(
                result.is_err(),
                "{}: a duplicate audit id must fail",
                i.title
            );
            assert_eq!(found, None, "{}: nothing of a failed change", i.title);
        } else {
            assert!(result.is_ok(), "{}: {result:?}", i.title);
            assert_eq!(found.as_ref(), Some(i));
            expected_log.extend(change.audit.iter().cloned());
        }
    }
    let mut log = store
        .list_audit(&AuditFilter::default(), PageRequest::first(500))
        .await
        .expect("audit")
        .items;
    log.sort_by_key(|e| e.id.0);
    expected_log.sort_by_key(|e| e.id.0);
    assert_eq!(
        log, expected_log,
        "exactly the audit entries of the changes that succeeded"
    );
    assert_eq!(store.pending_outbox().await.expect("pending"), 48);
}

/// Outbox rows are keyed: a key already written (pending or delivered) is
/// skipped, and the rest of the change still commits.
pub async fn outbox_insert_is_idempotent(store: &dyn Store) {
    let u = UserId::new();
    commit(
        store,
        Change {
            outbox: vec![intent("k1", u, at(0)), intent("k2", u, at(0))],
            ..Change::default()
        },
    )
    .await;
    let entry = audit(AuditAction::SlaBreach, Actor::System, "t", at(1));
    commit(
        store,
        Change {
            outbox: vec![intent("k1", u, at(1)), intent("k3", u, at(1))],
            audit: vec![entry.clone()],
            ..Change::default()
        },
    )
    .await;
    assert_eq!(store.pending_outbox().await.expect("pending"), 3);
    store
        .complete_outbox(&["k2".to_string()], at(2))
        .await
        .expect("complete");
    commit(
        store,
        Change {
            outbox: vec![intent("k2", u, at(2))],
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.pending_outbox().await.expect("pending"),
        2,
        "a delivered key is not written again"
    );
    let log = store
        .list_audit(&AuditFilter::default(), PageRequest::first(10))
        .await
        .expect("audit");
    assert_eq!(log.items, vec![entry]);
}

/// Keyset pagination over incidents: every item exactly once, newest first by
/// `(created_at, id)`, ties on `created_at` included, pages of exactly `limit`
/// but the last.
pub async fn keyset_pagination(store: &dyn Store) {
    let reporter = UserId::new();
    let mut all = Vec::new();
    for n in 0..37 {
        // Groups of three share a creation instant to exercise the id tie-break.
        let i = incident(reporter, &format!("incident {n}"), at((n / 3) * 1000));
        add_incident(store, &i).await;
        all.push(i);
    }
    all.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
    let expected: Vec<IncidentId> = all.iter().map(|i| i.id).collect();
    let any = IncidentFilter::default();
    for limit in [1, 5, 10, 37, 50] {
        let got = all_pages(limit, |p| store.list_incidents(&any, p)).await;
        assert_eq!(
            got.iter().map(|i| i.id).collect::<Vec<_>>(),
            expected,
            "limit {limit}"
        );
    }
    let first = store
        .list_incidents(&IncidentFilter::default(), PageRequest::first(37))
        .await
        .expect("list");
    assert_eq!(
        first.next, None,
        "an exactly full last page has no next cursor"
    );
}

/// Fixture for the filter tests: users, and incidents covering every filter.
async fn filter_fixture(store: &dyn Store) -> (Vec<Incident>, UserId, UserId) {
    let (alice, bob) = (UserId::new(), UserId::new());
    let texts = [
        (
            "Database outage in eu-west",
            "Primary PostgreSQL down; replicas lag",
        ),
        ("Login page broken", "Users see a 500 on login"),
        ("Slow dashboard", "The dashboard takes 30s to load"),
        ("Disk full on db-1", "database volume at 100%"),
        ("Certificate expiry", "TLS cert for api expires soon"),
        (
            "Payment webhook retries",
            "Stripe webhooks retried; DATABASE locks",
        ),
        ("Typo on landing page", "\"Welcome\" misspelled"),
        ("Memory leak in worker", "RSS grows 1 GB per hour"),
    ];
    let statuses = Status::ALL;
    let priorities = Priority::ALL;
    let mut out = Vec::new();
    for (n, (title, desc)) in texts.iter().cycle().take(24).enumerate() {
        let n = n as i64;
        let mut i = incident(if n % 2 == 0 { alice } else { bob }, title, at(n * 60_000));
        i.description = desc.to_string();
        i.status = statuses[(n as usize) % statuses.len()];
        SlaPolicy::default().assign(&mut i, priorities[(n as usize / 2) % priorities.len()]);
        i.assigned_to = match n % 3 {
            0 => Some(alice),
            1 => Some(bob),
            _ => None,
        };
        i.escalation_level = (n % 4 == 1) as u32;
        i.sla_breached = n % 5 == 2;
        i.next_due_at = None;
        add_incident(store, &i).await;
        out.push(i);
    }
    (out, alice, bob)
}

async fn check_filter(store: &dyn Store, all: &[Incident], filter: IncidentFilter) {
    let mut expected: Vec<&Incident> = all.iter().filter(|i| filter.matches(i)).collect();
    expected.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
    let expected: Vec<IncidentId> = expected.iter().map(|i| i.id).collect();
    let got = all_pages(4, |p| store.list_incidents(&filter, p)).await;
    assert_eq!(
        got.iter().map(|i| i.id).collect::<Vec<_>>(),
        expected,
        "filter {filter:?}"
    );
    assert_eq!(
        store.count_incidents(&filter).await.expect("count"),
        expected.len() as u64,
        "count for {filter:?}"
    );
}

/// Every filter, alone and combined, returns exactly what
/// [`IncidentFilter::matches`] selects, and counts agree.
pub async fn incident_filters(store: &dyn Store) {
    let (all, alice, bob) = filter_fixture(store).await;
    let base = IncidentFilter::default();
    let mut filters = vec![
        base.clone(),
        IncidentFilter {
            status: vec![Status::Open],
            ..base.clone()
        },
        IncidentFilter {
            status: vec![Status::InProgress, Status::OnHold],
            ..base.clone()
        },
        IncidentFilter {
            priority: vec![Priority::Critical],
            ..base.clone()
        },
        IncidentFilter {
            assigned_to: Some(alice),
            ..base.clone()
        },
        IncidentFilter {
            reported_by: Some(bob),
            ..base.clone()
        },
        IncidentFilter {
            created_from: Some(at(5 * 60_000)),
            created_to: Some(at(12 * 60_000)),
            ..base.clone()
        },
        IncidentFilter {
            escalated: Some(true),
            ..base.clone()
        },
        IncidentFilter {
            escalated: Some(false),
            sla_breached: Some(false),
            ..base.clone()
        },
        IncidentFilter {
            sla_breached: Some(true),
            ..base.clone()
        },
        IncidentFilter {
            violated_at: Some(at(30 * 3_600_000)),
            ..base.clone()
        },
        IncidentFilter {
            violated_at: Some(at(5 * 3_600_000)),
            ..base.clone()
        },
        IncidentFilter {
            status: Status::ALL
                .iter()
                .copied()
                .filter(|s| *s != Status::Closed)
                .collect(),
            escalated: Some(true),
            ..base.clone()
        },
        IncidentFilter {
            status: vec![Status::Open, Status::Acknowledged],
            priority: vec![Priority::Low, Priority::High],
            assigned_to: Some(bob),
            ..base.clone()
        },
    ];
    for q in [
        "database",
        "DATABASE",
        "dashboard",
        "database locks",
        "login",
        "500",
        "welcome",
        "nomatch",
        "db",
    ] {
        filters.push(IncidentFilter {
            q: Some(q.into()),
            ..base.clone()
        });
    }
    filters.push(IncidentFilter {
        q: Some("database".into()),
        status: vec![Status::Open, Status::Resolved],
        ..base
    });
    for f in filters {
        check_filter(store, &all, f).await;
    }
}

/// Hostile strings in `q` and in stored text are data: no error, no injection,
/// the reference result.
pub async fn hostile_search_is_data(store: &dyn Store) {
    let reporter = UserId::new();
    let mut all = Vec::new();
    for (n, title) in [
        "100% done",
        "under_score name",
        "quote \" inside",
        "it's fine",
        "NEAR(a b) AND OR NOT",
        "x* prefix",
    ]
    .iter()
    .enumerate()
    {
        let i = incident(reporter, title, at(n as i64));
        add_incident(store, &i).await;
        all.push(i);
    }
    for q in [
        "\"",
        "'",
        "%",
        "_",
        "100%",
        "under_score",
        "NEAR(",
        "NEAR(a b)",
        "a OR b",
        "x*",
        "*",
        "'; DROP TABLE incidents; --",
        "\\",
        "AND",
        "it's",
        "\"quote",
        "( ) :",
        "-",
        "^",
        "{}",
        "💥",
    ] {
        check_filter(
            store,
            &all,
            IncidentFilter {
                q: Some(q.into()),
                ..Default::default()
            },
        )
        .await;
    }
}

/// Due claims: only due incidents, earliest first, at most `limit`; a claimed
/// incident is not handed out again until its lease expires or it is updated;
/// `next_due_at` reports the earliest instant a claim could return something.
pub async fn claim_due(store: &dyn Store) {
    let reporter = UserId::new();
    assert_eq!(store.next_due_at().await.expect("next"), None);
    let mut due = Vec::new();
    for n in 0..5 {
        let mut i = incident(reporter, &format!("due {n}"), at(0));
        i.next_due_at = Some(at(1000 - n * 100));
        add_incident(store, &i).await;
        due.push(i);
    }
    let mut later = incident(reporter, "later", at(0));
    later.next_due_at = Some(at(50_000));
    add_incident(store, &later).await;
    let mut never = incident(reporter, "never", at(0));
    never.next_due_at = None;
    add_incident(store, &never).await;
    assert_eq!(store.next_due_at().await.expect("next"), Some(at(600)));

    let lease = Duration::from_secs(30);
    let first = store.claim_due(at(2000), lease, 3).await.expect("claim");
    let ids = |v: &[Incident]| v.iter().map(|i| i.id).collect::<HashSet<_>>();
    let want: HashSet<IncidentId> = due.iter().rev().take(3).map(|i| i.id).collect();
    assert_eq!(ids(&first), want, "the earliest due, at most limit");
    let second = store.claim_due(at(2000), lease, 10).await.expect("claim");
    assert_eq!(
        ids(&second),
        HashSet::from([due[1].id, due[0].id]),
        "claimed ones are skipped"
    );
    assert!(
        store
            .claim_due(at(2000), lease, 10)
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        store.next_due_at().await.expect("next"),
        Some(at(2000 + 30_000)),
        "claimed until the lease ends"
    );
    assert!(
        second
            .iter()
            .all(|i| i.next_due_at == Some(at(2000 + 30_000))),
        "claims show their lease"
    );

    // Updating releases the claim; the new due time applies.
    let mut moved = first[0].clone();
    moved.next_due_at = Some(at(2500));
    moved.version += 1;
    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Update {
                incident: moved.clone(),
                expected_version: first[0].version,
            }),
            ..Change::default()
        },
    )
    .await;
    assert!(
        store
            .claim_due(at(2400), lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "not due before its new time"
    );
    let again = store.claim_due(at(2500), lease, 10).await.expect("claim");
    assert_eq!(
        again.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![moved.id]
    );
    assert_eq!(
        again[0].version, moved.version,
        "claims return the current state"
    );

    // An expired lease makes the others claimable again (a dead node's claims).
    let expired = store
        .claim_due(at(2000 + 30_001), lease, 10)
        .await
        .expect("claim");
    let mut ids: Vec<IncidentId> = expired.iter().map(|i| i.id).collect();
    ids.sort();
    let mut want: Vec<IncidentId> = due
        .iter()
        .filter(|i| i.id != moved.id)
        .map(|i| i.id)
        .collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        store.next_due_at().await.expect("next"),
        Some(at(2500 + 30_000)),
        "the earliest lease end"
    );
}

/// Concurrent claimers never receive the same incident, and together they
/// receive every due one.
pub async fn concurrent_claims_are_exclusive(store: &dyn Store) {
    let reporter = UserId::new();
    let mut ids = HashSet::new();
    for n in 0..60 {
        let mut i = incident(reporter, &format!("c{n}"), at(0));
        i.next_due_at = Some(at(n));
        add_incident(store, &i).await;
        ids.insert(i.id);
    }
    let lease = Duration::from_secs(60);
    let claims = join_all((0..6).map(|_| async move {
        let mut mine = Vec::new();
        loop {
            let batch = store.claim_due(at(1000), lease, 7).await.expect("claim");
            if batch.is_empty() {
                return mine;
            }
            mine.extend(batch.into_iter().map(|i| i.id));
        }
    }))
    .await;
    let mut seen = HashSet::new();
    for id in claims.into_iter().flatten() {
        assert!(seen.insert(id), "incident {id} was claimed twice");
    }
    assert_eq!(seen, ids, "every due incident was claimed");
}

/// The audit log: append-only entries read back unchanged, newest first,
/// filtered by action, actor, target and time range, paginated.
pub async fn audit_log(store: &dyn Store) {
    let (u1, u2) = (UserId::new(), UserId::new());
    let mut all = Vec::new();
    for n in 0..30i64 {
        let action = [
            AuditAction::IncidentCreated,
            AuditAction::SlaBreach,
            AuditAction::Escalation,
        ][n as usize % 3];
        let actor = match n % 3 {
            0 => Actor::User(u1),
            1 => Actor::System,
            _ => Actor::User(u2),
        };
        let e = audit(
            action,
            actor,
            &format!("target-{}", n % 4),
            at((n / 2) * 1000),
        );
        add_audit(store, &e).await;
        all.push(e);
    }
    let filters = [
        AuditFilter::default(),
        AuditFilter {
            action: Some(AuditAction::SlaBreach),
            ..Default::default()
        },
        AuditFilter {
            actor: Some(Actor::System),
            ..Default::default()
        },
        AuditFilter {
            actor: Some(Actor::User(u2)),
            ..Default::default()
        },
        AuditFilter {
            target: Some("target-1".into()),
            ..Default::default()
        },
        AuditFilter {
            from: Some(at(3000)),
            to: Some(at(9000)),
            ..Default::default()
        },
        AuditFilter {
            action: Some(AuditAction::Escalation),
            actor: Some(Actor::User(u2)),
            from: Some(at(5000)),
            ..Default::default()
        },
        AuditFilter {
            action: Some(AuditAction::RoleChanged),
            ..Default::default()
        },
    ];
    for f in filters {
        let mut expected: Vec<&AuditEntry> = all.iter().filter(|e| f.matches(e)).collect();
        expected.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
        let expected: Vec<AuditEntry> = expected.into_iter().cloned().collect();
        let got = all_pages(4, |p| store.list_audit(&f, p)).await;
        assert_eq!(got, expected, "audit filter {f:?}");
    }
}

/// Every audit action (the ones added since the first schema too) is stored
/// and read back as itself, and found by its action filter.
pub async fn every_audit_action_round_trips(store: &dyn Store) {
    let entries: Vec<AuditEntry> = AuditAction::ALL
        .iter()
        .enumerate()
        .map(|(n, a)| {
            AuditEntry::new(
                *a,
                Actor::System,
                Some(format!("target-{n}")),
                format!("entry for {a}"),
                at(n as i64),
            )
        })
        .collect();
    store
        .commit(Change {
            audit: entries.clone(),
            ..Change::default()
        })
        .await
        .expect("commit every action");
    for e in &entries {
        let f = AuditFilter {
            action: Some(e.action),
            ..Default::default()
        };
        let got = store
            .list_audit(&f, PageRequest::first(10))
            .await
            .expect("list by action");
        assert_eq!(got.items, vec![e.clone()], "action {}", e.action);
    }
}

/// In-app notifications: insert is idempotent by key; lists are per user,
/// newest first, paginated; only the owner can mark one read.
pub async fn notifications(store: &dyn Store) {
    let (alice, bob) = (UserId::new(), UserId::new());
    let mut mine = Vec::new();
    for n in 0..9i64 {
        let owner = if n % 3 == 0 { bob } else { alice };
        let i = intent(&format!("n{n}"), owner, at(n / 2 * 10));
        let note = Notification::from_intent(&i, at(n / 2 * 10));
        assert!(
            store.insert_notification(&note).await.expect("insert"),
            "a new key inserts"
        );
        if owner == alice {
            mine.push(note);
        }
    }
    let mut dup = Notification::from_intent(&intent("n1", alice, at(500)), at(500));
    dup.message = "duplicate".into();
    assert!(
        !store.insert_notification(&dup).await.expect("insert"),
        "an existing key does not insert again"
    );
    assert!(!store.insert_notification(&dup).await.expect("insert"));
    // A batch: new keys insert, an existing key does not, a key twice
    // inserts its first.
    let fresh = Notification::from_intent(&intent("n9", alice, at(60)), at(60));
    let twice = Notification::from_intent(&intent("n10", alice, at(70)), at(70));
    let mut again = Notification::from_intent(&intent("n10", alice, at(80)), at(80));
    again.message = "the same key again".into();
    let old = Notification::from_intent(&intent("n2", alice, at(90)), at(90));
    assert_eq!(
        store
            .insert_notifications(&[fresh.clone(), old, twice.clone(), again])
            .await
            .expect("insert a batch"),
        vec![true, false, true, false]
    );
    assert_eq!(
        store.insert_notifications(&[]).await.expect("nothing"),
        Vec::<bool>::new()
    );
    mine.extend([fresh, twice]);

    mine.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
    let got = all_pages(4, |p| store.list_notifications(alice, p)).await;
    assert_eq!(got, mine, "alice sees her own, newest first, once");
    assert!(got.iter().all(|n| n.user == alice && !n.read));
    assert!(
        store
            .list_notifications(UserId::new(), PageRequest::first(10))
            .await
            .expect("list")
            .items
            .is_empty()
    );

    let target = mine[0].id;
    let r = store.mark_read(bob, target).await;
    assert!(
        is_not_found(&r),
        "another user's notification is NotFound, got {r:?}"
    );
    assert!(
        !store
            .list_notifications(alice, PageRequest::first(1))
            .await
            .expect("list")
            .items[0]
            .read
    );
    let read = store.mark_read(alice, target).await.expect("mark");
    assert!(read.read);
    assert_eq!(read.id, target);
    let r = store.mark_read(alice, NotificationId::new()).await;
    assert!(
        is_not_found(&r),
        "an unknown notification is NotFound, got {r:?}"
    );
    let after = store
        .list_notifications(alice, PageRequest::first(50))
        .await
        .expect("list");
    assert_eq!(after.items.iter().filter(|n| n.read).count(), 1);
}

/// Channel delivery receipts: recorded once per (key, channel).
pub async fn channel_receipts(store: &dyn Store) {
    assert!(!store.was_delivered("k", "webhook").await.expect("check"));
    assert!(store.record_delivery("k", "webhook").await.expect("record"));
    assert!(
        !store.record_delivery("k", "webhook").await.expect("record"),
        "a second record is refused"
    );
    assert!(store.was_delivered("k", "webhook").await.expect("check"));
    assert!(
        !store.was_delivered("k", "email").await.expect("check"),
        "per channel"
    );
    assert!(
        !store.was_delivered("k2", "webhook").await.expect("check"),
        "per key"
    );
    assert!(store.record_delivery("k", "email").await.expect("record"));
}

/// The outbox relay contract: claims hand out undelivered entries oldest first
/// with a lease and an attempt count; a lease that expires hands them out again;
/// completed entries never come back.
pub async fn outbox_relay_contract(store: &dyn Store) {
    let u = UserId::new();
    let intents: Vec<NotificationIntent> = (0..5)
        .map(|n| intent(&format!("o{n}"), u, at(n * 10)))
        .collect();
    commit(
        store,
        Change {
            outbox: intents.clone(),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(store.pending_outbox().await.expect("pending"), 5);

    let lease = Duration::from_secs(10);
    assert!(
        store
            .claim_outbox(at(-1), lease, 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is available early"
    );
    let first = store.claim_outbox(at(25), lease, 10).await.expect("claim");
    assert_eq!(
        first.iter().map(|e| e.intent.clone()).collect::<Vec<_>>(),
        intents[..3].to_vec(),
        "available ones, oldest first"
    );
    assert!(first.iter().all(|e| e.attempts == 1));
    let rest = store.claim_outbox(at(100), lease, 1).await.expect("claim");
    assert_eq!(rest.len(), 1, "limit applies");
    assert_eq!(rest[0].intent, intents[3]);

    store
        .complete_outbox(
            &["o0".to_string(), "o3".to_string(), "unknown".to_string()],
            at(30),
        )
        .await
        .expect("complete");
    assert_eq!(store.pending_outbox().await.expect("pending"), 3);
    let later = store
        .claim_outbox(at(25 + 10_001), lease, 10)
        .await
        .expect("claim");
    let mut keys: Vec<&str> = later.iter().map(|e| e.intent.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec!["o1", "o2", "o4"],
        "expired leases come back; completed entries never do"
    );
    assert!(
        later
            .iter()
            .filter(|e| e.intent.key != "o4")
            .all(|e| e.attempts == 2)
    );
}

/// Every incident of a store, newest first, through its pages (for examples,
/// benchmarks and tests that check what a run left behind).
pub async fn all_incidents(store: &dyn Store) -> Vec<Incident> {
    let (mut out, mut page) = (Vec::new(), PageRequest::first(500));
    loop {
        let p = store
            .list_incidents(&IncidentFilter::default(), page)
            .await
            .expect("list incidents");
        out.extend(p.items);
        match p.next {
            Some(c) => page.cursor = Some(c),
            None => return out,
        }
    }
}

/// Waits (up to 10 s) for the store to report a generation, as one whose change
/// feed connects in the background does shortly after it opens. `None` if it
/// never does.
pub async fn live_generation(store: &dyn Store) -> Option<Generation> {
    for _ in 0..1_000 {
        if let Some(g) = store.generation() {
            return Some(g);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// [`live_generation`], for a store that must report one: a store that cannot
/// declares it (`store_conformance_tests!(factory, without_generations)`), so
/// that a change feed that never connects fails its suite instead of passing it
/// with nothing checked.
pub async fn expect_generation(store: &dyn Store) -> Generation {
    live_generation(store).await.expect(
        "the store reported no generation within 10 s; a store that cannot report one \
         must declare it: store_conformance_tests!(factory, without_generations)",
    )
}

/// Generations: a user write moves `users`, an incident write and a claim move
/// `incidents`, and each counter only grows (a store that hears of its own
/// writes again through its change feed may move them more than once, which
/// only costs a cache miss).
pub async fn generations(store: &dyn Store) {
    let g0 = expect_generation(store).await;
    let reporter = user("gen", Role::User);
    add_user(store, &reporter).await;
    let g1 = store.generation().expect("still live");
    assert!(
        g1.users > g0.users,
        "a user insert moves users: {g0:?} -> {g1:?}"
    );
    assert!(g1.incidents >= g0.incidents, "counters never go back");

    let mut i = incident(reporter.id, "generation", at(0));
    i.next_due_at = Some(at(10));
    add_incident(store, &i).await;
    let g2 = store.generation().expect("still live");
    assert!(
        g2.incidents > g1.incidents,
        "an incident insert moves incidents"
    );
    assert!(g2.users >= g1.users, "counters never go back");

    store
        .list_incidents(&IncidentFilter::default(), PageRequest::first(10))
        .await
        .expect("list");
    store.get_user(reporter.id).await.expect("get");

    let claimed = store
        .claim_due(at(20), Duration::from_secs(30), 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let g3 = store.generation().expect("still live");
    assert!(g3.incidents > g2.incidents, "a claim moves incidents");

    let mut v2 = claimed[0].clone();
    v2.title = "updated".into();
    v2.version = 2;
    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Update {
                incident: v2,
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    let g4 = store.generation().expect("still live");
    assert!(
        g4.incidents > g3.incidents,
        "an incident update moves incidents"
    );

    commit(
        store,
        Change {
            user: Some(UserWrite::SetRole {
                id: reporter.id,
                role: Role::Engineer,
            }),
            ..Change::default()
        },
    )
    .await;
    let g5 = store.generation().expect("still live");
    assert!(g5.users > g4.users, "a role change moves users");

    commit(
        store,
        Change {
            incident: Some(IncidentWrite::Delete {
                id: i.id,
                expected_version: 2,
            }),
            ..Change::default()
        },
    )
    .await;
    let g6 = store.generation().expect("still live");
    assert!(g6.incidents > g5.incidents, "a delete moves incidents");
}

/// For a store that declares it reports no generation: it reports none, before
/// and after writes, and an engine on it serves no stale read: changes written
/// straight to the store (as another node would) show at once in a caller's
/// role and in incident lists.
pub async fn reads_through_without_generation(store: std::sync::Arc<dyn Store>) {
    assert_eq!(store.generation(), None, "declared without generations");
    let engine = crate::Engine::builder(store.clone())
        .clock(std::sync::Arc::new(crate::ports::ManualClock::new(t0())))
        .build()
        .expect("engine");
    engine
        .ensure_admin("root", "root password 123", "root@example.com")
        .await
        .expect("admin");
    let token = engine
        .login("root", "root password 123")
        .await
        .expect("login");
    let root = engine.authenticate(&token).await.expect("auth");
    assert_eq!(root.role, Role::Admin);
    let titles = async || {
        engine
            .list_incidents(&root, &IncidentFilter::default(), PageRequest::first(50))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|i| i.title)
            .collect::<Vec<_>>()
    };
    assert!(titles().await.is_empty());
    assert!(
        titles().await.is_empty(),
        "read twice: a cache would keep it"
    );
    add_incident(
        store.as_ref(),
        &incident(root.id, "written elsewhere", at(0)),
    )
    .await;
    assert_eq!(
        titles().await,
        ["written elsewhere"],
        "a list read after another writer's change shows it"
    );
    commit(
        store.as_ref(),
        Change {
            user: Some(UserWrite::SetRole {
                id: root.id,
                role: Role::Engineer,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        engine.authenticate(&token).await.expect("auth").role,
        Role::Engineer,
        "a role changed by another writer applies at once"
    );
    assert_eq!(store.generation(), None, "still none after writes");
}

/// Retention (SPEC §8): `prune_delivered` removes delivered outbox entries whose
/// last lease ended before the cut-off, with their channel receipts, in batches
/// of `limit`; pending entries, recent deliveries, other receipts and the audit
/// log stay. `oldest_pending_outbox` names the oldest pending entry.
pub async fn retention_prunes_delivered(store: &dyn Store) {
    let u = UserId::new();
    assert_eq!(store.oldest_pending_outbox().await.expect("oldest"), None);
    let entry = audit(AuditAction::IncidentCreated, Actor::System, "kept", at(0));
    let old: Vec<NotificationIntent> = ["o0", "o1", "o2"]
        .into_iter()
        .map(|k| intent(k, u, at(0)))
        .collect();
    let mut intents = old.clone();
    intents.push(intent("p", u, at(5)));
    commit(
        store,
        Change {
            audit: vec![entry.clone()],
            outbox: intents,
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        store.oldest_pending_outbox().await.expect("oldest"),
        Some(at(0))
    );
    let lease = Duration::from_secs(10);
    let claimed = store
        .claim_outbox(at(1_000), lease, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    let old_keys: Vec<String> = old.iter().map(|i| i.key.clone()).collect();
    store
        .complete_outbox(&old_keys, at(1_000))
        .await
        .expect("complete");
    assert_eq!(
        store.oldest_pending_outbox().await.expect("oldest"),
        Some(at(5)),
        "delivered entries are not pending"
    );
    // A recent delivery: published at 60 s, lease until 70 s.
    commit(
        store,
        Change {
            outbox: vec![intent("r", u, at(50_000))],
            ..Change::default()
        },
    )
    .await;
    let claimed = store
        .claim_outbox(at(60_000), lease, 10)
        .await
        .expect("claim");
    assert!(claimed.iter().any(|e| e.intent.key == "r"));
    store
        .complete_outbox(&["r".to_string()], at(60_000))
        .await
        .expect("complete");
    for (key, channel) in [
        ("o0", "webhook"),
        ("o0", "email"),
        ("o1", "webhook"),
        ("r", "webhook"),
        ("p", "webhook"),
        ("elsewhere", "webhook"),
    ] {
        assert!(store.record_delivery(key, channel).await.expect("record"));
    }

    let none = store.prune_delivered(at(11_000), 10).await.expect("prune");
    assert_eq!(none.outbox, 0, "a lease ending at the cut-off is not older");
    let first = store.prune_delivered(at(11_001), 2).await.expect("prune");
    assert_eq!(first.outbox, 2, "limit applies");
    let second = store.prune_delivered(at(11_001), 10).await.expect("prune");
    assert_eq!(second.outbox, 1, "the rest of the old deliveries");
    assert_eq!(first.receipts + second.receipts, 3, "their receipts go too");
    let again = store.prune_delivered(at(11_001), 10).await.expect("prune");
    assert_eq!(
        again,
        crate::ports::Pruned::default(),
        "nothing left to prune"
    );
    for (key, channel) in [("o0", "webhook"), ("o0", "email"), ("o1", "webhook")] {
        assert!(
            !store.was_delivered(key, channel).await.expect("check"),
            "the receipt of a pruned entry is gone: {key} {channel}"
        );
    }
    for (key, channel) in [("r", "webhook"), ("p", "webhook"), ("elsewhere", "webhook")] {
        assert!(
            store.was_delivered(key, channel).await.expect("check"),
            "a recent, pending or unrelated receipt stays: {key}"
        );
    }
    assert_eq!(store.pending_outbox().await.expect("pending"), 1);
    let later = store
        .claim_outbox(at(10_000_000), lease, 10)
        .await
        .expect("claim");
    assert_eq!(
        later
            .iter()
            .map(|e| e.intent.key.as_str())
            .collect::<Vec<_>>(),
        vec!["p"],
        "the pending entry stays; delivered ones never come back"
    );
    let audit_page = store
        .list_audit(&AuditFilter::default(), PageRequest::first(10))
        .await
        .expect("audit");
    assert_eq!(
        audit_page.items,
        vec![entry],
        "the audit log is never pruned"
    );

    // The recent delivery goes once its lease is older than the cut-off.
    let recent = store.prune_delivered(at(70_001), 10).await.expect("prune");
    assert_eq!(
        recent,
        crate::ports::Pruned {
            outbox: 1,
            receipts: 1
        }
    );
    assert_eq!(store.pending_outbox().await.expect("pending"), 1);
    // A pruned key is forgotten: the same intent is written again.
    commit(
        store,
        Change {
            outbox: vec![old[0].clone()],
            ..Change::default()
        },
    )
    .await;
    assert_eq!(store.pending_outbox().await.expect("pending"), 2);
}

/// Polls `check` (every 10 ms, for up to 10 s) until it holds; fails naming
/// `what` otherwise.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "after 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two stores on one database, as two nodes hold them: node B caches a
/// caller's role and a list page, node A changes both, and B serves the new
/// role and the new page without any call on B in between that would bypass
/// its cache (it polls the same calls until they change, or fails after
/// 10 s). Both stores must report a generation.
pub async fn caches_follow_the_other_node(
    a: std::sync::Arc<dyn Store>,
    b: std::sync::Arc<dyn Store>,
) {
    expect_generation(&*b).await;
    let keys = crate::auth::JwtKeys::new(&[7u8; 32], Duration::from_secs(3600)).expect("keys");
    let engine = |store: std::sync::Arc<dyn Store>| {
        crate::Engine::builder(store)
            .jwt_keys(keys.clone())
            .build()
            .expect("engine")
    };
    let (ea, eb) = (engine(a.clone()), engine(b));
    let admin = user("root", Role::Admin);
    a.commit(Change {
        user: Some(UserWrite::Insert(admin.clone())),
        ..Change::default()
    })
    .await
    .expect("admin");
    let root = crate::Principal {
        id: admin.id,
        role: Role::Admin,
    };
    let (member, token) = eb
        .register(crate::engine::NewUser {
            name: "Member".into(),
            username: "member".into(),
            email: "member@example.com".into(),
            password: "password 123".into(),
        })
        .await
        .expect("register");
    let titles = async |e: &crate::Engine| {
        e.list_incidents(&root, &IncidentFilter::default(), PageRequest::first(50))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|i| i.title)
            .collect::<Vec<_>>()
    };
    let create = async |title: &str| {
        ea.create_incident(
            &root,
            crate::engine::NewIncident {
                title: title.into(),
                ..Default::default()
            },
        )
        .await
        .expect("create")
    };
    create("first").await;
    eventually("B lists A's first incident", async || {
        titles(&eb).await == ["first"]
    })
    .await;
    // B reads (and caches) the user's role and the page.
    for _ in 0..3 {
        assert_eq!(
            eb.authenticate(&token).await.expect("auth").role,
            Role::User
        );
        assert_eq!(titles(&eb).await, ["first"], "B's page, cached");
    }
    ea.change_role(&root, member.id, Role::Engineer)
        .await
        .expect("role");
    create("second").await;
    eventually("B serves the new role and the new page", async || {
        eb.authenticate(&token).await.expect("auth").role == Role::Engineer
            && titles(&eb).await == ["second", "first"]
    })
    .await;
    // B's alert events read (and cache) the service; A turns its
    // auto-resolve off, and B's next resolve leaves its incident open.
    let service = ea
        .create_service(
            &root,
            crate::model::NewService {
                name: "checkout".into(),
                ..Default::default()
            },
        )
        .await
        .expect("service");
    let key = ea
        .create_integration(
            &root,
            service.id,
            crate::model::NewIntegration {
                name: "monitor".into(),
                kind: crate::model::IntegrationKind::EventsV2,
            },
        )
        .await
        .expect("integration")
        .key;
    let mut n = 0;
    let mut trigger_and_resolve = async || {
        n += 1;
        let event = |action: &str| {
            serde_json::json!({
                "routing_key": key,
                "event_action": action,
                "dedup_key": format!("k{n}"),
                "payload": {"summary": "disk full", "source": "db-1", "severity": "error"},
            })
            .to_string()
        };
        eb.enqueue_event(event("trigger").as_bytes())
            .await
            .expect("trigger");
        eb.enqueue_event(event("resolve").as_bytes())
            .await
            .expect("resolve");
        let page = eb
            .list_incidents(&root, &IncidentFilter::default(), PageRequest::first(1))
            .await
            .expect("list");
        page.items.first().expect("the alert's incident").status
    };
    for _ in 0..2 {
        assert_eq!(trigger_and_resolve().await, crate::model::Status::Resolved);
    }
    ea.update_service(
        &root,
        service.id,
        crate::model::ServicePatch {
            auto_resolve: Some(false),
            ..Default::default()
        },
    )
    .await
    .expect("auto-resolve off");
    eventually("B's resolve follows A's service change", async || {
        trigger_and_resolve().await == crate::model::Status::Open
    })
    .await;
}
