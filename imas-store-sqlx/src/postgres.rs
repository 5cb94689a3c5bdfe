//! [`PostgresStore`]: every store port on PostgreSQL, for many IMAS nodes sharing
//! one database. IMAS's tables and its migration history live in their own schema
//! (default `imas`), apart from the host application's. Claims use
//! `FOR UPDATE SKIP LOCKED` with a lease, so concurrent nodes never take the same
//! incident or outbox entry, and a dead node's claims expire.
//!
//! Each store listens on the channel `imas_changes`, which triggers on `users`,
//! `incidents` and `alerts` (inserts and status changes, read as incident
//! changes), `integrations` and `services` (the integrations generation, under
//! which engines cache keys and services) notify on every commit, so its
//! [generation](ChangeStore::generation) moves with every node's changes; while
//! the listening connection is down the store reports none and the engine reads
//! through.
//!
//! Repeated triggers of alerts are batched (`repeat`): the calls waiting are
//! summed per `(service, dedup key)` and applied by one `UPDATE ... FROM
//! UNNEST` in a transaction of its own.
//!
//! What is PostgreSQL's own: `timestamptz` instants, the search vector column,
//! `FOR UPDATE SKIP LOCKED` claims, insert-only changes batched through
//! `UNNEST`, the change feed, the schema.

use std::str::FromStr;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use imas_core::error::{Error, Result};
use imas_core::model::search_terms;
use imas_core::model::{AuditEntry, Incident, Notification, Page, PageRequest, Timestamp};
use imas_core::ports::{AlertWrite, Change, Generations, IncidentWrite, Pruned, run_detached};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::dialect::{DbQuery, Dialect, Match, bind_value};
use crate::error::SqlError;
use crate::filter::{into_page, push_page};
use crate::intent_json;
use crate::repeat::{Group, Repeats};
use crate::sql::{Flavor, Search, Statements, Stmt};
use crate::store::{SqlStore, query as store_query};
use crate::table::{
    ALERTS, AUDIT, Decode, Get, INCIDENTS, Kind, NOTIFICATIONS, Positioned, Table, Value,
    sqlx_row_ext, terms_of,
};
use imas_core::model::Alert;

const BACKEND: &str = "postgres";

/// The schema IMAS uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "imas";

/// The embedded migrations (`migrations/postgres`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

static SQL: LazyLock<Statements> = LazyLock::new(|| {
    Statements::new(Flavor {
        lock: " FOR UPDATE SKIP LOCKED",
        incident_key: "id",
        search: Search::Column,
        json_cast: "::jsonb",
        terms_cast: "::text[]",
    })
});

/// How many repeated-trigger batches commit side by side (`repeat`).
const REPEAT_LANES: usize = 4;

/// Applies a batch of repeated triggers in one statement: one array per
/// field of the groups (each `(service, dedup key)` once, so each open alert
/// is matched once). The rows are locked in id order first, so that batches
/// of other lanes and other nodes that share rows wait for each other instead
/// of deadlocking.
static REPEAT_GROUPS: LazyLock<String> = LazyLock::new(|| {
    let cols = ALERTS.list_with(|c| match c.kind() {
        Kind::Json => format!("a.{n}::text AS {n}", n = c.name),
        _ => format!("a.{}", c.name),
    });
    format!(
        "WITH locked AS (\
            SELECT a.id, t.events, t.at FROM alerts a \
            JOIN UNNEST($1::uuid[], $2::text[], $3::int8[], $4::timestamptz[]) \
                AS t(service_id, dedup_key, events, at) \
            ON a.service_id = t.service_id AND a.dedup_key = t.dedup_key \
            WHERE a.status <> 'resolved' ORDER BY a.id FOR UPDATE OF a) \
         UPDATE alerts a SET event_count = a.event_count + l.events, \
         last_event_at = GREATEST(a.last_event_at, l.at) \
         FROM locked l WHERE a.id = l.id RETURNING {cols}"
    )
});

