//! [`PostgresStore`]: every store port on PostgreSQL, for many IMAS nodes sharing
//! one database. IMAS's tables and its migration history live in their own schema
//! (default `imas`), apart from the host application's. Claims use
//! `FOR UPDATE SKIP LOCKED` with a lease, so concurrent nodes never take the same
//! incident or outbox entry, and a dead node's claims expire.
//!
//! Each store listens on the channel `imas_changes`, which triggers on `users`
//! and `incidents` notify on every commit, so its
//! [generation](ChangeStore::generation) moves with every node's changes; while
//! the listening connection is down the store reports none and the engine reads
//! through.

use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use imas_core::error::{Error, Result};
use imas_core::model::{
    AuditEntry, AuditFilter, Incident, IncidentFilter, IncidentId, Notification, NotificationId,
    OutboxEntry, Page, PageRequest, Role, Timestamp, User, UserId, plus,
};
use imas_core::ports::{
    AuditStore, Change, ChangeStore, Generation, Generations, IncidentStore, IncidentWrite,
    NotificationStore, OutboxStore, UserStore, UserWrite, run_detached,
};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{
    Dialect, Positioned, RowExt, db_error, decode_audit, decode_incident, decode_notification,
    decode_outbox, decode_user, intent_json, into_page, push_audit_filter, push_incident_filter,
    push_page, terms_of,
};

const BACKEND: &str = "postgres";

/// The schema IMAS uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "imas";

/// The embedded migrations (`migrations/postgres`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

fn err(e: sqlx::Error) -> Error {
    db_error(BACKEND, e)
}

/// The columns of an incident the model reads (not the search vector).
const INCIDENT_COLUMNS: &str = "id, title, description, kind, priority, status, assigned_to, reported_by, \
    created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms, response_deadline, \
    response_breached_at, at_risk_at, sla_breached, breached_at, escalation_level, escalated_at, \
    acknowledged_at, resolved_at, closed_at, held_ms, hold_started_at, next_due_at, version";

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    generations: Arc<Generations>,
    /// Insert-only changes, for [`commit_inserts`].
    inserts: mpsc::UnboundedSender<Pending>,
}

fn stopped() -> Error {
    Error::backend(BACKEND, "the PostgreSQL insert batcher has stopped")
}

/// The channel the `notify_change` trigger (migration 0003) notifies.
const CHANGE_CHANNEL: &str = "imas_changes";

/// Keeps `generations` moving with the changes other nodes commit in `schema`,
/// until the store is dropped. Not live until listening; a lost connection makes
/// it not live until it listens again (notifications sent meanwhile are lost,
/// so going live bumps everything).
async fn follow_changes(pool: PgPool, schema: String, generations: Weak<Generations>) {
    let users = format!("{schema}.users");
    let incidents = format!("{schema}.incidents");
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.eager_reconnect(false);
            l.listen(CHANGE_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                if generations.strong_count() == 0 || pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "change feed: cannot listen; reads are not cached");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match generations.upgrade() {
            Some(g) => g.set_live(true),
            None => return,
        }
        loop {
            // Wake at least every few seconds to notice a dropped store.
            let next = tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await;
            let Some(g) = generations.upgrade() else {
                return;
            };
            match next {
                Err(_elapsed) => {}
                Ok(Ok(Some(n))) => {
                    let table = n.payload();
                    g.bump(table == users, table == incidents);
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    g.set_live(false);
                    tracing::warn!(
                        "change feed: connection lost; reads are not cached until it is back"
                    );
                    break;
                }
            }
        }
    }
}

