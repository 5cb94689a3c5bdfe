//! Several stores (as several IMAS nodes would hold) on one database: claims stay
//! exclusive across them, engines sharing the database record each breach once,
//! the audit log refuses edits at the database level, and each engine's read
//! cache sees the other's changes (a role change, a new incident).

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use imas_core::auth::JwtKeys;
use imas_core::engine::NewIncident;
use imas_core::model::{AuditAction, AuditFilter, PageRequest, Priority, Role, User, UserId};
use imas_core::ports::{Change, IncidentWrite, ManualClock, Store, UserWrite};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{at, incident, t0, user};
use imas_core::{Engine, EngineConfig, Principal};
use imas_store_sqlx::{PostgresStore, SqliteStore};

/// Two handles on one fresh database, or `None` to skip.
async fn sqlite_pair() -> (Arc<dyn Store>, Arc<dyn Store>) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("shared-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", path.display());
    let a = SqliteStore::connect(&url).await.expect("a");
    let b = SqliteStore::connect(&url).await.expect("b");
    (Arc::new(a), Arc::new(b))
}

async fn postgres_pair() -> Option<(Arc<dyn Store>, Arc<dyn Store>)> {
    let url = service_url("DATABASE_URL")?;
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let a = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("a");
    let b = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("b");
    Some((Arc::new(a), Arc::new(b)))
}

async fn claims_are_exclusive_across_stores(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let reporter = UserId::new();
    let mut ids = HashSet::new();
    for n in 0..200 {
        let mut i = incident(reporter, &format!("n{n}"), at(0));
        i.next_due_at = Some(at(n));
        a.commit(Change {
            incident: Some(IncidentWrite::Insert(i.clone())),
            ..Change::default()
        })
        .await
        .expect("insert");
        ids.insert(i.id);
    }
    let claimers = (0..8).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_due(at(1_000), Duration::from_secs(60), 9)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|i| i.id));
            }
        }
    });
    let mut seen = HashSet::new();
    for id in join_all(claimers).await.into_iter().flatten() {
        assert!(seen.insert(id), "{id} claimed twice");
    }
    assert_eq!(seen, ids);
}