/// One batch of repeated triggers, in a transaction of its own (one
/// statement, so it commits whole).
async fn repeat_groups(pool: &PgPool, groups: Vec<Group>) -> Result<Vec<Alert>> {
    let mut services = Vec::with_capacity(groups.len());
    let mut keys = Vec::with_capacity(groups.len());
    let mut events = Vec::with_capacity(groups.len());
    let mut ats = Vec::with_capacity(groups.len());
    for g in groups {
        services.push(g.service.0);
        keys.push(g.dedup_key);
        events.push(g.events);
        ats.push(g.at);
    }
    let rows = sqlx::query(REPEAT_GROUPS.as_str())
        .bind(services)
        .bind(keys)
        .bind(events)
        .bind(ats)
        .fetch_all(pool)
        .await
        .map_err(err)?;
    rows.iter().map(Alert::decode).collect()
}

/// Inserts whole rows of incidents (with their search vector) from one array
/// per column.
static UNNEST_INCIDENTS: LazyLock<String> = LazyLock::new(|| {
    let n = INCIDENTS.columns.len();
    format!(
        "INSERT INTO incidents ({cols}, search) \
         SELECT {cols}, array_to_tsvector(string_to_array(terms, ' ')) \
         FROM UNNEST({arrays}, ${}::text[]) AS t({cols}, terms)",
        n + 1,
        cols = INCIDENTS.list(),
        arrays = arrays(&INCIDENTS),
    )
});

/// Inserts audit entries from one array per column.
static UNNEST_AUDIT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO audit_log ({}) SELECT * FROM UNNEST({})",
        AUDIT.list(),
        arrays(&AUDIT)
    )
});

/// Inserts notifications from one array per column, each unless its key
/// exists, answering the keys it inserted.
static UNNEST_NOTIFICATIONS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO notifications ({}) SELECT * FROM UNNEST({}) \
         ON CONFLICT (key) DO NOTHING RETURNING key",
        NOTIFICATIONS.list(),
        arrays(&NOTIFICATIONS)
    )
});

/// Inserts whole rows of alerts (with their search terms, sent as one
/// space-separated text per alert) from one array per column.
static UNNEST_ALERTS: LazyLock<String> = LazyLock::new(|| {
    let n = ALERTS.columns.len();
    format!(
        "INSERT INTO alerts ({cols}, terms) \
         SELECT {cols}, string_to_array(terms, ' ') \
         FROM UNNEST({arrays}, ${}::text[]) AS t({cols}, terms)",
        n + 1,
        cols = ALERTS.list(),
        arrays = arrays(&ALERTS),
    )
});

/// `$1::uuid[], $2::text[], ...`: one array parameter per column of `t`.
fn arrays<T>(t: &Table<T>) -> String {
    let mut n = 0;
    t.list_with(|c| {
        n += 1;
        let ty = match c.kind() {
            Kind::Id => "uuid",
            Kind::Text => "text",
            Kind::Int => "int8",
            Kind::Ts => "timestamptz",
            Kind::Bool => "bool",
            Kind::Json => "jsonb",
        };
        format!("${n}::{ty}[]")
    })
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// Binds each column of `t` as the array of its values in `rows`.
fn bind_arrays<'q, T>(mut q: PgQuery<'q>, t: &Table<T>, rows: &[&T]) -> PgQuery<'q> {
    for c in t.columns {
        q = match c.get {
            Get::Id(f) => q.bind(rows.iter().map(|r| f(r)).collect::<Vec<_>>()),
            Get::Text(f) => q.bind(rows.iter().map(|r| f(r)).collect::<Vec<_>>()),
            Get::Int(f) => q.bind(rows.iter().map(|r| f(r)).collect::<Vec<_>>()),
            Get::OptInt(f) => q.bind(rows.iter().map(|r| f(r)).collect::<Vec<_>>()),
            Get::Ts(f) => q.bind(rows.iter().map(|r| f(r)).collect::<Vec<_>>()),
            Get::Bool(f) => q.bind(rows.iter().map(|r| f(r)).collect::<Vec<_>>()),
            // Bound as text, cast by the statement's `::jsonb[]`.
            Get::Json(f) => q.bind(rows.iter().map(|r| f(r)).collect::<Vec<_>>()),
        };
    }
    q
}

fn err(e: sqlx::Error) -> Error {
    SqlError::sqlx(BACKEND, e).into()
}

/// The PostgreSQL dialect of [`SqlStore`].
#[derive(Debug)]
pub struct PostgresDialect;

