//! Run with: cargo run --release --example store_scale -- --backend sqlite --incidents 1000000
//!
//! Scale benchmark of the SQL stores. Loads N incidents (1% of them due for the
//! SLA monitor, a word that exactly 20 of them contain), then times, through the
//! store's own methods:
//!   (a) claiming every due incident in batches of 100, per claimed incident;
//!   (b) the first page of 50 with a status filter;
//!   (c) a full-text query for the word 20 incidents contain.
//! On PostgreSQL it also prints EXPLAIN ANALYZE of those queries.
//!
//! Options: --backend sqlite|postgres (default sqlite), --incidents N (default
//! 10000), --url URL (default: a fresh file under target/ for SQLite;
//! $DATABASE_URL or postgres://postgres@127.0.0.1/postgres with a fresh schema).

use std::sync::Arc;
use std::time::{Duration, Instant};

use imas::model::{
    Incident, IncidentFilter, PageRequest, Priority, Status, Timestamp, UserId, from_millis,
};
use imas::ports::Store;
use imas::sla::SlaPolicy;
use imas::store_sqlx::{PostgresStore, SqliteStore};

const RARE: &str = "zanzibarquux";
const WORDS: &[&str] = &[
    "database",
    "latency",
    "timeout",
    "checkout",
    "payment",
    "login",
    "cache",
    "disk",
    "memory",
    "queue",
    "worker",
    "deploy",
    "certificate",
    "network",
    "replica",
    "index",
    "dashboard",
    "webhook",
    "email",
    "search",
];

