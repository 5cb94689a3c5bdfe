//! Run with: cargo run --release --example sla_latency -- --backend postgres --nodes 2
//!
//! Exactly-once breach handling and breach latency of the real-time SLA monitor,
//! then its idle cost.
//!
//!  1. N incidents (default 2,000) whose resolution deadlines fall due over the
//!     next minute (each at-risk warning at 80% of its target before that),
//!     assigned in turn to 4 engineers, every fifth unassigned (the engine then
//!     notifies every engineer). 1 or 2 nodes (engines with their own connection
//!     pools on one database, as separate servers would have; 2 only on
//!     PostgreSQL) each run the SLA monitor and the notification relay and
//!     worker, as the server does. Once every breach is committed the loops stop,
//!     every node flushes its notifications, and the example checks, per
//!     incident: exactly one `SLA_AT_RISK`, one `SLA_BREACH` and one `ESCALATION`
//!     (level 1, reached at the breach) audit entry and no other; exactly one
//!     committed change carrying its breach; for every recipient the engine
//!     notifies (the assignee, or every engineer), exactly one at-risk and one
//!     breach notification delivered, and no notification to anybody else (the
//!     admin gets none: level 2 comes 30 minutes later); nothing left in the
//!     outbox. A violation is printed and the example exits with status 1.
//!
//!     Lateness = committed − deadline, where *committed* is the instant the
//!     store's commit of the change recording the breach returned (from then on
//!     the breach, its audit entry and its notification intents are durable and
//!     visible to every node), read from the same wall clock the engine uses by
//!     a thin wrapper around each node's store. The incident's `breached_at` is
//!     the instant its sweep step started (one instant for the whole claimed
//!     batch), so `breached_at − deadline` is shown beside it as "decided".
//!  2. 100,000 open incidents not due for an hour; one node's monitor runs for
//!     20 s; it reports the CPU time this process used per second of wall time
//!     and checks that nothing was breached.
//!
//! Options: --backend sqlite|postgres (default sqlite), --nodes 1|2 (2: postgres
//! only), --incidents N, --url URL (default: a file under target/ for SQLite;
//! $DATABASE_URL or postgres://postgres@127.0.0.1/postgres with a fresh schema).
//! `IMAS_SMOKE=1`: 100 incidents due over 4 s and an idle phase of 2,000
//! incidents for 2 s, with the same checks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use imas::escalation::{SlaEscalation, next_due};
use imas::model::{
    Alert, AlertFilter, AlertId, AuditAction, AuditEntry, AuditFilter, Incident, IncidentFilter,
    IncidentId, Integration, IntegrationId, Notification, NotificationId, NotificationType,
    OutboxEntry, Page, PageRequest, Priority, Role, Service, ServiceId, Timestamp, User, UserId,
    from_millis, truncate_millis,
};
use imas::ports::{
    AlertStore, AuditStore, Change, ChangeStore, Generation, IncidentStore, IncidentWrite,
    IntegrationStore, NotificationStore, OutboxStore, Pruned, ServiceStore, Store, UserStore,
    UserWrite,
};
use imas::sla::SlaPolicy;
use imas::store_sqlx::{PostgresStore, SqliteStore};
use imas::{Engine, EngineConfig, Result};

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

/// Microseconds since the epoch on the wall clock (the engine's `SystemClock`
/// reads the same clock, truncated to milliseconds).
fn wall_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The committed breaches, as seen by the stores' callers.
#[derive(Debug)]
struct BreachLog {
    /// Per incident, the instant (µs) each commit carrying its `SLA_BREACH`
    /// entry returned.
    committed: Mutex<HashMap<IncidentId, Vec<i64>>>,
    /// How many such commits so far.
    count: tokio::sync::watch::Sender<usize>,
}

/// A node's store, which notes when each change recording a breach commits.
/// Everything else passes through.
#[derive(Debug)]
struct Observed {
    inner: Arc<dyn Store>,
    log: Arc<BreachLog>,
}

