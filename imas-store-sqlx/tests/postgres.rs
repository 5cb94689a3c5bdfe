//! The core's conformance suites on PostgreSQL (`DATABASE_URL`), each test in a
//! schema of its own so that tests run in parallel.

#![cfg(feature = "postgres")]

use std::sync::Arc;

use imas_core::ports::Store;
use imas_core::testkit::service_url;
use imas_store_sqlx::PostgresStore;

async fn store() -> Option<Arc<dyn Store>> {
    let url = service_url("DATABASE_URL")?;
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    Some(Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect"),
    ))
}

imas_core::store_conformance_tests!(store);

/// After commits dropped at random points (the conformance workload), no
/// connection of the store's pool sits in a transaction: PostgreSQL itself says
/// so (`pg_stat_activity.state`, read on a connection of its own), for every
/// idle connection of the pool, all held at once. A commit cut short at its `BEGIN` used to leave one
/// `idle in transaction` that sqlx did not know of, and the next statements on
/// it ran inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_commits_leave_no_transaction_open() {
    use sqlx::Connection;
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let store = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect");
    imas_core::testkit::store::dropped_commits_are_whole(&store).await;

    // Every idle connection of the pool, held at once, names its backend.
    let pool = store.pool();
    let idle = pool.num_idle();
    let mut held = Vec::new();
    let mut pids: Vec<i32> = Vec::new();
    for _ in 0..idle {
        let mut conn = pool.acquire().await.expect("acquire");
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .expect("pid");
        pids.push(pid);
        held.push(conn);
    }
    assert!(!pids.is_empty(), "the pool holds connections");
    let mut observer = sqlx::PgConnection::connect(&url).await.expect("observer");
    let states: Vec<(i32, Option<String>)> =
        sqlx::query_as("SELECT pid, state FROM pg_stat_activity WHERE pid = ANY($1)")
            .bind(&pids)
            .fetch_all(&mut observer)
            .await
            .expect("pg_stat_activity");
    let open: Vec<_> = states
        .iter()
        .filter(|(_, s)| s.as_deref() != Some("idle"))
        .collect();
    assert!(
        open.is_empty(),
        "{} of the pool's {} connections are not idle (a transaction left open): {open:?}",
        open.len(),
        pids.len()
    );
    drop(held);
}
