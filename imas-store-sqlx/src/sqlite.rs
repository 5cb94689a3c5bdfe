//! [`SqliteStore`]: every store port on one SQLite file (WAL mode). Writes go
//! through a single writer thread and connection (see `sqlite_writer`), which
//! makes every change and every claim exclusive and commits concurrent writes
//! together; reads use a small pool of readers.
//!
//! A database file belongs to one process at a time: `connect` takes an exclusive
//! lock on `<file>.imas-lock` and refuses a file another process holds. That is
//! what lets the store report a [generation](ChangeStore::generation) the engine
//! can cache against: every write to the file goes through this process. Stores
//! opened on the same file within the process share the lock and the counters.
//! Several nodes share a PostgreSQL database instead.
//!
//! What is SQLite's own: instants as integer milliseconds, the search terms in
//! the FTS5 table `incident_search`, writes and claims on the writer thread
//! (rusqlite), pages read as one JSON row, the file lock. Repeated triggers of
//! alerts are summed per `(service, dedup key)` by the batcher (`repeat`) and
//! applied as one writer job.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use imas_core::error::{Error, Result};
use imas_core::model::{Incident, Notification, Page, PageRequest, Timestamp, from_millis};
use imas_core::ports::{Change, Generations, Pruned, run_detached};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use uuid::Uuid;

use crate::dialect::{DbQuery, Dialect, Match, bind_value};
use crate::error::{SqlError, Taken};
use crate::filter::{into_page, push_page};
use crate::repeat::{Group, Repeats};
use crate::sql::{Expect, Flavor, Search, Statements, Stmt};
use crate::sqlite_writer::Writer;
use crate::store::SqlStore;
use crate::table::{
    Decode, Kind, NOTIFICATIONS, Positioned, RowExt, Table, USERS, Value, sqlx_row_ext,
};
use imas_core::model::Alert;

const BACKEND: &str = "sqlite";

/// The embedded migrations (`migrations/sqlite`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

static SQL: LazyLock<Statements> = LazyLock::new(|| {
    Statements::new(Flavor {
        lock: "",
        incident_key: "seq",
        search: Search::Table,
        json_cast: "",
        terms_cast: "",
    })
});

fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// The SQLite dialect of [`SqlStore`].
#[derive(Debug)]
pub struct SqliteDialect;

/// The SQLite store.
pub type SqliteStore = SqlStore<SqliteDialect>;

/// What a SQLite store holds beside its reader pool.
#[derive(Debug, Clone)]
pub struct SqliteState {
    writer: Writer,
    /// Repeated triggers, summed and applied on the writer.
    repeats: Repeats,
    /// A read-write pool of one connection, for migrations and hosts.
    direct: SqlitePool,
    file: Arc<FileClaim>,
}

/// This process's hold on a database file: the generation counters of every
/// store open on it, and the lock that keeps other processes out.
#[derive(Debug)]
struct FileClaim {
    generations: Generations,
    _lock: File,
    /// The database is a private temporary file (`sqlite::memory:`), removed
    /// when the last store on it is dropped.
    temporary: Option<PathBuf>,
}