async fn engines_record_each_breach_once(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let clock = ManualClock::new(t0());
    let keys = JwtKeys::new(&[9u8; 32], Duration::from_secs(3600)).expect("keys");
    let engine = |store: Arc<dyn Store>| {
        Engine::builder(store)
            .clock(Arc::new(clock.clone()))
            .jwt_keys(keys.clone())
            .config(EngineConfig {
                sweep_batch: 16,
                ..Default::default()
            })
            .build()
            .expect("engine")
    };
    let (ea, eb) = (engine(a.clone()), engine(b.clone()));
    let admin: User = user("root", Role::Admin);
    let eng: User = user("eng", Role::Engineer);
    for u in [&admin, &eng] {
        a.commit(Change {
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
    let mut ids = Vec::new();
    for n in 0..120 {
        let input = NewIncident {
            title: format!("incident {n}"),
            priority: Some(Priority::Critical),
            assigned_to: Some(eng.id),
            ..Default::default()
        };
        ids.push(ea.create_incident(&root, input).await.expect("create").id);
    }
    clock.advance(Duration::from_secs(3601));
    let (ra, rb) = tokio::join!(ea.sweep_all(), eb.sweep_all());
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(
        ra.breaches + rb.breaches,
        120,
        "each breach recorded by exactly one node"
    );
    let (fa, fb) = tokio::join!(ea.flush_notifications(), eb.flush_notifications());
    fa.expect("flush a");
    fb.expect("flush b");
    let breaches = a
        .list_audit(
            &AuditFilter {
                action: Some(AuditAction::SlaBreach),
                ..Default::default()
            },
            PageRequest::first(500),
        )
        .await
        .expect("audit");
    let targets: HashSet<String> = breaches
        .items
        .iter()
        .filter_map(|e| e.target.clone())
        .collect();
    assert_eq!(breaches.items.len(), 120);
    assert_eq!(targets.len(), 120, "one SLA_BREACH per incident");
    let notes = b
        .list_notifications(eng.id, PageRequest::first(500))
        .await
        .expect("notes");
    let escalations = notes
        .items
        .iter()
        .filter(|n| n.message.starts_with("SLA violated"))
        .count();
    assert_eq!(escalations, 120, "one escalation notification per incident");
    assert_eq!(a.pending_outbox().await.expect("pending"), 0);
}

async fn audit_rows_cannot_be_changed(
    store: Arc<dyn Store>,
    raw_update: impl AsyncFnOnce() -> bool,
) {
    let e = imas_core::model::AuditEntry::new(
        AuditAction::SlaBreach,
        imas_core::model::Actor::System,
        None,
        "x",
        t0(),
    );
    store
        .commit(Change {
            audit: vec![e.clone()],
            ..Change::default()
        })
        .await
        .expect("append");
    assert!(
        !raw_update().await,
        "UPDATE/DELETE on the audit log must fail"
    );
    let log = store
        .list_audit(&AuditFilter::default(), PageRequest::first(10))
        .await
        .expect("audit");
    assert_eq!(log.items, vec![e]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_caches_follow_the_other_store() {
    let (a, b) = sqlite_pair().await;
    imas_core::testkit::store::caches_follow_the_other_node(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_caches_follow_the_other_node() {
    let Some((a, b)) = postgres_pair().await else {
        return;
    };
    imas_core::testkit::store::caches_follow_the_other_node(a, b).await;
}

/// A SQLite database another process holds is refused with a message that says
/// so (the other process here is `flock(1)` holding the store's lock file).
#[tokio::test]
async fn sqlite_refuses_a_database_another_process_holds() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("held-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", path.display());
    drop(SqliteStore::connect(&url).await.expect("create"));
    let lock = format!("{}.imas-lock", path.display());
    let mut holder = std::process::Command::new("flock")
        .args(["--exclusive", "--no-fork", &lock, "sleep", "30"])
        .spawn()
        .expect("flock(1) from util-linux");
    // Wait until the holder has the lock (it cannot be taken without blocking).
    let mut held = false;
    for _ in 0..500 {
        let probe = std::process::Command::new("flock")
            .args(["--nonblock", &lock, "--command", "true"])
            .status()
            .expect("flock");
        if !probe.success() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "the holder never took the lock");
    let refused = SqliteStore::connect(&url).await;
    holder.kill().expect("kill");
    holder.wait().expect("wait");
    let message = refused.expect_err("refused").to_string();
    assert!(
        message.contains("in use by another process")
            && message.contains("invalid configuration url"),
        "{message}"
    );
    SqliteStore::connect(&url)
        .await
        .expect("free again once the other process is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_claims_are_exclusive_across_stores() {
    let (a, b) = sqlite_pair().await;
    claims_are_exclusive_across_stores(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_are_exclusive_across_stores() {
    let Some((a, b)) = postgres_pair().await else {
        return;
    };
    claims_are_exclusive_across_stores(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_engines_record_each_breach_once() {
    let (a, b) = sqlite_pair().await;
    engines_record_each_breach_once(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_engines_record_each_breach_once() {
    let Some((a, b)) = postgres_pair().await else {
        return;
    };
    engines_record_each_breach_once(a, b).await;
}

#[tokio::test]
async fn sqlite_audit_log_is_append_only() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("audit-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    let pool = store.pool().clone();
    audit_rows_cannot_be_changed(Arc::new(store), async move || {
        let u = sqlx::query("UPDATE audit_log SET description = 'edited'")
            .execute(&pool)
            .await
            .is_ok();
        let d = sqlx::query("DELETE FROM audit_log")
            .execute(&pool)
            .await
            .is_ok();
        u || d
    })
    .await;
}

#[tokio::test]
async fn postgres_audit_log_is_append_only() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let store = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect");
    let pool = store.pool().clone();
    audit_rows_cannot_be_changed(Arc::new(store), async move || {
        let u = sqlx::query("UPDATE audit_log SET description = 'edited'")
            .execute(&pool)
            .await
            .is_ok();
        let d = sqlx::query("DELETE FROM audit_log")
            .execute(&pool)
            .await
            .is_ok();
        u || d
    })
    .await;
}

/// `TRUNCATE` fires no row trigger: a statement trigger refuses it, so the audit
/// log stays append-only against it too (SPEC §7).
#[tokio::test]
async fn postgres_audit_log_refuses_truncate() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let store = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect");
    let pool = store.pool().clone();
    audit_rows_cannot_be_changed(Arc::new(store), async move || {
        let mut any_ran = false;
        for statement in [
            "TRUNCATE audit_log",
            "TRUNCATE TABLE audit_log RESTART IDENTITY CASCADE",
            "TRUNCATE outbox, audit_log",
        ] {
            match sqlx::query(statement).execute(&pool).await {
                Ok(_) => any_ran = true,
                Err(e) => assert!(
                    e.to_string().contains("append-only"),
                    "{statement}: refused by the trigger, got {e}"
                ),
            }
        }
        any_ran
    })
    .await;
}

async fn bulk_insert_round_trips(
    store: &dyn Store,
    bulk: impl AsyncFnOnce(Vec<imas_core::model::Incident>),
) {
    let reporter = UserId::new();
    let mut all = Vec::new();
    for (n, title) in [
        "Quote ' and \" here",
        "Ünïcödé – ß 漢字",
        "plain words here",
    ]
    .iter()
    .enumerate()
    {
        let mut i = incident(reporter, title, at(n as i64));
        i.assigned_to = (n == 1).then_some(reporter);
        i.breached_at = (n == 2).then(|| at(99));
        all.push(i);
    }
    bulk(all.clone()).await;
    for i in &all {
        assert_eq!(
            store.get_incident(i.id).await.expect("get").as_ref(),
            Some(i)
        );
    }
    let filter = imas_core::model::IncidentFilter {
        q: Some("HERE".into()),
        ..Default::default()
    };
    let found = store
        .list_incidents(&filter, PageRequest::first(10))
        .await
        .expect("search");
    assert_eq!(
        found.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![all[2].id, all[0].id]
    );
}

#[tokio::test]
async fn sqlite_bulk_insert_round_trips() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bulk-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    let s2 = store.clone();
    bulk_insert_round_trips(&store, async move |v| {
        s2.bulk_insert_incidents(&v).await.expect("bulk")
    })
    .await;
}

#[tokio::test]
async fn postgres_bulk_insert_round_trips() {
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let store = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect");
    let s2 = store.clone();
    bulk_insert_round_trips(&store, async move |v| {
        s2.bulk_insert_incidents(&v).await.expect("bulk")
    })
    .await;
}
