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

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use imas_core::error::{Error, Result};
use imas_core::model::{
    AuditEntry, AuditFilter, Incident, IncidentFilter, IncidentId, Notification, NotificationId,
    OutboxEntry, Page, PageRequest, Role, Timestamp, User, UserId, from_millis, plus,
};
use imas_core::ports::{
    AuditStore, Change, ChangeStore, Generation, Generations, IncidentStore, IncidentWrite,
    NotificationStore, OutboxStore, UserStore, UserWrite, run_detached,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Params, params, params_from_iter};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use uuid::Uuid;

use crate::sqlite_writer::{Writer, rerr};

use crate::{
    Dialect, Positioned, RowExt, db_error, decode_audit, decode_incident, decode_notification,
    decode_outbox, decode_user, intent_json, into_page, push_audit_filter, push_incident_filter,
    push_page, terms_of,
};

const BACKEND: &str = "sqlite";

/// The embedded migrations (`migrations/sqlite`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

fn err(e: sqlx::Error) -> Error {
    db_error(BACKEND, e)
}

fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Writer,
    /// A read-write pool of one connection, for migrations and hosts.
    direct: SqlitePool,
    reader: SqlitePool,
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
    fn acquire(db: &Path, temporary: bool) -> Result<Arc<Self>> {
        let path = db.canonicalize().map_err(|e| {
            Error::config(
                "DATABASE_URL",
                format!("cannot resolve {}: {e}", db.display()),
            )
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
            .map_err(|e| {
                Error::config("DATABASE_URL", format!("cannot open {lock_path:?}: {e}"))
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::config(
                    "DATABASE_URL",
                    format!(
                        "{} is in use by another process; a SQLite database is served by one \
                         process at a time (several nodes share a PostgreSQL database)",
                        path.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::config(
                    "DATABASE_URL",
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
                .map_err(|e| Error::config("DATABASE_URL", format!("not a SQLite URL ({e})")))?
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
            .map_err(|e| Error::backend(BACKEND, e))?;
        let writer = Writer::start(open_writer(path).map_err(rerr)?)?;
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(err)?;
        Ok(Self {
            writer,
            direct,
            reader,
            file,
        })
    }

    /// A read-write pool on the database, for hosts that want to inspect or
    /// maintain it (a write through it waits for the store's writer).
    pub fn pool(&self) -> &SqlitePool {
        &self.direct
    }

    /// Inserts many incidents in one transaction, without audit or outbox rows:
    /// for imports (e.g. from the original system) and benchmarks.
    pub async fn bulk_insert_incidents(&self, incidents: &[Incident]) -> Result<()> {
        let incidents = incidents.to_vec();
        let store = self.clone();
        run_detached(BACKEND, async move {
            store
                .writer
                .write(move |c| incidents.iter().try_for_each(|i| insert_incident(c, i)))
                .await?;
            store.file.generations.bump(false, true);
            Ok(())
        })
        .await
    }

    /// Finishes a page query from [`JsonColumns::page_query`] and its filters
    /// (keyset, order, limit) and decodes the page. The page comes back as one
    /// JSON row because sqlx-sqlite hands every result row from its worker
    /// thread to the caller separately, which cost more than the query itself.
    async fn fetch_page<T: Positioned>(
        &self,
        mut qb: QueryBuilder<Sqlite>,
        columns: &JsonColumns,
        page: PageRequest,
        decode: impl Fn(&JsonRow<'_>) -> Result<T>,
    ) -> Result<Page<T>> {
        push_page::<SqliteDialect>(&mut qb, page);
        qb.push(")");
        let json: String = qb
            .build()
            .fetch_one(&self.reader)
            .await
            .map_err(err)?
            .try_get("page")
            .map_err(err)?;
        let rows: Vec<Vec<serde_json::Value>> = serde_json::from_str(&json)
            .map_err(|e| Error::backend(BACKEND, format!("unreadable page: {e}")))?;
        let items = rows
            .iter()
            .map(|values| {
                decode(&JsonRow {
                    names: columns.names,
                    values,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(into_page(items, page.limit))
    }
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
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl RowExt for SqliteRow {
    const BACKEND: &'static str = BACKEND;
    fn id(&self, col: &str) -> Result<Uuid> {
        self.try_get(col).map_err(err)
    }
    fn opt_id(&self, col: &str) -> Result<Option<Uuid>> {
        self.try_get(col).map_err(err)
    }
    fn ts(&self, col: &str) -> Result<Timestamp> {
        self.try_get::<i64, _>(col).map(from_millis).map_err(err)
    }
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>> {
        self.try_get::<Option<i64>, _>(col)
            .map(|v| v.map(from_millis))
            .map_err(err)
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
    fn flag(&self, col: &str) -> Result<bool> {
        self.get(col).map_err(rerr)
    }
}

struct SqliteDialect;

impl Dialect for SqliteDialect {
    type DB = Sqlite;
    fn bind_ts(qb: &mut QueryBuilder<Sqlite>, t: Timestamp) {
        qb.push_bind(ms(t));
    }
    fn bind_id(qb: &mut QueryBuilder<Sqlite>, id: Uuid) {
        qb.push_bind(id);
    }
    fn bind_text(qb: &mut QueryBuilder<Sqlite>, s: String) {
        qb.push_bind(s);
    }
    fn bind_int(qb: &mut QueryBuilder<Sqlite>, n: i64) {
        qb.push_bind(n);
    }
    fn push_search(qb: &mut QueryBuilder<Sqlite>, terms: &[String]) {
        // Each term is alphanumeric only; quoted, it is one FTS5 token and never
        // FTS5 syntax. Terms side by side mean AND.
        let query: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
        qb.push(" AND seq IN (SELECT rowid FROM incident_search WHERE incident_search MATCH ");
        qb.push_bind(query.join(" "));
        qb.push(")");
    }
}

fn blob(id: Uuid) -> Value {
    Value::Blob(id.as_bytes().to_vec())
}

fn int_or_null(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Integer)
}

/// An incident's columns in the order `?1..?27` of [`INSERT_INCIDENT`].
fn incident_values(i: &Incident) -> Vec<Value> {
    vec![
        blob(i.id.0),
        Value::Text(i.title.clone()),
        Value::Text(i.description.clone()),
        Value::Text(i.kind.as_str().into()),
        Value::Text(i.priority.as_str().into()),
        Value::Text(i.status.as_str().into()),
        i.assigned_to.map_or(Value::Null, |u| blob(u.0)),
        blob(i.reported_by.0),
        Value::Integer(ms(i.created_at)),
        Value::Integer(ms(i.updated_at)),
        Value::Integer(i.sla_target_ms),
        Value::Integer(ms(i.sla_deadline)),
        Value::Integer(i.response_target_ms),
        Value::Integer(ms(i.response_deadline)),
        int_or_null(i.response_breached_at.map(ms)),
        int_or_null(i.at_risk_at.map(ms)),
        Value::Integer(i64::from(i.sla_breached)),
        int_or_null(i.breached_at.map(ms)),
        Value::Integer(i64::from(i.escalation_level)),
        int_or_null(i.escalated_at.map(ms)),
        int_or_null(i.acknowledged_at.map(ms)),
        int_or_null(i.resolved_at.map(ms)),
        int_or_null(i.closed_at.map(ms)),
        Value::Integer(i.held_ms),
        int_or_null(i.hold_started_at.map(ms)),
        int_or_null(i.next_due_at.map(ms)),
        Value::Integer(i.version),
    ]
}

const INSERT_INCIDENT: &str = "INSERT INTO incidents (id, title, description, kind, priority, status, \
    assigned_to, reported_by, created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms, \
    response_deadline, response_breached_at, at_risk_at, sla_breached, breached_at, escalation_level, \
    escalated_at, acknowledged_at, resolved_at, closed_at, held_ms, hold_started_at, next_due_at, version) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
    ?22, ?23, ?24, ?25, ?26, ?27) RETURNING seq";

const UPDATE_INCIDENT: &str = "UPDATE incidents SET title = ?2, description = ?3, kind = ?4, priority = ?5, \
    status = ?6, assigned_to = ?7, reported_by = ?8, created_at = ?9, updated_at = ?10, sla_target_ms = ?11, \
    sla_deadline = ?12, response_target_ms = ?13, response_deadline = ?14, response_breached_at = ?15, \
    at_risk_at = ?16, sla_breached = ?17, breached_at = ?18, escalation_level = ?19, escalated_at = ?20, \
    acknowledged_at = ?21, resolved_at = ?22, closed_at = ?23, held_ms = ?24, hold_started_at = ?25, \
    next_due_at = ?26, version = ?27 WHERE id = ?1 AND version = ?28 RETURNING seq";

/// How one table's rows come back as JSON arrays: the column names in array
/// order, and the `json_array(...)` items (16-byte id BLOBs as hex).
struct JsonColumns {
    table: &'static str,
    names: &'static [&'static str],
    items: &'static str,
}

const INCIDENT_JSON: JsonColumns = JsonColumns {
    table: "incidents",
    names: &[
        "id",
        "title",
        "description",
        "kind",
        "priority",
        "status",
        "assigned_to",
        "reported_by",
        "created_at",
        "updated_at",
        "sla_target_ms",
        "sla_deadline",
        "response_target_ms",
        "response_deadline",
        "response_breached_at",
        "at_risk_at",
        "sla_breached",
        "breached_at",
        "escalation_level",
        "escalated_at",
        "acknowledged_at",
        "resolved_at",
        "closed_at",
        "held_ms",
        "hold_started_at",
        "next_due_at",
        "version",
    ],
    items: "hex(id), title, description, kind, priority, status, hex(assigned_to), hex(reported_by), \
        created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms, response_deadline, \
        response_breached_at, at_risk_at, sla_breached, breached_at, escalation_level, escalated_at, \
        acknowledged_at, resolved_at, closed_at, held_ms, hold_started_at, next_due_at, version",
};

const AUDIT_JSON: JsonColumns = JsonColumns {
    table: "audit_log",
    names: &[
        "id",
        "action",
        "actor",
        "target",
        "description",
        "created_at",
    ],
    items: "hex(id), action, actor, target, description, created_at",
};

const NOTIFICATION_JSON: JsonColumns = JsonColumns {
    table: "notifications",
    names: &[
        "id",
        "key",
        "user_id",
        "message",
        "kind",
        "incident_id",
        "read",
        "created_at",
    ],
    items: "hex(id), key, hex(user_id), message, kind, hex(incident_id), read, created_at",
};

impl JsonColumns {
    /// The start of a page query: one row holding the page as a JSON array of
    /// arrays, newest first. The caller appends filters; [`SqliteStore::fetch_page`]
    /// closes it.
    fn page_query(&self) -> QueryBuilder<Sqlite> {
        QueryBuilder::new(format!(
            "SELECT json_group_array(json_array({}) ORDER BY created_at DESC, id DESC) AS page \
             FROM (SELECT * FROM {} WHERE 1 = 1",
            self.items, self.table
        ))
    }
}

/// One row of a JSON page.
struct JsonRow<'a> {
    names: &'static [&'static str],
    values: &'a [serde_json::Value],
}

impl JsonRow<'_> {
    fn get(&self, col: &str) -> Result<&serde_json::Value> {
        self.names
            .iter()
            .position(|c| *c == col)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| Error::backend(BACKEND, format!("page row has no column {col}")))
    }

    fn bad(col: &str) -> Error {
        Error::backend(BACKEND, format!("unreadable stored value in column {col}"))
    }
}

impl RowExt for JsonRow<'_> {
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
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }
}

/// Runs one (cached) statement on the writer; the number of rows it changed.
fn execute(c: &Connection, sql: &str, params: impl Params) -> Result<usize> {
    c.prepare_cached(sql)
        .and_then(|mut q| q.execute(params))
        .map_err(rerr)
}

/// Runs one (cached) statement on the writer and decodes every row it returns
/// (a `RETURNING` clause or a `SELECT`).
fn query_rows<T>(
    c: &Connection,
    sql: &str,
    params: impl Params,
    mut decode: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut q = c.prepare_cached(sql).map_err(rerr)?;
    let mut rows = q.query(params).map_err(rerr)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(rerr)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// After a versioned write matched no row: NotFound or a stale version.
fn missing_or_stale(c: &Connection, id: IncidentId) -> Error {
    match query_rows(
        c,
        "SELECT version FROM incidents WHERE id = ?1",
        [id.0],
        |_| Ok(()),
    ) {
        Ok(found) if found.is_empty() => Error::NotFound { entity: "incident" },
        Ok(_) => Error::conflict(format!(
            "incident {id} was modified concurrently; reload and retry"
        )),
        Err(e) => e,
    }
}

/// Indexes an incident's search terms under its `seq`; `replace` removes the
/// terms indexed before (an update), a new row has none.
fn write_terms(c: &Connection, seq: i64, i: &Incident, replace: bool) -> Result<()> {
    if replace {
        delete_terms(c, seq)?;
    }
    execute(
        c,
        "INSERT INTO incident_search (rowid, terms) VALUES (?1, ?2)",
        params![seq, terms_of(i).join(" ")],
    )?;
    Ok(())
}

fn delete_terms(c: &Connection, seq: i64) -> Result<()> {
    execute(c, "DELETE FROM incident_search WHERE rowid = ?1", [seq])?;
    Ok(())
}

/// Runs a statement that returns at most one `seq` (RETURNING seq).
fn returning_seq(c: &Connection, sql: &str, values: Vec<Value>) -> Result<Option<i64>> {
    Ok(
        query_rows(c, sql, params_from_iter(values), |r| r.int("seq"))?
            .into_iter()
            .next(),
    )
}

fn insert_incident(c: &Connection, i: &Incident) -> Result<()> {
    let seq = returning_seq(c, INSERT_INCIDENT, incident_values(i))?
        .ok_or_else(|| Error::backend(BACKEND, "an inserted incident returned no row"))?;
    write_terms(c, seq, i, false)
}

fn apply(c: &Connection, change: &Change) -> Result<()> {
    match &change.user {
        Some(UserWrite::Insert(u)) => {
            execute(
                c,
                "INSERT INTO users (id, name, username, email, password_hash, role, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    u.id.0,
                    u.name,
                    u.username,
                    u.email,
                    u.password_hash,
                    u.role.as_str(),
                    ms(u.created_at)
                ],
            )?;
        }
        Some(UserWrite::SetRole { id, role }) => {
            let done = execute(
                c,
                "UPDATE users SET role = ?1 WHERE id = ?2",
                params![role.as_str(), id.0],
            )?;
            if done == 0 {
                return Err(Error::NotFound { entity: "user" });
            }
        }
        None => {}
    }
    match &change.incident {
        Some(IncidentWrite::Insert(i)) => insert_incident(c, i)?,
        Some(IncidentWrite::Update {
            incident,
            expected_version,
        }) => {
            let mut values = incident_values(incident);
            values.push(Value::Integer(*expected_version));
            match returning_seq(c, UPDATE_INCIDENT, values)? {
                Some(seq) => write_terms(c, seq, incident, true)?,
                None => return Err(missing_or_stale(c, incident.id)),
            }
        }
        Some(IncidentWrite::Delete {
            id,
            expected_version,
        }) => {
            let deleted = returning_seq(
                c,
                "DELETE FROM incidents WHERE id = ?1 AND version = ?2 RETURNING seq",
                vec![blob(id.0), Value::Integer(*expected_version)],
            )?;
            match deleted {
                Some(seq) => delete_terms(c, seq)?,
                None => return Err(missing_or_stale(c, *id)),
            }
        }
        None => {}
    }
    for e in &change.audit {
        execute(
            c,
            "INSERT INTO audit_log (id, action, actor, target, description, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                e.id.0,
                e.action.as_str(),
                e.actor.to_string(),
                e.target,
                e.description,
                ms(e.created_at)
            ],
        )?;
    }
    for intent in &change.outbox {
        execute(
            c,
            "INSERT INTO outbox (key, intent, available_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO NOTHING",
            params![intent.key, intent_json(intent)?, ms(intent.created_at)],
        )?;
    }
    Ok(())
}

#[async_trait]
impl ChangeStore for SqliteStore {
    async fn commit(&self, change: Change) -> Result<()> {
        let (users, incidents) = (change.user.is_some(), change.incident.is_some());
        // The writer thread runs the change to its end whatever the caller
        // does; the generation must move with it even if the caller has gone
        // (else cached reads would miss a committed change), so the wait and
        // the bump run detached too.
        let store = self.clone();
        run_detached(BACKEND, async move {
            store.writer.write(move |c| apply(c, &change)).await?;
            store.file.generations.bump(users, incidents);
            Ok(())
        })
        .await
    }

    fn generation(&self) -> Option<Generation> {
        self.file.generations.current()
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(err)?;
        row.as_ref().map(decode_user).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.reader)
            .await
            .map_err(err)?;
        row.as_ref().map(decode_user).transpose()
    }

    async fn users_with_role(&self, role: Role) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE role = ? ORDER BY created_at, id")
            .bind(role.as_str())
            .fetch_all(&self.reader)
            .await
            .map_err(err)?;
        rows.iter().map(decode_user).collect()
    }
}

#[async_trait]
impl IncidentStore for SqliteStore {
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        let row = sqlx::query("SELECT * FROM incidents WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(err)?;
        row.as_ref().map(decode_incident).transpose()
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        let mut qb = INCIDENT_JSON.page_query();
        push_incident_filter::<SqliteDialect>(&mut qb, filter);
        self.fetch_page(qb, &INCIDENT_JSON, page, |r| decode_incident(r))
            .await
    }

    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) AS n FROM incidents WHERE 1 = 1");
        push_incident_filter::<SqliteDialect>(&mut qb, filter);
        let n: i64 = qb
            .build()
            .fetch_one(&self.reader)
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
        let until = ms(plus(now, lease));
        let claimed = self
            .writer
            .write(move |c| {
                query_rows(
                    c,
                    "UPDATE incidents SET next_due_at = ?1 WHERE seq IN (\
                        SELECT seq FROM incidents WHERE next_due_at IS NOT NULL \
                        AND next_due_at <= ?2 ORDER BY next_due_at LIMIT ?3) \
                     RETURNING *",
                    params![until, ms(now), i64::from(limit)],
                    |r| decode_incident(r),
                )
            })
            .await?;
        self.file.generations.bump(false, !claimed.is_empty());
        Ok(claimed)
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        let v: Option<i64> = sqlx::query(
            "SELECT MIN(next_due_at) AS t FROM incidents WHERE next_due_at IS NOT NULL",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(err)?
        .try_get("t")
        .map_err(err)?;
        Ok(v.map(from_millis))
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let mut qb = AUDIT_JSON.page_query();
        push_audit_filter::<SqliteDialect>(&mut qb, filter);
        self.fetch_page(qb, &AUDIT_JSON, page, |r| decode_audit(r))
            .await
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn insert_notification(&self, n: &Notification) -> Result<bool> {
        let n = n.clone();
        let inserted = self
            .writer
            .write(move |c| {
                execute(
                    c,
                    "INSERT INTO notifications \
                     (id, key, user_id, message, kind, incident_id, read, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (key) DO NOTHING",
                    params![
                        n.id.0,
                        n.key,
                        n.user.0,
                        n.message,
                        n.kind.as_str(),
                        n.incident_id.map(|i| i.0),
                        n.read,
                        ms(n.created_at)
                    ],
                )
            })
            .await?;
        Ok(inserted == 1)
    }

    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        let mut qb = NOTIFICATION_JSON.page_query();
        qb.push(" AND user_id = ");
        qb.push_bind(user.0);
        self.fetch_page(qb, &NOTIFICATION_JSON, page, |r| decode_notification(r))
            .await
    }

    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification> {
        self.writer
            .write(move |c| {
                query_rows(
                    c,
                    "UPDATE notifications SET read = TRUE WHERE id = ?1 AND user_id = ?2 \
                     RETURNING *",
                    params![id.0, user.0],
                    |r| decode_notification(r),
                )?
                .pop()
                .ok_or(Error::NotFound {
                    entity: "notification",
                })
            })
            .await
    }

    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool> {
        let (key, channel) = (key.to_owned(), channel.to_owned());
        let inserted = self
            .writer
            .write(move |c| {
                execute(
                    c,
                    "INSERT INTO channel_deliveries (key, channel) VALUES (?1, ?2) \
                     ON CONFLICT (key, channel) DO NOTHING",
                    params![key, channel],
                )
            })
            .await?;
        Ok(inserted == 1)
    }

    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM channel_deliveries WHERE key = ? AND channel = ?")
                .bind(key)
                .bind(channel)
                .fetch_optional(&self.reader)
                .await
                .map_err(err)?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let until = ms(plus(now, lease));
        let mut keyed = self
            .writer
            .write(move |c| {
                query_rows(
                    c,
                    "UPDATE outbox SET available_at = ?1, attempts = attempts + 1 WHERE seq IN (\
                        SELECT seq FROM outbox WHERE delivered_at IS NULL AND available_at <= ?2 \
                        ORDER BY available_at, seq LIMIT ?3) \
                     RETURNING seq, intent, attempts, available_at",
                    params![until, ms(now), i64::from(limit)],
                    |r| Ok((r.int("seq")?, decode_outbox(r)?)),
                )
            })
            .await?;
        keyed.sort_by_key(|(seq, _)| *seq);
        Ok(keyed.into_iter().map(|(_, e)| e).collect())
    }

    async fn complete_outbox(&self, keys: &[String], now: Timestamp) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys = keys.to_vec();
        let at = ms(now);
        self.writer
            .write(move |c| {
                for key in &keys {
                    execute(
                        c,
                        "UPDATE outbox SET delivered_at = ?1 WHERE key = ?2 AND delivered_at IS NULL",
                        params![at, key],
                    )?;
                }
                Ok(())
            })
            .await
    }

    async fn pending_outbox(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(&self.reader)
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
        .fetch_optional(&self.reader)
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
        let (before, limit) = (ms(before), i64::from(limit));
        self.writer
            .write(move |c| {
                // Index `outbox_delivered`; receipts by their primary key.
                let keys = query_rows(
                    c,
                    "DELETE FROM outbox WHERE seq IN (\
                        SELECT seq FROM outbox WHERE delivered_at IS NOT NULL AND available_at < ?1 \
                        ORDER BY available_at LIMIT ?2) \
                     RETURNING key",
                    params![before, limit],
                    |r| r.get::<_, String>("key").map_err(rerr),
                )?;
                let mut receipts = 0;
                for key in &keys {
                    receipts += execute(
                        c,
                        "DELETE FROM channel_deliveries WHERE key = ?1",
                        params![key],
                    )?;
                }
                Ok(imas_core::ports::Pruned {
                    outbox: keys.len() as u64,
                    receipts: receipts as u64,
                })
            })
            .await
    }
}
