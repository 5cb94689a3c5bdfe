//! Run with: cargo run --release --example store_scale -- --backend postgres --incidents 1000000
//!
//! Scale benchmark of the SQL stores. Loads N incidents as production writes
//! them (through the engine: incident rows, audit entries, outbox rows and the
//! delivered notifications; see `support/load.rs`), 1% of them due for the SLA
//! monitor and a word that exactly 20 of them contain. Then times, through the
//! store's own methods (what the engine calls):
//!   (a) claiming every due incident in batches of 100 (`claim_due`, an
//!       `UPDATE ... RETURNING` on PostgreSQL), per claimed incident;
//!   (b) the first page of 50 with a status filter (`list_incidents`), median of 25;
//!   (c) a full-text query for the word 20 incidents contain, median of 25.
//!
//! On PostgreSQL it then prints the plans of the statements the store itself
//! ran for (a), (b) and (c), captured by PostgreSQL's `auto_explain` module: a
//! second store on the same schema connects with `session_preload_libraries =
//! auto_explain`, `auto_explain.log_min_duration = 0`, `auto_explain.log_analyze
//! = on` and `client_min_messages = log` in its connection options, so the
//! server sends the `EXPLAIN ANALYZE` of every statement that store executes back
//! as a notice, which sqlx passes to `tracing` (target `sqlx::postgres::notice`)
//! and this program collects. Nothing is retyped: the query text printed is the
//! one the store sent. (a) is re-run there after the timed run (at an instant
//! past the lease, when the claimed incidents are due again), (b) and (c) 25
//! times each, as timed; each distinct plan shape is printed once, with how many
//! executions had it (a prepared statement may switch to a generic plan after
//! five executions).
//!
//! Options: --backend sqlite|postgres (default sqlite), --incidents N (default
//! 10000), --url URL (default: a fresh file under target/ for SQLite;
//! $DATABASE_URL or postgres://postgres@127.0.0.1/postgres, in a fresh schema
//! dropped at the end). `IMAS_SMOKE=1`: 2,000 incidents and 5 runs per timing,
//! the same checks (for CI).

#[path = "support/load.rs"]
mod load;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imas::model::{IncidentFilter, PageRequest, Status};
use imas::ports::{IncidentStore, Store};
use imas::store_sqlx::{PostgresStore, SqliteStore};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const RARE: &str = "zanzibarquux";
const LEASE: Duration = Duration::from_secs(300);

struct Args {
    backend: String,
    incidents: usize,
    url: Option<String>,
    runs: usize,
}

fn smoke() -> bool {
    std::env::var("IMAS_SMOKE").is_ok_and(|v| v == "1")
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        backend: "sqlite".into(),
        incidents: if smoke() { 2_000 } else { 10_000 },
        url: None,
        runs: if smoke() { 5 } else { 25 },
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
    if a.incidents < 100 {
        return Err("--incidents: at least 100".into());
    }
    Ok(a)
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

/// The notices PostgreSQL sent to the explaining store's connections.
#[derive(Clone, Default)]
struct Notices(Arc<Mutex<Vec<String>>>);

impl Notices {
    /// The `auto_explain` plans of statements on the incidents table received
    /// since the last call (not those of sqlx's own catalogue look-ups).
    fn take_plans(&self) -> Vec<String> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *all)
            .into_iter()
            .filter(|m| m.starts_with("duration:") && m.contains("plan:"))
            .filter(|m| m.contains("FROM incidents") || m.contains("UPDATE incidents"))
            .collect()
    }
}

struct MessageField<'a>(&'a mut String);

impl tracing::field::Visit for MessageField<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Notices {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::postgres::notice" {
            let mut message = String::new();
            event.record(&mut MessageField(&mut message));
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(message);
        }
    }
}

