//! Run with: `cargo run --release -p imas-store-sqlx --example repeat_bench`
//! (`DATABASE_URL=postgres://...` adds PostgreSQL; `IMAS_SMOKE=1` for a short
//! run).
//!
//! Measures the repeated trigger (`AlertStore::repeat_trigger`), the hot path
//! of a source that fires every few seconds: 64 concurrent callers (as 64 HTTP
//! connections would be), each calling in a loop on one of 256 open alerts,
//! for a few seconds per store. Prints calls/s and the latency percentiles of
//! the store call (no HTTP), then checks that every call was counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imas_core::model::{Alert, Incident, Integration, IntegrationKind, Service, key_hash};
use imas_core::ports::{AlertWrite, Change, IncidentWrite, IntegrationWrite, ServiceWrite, Store};
use imas_core::testkit::store::t0;
use imas_store_sqlx::{PostgresStore, SqliteStore};

const CALLERS: usize = 64;
const ALERTS: usize = 256;

async fn run(name: &str, store: Arc<dyn Store>, seconds: u64) {
    let s = Service::new(format!("bench-{}", uuid::Uuid::new_v4()), t0());
    let int = Integration::new(
        s.id,
        "bench",
        IntegrationKind::EventsV2,
        key_hash(&uuid::Uuid::new_v4().to_string()),
        t0(),
    );
    store
        .commit(Change {
            service: Some(ServiceWrite::Insert(s.clone())),
            integrations: vec![IntegrationWrite::Insert(int.clone())],
            ..Change::default()
        })
        .await
        .expect("service");
    let mut ids = Vec::new();
    for n in 0..ALERTS {
        let i = Incident::opened(format!("alert {n}"), None, t0());
        let a = Alert::triggered(i.id, s.id, int.id, format!("key-{n}"), "bench", t0());
        ids.push(a.id);
        store
            .commit(Change {
                incident: Some(IncidentWrite::Insert(i)),
                alerts: vec![AlertWrite::Insert(a)],
                ..Change::default()
            })
            .await
            .expect("alert");
    }
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = c;
                while Instant::now() < until {
                    let key = format!("key-{}", n % ALERTS);
                    let t = Instant::now();
                    store
                        .repeat_trigger(s.id, &key, chrono::Utc::now())
                        .await
                        .expect("repeat")
                        .expect("open alert");
                    latencies.push(t.elapsed());
                    n += CALLERS + 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("caller"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let calls = latencies.len();
    // Every call counted: the event counts add up.
    let mut counted = 0;
    for id in ids {
        let a = store.get_alert(id).await.expect("read").expect("alert");
        counted += a.event_count - 1;
    }
    assert_eq!(counted as usize, calls, "lost increments");
    println!(
        "{name}: {calls} calls in {:.1}s = {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         ({CALLERS} callers, {ALERTS} alerts, all counted)",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}

#[tokio::main]
async fn main() {
    let seconds = if std::env::var("IMAS_SMOKE").is_ok() {
        1
    } else {
        5
    };
    let path = std::env::temp_dir().join(format!("repeat-bench-{}.db", uuid::Uuid::new_v4()));
    let sqlite = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("sqlite");
    run("sqlite", Arc::new(sqlite), seconds).await;
    for suffix in ["", "-wal", "-shm", ".imas-lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let schema = format!("imas_bench_{}", uuid::Uuid::new_v4().simple());
        let pg = PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("postgres");
        run("postgres", Arc::new(pg.clone()), seconds).await;
        let drop = format!("DROP SCHEMA {schema} CASCADE");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(pg.pool())
            .await;
    }
}