/// The PostgreSQL store.
pub type PostgresStore = SqlStore<PostgresDialect>;

/// What a PostgreSQL store holds beside its pool.
#[derive(Debug, Clone)]
pub struct PostgresState {
    generations: Arc<Generations>,
    /// Insert-only changes, for [`commit_inserts`].
    inserts: mpsc::UnboundedSender<Pending>,
    /// Repeated triggers, summed and applied by [`repeat_groups`].
    repeats: Repeats,
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
    // An alert's insert or status change is part of what its incident's
    // readers see (migration 0006).
    let alerts = format!("{schema}.alerts");
    // Integration keys and services are cached by every node's engine
    // (migrations 0007 and 0009), under the integrations generation.
    let integrations = format!("{schema}.integrations");
    let services = format!("{schema}.services");
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
                    g.bump(table == users, table == incidents || table == alerts);
                    if table == integrations || table == services {
                        g.bump_integrations();
                    }
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
            return Err(SqlError::config(
                "schema",
                "expected lower-case letters, digits and '_', at most 63",
            )
            .into());
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| SqlError::config("url", format!("not a PostgreSQL URL ({e})")))?
            .options([("search_path", schema)])
            .application_name("imas");
        let pool = PgPoolOptions::new()
            .test_before_acquire(false)
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(err)?;
        let mut migrator =
            sqlx::migrate::Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
        migrator.create_schema(schema.to_string());
        migrator.dangerous_set_table_name(format!("{schema}._imas_migrations"));
        migrator
            .run(&pool)
            .await
            .map_err(|e| SqlError::driver(BACKEND, e))?;
        let generations = Arc::new(Generations::new(false));
        tokio::spawn(follow_changes(
            pool.clone(),
            schema.to_string(),
            Arc::downgrade(&generations),
        ));
        let (inserts, queue) = mpsc::unbounded_channel();
        tokio::spawn(commit_inserts(pool.clone(), queue));
        // The repeated triggers run on connections of their own, which never
        // plan a sequential scan: their statement is prepared once per
        // connection, and a plan made while `alerts` was small (a new
        // database) would scan the whole table for every batch as it grows,
        // until the next ANALYZE (measured: 4,386 scans of up to 16,000 rows
        // in 8 s of new keys); this way each key is looked up in the
        // open-alert index whatever the statistics say.
        let repeats = {
            let pool = PgPoolOptions::new()
                .test_before_acquire(false)
                .max_connections(REPEAT_LANES as u32)
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(conn, "SET enable_seqscan = off")
                            .await
                            .map(drop)
                    })
                })
                .connect_lazy_with(options);
            Repeats::start(BACKEND, REPEAT_LANES, move |groups| {
                let pool = pool.clone();
                async move { repeat_groups(&pool, groups).await }
            })
        };
        Ok(Self {
            pool,
            state: PostgresState {
                generations,
                inserts,
                repeats,
            },
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
            let mut tx = store.pool.begin().await.map_err(err)?;
            for chunk in incidents.chunks(5_000) {
                insert_incidents(&mut tx, &chunk.iter().collect::<Vec<_>>()).await?;
            }
            tx.commit().await.map_err(err)?;
            store.state.generations.bump(false, true);
            Ok(())
        })
        .await
    }

    /// [`ChangeStore::commit`](imas_core::ports::ChangeStore::commit) run to its
    /// end (it must not be dropped half-way).
    async fn commit_now(&self, change: Change) -> Result<()> {
        // What `Generations::bump_for` reads, taken before the change is
        // handed over.
        let (users, incidents, integrations) = (
            change.user.is_some(),
            change.incident.is_some() || !change.alerts.is_empty(),
            !change.integrations.is_empty() || change.service.is_some(),
        );
        // A new alert (and the incident it opens) batches with the others:
        // the path every first trigger takes. Spelled out field by field, so
        // that a new kind of write cannot slip into the batch (which writes
        // incidents, alerts, audit and outbox rows only) unnoticed.
        let Change {
            user,
            incident,
            service,
            integrations: integration_writes,
            alerts,
            rotation,
            schedule,
            escalation_policy,
            audit: _,
            outbox: _,
        } = &change;
        let insert_only = user.is_none()
            && service.is_none()
            && rotation.is_none()
            && schedule.is_none()
            && escalation_policy.is_none()
            && integration_writes.is_empty()
            && alerts.iter().all(|a| matches!(a, AlertWrite::Insert(_)))
            && matches!(incident, None | Some(IncidentWrite::Insert(_)));
        if insert_only {
            let (reply, answer) = oneshot::channel();
            self.state
                .inserts
                .send((change, reply))
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())??;
        } else {
            commit_alone(&self.pool, &change).await?;
        }
        // Other nodes hear of it through the trigger; this one at once.
        self.state.generations.bump(users, incidents);
        if integrations {
            self.state.generations.bump_integrations();
        }
        Ok(())
    }
}

