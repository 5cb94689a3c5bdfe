//! The integrations contract. Each function takes a fresh, empty store.

use crate::model::{
    Actor, AuditAction, Integration, IntegrationId, IntegrationKind, Timestamp, key_hash,
};
use crate::ports::{Change, IntegrationWrite, Store};

use super::services::{add_service, service};
use super::store::{at, audit, commit, first_audit_entries, is_conflict, is_not_found};

/// An integration of `service` with the key `key` (hashed), created at
/// `created_at`.
pub fn integration(
    service: crate::model::ServiceId,
    name: &str,
    kind: IntegrationKind,
    key: &str,
    created_at: Timestamp,
) -> Integration {
    Integration::new(service, name, kind, key_hash(key), created_at)
}

/// Inserts an integration (in a change of its own).
pub async fn add_integration(store: &dyn Store, i: &Integration) {
    commit(
        store,
        Change {
            integrations: vec![IntegrationWrite::Insert(i.clone())],
            ..Change::default()
        },
    )
    .await;
}

async fn revoke(store: &dyn Store, id: IntegrationId, at: Timestamp) -> crate::Result<()> {
    store
        .commit(Change {
            integrations: vec![IntegrationWrite::Revoke { id, at }],
            ..Change::default()
        })
        .await
}

/// Insert, read by id and by key hash, list oldest first; revoke (a second
/// revoke keeps the first instant; a revoked integration is still found by id
/// and hash but no longer listed); revoking an unknown id is `NotFound`.
pub async fn integrations_lifecycle(store: &dyn Store) {
    let s = service("web", at(0));
    let other = service("batch", at(0));
    add_service(store, &s).await;
    add_service(store, &other).await;
    let a = integration(
        s.id,
        "prometheus",
        IntegrationKind::Alertmanager,
        "key-a",
        at(20),
    );
    let b = integration(s.id, "pd", IntegrationKind::EventsV2, "key-b", at(10));
    let c = integration(other.id, "other", IntegrationKind::EventsV2, "key-c", at(5));
    for i in [&a, &b, &c] {
        add_integration(store, i).await;
    }
    assert_eq!(
        store.get_integration(a.id).await.expect("get"),
        Some(a.clone()),
        "an integration reads back by id as inserted (with its key hash)"
    );
    assert_eq!(
        store
            .integration_by_key_hash(&key_hash("key-b"))
            .await
            .expect("by hash"),
        Some(b.clone()),
        "an integration is found by its key hash"
    );
    assert_eq!(
        store
            .integration_by_key_hash(&key_hash("no such key"))
            .await
            .expect("by hash"),
        None,
        "an unknown hash finds nothing"
    );
    assert_eq!(
        store.list_integrations(s.id).await.expect("list"),
        vec![b.clone(), a.clone()],
        "a service's integrations, oldest first, and only that service's"
    );

    revoke(store, a.id, at(100)).await.expect("revoke");
    revoke(store, a.id, at(200)).await.expect("second revoke");
    let revoked = store
        .get_integration(a.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        revoked.revoked_at,
        Some(at(100)),
        "a second revoke keeps the first instant"
    );
    assert_eq!(
        store
            .integration_by_key_hash(&key_hash("key-a"))
            .await
            .expect("by hash")
            .and_then(|i| i.revoked_at),
        Some(at(100)),
        "a revoked key is still found by hash, marked revoked (so it can be refused)"
    );
    assert_eq!(
        store.list_integrations(s.id).await.expect("list"),
        vec![b.clone()],
        "revoked integrations are not listed"
    );
    let r = revoke(store, IntegrationId::new(), at(300)).await;
    assert!(
        is_not_found(&r),
        "revoking an unknown integration is NotFound: {r:?}"
    );
}

/// Key hashes and ids are unique: a duplicate is a `Conflict` and nothing of
/// its change is written.
pub async fn integrations_hash_conflict(store: &dyn Store) {
    let s = service("api", at(0));
    add_service(store, &s).await;
    let first = integration(s.id, "one", IntegrationKind::EventsV2, "same-key", at(1));
    add_integration(store, &first).await;

    let dup = integration(
        s.id,
        "two",
        IntegrationKind::Alertmanager,
        "same-key",
        at(2),
    );
    let r = store
        .commit(Change {
            integrations: vec![IntegrationWrite::Insert(dup.clone())],
            audit: vec![audit(
                AuditAction::IntegrationCreated,
                Actor::System,
                "dup",
                at(2),
            )],
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a key hash another integration has is a Conflict: {r:?}"
    );
    assert_eq!(store.get_integration(dup.id).await.expect("get"), None);
    assert!(
        first_audit_entries(store).await.is_empty(),
        "the failed change's audit entry is not written"
    );

    let mut same_id = integration(s.id, "three", IntegrationKind::EventsV2, "other-key", at(3));
    same_id.id = first.id;
    let r = store
        .commit(Change {
            integrations: vec![IntegrationWrite::Insert(same_id)],
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a duplicate integration id is a Conflict: {r:?}"
    );
    assert_eq!(
        store.list_integrations(s.id).await.expect("list"),
        vec![first],
        "only the first integration exists"
    );
}
