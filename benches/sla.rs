//! SLA benchmarks of the code the product runs.
//!
//! 1. `escalation::next_step`: the rule `Engine::sweep_step` applies to every
//!    claimed incident (and, as `next_due`, to every write, to set the incident's
//!    `next_due_at`), over incidents as a store returns them. The population is
//!    written by the engine itself: a simulated month of incidents reported
//!    (priority mix, 85% assigned), acknowledged, put on hold and resumed,
//!    resolved and closed, with the SLA monitor sweeping at every due instant
//!    (missed responses, at-risk warnings, breaches, escalation levels), on a
//!    `MemoryStore` with a `ManualClock`; then written to a SQLite file and read
//!    back page by page. Timed over that set as read (100,000 incidents), over
//!    its open incidents only (the ones the sweep can claim), and over 1,000,000
//!    (the set read, repeated: the original's rule was timed over 1,000,000
//!    objects). Each pass counts the incidents with a step due within the hour
//!    and checks that count against the `next_due_at` the engine stored.
//! 2. The sweep per due incident through a real store: `Engine::sweep_all`
//!    (claim, steps, commit with audit entries and notification intents, one
//!    transaction per incident) on a fresh `SqliteStore` and, when `DATABASE_URL`
//!    is set, a fresh `PostgresStore` schema, each loaded with the same
//!    population and its users, swept at the instant when 2,000 incidents are
//!    due. Checked: incidents claimed, breaches and missed responses recorded
//!    (against counts taken from the loaded data), no conflicts, the store's
//!    breached count and one `SLA_BREACH` audit entry per breach.
//!
//! Run: `cargo bench --bench sla` (prints ns per incident for (1) as the best of
//! 15 passes, and µs per swept incident for (2) for each of 3 runs).
//! Smoke (a couple of thousand incidents, one run, same checks):
//! `IMAS_SMOKE=1 cargo bench --bench sla`, or `cargo bench --bench sla -- --test`
//! / `cargo test --benches` (criterion's test mode).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use imas::engine::{IncidentPatch, NewIncident, Principal};
use imas::escalation::{SlaEscalation, next_due, next_step};
use imas::memory::MemoryStore;
use imas::model::{
    AuditAction, AuditFilter, Incident, IncidentFilter, IncidentId, PageRequest, Priority, Role,
    Status, Timestamp, User, UserId, from_millis,
};
use imas::ports::{Change, ChangeStore, IncidentStore, ManualClock, Store, UserWrite};
use imas::sla::SlaPolicy;
use imas::store_sqlx::{PostgresStore, SqliteStore};
use imas::{Engine, EngineConfig};

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
/// 2026-01-01T00:00:00Z, where the simulated month starts.
const T0: i64 = 1_767_225_600_000;
const ENGINEERS: usize = 20;
const ADMINS: usize = 3;

struct Sizes {
    /// Incidents the simulation reports.
    incidents: usize,
    /// The large set for (1), made of repeats of the set read.
    large: usize,
    /// Incidents due when (2) sweeps.
    due: usize,
    /// Runs of (2) per backend.
    runs: usize,
}

fn sizes() -> Sizes {
    let args: Vec<String> = std::env::args().collect();
    // Criterion's test mode (`-- --test`, or `cargo test --benches`, which does
    // not pass `--bench`) runs every benchmark once: small sizes there too.
    let smoke = std::env::var("IMAS_SMOKE").is_ok_and(|v| v == "1")
        || args.iter().any(|a| a == "--test")
        || !args.iter().any(|a| a == "--bench");
    if smoke {
        Sizes {
            incidents: 2_000,
            large: 20_000,
            due: 50,
            runs: 1,
        }
    } else {
        Sizes {
            incidents: 100_000,
            large: 1_000_000,
            due: 2_000,
            runs: 3,
        }
    }
}

/// xorshift64: the same population on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

fn user(name: String, role: Role) -> User {
    User {
        id: UserId::new(),
        email: format!("{name}@example.com"),
        username: name.clone(),
        name,
        // Never signed in with: the benchmark only needs them as recipients.
        password_hash: "not a password hash".into(),
        role,
        time_zone: chrono_tz::UTC,
        created_at: from_millis(T0 - DAY),
    }
}