sqlx_row_ext!(PgRow, BACKEND, Timestamp, std::convert::identity);

/// Inserts incidents with one statement (`UNNEST` of one array per column).
async fn insert_incidents(
    tx: &mut Transaction<'static, Postgres>,
    incidents: &[&Incident],
) -> Result<()> {
    let terms: Vec<String> = incidents.iter().map(|i| terms_of(i).join(" ")).collect();
    bind_arrays(
        sqlx::query(UNNEST_INCIDENTS.as_str()),
        &INCIDENTS,
        incidents,
    )
    .bind(terms)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(())
}

/// Commits changes that only insert (incidents, alerts, audit entries, outbox
/// rows) in one transaction of four statements, whatever their number.
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
    // After the incidents they belong to. An open alert whose dedup key is
    // taken fails the batch; its changes are then committed one by one, and
    // only that one is refused.
    let alerts: Vec<&Alert> = changes
        .iter()
        .flat_map(|c| &c.alerts)
        .filter_map(|w| match w {
            AlertWrite::Insert(a) => Some(a),
            AlertWrite::SetStatus { .. } => None,
        })
        .collect();
    for chunk in alerts.chunks(5_000) {
        let terms: Vec<String> = chunk
            .iter()
            .map(|a| search_terms(&a.summary).join(" "))
            .collect();
        bind_arrays(sqlx::query(UNNEST_ALERTS.as_str()), &ALERTS, chunk)
            .bind(terms)
            .execute(&mut **tx)
            .await
            .map_err(err)?;
    }
    let audit: Vec<&AuditEntry> = changes.iter().flat_map(|c| &c.audit).collect();
    if !audit.is_empty() {
        bind_arrays(sqlx::query(UNNEST_AUDIT.as_str()), &AUDIT, &audit)
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

fn query(sql: &'static str, args: Vec<Value>) -> PgQuery<'static> {
    store_query::<PostgresDialect>(sql, args)
}

/// Commits one change in a transaction of its own.
async fn commit_alone(pool: &PgPool, change: &Change) -> Result<()> {
    let stmts = SQL.plan(change)?;
    let mut tx = pool.begin().await.map_err(err)?;
    for Stmt {
        sql,
        args,
        expect,
        refused,
        ..
    } in stmts
    {
        let done = query(sql, args)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::from(SqlError::sqlx(BACKEND, e).refused(refused)))?;
        if let Some(lookup) = SQL.check(expect, done.rows_affected())? {
            let found = query(lookup.stmt.sql, lookup.stmt.args.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?;
            lookup.outcome(found.is_some())?;
        }
    }
    tx.commit().await.map_err(err)
}

impl Dialect for PostgresDialect {
    type DB = Postgres;
    type State = PostgresState;
    const BACKEND: &'static str = BACKEND;
    const SQL: &'static LazyLock<Statements> = &SQL;

    fn bind(q: DbQuery<'_, Self>, v: Value) -> DbQuery<'_, Self> {
        bind_value!(q, bind, v, std::convert::identity, std::convert::identity)
    }

    fn push_bind(qb: &mut QueryBuilder<Postgres>, v: Value) {
        bind_value!(
            qb,
            push_bind,
            v,
            std::convert::identity,
            std::convert::identity
        );
    }

    /// The stored vector holds IMAS's own terms as lexemes; the query is the
    /// same terms ANDed.
    const MATCH: Match = Match::new(" AND search @@ ", '\'', " & ", "::tsquery");

    fn push_terms_match(qb: &mut QueryBuilder<Postgres>, terms: Vec<String>) {
        qb.push(" AND terms @> ");
        qb.push_bind(terms);
    }

    fn repeats(store: &PostgresStore) -> &Repeats {
        &store.state.repeats
    }

    fn generations(store: &PostgresStore) -> &Generations {
        &store.state.generations
    }

    /// Cancel-safe: the transaction runs in a task of its own (or in the insert
    /// batcher's), so a caller that stops waiting cannot cut it short. Run in
    /// the caller's future instead, a drop at the `.await` of `BEGIN` would
    /// leave the server in a transaction that sqlx does not know of (it counts
    /// the depth only once `BEGIN` is answered, and rolls back only what it
    /// counts) on a connection that goes back to the pool: the next statements
    /// on it would run inside that transaction, uncommitted.
    async fn commit(store: &PostgresStore, change: Change) -> Result<()> {
        let store = store.clone();
        run_detached(BACKEND, async move { store.commit_now(change).await }).await
    }

    async fn write(store: &PostgresStore, stmt: Stmt) -> Result<u64> {
        let done = query(stmt.sql, stmt.args)
            .execute(&store.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected())
    }

    /// One statement (`UNNEST`, `RETURNING` the keys it inserted). A key
    /// twice in `ns` is inserted once: its first place answers true.
    async fn insert_notifications(store: &PostgresStore, ns: &[Notification]) -> Result<Vec<bool>> {
        let rows: Vec<&Notification> = ns.iter().collect();
        let inserted = bind_arrays(
            sqlx::query(UNNEST_NOTIFICATIONS.as_str()),
            &NOTIFICATIONS,
            &rows,
        )
        .fetch_all(&store.pool)
        .await
        .map_err(err)?;
        let mut inserted = inserted
            .iter()
            .map(|row| row.try_get::<String, _>("key"))
            .collect::<std::result::Result<std::collections::HashSet<_>, _>>()
            .map_err(err)?;
        Ok(ns.iter().map(|n| inserted.remove(&n.key)).collect())
    }

    async fn write_rows<T: Decode>(store: &PostgresStore, stmt: Stmt) -> Result<Vec<T>> {
        let rows = query(stmt.sql, stmt.args)
            .fetch_all(&store.pool)
            .await
            .map_err(err)?;
        rows.iter().map(T::decode).collect()
    }

    async fn fetch_page<T: Decode + Positioned>(
        store: &PostgresStore,
        mut qb: QueryBuilder<Postgres>,
        table: &'static Table<T>,
        page: PageRequest,
    ) -> Result<Page<T>> {
        push_page::<Self>(&mut qb, table.order, page);
        let rows = qb.build().fetch_all(&store.pool).await.map_err(err)?;
        let items = rows.iter().map(T::decode).collect::<Result<Vec<_>>>()?;
        Ok(into_page(items, page.limit))
    }

    fn page_query<T>(table: &'static Table<T>) -> QueryBuilder<Postgres> {
        QueryBuilder::new(format!(
            "SELECT {} FROM {} WHERE 1 = 1",
            table.select(true),
            table.name
        ))
    }

    async fn complete_outbox(store: &PostgresStore, keys: &[String], now: Timestamp) -> Result<()> {
        let mut qb = QueryBuilder::<Postgres>::new("UPDATE outbox SET delivered_at = ");
        qb.push_bind(now);
        qb.push(" WHERE delivered_at IS NULL AND key IN (");
        let mut keys_list = qb.separated(", ");
        for k in keys {
            keys_list.push_bind(k.clone());
        }
        qb.push(")");
        qb.build().execute(&store.pool).await.map_err(err)?;
        Ok(())
    }

    async fn prune_delivered(
        store: &PostgresStore,
        before: Timestamp,
        limit: u32,
    ) -> Result<Pruned> {
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
        .fetch_one(&store.pool)
        .await
        .map_err(err)?;
        let count = |col: &str| -> Result<u64> {
            Ok(row.try_get::<i64, _>(col).map_err(err)?.max(0) as u64)
        };
        Ok(Pruned {
            outbox: count("outbox")?,
            receipts: count("receipts")?,
        })
    }
}
