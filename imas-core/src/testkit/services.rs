//! The services contract. Each function takes a fresh, empty store.

use crate::model::{Actor, AuditAction, Service};
use crate::ports::{Change, ServiceWrite, Store};

use super::store::{all_pages, at, audit, commit, first_audit_entries, is_conflict, is_not_found};

/// A service named `name` created at `created_at`.
pub fn service(name: &str, created_at: crate::model::Timestamp) -> Service {
    let mut s = Service::new(name, created_at);
    s.description = format!("{name}, described");
    s
}

/// Inserts a service (in a change of its own).
pub async fn add_service(store: &dyn Store, s: &Service) {
    commit(
        store,
        Change {
            service: Some(ServiceWrite::Insert(s.clone())),
            ..Change::default()
        },
    )
    .await;
}

async fn get(store: &dyn Store, s: &Service) -> Option<Service> {
    store.get_service(s.id).await.expect("get_service")
}

/// Insert and read back; an update at the current version bumps it; a stale
/// version is a `Conflict` that changes nothing; an unknown id is `NotFound`;
/// delete (stale: `Conflict`; twice: `NotFound`).
pub async fn services_crud(store: &dyn Store) {
    let s = service("payments", at(0));
    add_service(store, &s).await;
    assert_eq!(
        get(store, &s).await,
        Some(s.clone()),
        "a service reads back as inserted"
    );
    assert_eq!(
        store
            .get_service(crate::model::ServiceId::new())
            .await
            .expect("get"),
        None,
        "an unknown service id reads as None"
    );

    let mut v2 = s.clone();
    v2.name = "payments-api".into();
    v2.description = "moved".into();
    v2.auto_resolve = false;
    v2.updated_at = at(10);
    v2.version = 2;
    commit(
        store,
        Change {
            service: Some(ServiceWrite::Update {
                service: v2.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(
        get(store, &s).await,
        Some(v2.clone()),
        "the update is stored whole"
    );

    let mut stale = v2.clone();
    stale.description = "stale".into();
    stale.version = 2;
    let r = store
        .commit(Change {
            service: Some(ServiceWrite::Update {
                service: stale,
                expected_version: 1,
            }),
            audit: vec![audit(
                AuditAction::ServiceUpdated,
                Actor::System,
                "stale",
                at(11),
            )],
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "an update at a stale version is a Conflict: {r:?}"
    );
    assert_eq!(
        get(store, &s).await,
        Some(v2.clone()),
        "a stale update changes nothing"
    );

    let mut ghost = service("ghost", at(1));
    ghost.version = 2;
    let r = store
        .commit(Change {
            service: Some(ServiceWrite::Update {
                service: ghost.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_not_found(&r),
        "updating an unknown service is NotFound: {r:?}"
    );

    let r = store
        .commit(Change {
            service: Some(ServiceWrite::Delete {
                id: s.id,
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a delete at a stale version is a Conflict: {r:?}"
    );
    assert!(
        get(store, &s).await.is_some(),
        "a stale delete deletes nothing"
    );

    commit(
        store,
        Change {
            service: Some(ServiceWrite::Delete {
                id: s.id,
                expected_version: 2,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(get(store, &s).await, None, "a deleted service is gone");
    let r = store
        .commit(Change {
            service: Some(ServiceWrite::Delete {
                id: s.id,
                expected_version: 2,
            }),
            ..Change::default()
        })
        .await;
    assert!(is_not_found(&r), "deleting it twice is NotFound: {r:?}");
    let audit_log = first_audit_entries(store).await;
    assert!(
        audit_log.is_empty(),
        "the audit entry of a failed change is not written: {audit_log:?}"
    );
}

/// Names are unique: an insert or a rename to a taken name is a `Conflict`
/// that commits nothing of its change; a deleted service's name is free.
pub async fn services_name_conflict(store: &dyn Store) {
    let a = service("checkout", at(0));
    let b = service("search", at(1));
    add_service(store, &a).await;
    add_service(store, &b).await;

    let dup = service("checkout", at(2));
    let r = store
        .commit(Change {
            service: Some(ServiceWrite::Insert(dup.clone())),
            audit: vec![audit(
                AuditAction::ServiceCreated,
                Actor::System,
                "dup",
                at(2),
            )],
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a second service named checkout is a Conflict: {r:?}"
    );
    assert_eq!(get(store, &dup).await, None, "the duplicate is not stored");
    assert!(
        first_audit_entries(store).await.is_empty(),
        "nor its audit entry"
    );

    let mut renamed = b.clone();
    renamed.name = "checkout".into();
    renamed.version = 2;
    let r = store
        .commit(Change {
            service: Some(ServiceWrite::Update {
                service: renamed,
                expected_version: 1,
            }),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "renaming to a taken name is a Conflict: {r:?}"
    );
    assert_eq!(
        get(store, &b).await,
        Some(b.clone()),
        "the failed rename changes nothing"
    );

    // Keeping one's own name in an update is no conflict.
    let mut same = b.clone();
    same.description = "same name".into();
    same.version = 2;
    commit(
        store,
        Change {
            service: Some(ServiceWrite::Update {
                service: same.clone(),
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(get(store, &b).await, Some(same));

    commit(
        store,
        Change {
            service: Some(ServiceWrite::Delete {
                id: a.id,
                expected_version: 1,
            }),
            ..Change::default()
        },
    )
    .await;
    add_service(store, &dup).await;
    assert_eq!(
        get(store, &dup).await,
        Some(dup.clone()),
        "a deleted service's name can be taken again"
    );
}

/// Services list newest first by `(created_at, id)` in keyset pages, ties
/// included.
pub async fn services_paging(store: &dyn Store) {
    let mut all = Vec::new();
    for n in 0..11 {
        // Pairs share an instant, so the id breaks ties.
        let s = service(&format!("svc-{n:02}"), at(n / 2 * 1000));
        add_service(store, &s).await;
        all.push(s);
    }
    all.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id.0)));
    for limit in [1, 3, 11, 50] {
        let listed = all_pages(limit, |p| store.list_services(p)).await;
        assert_eq!(
            listed.iter().map(|s| &s.name).collect::<Vec<_>>(),
            all.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "services newest first by (createdAt, id), pages of {limit}"
        );
        assert_eq!(listed, all, "pages of {limit} hold the services whole");
    }
}