/// What happens to an incident, in time order.
#[derive(Clone, Copy)]
enum Action {
    Report {
        priority: Priority,
        assignee: Option<usize>,
    },
    Status(Status),
}

/// The population as the engine writes it, and the instant it stands at.
struct Population {
    users: Vec<User>,
    incidents: Vec<Incident>,
    end: Timestamp,
}

/// A month of incidents through the engine on a `MemoryStore`, the SLA monitor
/// sweeping at every due instant (as `run_sla_monitor` wakes at the earliest
/// `next_due_at`).
async fn simulate(n: usize) -> Population {
    let span = 30 * DAY;
    let sla = SlaPolicy::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut events: Vec<(i64, usize, Action)> = Vec::with_capacity(n * 5);
    for k in 0..n {
        let created = T0 + (rng.unit() * span as f64) as i64;
        let p = rng.unit();
        let priority = if p < 0.30 {
            Priority::Low
        } else if p < 0.70 {
            Priority::Medium
        } else if p < 0.92 {
            Priority::High
        } else {
            Priority::Critical
        };
        let assignee = (rng.unit() < 0.85).then(|| rng.next() as usize % ENGINEERS);
        events.push((created, k, Action::Report { priority, assignee }));
        if rng.unit() < 0.05 {
            continue; // forgotten: never acknowledged
        }
        let response = sla.response_ms(priority) as f64;
        let resolution = sla.resolution_ms(priority) as f64;
        // About a quarter miss the response target, about a sixth the resolution.
        let mut t = created + 1_000 + (response * rng.between(0.1, 1.3)) as i64;
        events.push((t, k, Action::Status(Status::Acknowledged)));
        t += 60_000 + (rng.between(0.0, 0.5) * H as f64) as i64;
        events.push((t, k, Action::Status(Status::InProgress)));
        let mut held = 0;
        if rng.unit() < 0.08 {
            t += (rng.between(0.05, 0.5) * resolution) as i64;
            events.push((t, k, Action::Status(Status::OnHold)));
            held = (rng.between(1.0, 24.0) * H as f64) as i64;
            events.push((t + held, k, Action::Status(Status::InProgress)));
        }
        let resolved = created + held + 120_000 + (resolution * rng.between(0.2, 1.15)) as i64;
        let resolved = resolved.max(t + held + 60_000);
        events.push((resolved, k, Action::Status(Status::Resolved)));
        if rng.unit() < 0.7 {
            let closed = resolved + (rng.between(12.0, 72.0) * H as f64) as i64;
            events.push((closed, k, Action::Status(Status::Closed)));
        }
    }
    let end = T0 + span;
    events.retain(|e| e.0 <= end);
    events.sort_by_key(|e| (e.0, e.1));

    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(from_millis(T0));
    let engine = Engine::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .jwt_keys(imas::auth::JwtKeys::new(&[7u8; 32], Duration::from_secs(60)).expect("keys"))
        .config(EngineConfig::default())
        .build()
        .expect("engine");
    let mut users: Vec<User> = (0..ENGINEERS)
        .map(|k| user(format!("engineer{k}"), Role::Engineer))
        .chain((0..ADMINS).map(|k| user(format!("admin{k}"), Role::Admin)))
        .collect();
    users.push(user("reporter".into(), Role::User));
    for u in &users {
        store
            .commit(Change {
                user: Some(UserWrite::Insert(u.clone())),
                ..Change::default()
            })
            .await
            .expect("user");
    }
    let admin = Principal {
        id: users[ENGINEERS].id,
        role: Role::Admin,
    };
    // The monitor: every step due by `t`, each at its own instant.
    let monitor = |t: i64| {
        let (store, clock, engine) = (store.clone(), clock.clone(), engine.clone());
        async move {
            while let Some(due) = store.next_due_at().await.expect("next due") {
                if due.timestamp_millis() > t {
                    break;
                }
                clock.set(due);
                engine.sweep_all().await.expect("sweep");
            }
        }
    };
    let mut ids: HashMap<usize, IncidentId> = HashMap::with_capacity(n);
    for (t, k, action) in events {
        monitor(t).await;
        clock.set(from_millis(t));
        match action {
            Action::Report { priority, assignee } => {
                let who = match assignee {
                    // Engineers report and take their own incidents.
                    Some(a) => Principal {
                        id: users[a].id,
                        role: Role::Engineer,
                    },
                    None => admin,
                };
                let input = NewIncident {
                    title: format!("Checkout latency above target in region {}", k % 7),
                    description: Some(format!(
                        "Alert {k}: p99 above the objective for ten minutes; customers report timeouts."
                    )),
                    priority: Some(priority),
                    assigned_to: assignee.map(|a| users[a].id),
                    ..Default::default()
                };
                let i = engine.create_incident(&who, input).await.expect("report");
                ids.insert(k, i.id);
            }
            Action::Status(status) => {
                let id = ids[&k];
                let patch = IncidentPatch {
                    status: Some(status),
                    ..Default::default()
                };
                engine
                    .update_incident(&admin, id, patch, None)
                    .await
                    .expect("status");
            }
        }
    }
    monitor(end).await;
    clock.set(from_millis(end));
    let incidents = imas::testkit::store::all_incidents(store.as_ref()).await;
    assert_eq!(
        incidents.len(),
        n,
        "every reported incident is in the store"
    );
    Population {
        users,
        incidents,
        end: from_millis(end),
    }
}