#[async_trait]
impl ChangeStore for Observed {
    async fn commit(&self, change: Change) -> Result<()> {
        let breach = match &change.incident {
            Some(IncidentWrite::Update { incident, .. })
                if change
                    .audit
                    .iter()
                    .any(|a| a.action == AuditAction::SlaBreach) =>
            {
                Some(incident.id)
            }
            _ => None,
        };
        self.inner.commit(change).await?;
        if let Some(id) = breach {
            let at = wall_us();
            let mut committed = self.log.committed.lock().unwrap_or_else(|p| p.into_inner());
            committed.entry(id).or_default().push(at);
            drop(committed);
            self.log.count.send_modify(|n| *n += 1);
        }
        Ok(())
    }
    fn generation(&self) -> Option<Generation> {
        self.inner.generation()
    }
}

#[async_trait]
impl UserStore for Observed {
    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        self.inner.get_user(id).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.inner.user_by_username(username).await
    }
    async fn users_with_role(&self, role: Role) -> Result<Vec<User>> {
        self.inner.users_with_role(role).await
    }
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        self.inner.list_users(page).await
    }
}

#[async_trait]
impl IncidentStore for Observed {
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        self.inner.get_incident(id).await
    }
    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        self.inner.list_incidents(filter, page).await
    }
    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64> {
        self.inner.count_incidents(filter).await
    }
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        self.inner.claim_due(now, lease, limit).await
    }
    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        self.inner.next_due_at().await
    }
}

#[async_trait]
impl AuditStore for Observed {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        self.inner.list_audit(filter, page).await
    }
}

#[async_trait]
impl NotificationStore for Observed {
    async fn insert_notification(&self, n: &Notification) -> Result<bool> {
        self.inner.insert_notification(n).await
    }
    async fn insert_notifications(&self, ns: &[Notification]) -> Result<Vec<bool>> {
        self.inner.insert_notifications(ns).await
    }
    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        self.inner.list_notifications(user, page).await
    }
    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification> {
        self.inner.mark_read(user, id).await
    }
    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool> {
        self.inner.record_delivery(key, channel).await
    }
    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool> {
        self.inner.was_delivered(key, channel).await
    }
}

#[async_trait]
impl OutboxStore for Observed {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.inner.claim_outbox(now, lease, limit).await
    }
    async fn complete_outbox(&self, keys: &[String], now: Timestamp) -> Result<()> {
        self.inner.complete_outbox(keys, now).await
    }
    async fn pending_outbox(&self) -> Result<u64> {
        self.inner.pending_outbox().await
    }
    async fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>> {
        self.inner.oldest_pending_outbox().await
    }
    async fn prune_delivered(&self, before: Timestamp, limit: u32) -> Result<Pruned> {
        self.inner.prune_delivered(before, limit).await
    }
}

#[async_trait]
impl ServiceStore for Observed {
    async fn get_service(&self, id: ServiceId) -> Result<Option<Service>> {
        self.inner.get_service(id).await
    }
    async fn list_services(&self, page: PageRequest) -> Result<Page<Service>> {
        self.inner.list_services(page).await
    }
}

#[async_trait]
impl imas::ports::RotationStore for Observed {
    async fn get_rotation(
        &self,
        id: imas::model::RotationId,
    ) -> Result<Option<imas::model::Rotation>> {
        self.inner.get_rotation(id).await
    }
    async fn list_rotations(&self, page: PageRequest) -> Result<Page<imas::model::Rotation>> {
        self.inner.list_rotations(page).await
    }
}

#[async_trait]
impl imas::ports::ScheduleStore for Observed {
    async fn get_schedule(
        &self,
        id: imas::model::ScheduleId,
    ) -> Result<Option<imas::model::Schedule>> {
        self.inner.get_schedule(id).await
    }
    async fn list_schedules(&self, page: PageRequest) -> Result<Page<imas::model::Schedule>> {
        self.inner.list_schedules(page).await
    }
}

#[async_trait]
impl imas::ports::EscalationPolicyStore for Observed {
    async fn get_escalation_policy(
        &self,
        id: imas::model::EscalationPolicyId,
    ) -> Result<Option<imas::model::EscalationPolicy>> {
        self.inner.get_escalation_policy(id).await
    }
    async fn list_escalation_policies(
        &self,
        page: PageRequest,
    ) -> Result<Page<imas::model::EscalationPolicy>> {
        self.inner.list_escalation_policies(page).await
    }
}