impl Drop for FileClaim {
    fn drop(&mut self) {
        if let Some(db) = &self.temporary {
            for suffix in ["", "-wal", "-shm", ".imas-lock"] {
                let mut path = db.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Database files open in this process, by canonical path.
static OPEN_FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<FileClaim>>>> =
    LazyLock::new(Mutex::default);

impl FileClaim {
    /// The claim on `db` (an existing file), shared with the stores already open
    /// on it here, or new with the lock taken. A `temporary` file is removed
    /// with the claim.
    fn acquire(db: &Path, temporary: bool) -> std::result::Result<Arc<Self>, SqlError> {
        let path = db.canonicalize().map_err(|e| {
            SqlError::config("url", format!("cannot resolve {}: {e}", db.display()))
        })?;
        let mut open = OPEN_FILES.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|_, claim| claim.strong_count() > 0);
        if let Some(claim) = open.get(&path).and_then(Weak::upgrade) {
            return Ok(claim);
        }
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".imas-lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SqlError::config("url", format!("cannot open {lock_path:?}: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(SqlError::config(
                    "url",
                    format!(
                        "{} is in use by another process; a SQLite database is served by one \
                         process at a time (several nodes share a PostgreSQL database)",
                        path.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(SqlError::config(
                    "url",
                    format!("cannot lock {lock_path:?}: {e}"),
                ));
            }
        }
        let claim = Arc::new(FileClaim {
            generations: Generations::new(true),
            _lock: lock,
            temporary: temporary.then(|| path.clone()),
        });
        open.insert(path, Arc::downgrade(&claim));
        Ok(claim)
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database a `sqlite://path` URL names and
    /// runs the migrations. `sqlite::memory:` gives a private database in a
    /// temporary file, removed when the last clone of the store is dropped.
    pub async fn connect(url: &str) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = if in_memory {
            let path = std::env::temp_dir().join(format!("imas-{}.db", Uuid::new_v4()));
            SqliteConnectOptions::new().filename(path)
        } else {
            SqliteConnectOptions::from_str(url)
                .map_err(|e| SqlError::config("url", format!("not a SQLite URL ({e})")))?
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
        let direct = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(err)?;
        let path = options.get_filename();
        let file = FileClaim::acquire(path, in_memory)?;
        MIGRATOR
            .run(&direct)
            .await
            .map_err(|e| SqlError::driver(BACKEND, e))?;
        let writer = Writer::start(
            open_writer(path).map_err(SqlError::rusqlite)?,
            open_checkpointer(path).map_err(SqlError::rusqlite)?,
        )?;
        let repeats = {
            let writer = writer.clone();
            Repeats::start(BACKEND, 1, move |groups| {
                let writer = writer.clone();
                async move { writer.write(move |c| repeat_groups(c, groups)).await }
            })
        };
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(err)?;
        Ok(Self {
            pool: reader,
            state: SqliteState {
                writer,
                repeats,
                direct,
                file,
            },
        })
    }

    /// A read-write pool on the database, for hosts that want to inspect or
    /// maintain it (a write through it waits for the store's writer).
    pub fn pool(&self) -> &SqlitePool {
        &self.state.direct
    }

    /// Inserts many incidents in one transaction, without audit or outbox rows:
    /// for imports (e.g. from the original system) and benchmarks.
    pub async fn bulk_insert_incidents(&self, incidents: &[Incident]) -> Result<()> {
        let mut stmts = Vec::with_capacity(2 * incidents.len());
        for i in incidents {
            SQL.insert_incident(&mut stmts, i);
        }
        let store = self.clone();
        run_detached(BACKEND, async move {
            store.state.writer.write(move |c| run_all(c, stmts)).await?;
            store.state.file.generations.bump(false, true);
            Ok(())
        })
        .await
    }
}

fn err(e: sqlx::Error) -> Error {
    SqlError::sqlx(BACKEND, e).into()
}

fn rerr(e: rusqlite::Error) -> Error {
    SqlError::rusqlite(e).into()
}

/// How long a write waits for a lock another connection holds (a host's
/// write through [`SqliteStore::pool`]).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The writer thread's connection, configured as the pools' are.
fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Savepoints (one per job) keep their undo pages in memory, not in a
    // temporary file opened and written per job.
    // Checkpoints are the checkpointer thread's; this connection runs one
    // only if the WAL outgrows the backstop (see `sqlite_writer`).
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {};",
        crate::sqlite_writer::BACKSTOP_PAGES
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The checkpointer thread's connection (it only checkpoints).
fn open_checkpointer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;")?;
    Ok(conn)
}

sqlx_row_ext!(SqliteRow, BACKEND, i64, from_millis);

impl RowExt for rusqlite::Row<'_> {
    const BACKEND: &'static str = BACKEND;
    fn id(&self, col: &str) -> Result<Uuid> {
        self.get(col).map_err(rerr)
    }
    fn opt_id(&self, col: &str) -> Result<Option<Uuid>> {
        self.get(col).map_err(rerr)
    }
    fn ts(&self, col: &str) -> Result<Timestamp> {
        self.get::<_, i64>(col).map(from_millis).map_err(rerr)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>> {
        self.get::<_, Option<i64>>(col)
            .map(|v| v.map(from_millis))
            .map_err(rerr)
    }
    fn text(&self, col: &str) -> Result<String> {
        self.get(col).map_err(rerr)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.get(col).map_err(rerr)
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.get(col).map_err(rerr)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.get(col).map_err(rerr)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        self.get(col).map_err(rerr)
    }
}

/// Values as the writer binds them: ids as 16-byte BLOBs, instants as
/// milliseconds, flags as 0/1, search terms space-separated.
impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Id(Some(id)) => ToSqlOutput::Borrowed(ValueRef::Blob(id.as_bytes())),
            Value::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(n) | Value::OptInt(Some(n)) => ToSqlOutput::from(*n),
            Value::Ts(Some(t)) => ToSqlOutput::from(ms(*t)),
            Value::Bool(b) => ToSqlOutput::from(i64::from(*b)),
            Value::Terms(terms) => ToSqlOutput::from(terms.join(" ")),
            Value::Id(None) | Value::Text(None) | Value::Ts(None) | Value::OptInt(None) => {
                ToSqlOutput::Owned(rusqlite::types::Value::Null)
            }
        })
    }
}