async fn count_audit(store: &dyn Store, action: AuditAction) -> usize {
    let filter = AuditFilter {
        action: Some(action),
        ..Default::default()
    };
    let (mut n, mut page) = (0, PageRequest::first(500));
    loop {
        let p = store.list_audit(&filter, page).await.expect("audit");
        n += p.items.len();
        match p.next {
            Some(c) => page.cursor = Some(c),
            None => return n,
        }
    }
}

/// A fresh store of one backend, loaded with the population's users and
/// incidents (as an import would: `bulk_insert_incidents`), and what drops it.
struct Loaded {
    store: Arc<dyn Store>,
    drop_with: Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>,
}

async fn add_users(store: &dyn Store, users: &[User]) {
    for u in users {
        store
            .commit(Change {
                user: Some(UserWrite::Insert(u.clone())),
                ..Change::default()
            })
            .await
            .expect("user");
    }
}

async fn sqlite(pop: &Population) -> Loaded {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(format!("sla-bench-{}.db", uuid::Uuid::new_v4().simple()));
    let s = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("sqlite");
    add_users(&s, &pop.users).await;
    for c in pop.incidents.chunks(20_000) {
        s.bulk_insert_incidents(c).await.expect("load");
    }
    Loaded {
        store: Arc::new(s),
        drop_with: Box::new(move || {
            Box::pin(async move {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            })
        }),
    }
}

async fn postgres(url: &str, pop: &Population) -> Loaded {
    let schema = format!("imas_slabench_{}", uuid::Uuid::new_v4().simple());
    let s = PostgresStore::connect_in_schema(url, &schema)
        .await
        .expect("postgres");
    add_users(&s, &pop.users).await;
    s.bulk_insert_incidents(&pop.incidents).await.expect("load");
    sqlx::query("VACUUM ANALYZE incidents")
        .execute(s.pool())
        .await
        .expect("analyze");
    let pool = s.pool().clone();
    Loaded {
        store: Arc::new(s),
        drop_with: Box::new(move || {
            Box::pin(async move {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&pool)
                    .await;
            })
        }),
    }
}

/// What the sweep at `at` must do, counted from the loaded data with the
/// rules stated plainly (not through `next_step`).
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    claimed: usize,
    breaches: usize,
    response_breaches: usize,
}

fn expected(incidents: &[Incident], at: Timestamp) -> Expected {
    let running = |i: &&Incident| !i.status.is_done();
    Expected {
        claimed: incidents
            .iter()
            .filter(|i| i.next_due_at.is_some_and(|d| d <= at))
            .count(),
        breaches: incidents
            .iter()
            .filter(running)
            .filter(|i| i.status != Status::OnHold && !i.sla_breached && i.sla_deadline <= at)
            .count(),
        response_breaches: incidents
            .iter()
            .filter(|i| {
                i.status == Status::Open
                    && i.response_breached_at.is_none()
                    && i.response_deadline <= at
            })
            .count(),
    }
}