impl PostgresStore {
    /// Connects to the database a `postgres://...` URL names, in the schema
    /// [`DEFAULT_SCHEMA`], and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_in_schema(url, DEFAULT_SCHEMA).await
    }

    /// Like [`PostgresStore::connect`], with IMAS's tables and migration history in
    /// `schema` (created if missing; letters, digits and `_` only).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !schema.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(Error::config(
                "schema",
                "expected lower-case letters, digits and '_', at most 63",
            ));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::config("DATABASE_URL", format!("not a PostgreSQL URL ({e})")))?
            .options([("search_path", schema)])
            .application_name("imas");
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(err)?;
        let mut migrator =
            sqlx::migrate::Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
        migrator.create_schema(schema.to_string());
        migrator.dangerous_set_table_name(format!("{schema}._imas_migrations"));
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?;
        let generations = Arc::new(Generations::new(false));
        tokio::spawn(follow_changes(
            pool.clone(),
            schema.to_string(),
            Arc::downgrade(&generations),
        ));
        let (inserts, queue) = mpsc::unbounded_channel();
        tokio::spawn(commit_inserts(pool.clone(), queue));
        Ok(Self {
            pool,
            generations,
            inserts,
        })
    }

    /// The connection pool, for hosts that want to inspect the database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Inserts many incidents, in batches of 5,000 rows through `UNNEST`, without
    /// audit or outbox rows: for imports (e.g. from the original system) and
    /// benchmarks.
    pub async fn bulk_insert_incidents(&self, incidents: &[Incident]) -> Result<()> {
        let (store, incidents) = (self.clone(), incidents.to_vec());
        run_detached(BACKEND, async move {
            let mut tx = store.begin().await?;
            for chunk in incidents.chunks(5_000) {
                insert_incidents(&mut tx, &chunk.iter().collect::<Vec<_>>()).await?;
            }
            tx.commit().await.map_err(err)?;
            store.generations.bump(false, true);
            Ok(())
        })
        .await
    }

    /// Runs a list query built up to its filters: keyset, order, limit, decode.
    async fn fetch_page<T: Positioned>(
        &self,
        mut qb: QueryBuilder<Postgres>,
        page: PageRequest,
        decode: fn(&PgRow) -> Result<T>,
    ) -> Result<Page<T>> {
        push_page::<PgDialect>(&mut qb, page);
        let rows = qb.build().fetch_all(&self.pool).await.map_err(err)?;
        let items = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        Ok(into_page(items, page.limit))
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(err)
    }

    /// [`ChangeStore::commit`] run to its end (it must not be dropped half-way).
    async fn commit_now(&self, change: Change) -> Result<()> {
        let (users, incidents) = (change.user.is_some(), change.incident.is_some());
        let insert_only = change.user.is_none()
            && matches!(change.incident, None | Some(IncidentWrite::Insert(_)));
        if insert_only {
            let (reply, answer) = oneshot::channel();
            self.inserts.send((change, reply)).map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())??;
        } else {
            commit_alone(&self.pool, &change).await?;
        }
        // Other nodes hear of it through the trigger; this one at once.
        self.generations.bump(users, incidents);
        Ok(())
    }
}