/// Prepares (cached) `stmt` on the writer and binds its values, each `$n` to
/// the n-th value.
fn prepare<'c>(c: &'c Connection, stmt: &Stmt) -> Result<rusqlite::CachedStatement<'c>> {
    let mut q = c.prepare_cached(stmt.sql).map_err(rerr)?;
    for i in 1..=q.parameter_count() {
        let value = q
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| stmt.args.get(n.wrapping_sub(1)))
            .ok_or_else(|| SqlError::driver(BACKEND, format!("unbound parameter {i}")))?;
        q.raw_bind_parameter(i, value).map_err(rerr)?;
    }
    Ok(q)
}

/// Runs one write on the writer; the number of rows it changed.
fn execute(c: &Connection, stmt: &Stmt) -> Result<usize> {
    prepare(c, stmt)?
        .raw_execute()
        .map_err(|e| taken(c, stmt, e))
}

/// What a unique or foreign-key violation means: SQLite's codes do not name
/// the constraint, so the statement says (`Stmt::taken`, `Stmt::refused`),
/// and what it cannot say
/// is looked up: which of username and email a new user's is, whether a new
/// incident's id or its open alert group.
fn taken(c: &Connection, stmt: &Stmt, e: rusqlite::Error) -> Error {
    if !SqlError::is_sqlite_unique_column(&e) {
        return SqlError::rusqlite(e).refused(stmt.refused).into();
    }
    if stmt.taken == Taken::OpenGroup && std::ptr::eq(stmt.sql, SQL.insert_incident.as_str()) {
        // `incidents.id` is UNIQUE (not the primary key, `seq` is).
        let id = stmt.args.first().cloned().into_iter().collect();
        let lookup = Stmt::new(&SQL.incident_version, id);
        return match rows::<Exists>(c, &lookup) {
            Ok(found) if found.is_empty() => SqlError::Unique(Taken::OpenGroup).into(),
            Ok(_) => SqlError::Unique(Taken::Record).into(),
            Err(e) => e,
        };
    }
    if !matches!(stmt.expect, Expect::NewUser) {
        return SqlError::Unique(stmt.taken).into();
    }
    let username = USERS
        .columns
        .iter()
        .position(|col| col.name == "username")
        .and_then(|n| stmt.args.get(n).cloned());
    let lookup = Stmt::new(&SQL.username_taken, username.into_iter().collect());
    match rows::<Exists>(c, &lookup) {
        Ok(found) if found.is_empty() => SqlError::Unique(Taken::Email).into(),
        Ok(_) => SqlError::Unique(Taken::Username).into(),
        Err(e) => e,
    }
}

/// A row that only says it is there.
struct Exists;

impl Decode for Exists {
    fn decode<R: RowExt>(_: &R) -> Result<Self> {
        Ok(Exists)
    }
}

/// Runs one statement on the writer and decodes every row it returns.
fn rows<T: Decode>(c: &Connection, stmt: &Stmt) -> Result<Vec<T>> {
    let mut q = prepare(c, stmt)?;
    let mut rows = q.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(rerr)? {
        out.push(T::decode(row)?);
    }
    Ok(out)
}

/// Runs the statements of a change in order on the writer.
fn run_all(c: &Connection, stmts: Vec<Stmt>) -> Result<()> {
    for stmt in &stmts {
        let changed = execute(c, stmt)?;
        if let Some(lookup) = SQL.check(stmt.expect, changed as u64)? {
            let found = !rows::<Exists>(c, &lookup.stmt)?.is_empty();
            lookup.outcome(found)?;
        }
    }
    Ok(())
}