/// One timed sweep of everything due at `at` on a freshly loaded store.
async fn sweep_run(loaded: Loaded, pop: &Population, at: Timestamp, want: &Expected) -> Duration {
    let store = loaded.store.clone();
    let engine = Engine::builder(store.clone())
        .clock(Arc::new(ManualClock::new(at)))
        .jwt_keys(imas::auth::JwtKeys::new(&[7u8; 32], Duration::from_secs(60)).expect("keys"))
        .config(EngineConfig::default())
        .build()
        .expect("engine");
    let breached_before = store
        .count_incidents(&IncidentFilter {
            sla_breached: Some(true),
            ..Default::default()
        })
        .await
        .expect("count");
    assert_eq!(
        store.next_due_at().await.expect("next due"),
        pop.incidents.iter().filter_map(|i| i.next_due_at).min(),
        "the store indexes the loaded due times"
    );
    let t = Instant::now();
    let report = engine.sweep_all().await.expect("sweep");
    let elapsed = t.elapsed();
    assert_eq!(
        report.claimed, want.claimed,
        "incidents claimed: {report:?}"
    );
    assert_eq!(report.breaches, want.breaches, "breaches: {report:?}");
    assert_eq!(
        report.response_breaches, want.response_breaches,
        "missed responses: {report:?}"
    );
    assert_eq!(report.conflicts, 0, "one sweeper, no conflicts: {report:?}");
    let breached_after = store
        .count_incidents(&IncidentFilter {
            sla_breached: Some(true),
            ..Default::default()
        })
        .await
        .expect("count");
    assert_eq!(breached_after - breached_before, want.breaches as u64);
    assert_eq!(
        count_audit(store.as_ref(), AuditAction::SlaBreach).await,
        want.breaches,
        "one SLA_BREACH entry per breach (the loaded store had none)"
    );
    assert!(
        engine.sweep_all().await.expect("sweep").claimed == 0,
        "nothing left due"
    );
    println!(
        "    {report:?}: {:.1} ms, {:.1} µs per claimed incident, {} outbox intents",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / report.claimed as f64,
        store.pending_outbox().await.expect("outbox")
    );
    drop(engine);
    drop(store);
    (loaded.drop_with)().await;
    elapsed
}

/// How many incidents have a step due by `now`: the sweep's decision.
fn due_count(
    incidents: &[Incident],
    sla: &SlaPolicy,
    esc: &SlaEscalation,
    now: Timestamp,
) -> usize {
    incidents
        .iter()
        .filter(|i| next_step(i, sla, esc).is_some_and(|(_, at)| at <= now))
        .count()
}

fn ns_per(n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..15 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best.as_nanos() as f64 / n as f64
}