/// A plan's shape: its nodes and their conditions, without the figures and
/// counters that change from one execution to the next (times, rows, buffers,
/// memory, the instant bound to a claim).
fn shape(plan: &str) -> String {
    const KEPT: [&str; 8] = [
        "Index Cond:",
        "Filter:",
        "Recheck Cond:",
        "Sort Key:",
        "Group Key:",
        "Hash Cond:",
        "Join Filter:",
        "Query Text:",
    ];
    plan.lines()
        .skip(1) // "duration: ... plan:"
        .enumerate()
        .filter(|(n, l)| {
            let t = l.trim_start();
            *n <= 1 || t.starts_with("->") || KEPT.iter().any(|k| t.starts_with(k))
        })
        .map(|(_, l)| {
            let node = l.split(" (cost=").next().unwrap_or(l);
            let node = node.split(" (actual").next().unwrap_or(node);
            let node = node.split(" (never executed)").next().unwrap_or(node);
            // Bound instants and counts: digits do not make a shape.
            node.chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints each distinct plan shape among `plans` once (its first occurrence),
/// with how many executions had it.
fn print_plans(what: &str, plans: &[String]) {
    let mut shapes: Vec<(String, &String, usize)> = Vec::new();
    for p in plans {
        let s = shape(p);
        match shapes.iter_mut().find(|(known, _, _)| *known == s) {
            Some(entry) => entry.2 += 1,
            None => shapes.push((s, p, 1)),
        }
    }
    for (_, plan, count) in shapes {
        println!(
            "\n-- {what}: plan of {count} of {} executions (auto_explain, as PostgreSQL sent it)",
            plans.len()
        );
        for line in plan.lines() {
            println!("  {line}");
        }
    }
}

/// The store under test, by backend (for what only its pool can do).
enum Backend {
    Sqlite(SqliteStore),
    Postgres {
        store: PostgresStore,
        schema: String,
        url: String,
    },
}

impl Backend {
    /// Runs `sql` (no result) through the store's own pool.
    async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Backend::Sqlite(s) => sqlx::query(sql).execute(s.pool()).await.map(drop),
            Backend::Postgres { store, .. } => {
                sqlx::query(sql).execute(store.pool()).await.map(drop)
            }
        }
    }

    async fn count(&self, table: &str) -> Result<i64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self {
            Backend::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await,
            Backend::Postgres { store, .. } => {
                sqlx::query_scalar(sql).fetch_one(store.pool()).await
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let notices = Notices::default();
    tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(
            notices.clone(),
            tracing_subscriber::filter::Targets::new()
                .with_target("sqlx::postgres::notice", tracing::Level::TRACE),
        ))
        .init();
    let started = Instant::now();
    // The SQLite file this run made (removed at the end).
    let mut made_file = None;
    let backend = match a.backend.as_str() {
        "sqlite" => {
            let url = a.url.clone().unwrap_or_else(|| {
                let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target")
                    .join(format!("store_scale-{}.db", uuid::Uuid::new_v4()));
                let url = format!("sqlite://{}", file.display());
                made_file = Some(file);
                url
            });
            Backend::Sqlite(SqliteStore::connect(&url).await?)
        }
        "postgres" => {
            let url = a
                .url
                .clone()
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let schema = format!("imas_scale_{}", uuid::Uuid::new_v4().simple());
            let store = PostgresStore::connect_in_schema(&url, &schema).await?;
            Backend::Postgres { store, schema, url }
        }
        other => return Err(format!("unknown backend {other}").into()),
    };
    let store: Arc<dyn Store> = match &backend {
        Backend::Sqlite(s) => Arc::new(s.clone()),
        Backend::Postgres { store, .. } => Arc::new(store.clone()),
    };
    // The load goes through a store of its own on PostgreSQL, whose sessions
    // do not wait for the WAL flush of each commit (`synchronous_commit =
    // off`): the same rows, written in a fraction of the time. The store
    // measured below is a plain one.
    let loader: Arc<dyn Store> = match &backend {
        Backend::Sqlite(_) => store.clone(),
        Backend::Postgres { schema, url, .. } => Arc::new(
            PostgresStore::connect_in_schema(
                &load::with_options(url, &[("synchronous_commit", "off")]),
                schema,
            )
            .await?,
        ),
    };
    let shape = load::Shape {
        incidents: a.incidents,
        due_every: Some(100),
        rare: Some((RARE, 20)),
        deliver: true,
    };
    let loaded = load::load(loader.clone(), &shape).await?;
    let (now, due) = (loaded.now, loaded.due);
    let load_time = started.elapsed();
    drop(loaded.engine);
    drop(loader);
    // What autovacuum and SQLite's `PRAGMA optimize` would have done by now:
    // statistics gathered (and PostgreSQL's GIN pending list flushed).
    match &backend {
        Backend::Sqlite(_) => backend.execute("ANALYZE").await?,
        Backend::Postgres { .. } => backend.execute("VACUUM ANALYZE").await?,
    }
    let incidents = backend.count("incidents").await?;
    let audit = backend.count("audit_log").await?;
    let outbox = backend.count("outbox").await?;
    let notifications = backend.count("notifications").await?;
    println!(
        "backend {}, {} incidents loaded through the engine in {:.1?}: {incidents} incident rows, \
         {audit} audit entries, {outbox} outbox rows, {notifications} notifications; {due} due; \
         by status {:?}",
        a.backend, a.incidents, load_time, loaded.by_status
    );
    assert_eq!(incidents, a.incidents as i64, "every incident is stored");
    assert!(
        audit >= a.incidents as i64 && outbox > 0 && notifications > 0,
        "audit entries, outbox rows and notifications were written with the incidents"
    );
    assert_eq!(due, a.incidents.div_ceil(100), "1% due");

    // (a) claim every due incident in batches of 100.
    let t = Instant::now();
    let mut claimed = 0usize;
    loop {
        let batch = store.claim_due(now, LEASE, 100).await?;
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
    let (page_time, page) = time_it(a.runs, || {
        store.list_incidents(&open, PageRequest::first(50))
    })
    .await;
    let page = page?;
    assert_eq!(page.items.len(), 50);
    assert!(page.items.iter().all(|i| i.status == Status::Open));

    // (c) full-text query for the rare word.
    let rare = IncidentFilter {
        q: Some(RARE.into()),
        ..Default::default()
    };
    let (search_time, found) = time_it(a.runs, || {
        store.list_incidents(&rare, PageRequest::first(50))
    })
    .await;
    let found = found?.items;
    assert_eq!(found.len(), 20, "the rare word is in exactly 20 incidents");
    assert!(found.iter().all(|i| i.title.contains(RARE)));

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

    if let Backend::Postgres {
        store: pg,
        schema,
        url,
    } = &backend
    {
        explain_real_statements(url, schema, now, due, a.runs, &open, &rare, &notices).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(pg.pool())
            .await?;
    }
    drop((store, backend));
    if let Some(file) = made_file {
        for suffix in ["", "-wal", "-shm", ".imas-lock"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
    Ok(())
}

/// Re-runs (a), (b) and (c) through a second store on the same schema whose
/// sessions have `auto_explain` on, and prints the plans PostgreSQL reports.
#[allow(clippy::too_many_arguments)]
async fn explain_real_statements(
    url: &str,
    schema: &str,
    now: imas::model::Timestamp,
    due: usize,
    runs: usize,
    open: &IncidentFilter,
    rare: &IncidentFilter,
    notices: &Notices,
) -> Result<(), Box<dyn std::error::Error>> {
    let explaining = PostgresStore::connect_in_schema(
        &load::with_options(
            url,
            &[
                ("session_preload_libraries", "auto_explain"),
                ("auto_explain.log_min_duration", "0"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
                ("client_min_messages", "log"),
            ],
        ),
        schema,
    )
    .await?;
    notices.take_plans(); // the migration check's
    // The claimed incidents are due again once their lease has passed.
    let later = imas::model::plus(now, LEASE + Duration::from_secs(1));
    let mut reclaimed = 0usize;
    let mut claim_plans = Vec::new();
    loop {
        let batch = explaining.claim_due(later, LEASE, 100).await?;
        let plans = notices.take_plans();
        if batch.is_empty() {
            break; // the last claim, which found nothing left
        }
        claim_plans.extend(plans);
        reclaimed += batch.len();
    }
    assert_eq!(
        reclaimed, due,
        "the explained claims take the same incidents"
    );
    let mut page_plans = Vec::new();
    for _ in 0..runs {
        let page = explaining
            .list_incidents(open, PageRequest::first(50))
            .await?;
        assert_eq!(page.items.len(), 50);
        page_plans.extend(notices.take_plans());
    }
    let mut search_plans = Vec::new();
    for _ in 0..runs {
        let found = explaining
            .list_incidents(rare, PageRequest::first(50))
            .await?;
        assert_eq!(found.items.len(), 20);
        search_plans.extend(notices.take_plans());
    }
    for (what, plans) in [
        ("(a) claim_due", &claim_plans),
        ("(b) first page, status filter", &page_plans),
        ("(c) full-text", &search_plans),
    ] {
        assert!(
            !plans.is_empty(),
            "{what}: no plan came back (is auto_explain installed?)"
        );
        print_plans(what, plans);
    }
    Ok(())
}