#[async_trait]
impl IntegrationStore for Observed {
    async fn get_integration(&self, id: IntegrationId) -> Result<Option<Integration>> {
        self.inner.get_integration(id).await
    }
    async fn integration_by_key_hash(&self, key_hash: &str) -> Result<Option<Integration>> {
        self.inner.integration_by_key_hash(key_hash).await
    }
    async fn list_integrations(&self, service: ServiceId) -> Result<Vec<Integration>> {
        self.inner.list_integrations(service).await
    }
}

#[async_trait]
impl AlertStore for Observed {
    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>> {
        self.inner.get_alert(id).await
    }
    async fn open_alert(&self, service: ServiceId, dedup_key: &str) -> Result<Option<Alert>> {
        self.inner.open_alert(service, dedup_key).await
    }
    async fn list_alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<Alert>> {
        self.inner.list_alerts(filter, page).await
    }
    async fn repeat_trigger(
        &self,
        service: ServiceId,
        dedup_key: &str,
        at: Timestamp,
    ) -> Result<Option<Alert>> {
        self.inner.repeat_trigger(service, dedup_key, at).await
    }
}

/// `n` incidents created at `now_ms`, resolution deadlines `min_ms` to `min_ms +
/// spread_ms` later, response target far away, assigned in turn to `engineers`
/// (every fifth unassigned; all of them when there are no engineers).
fn incidents(
    n: usize,
    now_ms: i64,
    spread_ms: i64,
    min_ms: i64,
    engineers: &[UserId],
    reporter: UserId,
) -> Vec<Incident> {
    let (sla, esc) = (SlaPolicy::default(), SlaEscalation::default());
    (0..n)
        .map(|k| {
            let mut i = Incident::open(format!("latency {k}"), reporter, from_millis(now_ms));
            sla.assign(&mut i, Priority::Critical);
            // Deadline spread evenly over the window; response target far away.
            i.sla_target_ms = min_ms + (k as i64 * spread_ms) / n as i64;
            i.response_target_ms = 10 * 3_600_000;
            imas::sla::recompute_deadlines(&mut i);
            i.assigned_to = if k % 5 == 4 || engineers.is_empty() {
                None
            } else {
                Some(engineers[k % engineers.len()])
            };
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
    cleanup: Cleanup,
    load: Loader,
}

/// What to remove at the end.
enum Cleanup {
    /// A URL given with --url: nothing.
    Nothing,
    /// The SQLite file the example made.
    File(std::path::PathBuf),
    /// The PostgreSQL schema the example made, and a pool to drop it with.
    Schema(sqlx::PgPool, String),
}

async fn backend(kind: &str, nodes: usize, url: Option<String>) -> Backend {
    match kind {
        "sqlite" => {
            let (url, cleanup) = match url {
                Some(url) => (url, Cleanup::Nothing),
                None => {
                    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("target")
                        .join(format!("sla_latency-{}.db", uuid::Uuid::new_v4()));
                    (format!("sqlite://{}", path.display()), Cleanup::File(path))
                }
            };
            let s = SqliteStore::connect(&url).await.expect("sqlite");
            let loader = s.clone();
            Backend {
                stores: vec![Arc::new(s)],
                cleanup,
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
                cleanup: Cleanup::Schema(loader.pool().clone(), schema),
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

async fn clean_up(b: Backend) {
    let Backend {
        stores, cleanup, ..
    } = b;
    drop(stores);
    match cleanup {
        Cleanup::Nothing => {}
        Cleanup::File(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        Cleanup::Schema(pool, schema) => {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&pool)
                .await;
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

fn user(name: &str, role: Role) -> User {
    User {
        id: UserId::new(),
        name: name.into(),
        username: name.into(),
        email: format!("{name}@example.com"),
        // Nobody signs in here: they only receive notifications.
        password_hash: "not a password hash".into(),
        role,
        time_zone: chrono_tz::UTC,
        created_at: truncate_millis(chrono::Utc::now()),
    }
}

/// Percentile of sorted values, in ms (values in µs).
fn pct(sorted: &[i64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => sorted[((n as f64 - 1.0) * p).round() as usize] as f64 / 1e3,
    }
}

async fn all_audit(store: &dyn Store) -> Vec<AuditEntry> {
    let (mut out, mut page) = (Vec::new(), PageRequest::first(500));
    loop {
        let p = store
            .list_audit(&AuditFilter::default(), page)
            .await
            .expect("audit");
        out.extend(p.items);
        match p.next {
            Some(c) => page.cursor = Some(c),
            None => return out,
        }
    }
}

async fn all_notifications(store: &dyn Store, user: UserId) -> Vec<Notification> {
    let (mut out, mut page) = (Vec::new(), PageRequest::first(500));
    loop {
        let p = store
            .list_notifications(user, page)
            .await
            .expect("notifications");
        out.extend(p.items);
        match p.next {
            Some(c) => page.cursor = Some(c),
            None => return out,
        }
    }
}

/// The step part of a notification key `incident:step:user`.
fn step_of(key: &str) -> Option<&str> {
    let (_, rest) = key.split_once(':')?;
    let (step, _) = rest.rsplit_once(':')?;
    Some(step)
}

/// Audit entries, notifications and committed breaches per incident, against
/// what exactly-once means here. Returns the violations.
async fn check_exactly_once(
    store: &dyn Store,
    incidents: &[Incident],
    users: &[User],
    engineers: &[UserId],
    log: &BreachLog,
) -> Vec<String> {
    let mut bad = Vec::new();
    let ids: HashMap<String, IncidentId> =
        incidents.iter().map(|i| (i.id.to_string(), i.id)).collect();

    // Audit: exactly one at-risk, breach and level-1 escalation entry each.
    let mut audit: HashMap<(IncidentId, AuditAction), usize> = HashMap::new();
    for e in all_audit(store).await {
        match e.target.as_deref().and_then(|t| ids.get(t)) {
            Some(id) => *audit.entry((*id, e.action)).or_default() += 1,
            None => bad.push(format!("audit entry about no incident here: {e:?}")),
        }
    }
    let expected = [
        AuditAction::SlaAtRisk,
        AuditAction::SlaBreach,
        AuditAction::Escalation,
    ];
    for ((id, action), n) in &audit {
        if !expected.contains(action) {
            bad.push(format!("incident {id}: {n} unexpected {action:?} entries"));
        }
    }
    let committed: HashMap<IncidentId, usize> = log
        .committed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(id, at)| (*id, at.len()))
        .collect();
    for i in incidents {
        for action in expected {
            let n = audit.get(&(i.id, action)).copied().unwrap_or(0);
            if n != 1 {
                bad.push(format!("incident {}: {n} {action:?} audit entries", i.id));
            }
        }
        let n = committed.get(&i.id).copied().unwrap_or(0);
        if n != 1 {
            bad.push(format!("incident {}: {n} committed breach changes", i.id));
        }
        if !i.sla_breached || i.breached_at.is_none() || i.escalation_level != 1 {
            bad.push(format!(
                "incident {}: breached {} at {:?}, level {}",
                i.id, i.sla_breached, i.breached_at, i.escalation_level
            ));
        }
    }

    // Notifications: per (incident, recipient), one at-risk and one breach.
    let mut got: HashMap<(IncidentId, UserId, String), usize> = HashMap::new();
    for u in users {
        for n in all_notifications(store, u.id).await {
            let step = match step_of(&n.key) {
                Some(s) if s.starts_with("at-risk:") => "at-risk",
                Some("breach") => "breach",
                other => {
                    bad.push(format!(
                        "notification {} of unexpected step {other:?}",
                        n.key
                    ));
                    continue;
                }
            };
            let kind = if step == "breach" {
                NotificationType::Escalation
            } else {
                NotificationType::Warning
            };
            if n.kind != kind || n.user != u.id || !n.key.ends_with(&u.id.to_string()) {
                bad.push(format!(
                    "notification {} is {:?} for {}",
                    n.key, n.kind, n.user
                ));
            }
            match n.incident_id {
                Some(id) if n.key.starts_with(&id.to_string()) => {
                    *got.entry((id, u.id, step.to_string())).or_default() += 1
                }
                other => bad.push(format!("notification {} about {other:?}", n.key)),
            }
        }
    }
    let mut expected_total = 0;
    for i in incidents {
        let recipients: Vec<UserId> = match i.assigned_to {
            Some(a) => vec![a],
            None => engineers.to_vec(),
        };
        for r in recipients {
            for step in ["at-risk", "breach"] {
                expected_total += 1;
                let n = got.get(&(i.id, r, step.to_string())).copied().unwrap_or(0);
                if n != 1 {
                    bad.push(format!(
                        "incident {}: {n} {step} notifications for {r}",
                        i.id
                    ));
                }
            }
        }
    }
    let total: usize = got.values().sum();
    if total != expected_total {
        bad.push(format!(
            "{total} notifications delivered, {expected_total} expected (someone else was notified)"
        ));
    }
    match store.pending_outbox().await {
        Ok(0) => {}
        other => bad.push(format!("outbox not empty after the flush: {other:?}")),
    }
    bad
}

#[tokio::main]
async fn main() {
    let smoke = std::env::var("IMAS_SMOKE").is_ok_and(|v| v == "1");
    let mut args = std::env::args().skip(1);
    let (mut kind, mut nodes, mut url) = ("sqlite".to_string(), 1usize, None);
    let mut n = if smoke { 100 } else { 2_000 };
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
    assert!(
        matches!(kind.as_str(), "sqlite" | "postgres"),
        "--backend expects sqlite or postgres"
    );
    assert!(
        nodes == 1 || (nodes == 2 && kind == "postgres"),
        "--nodes expects 1, or 2 with --backend postgres (a SQLite file belongs to one process)"
    );
    // Deadlines from `min` to `min + spread` after creation; idle phase size.
    let (min_ms, spread_ms) = if smoke {
        (2_000, 4_000)
    } else {
        (5_000, 60_000)
    };
    let (idle_n, warm_up, idle_for) = if smoke {
        (2_000, Duration::from_millis(500), Duration::from_secs(2))
    } else {
        (100_000, Duration::from_secs(2), Duration::from_secs(20))
    };
    let mut violations: Vec<String> = Vec::new();

    // 1. Exactly once, and lateness to the commit.
    let b = backend(&kind, nodes, url.clone()).await;
    let engineers: Vec<User> = (0..4)
        .map(|k| user(&format!("engineer{k}"), Role::Engineer))
        .collect();
    let mut users = engineers.clone();
    users.push(user("admin", Role::Admin));
    users.push(user("reporter", Role::User));
    for u in &users {
        b.stores[0]
            .commit(Change {
                user: Some(UserWrite::Insert(u.clone())),
                ..Change::default()
            })
            .await
            .expect("user");
    }
    let engineer_ids: Vec<UserId> = engineers.iter().map(|u| u.id).collect();
    let reporter = users[users.len() - 1].id;
    let now = truncate_millis(chrono::Utc::now()).timestamp_millis();
    let loaded = incidents(n, now, spread_ms, min_ms, &engineer_ids, reporter);
    (b.load)(loaded.clone()).await;
    let first_step = loaded
        .iter()
        .filter_map(|i| i.next_due_at)
        .min()
        .map_or(i64::MAX, |t| t.timestamp_millis());
    if truncate_millis(chrono::Utc::now()).timestamp_millis() >= first_step {
        violations.push(format!(
            "loading took past the first due step ({} ms after creation): lateness would include it",
            first_step - now
        ));
    }
    let log = Arc::new(BreachLog {
        committed: Mutex::default(),
        count: tokio::sync::watch::channel(0).0,
    });
    let mut committed_rx = log.count.subscribe();
    let engines: Vec<Engine> = b
        .stores
        .iter()
        .map(|s| {
            engine(Arc::new(Observed {
                inner: s.clone(),
                log: log.clone(),
            }))
        })
        .collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut loops = Vec::new();
    for e in &engines {
        let (monitor, rx) = (e.clone(), stop_rx.clone());
        loops.push(tokio::spawn(async move {
            monitor.run_sla_monitor(Duration::from_secs(1), rx).await
        }));
        let (notifier, rx) = (e.clone(), stop_rx.clone());
        loops.push(tokio::spawn(async move {
            notifier.run_notifier(Duration::from_secs(1), rx).await
        }));
    }
    // Every breach committed, or the window plus a minute gone.
    let limit = Duration::from_millis((min_ms + spread_ms) as u64) + Duration::from_secs(60);
    if tokio::time::timeout(limit, committed_rx.wait_for(|c| *c >= n))
        .await
        .is_err()
    {
        violations.push(format!(
            "{} of {n} breaches committed within {limit:?}",
            *committed_rx.borrow()
        ));
    }
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    // Whatever the notifiers had not delivered yet (each node's own queue).
    for e in &engines {
        if let Err(err) = e.flush_notifications().await {
            violations.push(format!("flush failed: {err}"));
        }
    }
    let store = b.stores[0].clone();
    let swept = imas::testkit::store::all_incidents(store.as_ref()).await;
    if swept.len() != n {
        violations.push(format!("{} incidents read back, {n} loaded", swept.len()));
    }
    violations
        .extend(check_exactly_once(store.as_ref(), &swept, &users, &engineer_ids, &log).await);
    let deadline_us: HashMap<IncidentId, i64> = swept
        .iter()
        .map(|i| (i.id, i.sla_deadline.timestamp_millis() * 1_000))
        .collect();
    let mut late: Vec<i64> = log
        .committed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|(id, at)| Some(at.first()? - deadline_us.get(id)?))
        .collect();
    let mut decided: Vec<i64> = swept
        .iter()
        .filter_map(|i| (i.breached_at? - i.sla_deadline).num_microseconds())
        .collect();
    late.sort_unstable();
    decided.sort_unstable();
    drop(store);
    drop(engines);
    clean_up(b).await;
    println!(
        "| {kind} | {nodes} | {n} | {:.1} ms | {:.1} ms | {:.1} ms |   (committed − deadline: p50, p99, max)",
        pct(&late, 0.5),
        pct(&late, 0.99),
        pct(&late, 1.0)
    );
    println!(
        "  decided (breached_at − deadline): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&decided, 0.5),
        pct(&decided, 0.99),
        pct(&decided, 1.0)
    );
    let recipients: usize = swept
        .iter()
        .map(|i| i.assigned_to.map_or(engineer_ids.len(), |_| 1))
        .sum();
    println!(
        "  checked: {n} incidents, 1 SLA_AT_RISK + 1 SLA_BREACH + 1 ESCALATION audit entry and 1 committed breach each, \
         {recipients} recipients × (1 at-risk + 1 breach notification); {} violation(s)",
        violations.len()
    );

    // 2. Idle cost with many open incidents not yet due.
    let b = backend(&kind, 1, url).await;
    let now = truncate_millis(chrono::Utc::now()).timestamp_millis();
    (b.load)(incidents(
        idle_n,
        now,
        60_000,
        3_600_000,
        &[],
        UserId::new(),
    ))
    .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let e = engine(b.stores[0].clone());
    let monitor =
        tokio::spawn(async move { e.run_sla_monitor(Duration::from_secs(1), stop_rx).await });
    tokio::time::sleep(warm_up).await; // the measurement starts after the first sweep
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    tokio::time::sleep(idle_for).await; // the measurement window
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    let _ = stop_tx.send(true);
    let _ = monitor.await;
    let touched = b.stores[0]
        .count_incidents(&IncidentFilter {
            sla_breached: Some(true),
            ..Default::default()
        })
        .await
        .expect("count");
    if touched != 0 {
        violations.push(format!(
            "idle phase: {touched} incidents breached before their deadline"
        ));
    }
    clean_up(b).await;
    println!(
        "idle, {idle_n} open incidents not due, {kind}: {:.2}% of a core ({:?} CPU in {:.1?})",
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        cpu,
        wall
    );

    if !violations.is_empty() {
        for v in violations.iter().take(50) {
            eprintln!("VIOLATION: {v}");
        }
        eprintln!("{} violation(s)", violations.len());
        std::process::exit(1);
    }
}
