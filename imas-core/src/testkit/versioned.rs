//! The contract the rotations, schedules and escalation policies share: each
//! is kept whole by id with an optimistic-concurrency version, inserted,
//! replaced at the version it was read at and deleted the same way, and listed
//! newest first by `(created_at, id)` in keyset pages. Written once over
//! [`Kept`], checked for each of the three by its suite.

use crate::model::{
    Actor, AuditAction, EscalationPolicy, EscalationPolicyId, Page, PageRequest, Rotation,
    RotationId, Schedule, ScheduleId, Timestamp,
};
use crate::ports::{Change, EscalationPolicyWrite, RotationWrite, ScheduleWrite, Store};

use super::store::{all_pages, at, audit, commit, first_audit_entries, is_conflict, is_not_found};

/// An entity a [`Change`] writes whole, with a version.
pub(crate) trait Kept: Clone + PartialEq + std::fmt::Debug + Sized {
    /// Its id.
    type Id: Copy + std::fmt::Debug;
    /// What the assertions call it.
    const WHAT: &'static str;
    /// The audit action its update would be recorded with (any will do).
    const ACTION: AuditAction;
    fn id(&self) -> Self::Id;
    fn new_id() -> Self::Id;
    fn with_id(self, id: Self::Id) -> Self;
    fn version(&self) -> i64;
    fn with_version(self, v: i64) -> Self;
    fn created_at(&self) -> Timestamp;
    fn uuid(&self) -> uuid::Uuid;
    fn insert(self) -> Change;
    fn update(self, expected_version: i64) -> Change;
    fn delete(id: Self::Id, expected_version: i64) -> Change;
    async fn get(store: &dyn Store, id: Self::Id) -> Option<Self>;
    async fn list(store: &dyn Store, page: PageRequest) -> crate::Result<Page<Self>>;
}

macro_rules! kept {
    ($ty:ty, $id:ty, $what:literal, $action:ident, $field:ident, $write:ident, $var:ident,
     $get:ident, $list:ident) => {
        impl Kept for $ty {
            type Id = $id;
            const WHAT: &'static str = $what;
            const ACTION: AuditAction = AuditAction::$action;
            fn id(&self) -> $id {
                self.id
            }
            fn new_id() -> $id {
                <$id>::new()
            }
            fn with_id(mut self, id: $id) -> Self {
                self.id = id;
                self
            }
            fn version(&self) -> i64 {
                self.version
            }
            fn with_version(mut self, v: i64) -> Self {
                self.version = v;
                self
            }
            fn created_at(&self) -> Timestamp {
                self.created_at
            }
            fn uuid(&self) -> uuid::Uuid {
                self.id.0
            }
            fn insert(self) -> Change {
                Change {
                    $field: Some($write::Insert(self)),
                    ..Change::default()
                }
            }
            fn update(self, expected_version: i64) -> Change {
                Change {
                    $field: Some($write::Update {
                        $var: self,
                        expected_version,
                    }),
                    ..Change::default()
                }
            }
            fn delete(id: $id, expected_version: i64) -> Change {
                Change {
                    $field: Some($write::Delete {
                        id,
                        expected_version,
                    }),
                    ..Change::default()
                }
            }
            async fn get(store: &dyn Store, id: $id) -> Option<Self> {
                store.$get(id).await.expect(concat!("get ", $what))
            }
            async fn list(store: &dyn Store, page: PageRequest) -> crate::Result<Page<Self>> {
                store.$list(page).await
            }
        }
    };
}

kept!(
    Rotation,
    RotationId,
    "rotation",
    RotationUpdated,
    rotation,
    RotationWrite,
    rotation,
    get_rotation,
    list_rotations
);
kept!(
    Schedule,
    ScheduleId,
    "schedule",
    ScheduleUpdated,
    schedule,
    ScheduleWrite,
    schedule,
    get_schedule,
    list_schedules
);
kept!(
    EscalationPolicy,
    EscalationPolicyId,
    "escalation policy",
    EscalationPolicyUpdated,
    escalation_policy,
    EscalationPolicyWrite,
    escalation_policy,
    get_escalation_policy,
    list_escalation_policies
);

/// Commits `change` with an audit entry; returns what the store said.
async fn try_with_audit(store: &dyn Store, mut change: Change, what: &str) -> crate::Result<()> {
    change.audit.push(audit(
        AuditAction::RotationUpdated,
        Actor::System,
        what,
        at(0),
    ));
    store.commit(change).await
}

/// Inserts `row` (in a change of its own).
pub(crate) async fn add<T: Kept>(store: &dyn Store, row: &T) {
    commit(store, row.clone().insert()).await;
}

/// Stores `row` as it is and reads it back unchanged, as the only one of its
/// kind (its own id): what each round-trip test checks a value with.
pub(crate) async fn round_trip<T: Kept>(store: &dyn Store, row: &T, what: &str) {
    add(store, row).await;
    assert_eq!(
        T::get(store, row.id()).await.as_ref(),
        Some(row),
        "a {} reads back as inserted: {what}",
        T::WHAT
    );
}