impl RowExt for PgRow {
    const BACKEND: &'static str = BACKEND;
    fn id(&self, col: &str) -> Result<Uuid> {
        self.try_get(col).map_err(err)
    }
    fn opt_id(&self, col: &str) -> Result<Option<Uuid>> {
        self.try_get(col).map_err(err)
    }
    fn ts(&self, col: &str) -> Result<Timestamp> {
        self.try_get(col).map_err(err)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>> {
        self.try_get(col).map_err(err)
    }
    fn text(&self, col: &str) -> Result<String> {
        self.try_get(col).map_err(err)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get(col).map_err(err)
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.try_get(col).map_err(err)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        self.try_get(col).map_err(err)
    }
}

struct PgDialect;

impl Dialect for PgDialect {
    type DB = Postgres;
    fn bind_ts(qb: &mut QueryBuilder<Postgres>, t: Timestamp) {
        qb.push_bind(t);
    }
    fn bind_id(qb: &mut QueryBuilder<Postgres>, id: Uuid) {
        qb.push_bind(id);
    }
    fn bind_text(qb: &mut QueryBuilder<Postgres>, s: String) {
        qb.push_bind(s);
    }
    fn bind_int(qb: &mut QueryBuilder<Postgres>, n: i64) {
        qb.push_bind(n);
    }
    fn push_search(qb: &mut QueryBuilder<Postgres>, terms: &[String]) {
        // The stored vector holds IMAS's own terms as lexemes; the query is the
        // same terms ANDed. Terms are alphanumeric only, so quoting each one makes
        // it a plain lexeme, never tsquery syntax.
        let query: Vec<String> = terms.iter().map(|t| format!("'{t}'")).collect();
        qb.push(" AND search @@ ");
        qb.push_bind(query.join(" & "));
        qb.push("::tsquery");
    }
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// Binds an incident's columns in the order `$1..$27` of [`INSERT_INCIDENT`],
/// then its search terms as `$28`.
fn bind_incident<'q>(q: PgQuery<'q>, i: &Incident) -> PgQuery<'q> {
    q.bind(i.id.0)
        .bind(i.title.clone())
        .bind(i.description.clone())
        .bind(i.kind.as_str())
        .bind(i.priority.as_str())
        .bind(i.status.as_str())
        .bind(i.assigned_to.map(|u| u.0))
        .bind(i.reported_by.0)
        .bind(i.created_at)
        .bind(i.updated_at)
        .bind(i.sla_target_ms)
        .bind(i.sla_deadline)
        .bind(i.response_target_ms)
        .bind(i.response_deadline)
        .bind(i.response_breached_at)
        .bind(i.at_risk_at)
        .bind(i.sla_breached)
        .bind(i.breached_at)
        .bind(i64::from(i.escalation_level))
        .bind(i.escalated_at)
        .bind(i.acknowledged_at)
        .bind(i.resolved_at)
        .bind(i.closed_at)
        .bind(i.held_ms)
        .bind(i.hold_started_at)
        .bind(i.next_due_at)
        .bind(i.version)
        .bind(terms_of(i))
}

const INSERT_INCIDENT: &str = "INSERT INTO incidents (id, title, description, kind, priority, status, \
    assigned_to, reported_by, created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms, \
    response_deadline, response_breached_at, at_risk_at, sla_breached, breached_at, escalation_level, \
    escalated_at, acknowledged_at, resolved_at, closed_at, held_ms, hold_started_at, next_due_at, version, \
    search) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
    $21, $22, $23, $24, $25, $26, $27, array_to_tsvector($28::text[]))";

const BULK_INSERT: &str = "INSERT INTO incidents (id, title, description, kind, priority, status, \
    assigned_to, reported_by, created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms, \
    response_deadline, response_breached_at, at_risk_at, sla_breached, breached_at, escalation_level, \
    escalated_at, acknowledged_at, resolved_at, closed_at, held_ms, hold_started_at, next_due_at, version, search) \
    SELECT id, title, description, kind, priority, status, assigned_to, reported_by, created_at, updated_at, \
    sla_target_ms, sla_deadline, response_target_ms, response_deadline, response_breached_at, at_risk_at, \
    sla_breached, breached_at, escalation_level, escalated_at, acknowledged_at, resolved_at, closed_at, held_ms, \
    hold_started_at, next_due_at, version, array_to_tsvector(string_to_array(terms, ' ')) \
    FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::uuid[], \
    $9::timestamptz[], $10::timestamptz[], $11::int8[], $12::timestamptz[], $13::int8[], $14::timestamptz[], \
    $15::timestamptz[], $16::timestamptz[], $17::bool[], $18::timestamptz[], $19::int8[], $20::timestamptz[], \
    $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], $24::int8[], $25::timestamptz[], $26::timestamptz[], \
    $27::int8[], $28::text[]) AS t(id, title, description, kind, priority, status, assigned_to, reported_by, \
    created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms, response_deadline, \
    response_breached_at, at_risk_at, sla_breached, breached_at, escalation_level, escalated_at, acknowledged_at, \
    resolved_at, closed_at, held_ms, hold_started_at, next_due_at, version, terms)";