fn bench(c: &mut Criterion) {
    let sizes = sizes();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let t = Instant::now();
    let pop = rt.block_on(simulate(sizes.incidents));
    println!(
        "\nsimulated {} incidents in {:.1?}; at the end: {}",
        pop.incidents.len(),
        t.elapsed(),
        mix(&pop.incidents)
    );

    // (1) The incidents as a store returns them.
    let (sla, esc) = (SlaPolicy::default(), SlaEscalation::default());
    let loaded = rt.block_on(async {
        let l = sqlite(&pop).await;
        let mut read = imas::testkit::store::all_incidents(l.store.as_ref()).await;
        (l.drop_with)().await;
        let mut written = pop.incidents.clone();
        read.sort_by_key(|i| i.id);
        written.sort_by_key(|i| i.id);
        assert!(read == written, "SQLite returns the incidents as written");
        read
    });
    for i in &loaded {
        assert_eq!(
            next_due(i, &sla, &esc),
            i.next_due_at,
            "next_step agrees with the due time the engine stored"
        );
    }
    let open: Vec<Incident> = loaded
        .iter()
        .filter(|i| !i.status.is_done())
        .cloned()
        .collect();
    let large: Vec<Incident> = loaded.iter().cycle().take(sizes.large).cloned().collect();
    let now = pop.end + chrono::Duration::hours(1);
    let due_within_hour = |set: &[Incident]| {
        set.iter()
            .filter(|i| i.next_due_at.is_some_and(|d| d <= now))
            .count()
    };
    let sets: [(&str, &[Incident]); 3] = [
        ("as read", &loaded),
        ("open only", &open),
        ("as read, repeated", &large),
    ];
    let mut g = c.benchmark_group("sla next_step");
    for (name, set) in sets {
        let want = due_within_hour(set);
        assert!(want > 0, "{name}: some incidents are due within the hour");
        assert_eq!(due_count(set, &sla, &esc, now), want, "{name}");
        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function(format!("{name}, {}", set.len()), |b| {
            b.iter(|| due_count(black_box(set), &sla, &esc, black_box(now)))
        });
    }
    g.finish();
    println!(
        "\nnext_step over incidents as read from SQLite (best of 15 passes; an Incident is {} bytes):",
        std::mem::size_of::<Incident>()
    );
    for (name, set) in sets {
        let want = due_within_hour(set);
        let mut counted = Vec::new();
        let ns = ns_per(set.len(), || {
            counted.push(black_box(due_count(
                black_box(set),
                &sla,
                &esc,
                black_box(now),
            )));
        });
        assert!(
            counted.iter().all(|&c| c == want),
            "{name}: {counted:?} != {want}"
        );
        println!(
            "  {name:<18} {:>9} incidents, {want:>6} due within the hour: {ns:.2} ns/incident",
            set.len()
        );
    }
    drop(large);

    // (2) The sweep per due incident through real stores.
    let mut due: Vec<Timestamp> = loaded.iter().filter_map(|i| i.next_due_at).collect();
    due.sort_unstable();
    let at = due[sizes.due.min(due.len()) - 1];
    let want = expected(&loaded, at);
    println!(
        "\nsweep at end + {:.1} h: {want:?} (of {} open incidents)",
        (at - pop.end).num_milliseconds() as f64 / H as f64,
        open.len()
    );
    let mut backends: Vec<&str> = vec!["sqlite"];
    let pg_url = imas::testkit::service_url("DATABASE_URL");
    if pg_url.is_some() {
        backends.push("postgres");
    }
    for backend in backends {
        println!("  {backend}:");
        let mut per = Vec::new();
        for _ in 0..sizes.runs {
            let elapsed = rt.block_on(async {
                let l = match (backend, &pg_url) {
                    ("postgres", Some(url)) => postgres(url, &pop).await,
                    _ => sqlite(&pop).await,
                };
                sweep_run(l, &pop, at, &want).await
            });
            per.push(elapsed.as_secs_f64() * 1e6 / want.claimed as f64);
        }
        per.sort_by(f64::total_cmp);
        println!(
            "  {backend}: sweep_all, {} claimed of {} incidents: {:.1}–{:.1} µs per claimed incident ({} runs)",
            want.claimed,
            pop.incidents.len(),
            per[0],
            per[per.len() - 1],
            per.len()
        );
    }
}

/// Statuses, escalation levels and breaches of a set, for the log.
fn mix(incidents: &[Incident]) -> String {
    let mut by_status: HashMap<Status, usize> = HashMap::new();
    let mut by_level: HashMap<u32, usize> = HashMap::new();
    for i in incidents {
        *by_status.entry(i.status).or_default() += 1;
        *by_level.entry(i.escalation_level).or_default() += 1;
    }
    let breached = incidents.iter().filter(|i| i.sla_breached).count();
    let response = incidents
        .iter()
        .filter(|i| i.response_breached_at.is_some())
        .count();
    let mut s: Vec<String> = Status::ALL
        .iter()
        .map(|st| format!("{st} {}", by_status.get(st).copied().unwrap_or(0)))
        .collect();
    let mut levels: Vec<_> = by_level.into_iter().collect();
    levels.sort_unstable();
    s.push(format!(
        "breached {breached}, missed response {response}, levels {levels:?}"
    ));
    s.join(", ")
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