/// `v1` (version 1) is inserted and read back; `edit` of it (every field
/// changed, version set to 2 here) replaces it whole; a stale version, a taken
/// id, an unknown id are `Conflict`, `Conflict`, `NotFound` and change nothing
/// (nor write their change's audit entry); deletes are version-checked, and a
/// second delete is `NotFound`.
pub(crate) async fn crud<T: Kept>(store: &dyn Store, v1: T, edit: impl Fn(&T) -> T) {
    let what = T::WHAT;
    assert_eq!(v1.version(), 1, "the fixture is at version 1");
    add(store, &v1).await;
    assert_eq!(
        T::get(store, v1.id()).await,
        Some(v1.clone()),
        "a {what} reads back as inserted"
    );
    assert_eq!(
        T::get(store, T::new_id()).await,
        None,
        "an unknown {what} id reads as None"
    );

    let twin = edit(&v1).with_id(v1.id()).with_version(1);
    let r = try_with_audit(store, twin.insert(), "duplicate id").await;
    assert!(
        is_conflict(&r),
        "inserting a {what} with a taken id is a Conflict: {r:?}"
    );
    assert_eq!(
        T::get(store, v1.id()).await,
        Some(v1.clone()),
        "the refused insert changes nothing"
    );

    let v2 = edit(&v1).with_id(v1.id()).with_version(2);
    assert_ne!(v2, v1.clone().with_version(2), "the edit changes fields");
    commit(store, v2.clone().update(1)).await;
    assert_eq!(
        T::get(store, v1.id()).await,
        Some(v2.clone()),
        "an update at the current version stores the {what} whole"
    );

    let stale = v1.clone().with_version(2);
    let r = try_with_audit(store, stale.update(1), "stale update").await;
    assert!(
        is_conflict(&r),
        "an update of a {what} at a stale version is a Conflict: {r:?}"
    );
    let ahead = v1.clone().with_version(4);
    let r = try_with_audit(store, ahead.update(3), "future version").await;
    assert!(
        is_conflict(&r),
        "an update at a version the {what} never had is a Conflict: {r:?}"
    );
    assert_eq!(
        T::get(store, v1.id()).await,
        Some(v2.clone()),
        "refused updates change nothing"
    );

    let ghost = v1.clone().with_id(T::new_id()).with_version(2);
    let r = try_with_audit(store, ghost.clone().update(1), "unknown").await;
    assert!(
        is_not_found(&r),
        "updating an unknown {what} is NotFound: {r:?}"
    );
    assert_eq!(
        T::get(store, ghost.id()).await,
        None,
        "an update of an unknown {what} creates nothing"
    );

    let r = try_with_audit(store, T::delete(v1.id(), 1), "stale delete").await;
    assert!(
        is_conflict(&r),
        "deleting a {what} at a stale version is a Conflict: {r:?}"
    );
    assert_eq!(
        T::get(store, v1.id()).await,
        Some(v2.clone()),
        "a refused delete deletes nothing"
    );
    let log = first_audit_entries(store).await;
    assert!(
        log.is_empty(),
        "the audit entries of refused changes are not written: {log:?}"
    );

    let mut del = T::delete(v1.id(), 2);
    del.audit
        .push(audit(T::ACTION, Actor::System, "deleted", at(5)));
    commit(store, del).await;
    assert_eq!(
        T::get(store, v1.id()).await,
        None,
        "a deleted {what} is gone"
    );
    assert_eq!(
        first_audit_entries(store).await.len(),
        1,
        "a delete commits with its audit entry"
    );
    let r = store.commit(T::delete(v1.id(), 2)).await;
    assert!(
        is_not_found(&r),
        "deleting a {what} twice is NotFound: {r:?}"
    );
    let page = T::list(store, PageRequest::first(10)).await.expect("list");
    assert!(
        page.items.is_empty(),
        "a deleted {what} is not listed: {:?}",
        page.items
    );
    // The id of a deleted row is free again.
    add(store, &v1).await;
    assert_eq!(T::get(store, v1.id()).await, Some(v1));
}

/// Eleven rows from `make(n, created_at)`, pairs sharing an instant (the id
/// breaks ties), list newest first by `(created_at, id)` in keyset pages of
/// every size, whole; after an update (which keeps `created_at`) and a delete
/// the order holds.
pub(crate) async fn paging<T: Kept>(store: &dyn Store, make: impl Fn(i64, Timestamp) -> T) {
    let what = T::WHAT;
    let mut all = Vec::new();
    for n in 0..11 {
        let row = make(n, at(n / 2 * 1000));
        add(store, &row).await;
        all.push(row);
    }
    all.sort_by_key(|r| std::cmp::Reverse((r.created_at(), r.uuid())));
    for limit in [1, 3, 11, 50] {
        let listed = all_pages(limit, |p| T::list(store, p)).await;
        assert_eq!(
            listed.iter().map(T::uuid).collect::<Vec<_>>(),
            all.iter().map(T::uuid).collect::<Vec<_>>(),
            "{what}s newest first by (createdAt, id), pages of {limit}"
        );
        assert_eq!(listed, all, "pages of {limit} hold the {what}s whole");
    }
    let exact = T::list(store, PageRequest::first(11)).await.expect("list");
    assert_eq!(
        exact.next, None,
        "an exactly full last page of {what}s has no next cursor"
    );

    // An update keeps the place; a delete leaves a gap the pages close.
    let bumped = all[4].clone().with_version(2);
    commit(store, bumped.clone().update(1)).await;
    all[4] = bumped;
    let gone = all.remove(7);
    commit(store, T::delete(gone.id(), 1)).await;
    let listed = all_pages(2, |p| T::list(store, p)).await;
    assert_eq!(
        listed, all,
        "{what}s after an update and a delete, pages of 2"
    );
}