struct Args {
    backend: String,
    incidents: usize,
    url: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        backend: "sqlite".into(),
        incidents: 10_000,
        url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => a.backend = value()?,
            "--incidents" => {
                a.incidents = value()?
                    .parse()
                    .map_err(|_| "--incidents expects a number")?
            }
            "--url" => a.url = Some(value()?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn synthetic(n: usize, now: Timestamp) -> Vec<Incident> {
    let policy = SlaPolicy::default();
    let reporters: Vec<UserId> = (0..50).map(|_| UserId::new()).collect();
    let rare_every = (n / 20).max(1);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|k| {
            let r = next();
            let w = |s: u64| WORDS[(s % WORDS.len() as u64) as usize];
            let mut title = format!("{} {} on node-{}", w(r), w(r >> 8), r % 997);
            if k % rare_every == 0 && k / rare_every < 20 {
                title.push(' ');
                title.push_str(RARE);
            }
            let created = from_millis(
                now.timestamp_millis() - 90 * 86_400_000 + (k as i64) * 7_000 % (89 * 86_400_000),
            );
            let mut i = Incident::open(title, reporters[k % reporters.len()], created);
            i.description = format!(
                "{} {} {} observed by monitoring",
                w(r >> 16),
                w(r >> 24),
                w(r >> 32)
            );
            i.status = Status::ALL[(r >> 40) as usize % Status::ALL.len()];
            policy.assign(&mut i, Priority::ALL[(r >> 44) as usize % 4]);
            // 1% due now; the rest due in the future or done.
            i.next_due_at = if k % 100 == 0 {
                Some(from_millis(now.timestamp_millis() - (r % 3_600_000) as i64))
            } else if i.status.is_done() {
                None
            } else {
                Some(from_millis(
                    now.timestamp_millis() + 60_000 + (r % 86_400_000) as i64,
                ))
            };
            i
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_it<F, Fut, T>(runs: usize, mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f().await);
        times.push(t.elapsed());
    }
    (median(times), last.expect("at least one run"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let now = imas::model::truncate_millis(chrono::Utc::now());
    let incidents = synthetic(a.incidents, now);
    let load = Instant::now();
    let (store, pg): (Arc<dyn Store>, Option<(PostgresStore, String)>) = match a.backend.as_str() {
        "sqlite" => {
            let url = a.url.clone().unwrap_or_else(|| {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
                format!(
                    "sqlite://{}/store_scale-{}.db",
                    dir.display(),
                    uuid::Uuid::new_v4()
                )
            });
            let s = SqliteStore::connect(&url).await?;
            for chunk in incidents.chunks(50_000) {
                s.bulk_insert_incidents(chunk).await?;
            }
            sqlx::query("ANALYZE").execute(s.pool()).await?;
            (Arc::new(s), None)
        }
        "postgres" => {
            let url = a
                .url
                .clone()
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let schema = format!("imas_scale_{}", uuid::Uuid::new_v4().simple());
            let s = PostgresStore::connect_in_schema(&url, &schema).await?;
            s.bulk_insert_incidents(&incidents).await?;
            // What autovacuum does after a bulk load: flush the GIN pending list, gather statistics.
            sqlx::query("VACUUM ANALYZE incidents")
                .execute(s.pool())
                .await?;
            (Arc::new(s.clone()), Some((s, schema)))
        }
        other => return Err(format!("unknown backend {other}").into()),
    };
    let due = incidents
        .iter()
        .filter(|i| i.next_due_at.is_some_and(|t| t <= now))
        .count();
    println!(
        "backend {}, {} incidents loaded in {:.1?} ({} due)",
        a.backend,
        a.incidents,
        load.elapsed(),
        due
    );

    // (a) claim every due incident in batches of 100.
    let t = Instant::now();
    let mut claimed = 0usize;
    loop {
        let batch = store.claim_due(now, Duration::from_secs(300), 100).await?;
        if batch.is_empty() {
            break;
        }
        claimed += batch.len();
    }
    let per_claim = t.elapsed() / claimed.max(1) as u32;
    assert_eq!(claimed, due, "every due incident is claimed once");

    // (b) first page of 50 with a status filter.
    let open = IncidentFilter {
        status: vec![Status::Open],
        ..Default::default()
    };
    let (page_time, page) =
        time_it(25, || store.list_incidents(&open, PageRequest::first(50))).await;
    assert_eq!(page?.items.len(), 50);

    // (c) full-text query for the rare word.
    let rare = IncidentFilter {
        q: Some(RARE.into()),
        ..Default::default()
    };
    let (search_time, found) =
        time_it(25, || store.list_incidents(&rare, PageRequest::first(50))).await;
    let found = found?.items.len();
    assert_eq!(
        found,
        20.min(a.incidents),
        "the rare word is in exactly 20 incidents"
    );

    println!(
        "| backend | incidents | (a) claim, per claimed incident | (b) first page, status filter | (c) full-text, 20 hits |"
    );
    println!(
        "| {} | {} | {:.1} µs ({} claimed) | {:.2} ms | {:.2} ms |",
        a.backend,
        a.incidents,
        per_claim.as_secs_f64() * 1e6,
        claimed,
        page_time.as_secs_f64() * 1e3,
        search_time.as_secs_f64() * 1e3
    );

    if let Some((pg, schema)) = pg {
        let explain = |sql: &'static str| {
            let pool = pg.pool().clone();
            async move {
                println!("\nEXPLAIN ANALYZE {sql}");
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "EXPLAIN (ANALYZE, COSTS OFF) {sql}"
                )))
                .fetch_all(&pool)
                .await?;
                for r in rows {
                    println!("  {}", sqlx::Row::try_get::<String, _>(&r, 0)?);
                }
                Ok::<_, sqlx::Error>(())
            }
        };
        explain(
            "SELECT id FROM incidents WHERE next_due_at IS NOT NULL AND next_due_at <= now() \
             ORDER BY next_due_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .await?;
        explain("SELECT id FROM incidents WHERE 1 = 1 AND status IN ('open') ORDER BY created_at DESC, id DESC LIMIT 51")
            .await?;
        explain(
            "SELECT id FROM incidents WHERE 1 = 1 AND search @@ '''zanzibarquux'''::tsquery \
             ORDER BY created_at DESC, id DESC LIMIT 51",
        )
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(pg.pool())
            .await?;
    }
    Ok(())
}