/// Applies one batch of repeated triggers (one statement per group, in the
/// writer's transaction); the rows updated.
fn repeat_groups(c: &Connection, groups: Vec<Group>) -> Result<Vec<Alert>> {
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let stmt = Stmt::new(
            &SQL.repeat_trigger,
            vec![
                Value::Id(Some(g.service.0)),
                Value::Text(Some(g.dedup_key)),
                Value::Int(g.events),
                Value::Ts(Some(g.at)),
            ],
        );
        out.extend(rows::<Alert>(c, &stmt)?);
    }
    Ok(out)
}

impl Dialect for SqliteDialect {
    type DB = Sqlite;
    type State = SqliteState;
    const BACKEND: &'static str = BACKEND;
    const SQL: &'static LazyLock<Statements> = &SQL;

    fn bind(q: DbQuery<'_, Self>, v: Value) -> DbQuery<'_, Self> {
        bind_value!(q, bind, v, ms, |t: Vec<String>| t.join(" "))
    }

    fn push_bind(qb: &mut QueryBuilder<Sqlite>, v: Value) {
        bind_value!(qb, push_bind, v, ms, |t: Vec<String>| t.join(" "));
    }

    /// FTS5: terms side by side mean AND.
    const MATCH: Match = Match::new(
        " AND seq IN (SELECT rowid FROM incident_search WHERE incident_search MATCH ",
        '"',
        " ",
        ")",
    );

    /// Whole words: each term between spaces of the space-separated terms
    /// (terms are alphanumeric, never LIKE's `%` or `_`).
    fn push_terms_match(qb: &mut QueryBuilder<Sqlite>, terms: Vec<String>) {
        for t in terms {
            qb.push(" AND (' ' || terms || ' ') LIKE ");
            qb.push_bind(format!("% {t} %"));
        }
    }

    fn generations(store: &SqliteStore) -> &Generations {
        &store.state.file.generations
    }

    fn repeats(store: &SqliteStore) -> &Repeats {
        &store.state.repeats
    }

    async fn commit(store: &SqliteStore, change: Change) -> Result<()> {
        let stmts = SQL.plan(&change)?;
        // The writer thread runs the change to its end whatever the caller
        // does; the generation must move with it even if the caller has gone
        // (else cached reads would miss a committed change), so the wait and
        // the bump run detached too.
        let store = store.clone();
        run_detached(BACKEND, async move {
            store.state.writer.write(move |c| run_all(c, stmts)).await?;
            store.state.file.generations.bump_for(&change);
            Ok(())
        })
        .await
    }

    async fn write(store: &SqliteStore, stmt: Stmt) -> Result<u64> {
        let changed = store.state.writer.write(move |c| execute(c, &stmt)).await?;
        Ok(changed as u64)
    }

    /// One writer job: each row's own `INSERT ... ON CONFLICT DO NOTHING`,
    /// committed together.
    async fn insert_notifications(store: &SqliteStore, ns: &[Notification]) -> Result<Vec<bool>> {
        let stmts: Vec<Stmt> = ns
            .iter()
            .map(|n| Stmt::new(&SQL.insert_notification, NOTIFICATIONS.values(n)))
            .collect();
        store
            .state
            .writer
            .write(move |c| {
                stmts
                    .iter()
                    .map(|stmt| execute(c, stmt).map(|changed| changed == 1))
                    .collect()
            })
            .await
    }

    async fn write_rows<T: Decode>(store: &SqliteStore, stmt: Stmt) -> Result<Vec<T>> {
        store.state.writer.write(move |c| rows(c, &stmt)).await
    }

    /// The page comes back as one JSON row because sqlx-sqlite hands every
    /// result row from its worker thread to the caller separately, which cost
    /// more than the query itself.
    async fn fetch_page<T: Decode + Positioned>(
        store: &SqliteStore,
        mut qb: QueryBuilder<Sqlite>,
        table: &'static Table<T>,
        page: PageRequest,
    ) -> Result<Page<T>> {
        push_page::<Self>(&mut qb, table.order, page);
        qb.push(")");
        let json: String = qb
            .build()
            .fetch_one(&store.pool)
            .await
            .map_err(err)?
            .try_get("page")
            .map_err(err)?;
        let rows: Vec<Vec<serde_json::Value>> = serde_json::from_str(&json)
            .map_err(|e| SqlError::driver(BACKEND, format!("unreadable page: {e}")))?;
        let items = rows
            .iter()
            .map(|values| {
                T::decode(&JsonRow {
                    columns: table,
                    values,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(into_page(items, page.limit))
    }

    /// One row holding the page as a JSON array of arrays (16-byte id BLOBs as
    /// hex), newest first; [`fetch_page`](Dialect::fetch_page) closes it.
    fn page_query<T>(table: &'static Table<T>) -> QueryBuilder<Sqlite> {
        let items = table.list_with(|c| match c.kind() {
            Kind::Id => format!("hex({})", c.name),
            _ => c.name.to_string(),
        });
        QueryBuilder::new(format!(
            "SELECT json_group_array(json_array({items}) ORDER BY {order} DESC, id DESC) \
             AS page FROM (SELECT * FROM {} WHERE 1 = 1",
            table.name,
            order = table.order,
        ))
    }

    async fn complete_outbox(store: &SqliteStore, keys: &[String], now: Timestamp) -> Result<()> {
        let stmts: Vec<Stmt> = keys
            .iter()
            .map(|key| {
                Stmt::new(
                    "UPDATE outbox SET delivered_at = $1 WHERE key = $2 AND delivered_at IS NULL",
                    vec![Value::Ts(Some(now)), Value::text(key.as_str())],
                )
            })
            .collect();
        store.state.writer.write(move |c| run_all(c, stmts)).await
    }

    async fn prune_delivered(store: &SqliteStore, before: Timestamp, limit: u32) -> Result<Pruned> {
        store
            .state
            .writer
            .write(move |c| {
                // Index `outbox_delivered`; receipts by their primary key.
                let gone = Stmt::new(
                    "DELETE FROM outbox WHERE seq IN (\
                        SELECT seq FROM outbox WHERE delivered_at IS NOT NULL AND available_at < $1 \
                        ORDER BY available_at LIMIT $2) \
                     RETURNING key",
                    vec![Value::Ts(Some(before)), Value::Int(i64::from(limit))],
                );
                let keys: Vec<Key> = rows(c, &gone)?;
                let mut receipts = 0;
                for Key(key) in &keys {
                    receipts += execute(
                        c,
                        &Stmt::new(
                            "DELETE FROM channel_deliveries WHERE key = $1",
                            vec![Value::text(key.as_str())],
                        ),
                    )?;
                }
                Ok(Pruned {
                    outbox: keys.len() as u64,
                    receipts: receipts as u64,
                })
            })
            .await
    }
}

/// An outbox key a statement returned.
struct Key(String);

impl Decode for Key {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        r.text("key").map(Key)
    }
}

/// One row of a JSON page, its values in `columns`' order.
struct JsonRow<'a, T: 'static> {
    columns: &'static Table<T>,
    values: &'a [serde_json::Value],
}

impl<T> JsonRow<'_, T> {
    fn get(&self, col: &str) -> Result<&serde_json::Value> {
        self.columns
            .columns
            .iter()
            .position(|c| c.name == col)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| {
                SqlError::driver(BACKEND, format!("page row has no column {col}")).into()
            })
    }

    fn bad(col: &str) -> Error {
        SqlError::driver(BACKEND, format!("unreadable stored value in column {col}")).into()
    }
}

impl<T> RowExt for JsonRow<'_, T> {
    const BACKEND: &'static str = BACKEND;
    fn id(&self, col: &str) -> Result<Uuid> {
        self.opt_id(col)?.ok_or_else(|| Self::bad(col))
    }
    fn opt_id(&self, col: &str) -> Result<Option<Uuid>> {
        match self.get(col)?.as_str() {
            None | Some("") => Ok(None),
            Some(hex) => Uuid::parse_str(hex).map(Some).map_err(|_| Self::bad(col)),
        }
    }
    fn ts(&self, col: &str) -> Result<Timestamp> {
        self.opt_ts(col)?.ok_or_else(|| Self::bad(col))
    }
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>> {
        let v = self.get(col)?;
        if v.is_null() {
            return Ok(None);
        }
        v.as_i64()
            .map(|ms| Some(from_millis(ms)))
            .ok_or_else(|| Self::bad(col))
    }
    fn text(&self, col: &str) -> Result<String> {
        self.opt_text(col)?.ok_or_else(|| Self::bad(col))
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        let v = self.get(col)?;
        if v.is_null() {
            return Ok(None);
        }
        v.as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| Self::bad(col))
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.get(col)?.as_i64().ok_or_else(|| Self::bad(col))
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        let v = self.get(col)?;
        if v.is_null() {
            return Ok(None);
        }
        v.as_i64().map(Some).ok_or_else(|| Self::bad(col))
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }
}
