//! Run with: cargo run --release --example sla_latency -- --backend postgres --nodes 2
//!
//! Breach latency and idle cost of the real-time SLA monitor.
//!  1. N incidents (default 2,000) whose deadlines fall due over the next minute;
//!     1 or 2 nodes (engines with their own connection pools, as separate servers
//!     would have) run the monitor; afterwards it reports p50 / p99 / max of
//!     (breach recorded - deadline) and checks every breach was recorded once.
//!  2. 100,000 open incidents not due for an hour; one node's monitor runs for
//!     20 s; it reports the CPU time this process used per second of wall time.
//!
//! Options: --backend sqlite|postgres (default sqlite), --nodes 1|2 (postgres
//! only), --incidents N, --url URL (default: a file under target/ for SQLite;
//! $DATABASE_URL or postgres://postgres@127.0.0.1/postgres with a fresh schema).

use std::sync::Arc;
use std::time::{Duration, Instant};

use imas::escalation::{EscalationPolicy, next_due};
use imas::model::{
    Incident, IncidentFilter, PageRequest, Priority, UserId, from_millis, truncate_millis,
};
use imas::ports::Store;
use imas::sla::SlaPolicy;
use imas::store_sqlx::{PostgresStore, SqliteStore};
use imas::{Engine, EngineConfig};

/// CPU time (user + system) of this process so far, from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // After the command name: state is field 0; utime and stime are 11 and 12.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

fn incidents(n: usize, now_ms: i64, spread_ms: i64, min_ms: i64) -> Vec<Incident> {
    let (sla, esc) = (SlaPolicy::default(), EscalationPolicy::default());
    let reporter = UserId::new();
    (0..n)
        .map(|k| {
            let mut i = Incident::open(format!("latency {k}"), reporter, from_millis(now_ms));
            sla.assign(&mut i, Priority::Critical);
            // Deadline spread evenly over the window; response target far away.
            i.sla_target_ms = min_ms + (k as i64 * spread_ms) / n as i64;
            i.response_target_ms = 10 * 3_600_000;
            imas::sla::recompute_deadlines(&mut i);
            i.next_due_at = next_due(&i, &sla, &esc);
            i
        })
        .collect()
}

/// Loads incidents into the backend's database.
type Loader =
    Box<dyn Fn(Vec<Incident>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>;

struct Backend {
    stores: Vec<Arc<dyn Store>>,
    /// PostgreSQL: the pool and the schema to drop at the end.
    cleanup: Option<(sqlx::PgPool, String)>,
    load: Loader,
}

async fn backend(kind: &str, nodes: usize, url: Option<String>) -> Backend {
    match kind {
        "sqlite" => {
            let url = url.unwrap_or_else(|| {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
                format!(
                    "sqlite://{}/sla_latency-{}.db",
                    dir.display(),
                    uuid::Uuid::new_v4()
                )
            });
            let s = SqliteStore::connect(&url).await.expect("sqlite");
            let loader = s.clone();
            Backend {
                stores: vec![Arc::new(s)],
                cleanup: None,
                load: Box::new(move |v| {
                    let l = loader.clone();
                    Box::pin(async move {
                        for c in v.chunks(50_000) {
                            l.bulk_insert_incidents(c).await.expect("load");
                        }
                    })
                }),
            }
        }
        _ => {
            let url = url
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let schema = format!("imas_latency_{}", uuid::Uuid::new_v4().simple());
            let mut stores: Vec<Arc<dyn Store>> = Vec::new();
            let first = PostgresStore::connect_in_schema(&url, &schema)
                .await
                .expect("postgres");
            let loader = first.clone();
            stores.push(Arc::new(first));
            for _ in 1..nodes {
                stores.push(Arc::new(
                    PostgresStore::connect_in_schema(&url, &schema)
                        .await
                        .expect("postgres"),
                ));
            }
            Backend {
                stores,
                cleanup: Some((loader.pool().clone(), schema)),
                load: Box::new(move |v| {
                    let l = loader.clone();
                    Box::pin(async move {
                        l.bulk_insert_incidents(&v).await.expect("load");
                        sqlx::query("VACUUM ANALYZE incidents")
                            .execute(l.pool())
                            .await
                            .expect("analyze");
                    })
                }),
            }
        }
    }
}

fn engine(store: Arc<dyn Store>) -> Engine {
    Engine::builder(store)
        .jwt_keys(imas::auth::JwtKeys::new(&[7u8; 32], Duration::from_secs(60)).expect("keys"))
        .config(EngineConfig::default())
        .build()
        .expect("engine")
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut kind, mut nodes, mut n, mut url) = ("sqlite".to_string(), 1usize, 2_000usize, None);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--backend" => kind = value,
            "--nodes" => nodes = value.parse().expect("--nodes expects 1 or 2"),
            "--incidents" => n = value.parse().expect("--incidents expects a number"),
            "--url" => url = Some(value),
            other => panic!("unknown option {other}"),
        }
    }

    // 1. Breach latency.
    let b = backend(&kind, nodes, url.clone()).await;
    let now = truncate_millis(chrono::Utc::now()).timestamp_millis();
    (b.load)(incidents(n, now, 60_000, 5_000)).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let monitors: Vec<_> = b
        .stores
        .iter()
        .map(|s| {
            let (e, rx) = (engine(s.clone()), stop_rx.clone());
            tokio::spawn(async move { e.run_sla_monitor(Duration::from_secs(1), rx).await })
        })
        .collect();
    let store = b.stores[0].clone();
    let deadline = Instant::now() + Duration::from_secs(90);
    let breached = loop {
        let c = store
            .count_incidents(&IncidentFilter {
                sla_breached: Some(true),
                ..Default::default()
            })
            .await
            .expect("count");
        if c as usize >= n || Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = stop_tx.send(true);
    for m in monitors {
        let _ = m.await;
    }
    let cleanup = b.cleanup;
    let mut late = Vec::with_capacity(n);
    let mut page = PageRequest::first(500);
    loop {
        let p = store
            .list_incidents(&IncidentFilter::default(), page)
            .await
            .expect("list");
        late.extend(
            p.items
                .iter()
                .filter_map(|i| Some((i.breached_at? - i.sla_deadline).num_milliseconds())),
        );
        match p.next {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    late.sort_unstable();
    assert_eq!(breached as usize, n, "every incident breached");
    assert_eq!(late.len(), n);
    if let Some((pool, schema)) = cleanup {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await;
    }
    println!(
        "| {kind} | {nodes} | {n} | {} ms | {} ms | {} ms |",
        pct(&late, 0.5),
        pct(&late, 0.99),
        late.last().copied().unwrap_or_default()
    );

    // 2. Idle cost with 100,000 open incidents not yet due.
    let b = backend(&kind, 1, url).await;
    let now = truncate_millis(chrono::Utc::now()).timestamp_millis();
    (b.load)(incidents(100_000, now, 60_000, 3_600_000)).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let e = engine(b.stores[0].clone());
    let monitor =
        tokio::spawn(async move { e.run_sla_monitor(Duration::from_secs(1), stop_rx).await });
    tokio::time::sleep(Duration::from_secs(2)).await; // first sweep and warm-up
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    let _ = stop_tx.send(true);
    let _ = monitor.await;
    if let Some((pool, schema)) = b.cleanup {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&pool)
            .await;
    }
    println!(
        "idle, 100,000 open incidents not due, {kind}: {:.2}% of a core ({:?} CPU in {:.1?})",
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        cpu,
        wall
    );
}