const UPDATE_INCIDENT: &str = "UPDATE incidents SET title = $2, description = $3, kind = $4, priority = $5, \
    status = $6, assigned_to = $7, reported_by = $8, created_at = $9, updated_at = $10, sla_target_ms = $11, \
    sla_deadline = $12, response_target_ms = $13, response_deadline = $14, response_breached_at = $15, \
    at_risk_at = $16, sla_breached = $17, breached_at = $18, escalation_level = $19, escalated_at = $20, \
    acknowledged_at = $21, resolved_at = $22, closed_at = $23, held_ms = $24, hold_started_at = $25, \
    next_due_at = $26, version = $27, \
    search = array_to_tsvector($28::text[]) WHERE id = $1 AND version = $29";

/// After a versioned write matched no row: NotFound or a stale version.
async fn missing_or_stale(tx: &mut Transaction<'static, Postgres>, id: IncidentId) -> Error {
    match sqlx::query("SELECT version FROM incidents WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await
    {
        Ok(None) => Error::NotFound { entity: "incident" },
        Ok(Some(_)) => Error::conflict(format!(
            "incident {id} was modified concurrently; reload and retry"
        )),
        Err(e) => err(e),
    }
}

/// Inserts incidents with one statement (`UNNEST` of one array per column).
async fn insert_incidents(
    tx: &mut Transaction<'static, Postgres>,
    incidents: &[&Incident],
) -> Result<()> {
    macro_rules! column {
        ($f:expr) => {
            incidents.iter().map($f).collect::<Vec<_>>()
        };
    }
    sqlx::query(BULK_INSERT)
        .bind(column!(|i| i.id.0))
        .bind(column!(|i| i.title.clone()))
        .bind(column!(|i| i.description.clone()))
        .bind(column!(|i| i.kind.as_str().to_string()))
        .bind(column!(|i| i.priority.as_str().to_string()))
        .bind(column!(|i| i.status.as_str().to_string()))
        .bind(column!(|i| i.assigned_to.map(|u| u.0)))
        .bind(column!(|i| i.reported_by.0))
        .bind(column!(|i| i.created_at))
        .bind(column!(|i| i.updated_at))
        .bind(column!(|i| i.sla_target_ms))
        .bind(column!(|i| i.sla_deadline))
        .bind(column!(|i| i.response_target_ms))
        .bind(column!(|i| i.response_deadline))
        .bind(column!(|i| i.response_breached_at))
        .bind(column!(|i| i.at_risk_at))
        .bind(column!(|i| i.sla_breached))
        .bind(column!(|i| i.breached_at))
        .bind(column!(|i| i64::from(i.escalation_level)))
        .bind(column!(|i| i.escalated_at))
        .bind(column!(|i| i.acknowledged_at))
        .bind(column!(|i| i.resolved_at))
        .bind(column!(|i| i.closed_at))
        .bind(column!(|i| i.held_ms))
        .bind(column!(|i| i.hold_started_at))
        .bind(column!(|i| i.next_due_at))
        .bind(column!(|i| i.version))
        .bind(column!(|i| terms_of(i).join(" ")))
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    Ok(())
}

/// Commits changes that only insert (incidents, audit entries, outbox rows) in
/// one transaction of three statements, whatever their number.
async fn insert_together(
    tx: &mut Transaction<'static, Postgres>,
    changes: &[Change],
) -> Result<()> {
    let incidents: Vec<&Incident> = changes
        .iter()
        .filter_map(|c| match &c.incident {
            Some(IncidentWrite::Insert(i)) => Some(i),
            _ => None,
        })
        .collect();
    for chunk in incidents.chunks(5_000) {
        insert_incidents(tx, chunk).await?;
    }
    let audit: Vec<&AuditEntry> = changes.iter().flat_map(|c| &c.audit).collect();
    if !audit.is_empty() {
        sqlx::query(
            "INSERT INTO audit_log (id, action, actor, target, description, created_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::timestamptz[])",
        )
        .bind(audit.iter().map(|e| e.id.0).collect::<Vec<_>>())
        .bind(audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>())
        .bind(
            audit
                .iter()
                .map(|e| e.actor.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(audit.iter().map(|e| e.target.clone()).collect::<Vec<_>>())
        .bind(
            audit
                .iter()
                .map(|e| e.description.clone())
                .collect::<Vec<_>>(),
        )
        .bind(audit.iter().map(|e| e.created_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    let outbox: Vec<_> = changes.iter().flat_map(|c| &c.outbox).collect();
    if !outbox.is_empty() {
        sqlx::query(
            "INSERT INTO outbox (key, intent, available_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(outbox.iter().map(|o| o.key.clone()).collect::<Vec<_>>())
        .bind(
            outbox
                .iter()
                .map(|o| intent_json(o))
                .collect::<Result<Vec<_>>>()?,
        )
        .bind(outbox.iter().map(|o| o.created_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    Ok(())
}

async fn insert_batch(pool: &PgPool, changes: &[Change]) -> Result<()> {
    let mut tx = pool.begin().await.map_err(err)?;
    insert_together(&mut tx, changes).await?;
    tx.commit().await.map_err(err)
}

/// A change waiting for [`commit_inserts`], and who waits for it.
type Pending = (Change, oneshot::Sender<Result<()>>);

/// The most changes committed in one transaction.
const MAX_BATCH: usize = 256;

/// Commits insert-only changes (new incidents, registrations' audit entries,
/// failed logins) as they come, all waiting ones together: one transaction,
/// three statements and one WAL flush for a burst, instead of one of each per
/// change. One batch commits at a time; the changes that come meanwhile form
/// the next one (under load, one batch at a time gave more throughput and a
/// lower p99 than two or four in flight: bigger batches, fewer flushes, no
/// two transactions contending for the same index pages). If a batch fails,
/// its changes are committed one by one so that each gets its own answer.
/// Ends when the store is dropped, after the changes already handed to it.
async fn commit_inserts(pool: PgPool, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&pool, std::mem::take(&mut batch)).await;
    }
}

async fn commit_batch(pool: &PgPool, batch: Vec<Pending>) {
    let (changes, replies): (Vec<Change>, Vec<_>) = batch.into_iter().unzip();
    if changes.len() > 1 && insert_batch(pool, &changes).await.is_ok() {
        for reply in replies {
            let _ = reply.send(Ok(()));
        }
        return;
    }
    for (change, reply) in changes.into_iter().zip(replies) {
        let _ = reply.send(commit_alone(pool, &change).await);
    }
}

/// Commits one change in a transaction of its own.
async fn commit_alone(pool: &PgPool, change: &Change) -> Result<()> {
    let mut tx = pool.begin().await.map_err(err)?;
    apply(&mut tx, change).await?;
    tx.commit().await.map_err(err)
}

async fn apply(tx: &mut Transaction<'static, Postgres>, change: &Change) -> Result<()> {
    match &change.user {
        Some(UserWrite::Insert(u)) => {
            sqlx::query(
                "INSERT INTO users (id, name, username, email, password_hash, role, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(u.id.0)
            .bind(&u.name)
            .bind(&u.username)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(u.role.as_str())
            .bind(u.created_at)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
        }
        Some(UserWrite::SetRole { id, role }) => {
            let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(role.as_str())
                .bind(id.0)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
            if done.rows_affected() == 0 {
                return Err(Error::NotFound { entity: "user" });
            }
        }
        None => {}
    }
    match &change.incident {
        Some(IncidentWrite::Insert(i)) => {
            bind_incident(sqlx::query(INSERT_INCIDENT), i)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
        }
        Some(IncidentWrite::Update {
            incident,
            expected_version,
        }) => {
            let done = bind_incident(sqlx::query(UPDATE_INCIDENT), incident)
                .bind(*expected_version)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
            if done.rows_affected() == 0 {
                return Err(missing_or_stale(tx, incident.id).await);
            }
        }
        Some(IncidentWrite::Delete {
            id,
            expected_version,
        }) => {
            let done = sqlx::query("DELETE FROM incidents WHERE id = $1 AND version = $2")
                .bind(id.0)
                .bind(*expected_version)
                .execute(&mut **tx)
                .await
                .map_err(err)?;
            if done.rows_affected() == 0 {
                return Err(missing_or_stale(tx, *id).await);
            }
        }
        None => {}
    }
    for e in &change.audit {
        sqlx::query(
            "INSERT INTO audit_log (id, action, actor, target, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.id.0)
        .bind(e.action.as_str())
        .bind(e.actor.to_string())
        .bind(e.target.clone())
        .bind(&e.description)
        .bind(e.created_at)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    for intent in &change.outbox {
        sqlx::query("INSERT INTO outbox (key, intent, available_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
            .bind(&intent.key)
            .bind(intent_json(intent)?)
            .bind(intent.created_at)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
    }
    Ok(())
}

#[async_trait]
impl ChangeStore for PostgresStore {
    /// Cancel-safe: the transaction runs in a task of its own (or in the insert
    /// batcher's), so a caller that stops waiting cannot cut it short. Run in
    /// the caller's future instead, a drop at the `.await` of `BEGIN` would
    /// leave the server in a transaction that sqlx does not know of (it counts
    /// the depth only once `BEGIN` is answered, and rolls back only what it
    /// counts) on a connection that goes back to the pool: the next statements
    /// on it would run inside that transaction, uncommitted.
    async fn commit(&self, change: Change) -> Result<()> {
        let store = self.clone();
        run_detached(BACKEND, async move { store.commit_now(change).await }).await
    }

    fn generation(&self) -> Option<Generation> {
        self.generations.current()
    }
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(decode_user).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(decode_user).transpose()
    }

    async fn users_with_role(&self, role: Role) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE role = $1 ORDER BY created_at, id")
            .bind(role.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(decode_user).collect()
    }
}

#[async_trait]
impl IncidentStore for PostgresStore {
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        let sql = AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"
        ));
        let row = sqlx::query(sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(decode_incident).transpose()
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM incidents WHERE 1 = 1");
        push_incident_filter::<PgDialect>(&mut qb, filter);
        self.fetch_page(qb, page, decode_incident).await
    }

    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64> {
        let mut qb =
            QueryBuilder::<Postgres>::new("SELECT COUNT(*) AS n FROM incidents WHERE 1 = 1");
        push_incident_filter::<PgDialect>(&mut qb, filter);
        let n: i64 = qb
            .build()
            .fetch_one(&self.pool)
            .await
            .map_err(err)?
            .try_get("n")
            .map_err(err)?;
        Ok(n.max(0) as u64)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        let sql = AssertSqlSafe(format!(
            "UPDATE incidents SET next_due_at = $1 WHERE id IN (\
                SELECT id FROM incidents WHERE next_due_at IS NOT NULL AND next_due_at <= $2 \
                ORDER BY next_due_at LIMIT $3 \
                FOR UPDATE SKIP LOCKED) \
             RETURNING {INCIDENT_COLUMNS}"
        ));
        let rows = sqlx::query(sql)
            .bind(plus(now, lease))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        self.generations.bump(false, !rows.is_empty());
        rows.iter().map(decode_incident).collect()
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        let v: Option<Timestamp> = sqlx::query(
            "SELECT MIN(next_due_at) AS t FROM incidents WHERE next_due_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(err)?
        .try_get("t")
        .map_err(err)?;
        Ok(v)
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM audit_log WHERE 1 = 1");
        push_audit_filter::<PgDialect>(&mut qb, filter);
        self.fetch_page(qb, page, decode_audit).await
    }
}

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn insert_notification(&self, n: &Notification) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO notifications (id, key, user_id, message, kind, incident_id, read, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key) DO NOTHING",
        )
        .bind(n.id.0)
        .bind(&n.key)
        .bind(n.user.0)
        .bind(&n.message)
        .bind(n.kind.as_str())
        .bind(n.incident_id.map(|i| i.0))
        .bind(n.read)
        .bind(n.created_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM notifications WHERE user_id = ");
        qb.push_bind(user.0);
        self.fetch_page(qb, page, decode_notification).await
    }

    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification> {
        let row = sqlx::query(
            "UPDATE notifications SET read = TRUE WHERE id = $1 AND user_id = $2 RETURNING *",
        )
        .bind(id.0)
        .bind(user.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref()
            .map(decode_notification)
            .transpose()?
            .ok_or(Error::NotFound {
                entity: "notification",
            })
    }

    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO channel_deliveries (key, channel) VALUES ($1, $2) ON CONFLICT (key, channel) DO NOTHING",
        )
        .bind(key)
        .bind(channel)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM channel_deliveries WHERE key = $1 AND channel = $2")
                .bind(key)
                .bind(channel)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(
            "UPDATE outbox SET available_at = $1, attempts = attempts + 1 WHERE seq IN (\
                SELECT seq FROM outbox WHERE delivered_at IS NULL AND available_at <= $2 \
                ORDER BY available_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING seq, intent, attempts, available_at",
        )
        .bind(plus(now, lease))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let mut keyed = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>("seq").map_err(err)?, decode_outbox(r)?)))
            .collect::<Result<Vec<_>>>()?;
        keyed.sort_by_key(|(seq, _)| *seq);
        Ok(keyed.into_iter().map(|(_, e)| e).collect())
    }

    async fn complete_outbox(&self, keys: &[String], now: Timestamp) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut qb = QueryBuilder::<Postgres>::new("UPDATE outbox SET delivered_at = ");
        qb.push_bind(now);
        qb.push(" WHERE delivered_at IS NULL AND key IN (");
        let mut keys_list = qb.separated(", ");
        for k in keys {
            keys_list.push_bind(k.clone());
        }
        qb.push(")");
        qb.build().execute(&self.pool).await.map_err(err)?;
        Ok(())
    }

    async fn pending_outbox(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?
            .try_get("n")
            .map_err(err)?;
        Ok(n.max(0) as u64)
    }

    async fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>> {
        // Index `outbox_pending_seq`: the first pending row written.
        let row = sqlx::query(
            "SELECT intent FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.map(|r| crate::intent_created_at(BACKEND, &r.text("intent")?))
            .transpose()
    }

    async fn prune_delivered(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<imas_core::ports::Pruned> {
        // One statement, so it commits whole. Index `outbox_delivered` finds
        // the rows; `= ANY(ARRAY(...))` deletes them by primary key (an `IN`
        // subquery is planned as a join that scans the table); receipts go by
        // their primary key.
        let row = sqlx::query(
            "WITH gone AS (\
                DELETE FROM outbox WHERE seq = ANY(ARRAY(\
                    SELECT seq FROM outbox WHERE delivered_at IS NOT NULL AND available_at < $1 \
                    ORDER BY available_at LIMIT $2 FOR UPDATE SKIP LOCKED)) \
                RETURNING key), \
             receipts AS (\
                DELETE FROM channel_deliveries WHERE key IN (SELECT key FROM gone) RETURNING 1) \
             SELECT (SELECT COUNT(*) FROM gone) AS outbox, (SELECT COUNT(*) FROM receipts) AS receipts",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        let count = |col: &str| -> Result<u64> {
            Ok(row.try_get::<i64, _>(col).map_err(err)?.max(0) as u64)
        };
        Ok(imas_core::ports::Pruned {
            outbox: count("outbox")?,
            receipts: count("receipts")?,
        })
    }
}
