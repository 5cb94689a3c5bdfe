//! The core's conformance suites on SQLite, each test on its own temporary file.

#![cfg(feature = "sqlite")]

use std::sync::Arc;

use imas_core::ports::Store;
use imas_store_sqlx::SqliteStore;

async fn store() -> Option<Arc<dyn Store>> {
    // A fresh file per test under cargo's scratch directory (target/tmp).
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("imas-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    Some(Arc::new(store))
}

imas_core::store_conformance_tests!(store);

// ----- the writer thread: group commit ------------------------------------------------

use futures::future::join_all;
use imas_core::error::Error;
use imas_core::model::{Actor, AuditAction, AuditEntry, AuditFilter, PageRequest, Role};
use imas_core::ports::{AuditStore, Change, ChangeStore, UserStore, UserWrite};
use imas_core::testkit::store::{t0, user};

async fn sqlite() -> SqliteStore {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("imas-{}.db", uuid::Uuid::new_v4()));
    SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect")
}

/// A registration: the user and its audit entry, one change.
fn register(username: &str) -> Change {
    let u = user(username, Role::User);
    Change {
        audit: vec![AuditEntry::new(
            AuditAction::UserRegistered,
            Actor::User(u.id),
            Some(u.id.to_string()),
            format!("registered {username}"),
            t0(),
        )],
        user: Some(UserWrite::Insert(u)),
        ..Change::default()
    }
}

async fn audit_descriptions(store: &SqliteStore) -> Vec<String> {
    let page = PageRequest {
        limit: 500,
        cursor: None,
    };
    let entries = store
        .list_audit(&AuditFilter::default(), page)
        .await
        .expect("audit");
    entries.items.into_iter().map(|e| e.description).collect()
}

#[tokio::test]
async fn concurrent_changes_commit_together_and_a_failing_one_fails_alone() {
    let store = sqlite().await;
    store.commit(register("taken")).await.expect("first");
    // 120 changes in flight at once, so the writer takes many per transaction;
    // every fourth tries a username that is taken and must fail alone.
    let names: Vec<String> = (0..120)
        .map(|n| {
            if n % 4 == 0 {
                "taken".into()
            } else {
                format!("user{n}")
            }
        })
        .collect();
    let results = join_all(names.iter().map(|n| store.commit(register(n)))).await;
    for (name, result) in names.iter().zip(&results) {
        if name == "taken" {
            assert!(
                matches!(result, Err(Error::Conflict { .. })),
                "{name}: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "{name}: {result:?}");
        }
    }
    let users = store.users_with_role(Role::User).await.expect("users");
    assert_eq!(users.len(), 1 + 90);
    // Nothing of a failed change stands: one audit entry per user, no more.
    let mut audited = audit_descriptions(&store).await;
    audited.sort();
    let mut expected: Vec<String> = users
        .iter()
        .map(|u| format!("registered {}", u.username))
        .collect();
    expected.sort();
    assert_eq!(audited, expected);
}

#[tokio::test]
async fn a_change_whose_caller_stops_waiting_is_committed_whole() {
    let store = sqlite().await;
    let mut abandoned = Box::pin(store.commit(register("abandoned")));
    // Poll once (the change is handed to the writer), then stop waiting
    // (whether or not it was already answered).
    let _ = futures::poll!(abandoned.as_mut());
    drop(abandoned);
    // The writer takes changes in order: once a later one is committed, so is
    // the abandoned one, with its audit entry.
    store.commit(register("later")).await.expect("later");
    let found = store
        .user_by_username("abandoned")
        .await
        .expect("read")
        .expect("the abandoned change was committed");
    assert_eq!(found.username, "abandoned");
    assert!(
        audit_descriptions(&store)
            .await
            .contains(&"registered abandoned".to_string())
    );
}

#[tokio::test]
async fn a_memory_database_is_a_private_file_removed_with_the_store() {
    let a = SqliteStore::connect("sqlite::memory:").await.expect("a");
    let b = SqliteStore::connect("sqlite::memory:").await.expect("b");
    a.commit(register("only-in-a")).await.expect("commit");
    assert!(a.user_by_username("only-in-a").await.expect("a").is_some());
    assert!(b.user_by_username("only-in-a").await.expect("b").is_none());
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(a.pool())
            .await
            .expect("path");
    assert!(std::path::Path::new(&file).exists(), "{file}");
    drop(a);
    // The pools close their connections in the background; the file goes with
    // the last store at once.
    assert!(!std::path::Path::new(&file).exists(), "{file} still there");
}

// ----- checkpoints: off the writer thread ---------------------------------------------

/// A commit reaches the database file itself (not only the write-ahead log)
/// without any further write and long before the WAL reaches SQLite's own
/// checkpoint threshold: the checkpointer thread copied it back. Read from a
/// copy of the main file alone, so the WAL cannot answer for it.
#[tokio::test]
async fn a_commit_is_checkpointed_into_the_database_file_by_the_checkpointer() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("imas-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    store
        .commit(register("checkpointed"))
        .await
        .expect("commit");
    let copy = path.with_extension("copy.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let found = loop {
        std::fs::copy(&path, &copy).expect("copy the database file");
        let conn = rusqlite::Connection::open(&copy).expect("open the copy");
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM users WHERE username = 'checkpointed'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        drop(conn);
        let _ = std::fs::remove_file(&copy);
        if n == 1 || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(found, 1, "the commit never reached the database file");
}
