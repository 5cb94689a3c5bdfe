//! IMAS stores on sqlx: [`SqliteStore`], the embedded default that needs no
//! service, and [`PostgresStore`], for several IMAS nodes sharing one database.
//!
//! Both implement every store port of `imas-core` and pass its conformance
//! suites. Each domain change commits in one transaction (incident row, audit
//! entries, outbox rows); incidents use optimistic concurrency on `version`; lists
//! use keyset pagination on `(created_at, id)`; due-incident claims are exclusive
//! across connections and nodes (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single
//! writer on SQLite). Migrations are embedded and run by `connect`.
//!
//! ```no_run
//! # async fn demo() -> imas_core::Result<()> {
//! let store = imas_store_sqlx::SqliteStore::connect("sqlite://imas.db").await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use imas_core::error::{Error, Result};
use imas_core::model::{
    Actor, AuditEntry, AuditFilter, AuditId, Cursor, Incident, IncidentFilter, IncidentId,
    Notification, NotificationId, NotificationIntent, OutboxEntry, PageRequest, Timestamp, User,
    UserId, search_terms,
};
use imas_core::ports::Store;
use sqlx::{Database, QueryBuilder};
use uuid::Uuid;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_writer;

#[cfg(feature = "postgres")]
pub use postgres::{DEFAULT_SCHEMA, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Connects to the store a URL names: `sqlite://path` (or `sqlite::memory:`) or
/// `postgres://...` / `postgresql://...`. Runs the migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(PostgresStore::connect(url).await?)),
        _ => Err(Error::config(
            "DATABASE_URL",
            "expected a sqlite://... or postgres://... URL (with the matching feature enabled)",
        )),
    }
}

/// Maps a sqlx error to the core error: unique violations become `Conflict`
/// naming what is taken; the rest is a `Backend` error.
pub(crate) fn db_error(backend: &'static str, e: sqlx::Error) -> Error {
    if let Some(db) = e.as_database_error()
        && db.is_unique_violation()
    {
        return conflict_for(&format!(
            "{} {}",
            db.constraint().unwrap_or_default(),
            db.message()
        ));
    }
    Error::backend(backend, e)
}

/// The `Conflict` for a unique violation, from what the database said about it.
pub(crate) fn conflict_for(what: &str) -> Error {
    let message = if what.contains("username") {
        "username already taken"
    } else if what.contains("email") {
        "email already registered"
    } else {
        "a record with this id or key already exists"
    };
    Error::conflict(message)
}

/// A conversion failure of a stored value (a corrupt row).
fn corrupt(backend: &'static str, what: impl std::fmt::Display) -> Error {
    Error::backend(backend, format!("unreadable stored value: {what}"))
}

/// Typed column access that both backends provide, so that rows decode into the
/// model in one place.
pub(crate) trait RowExt {
    const BACKEND: &'static str;
    fn id(&self, col: &str) -> Result<Uuid>;
    fn opt_id(&self, col: &str) -> Result<Option<Uuid>>;
    fn ts(&self, col: &str) -> Result<Timestamp>;
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn flag(&self, col: &str) -> Result<bool>;

    fn parsed<T: std::str::FromStr>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        s.parse()
            .map_err(|_| corrupt(Self::BACKEND, format_args!("{col} = {s:?}")))
    }
}

pub(crate) fn decode_user<R: RowExt>(r: &R) -> Result<User> {
    Ok(User {
        id: UserId(r.id("id")?),
        name: r.text("name")?,
        username: r.text("username")?,
        email: r.text("email")?,
        password_hash: r.text("password_hash")?,
        role: r.parsed("role")?,
        created_at: r.ts("created_at")?,
    })
}

pub(crate) fn decode_incident<R: RowExt>(r: &R) -> Result<Incident> {
    Ok(Incident {
        id: IncidentId(r.id("id")?),
        title: r.text("title")?,
        description: r.text("description")?,
        kind: r.parsed("kind")?,
        priority: r.parsed("priority")?,
        status: r.parsed("status")?,
        assigned_to: r.opt_id("assigned_to")?.map(UserId),
        reported_by: UserId(r.id("reported_by")?),
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        sla_target_ms: r.int("sla_target_ms")?,
        sla_deadline: r.ts("sla_deadline")?,
        response_target_ms: r.int("response_target_ms")?,
        response_deadline: r.ts("response_deadline")?,
        response_breached_at: r.opt_ts("response_breached_at")?,
        at_risk_at: r.opt_ts("at_risk_at")?,
        sla_breached: r.flag("sla_breached")?,
        breached_at: r.opt_ts("breached_at")?,
        escalation_level: u32::try_from(r.int("escalation_level")?)
            .map_err(|_| corrupt(R::BACKEND, "escalation_level"))?,
        escalated_at: r.opt_ts("escalated_at")?,
        acknowledged_at: r.opt_ts("acknowledged_at")?,
        resolved_at: r.opt_ts("resolved_at")?,
        closed_at: r.opt_ts("closed_at")?,
        held_ms: r.int("held_ms")?,
        hold_started_at: r.opt_ts("hold_started_at")?,
        next_due_at: r.opt_ts("next_due_at")?,
        version: r.int("version")?,
    })
}

pub(crate) fn decode_audit<R: RowExt>(r: &R) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: AuditId(r.id("id")?),
        action: r.parsed("action")?,
        actor: r.parsed::<Actor>("actor")?,
        target: r.opt_text("target")?,
        description: r.text("description")?,
        created_at: r.ts("created_at")?,
    })
}

pub(crate) fn decode_notification<R: RowExt>(r: &R) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId(r.id("id")?),
        user: UserId(r.id("user_id")?),
        message: r.text("message")?,
        kind: r.parsed("kind")?,
        incident_id: r.opt_id("incident_id")?.map(IncidentId),
        read: r.flag("read")?,
        created_at: r.ts("created_at")?,
        key: r.text("key")?,
    })
}

pub(crate) fn decode_outbox<R: RowExt>(r: &R) -> Result<OutboxEntry> {
    let intent: NotificationIntent = serde_json::from_str(&r.text("intent")?)
        .map_err(|e| corrupt(R::BACKEND, format_args!("outbox intent: {e}")))?;
    Ok(OutboxEntry {
        intent,
        attempts: u32::try_from(r.int("attempts")?).unwrap_or(u32::MAX),
        available_at: r.ts("available_at")?,
    })
}

pub(crate) fn intent_json(intent: &NotificationIntent) -> Result<String> {
    serde_json::to_string(intent).map_err(|e| Error::backend("serde_json", e))
}

/// The search terms of an incident, space-separated, as both backends index them.
pub(crate) fn terms_of(i: &Incident) -> Vec<String> {
    imas_core::model::incident_terms(i)
}

/// How a backend binds values into a dynamically built query; the filter SQL is
/// written once over it.
pub(crate) trait Dialect {
    type DB: Database;
    fn bind_ts(qb: &mut QueryBuilder<Self::DB>, t: Timestamp);
    fn bind_id(qb: &mut QueryBuilder<Self::DB>, id: Uuid);
    fn bind_text(qb: &mut QueryBuilder<Self::DB>, s: String);
    fn bind_int(qb: &mut QueryBuilder<Self::DB>, n: i64);
    /// Appends a condition that every term appears in the incident's search terms.
    fn push_search(qb: &mut QueryBuilder<Self::DB>, terms: &[String]);
}

fn push_in<D: Dialect>(qb: &mut QueryBuilder<D::DB>, col: &str, values: &[&'static str]) {
    qb.push(format_args!(" AND {col} IN ("));
    for (n, v) in values.iter().enumerate() {
        if n > 0 {
            qb.push(", ");
        }
        D::bind_text(qb, (*v).to_string());
    }
    qb.push(")");
}

/// Appends ` AND ...` for every set field of an incident filter (reference
/// semantics: `IncidentFilter::matches`).
pub(crate) fn push_incident_filter<D: Dialect>(qb: &mut QueryBuilder<D::DB>, f: &IncidentFilter) {
    if !f.status.is_empty() {
        let v: Vec<&'static str> = f.status.iter().map(|s| s.as_str()).collect();
        push_in::<D>(qb, "status", &v);
    }
    if !f.priority.is_empty() {
        let v: Vec<&'static str> = f.priority.iter().map(|p| p.as_str()).collect();
        push_in::<D>(qb, "priority", &v);
    }
    if let Some(a) = f.assigned_to {
        qb.push(" AND assigned_to = ");
        D::bind_id(qb, a.0);
    }
    if let Some(r) = f.reported_by {
        qb.push(" AND reported_by = ");
        D::bind_id(qb, r.0);
    }
    if let Some(t) = f.created_from {
        qb.push(" AND created_at >= ");
        D::bind_ts(qb, t);
    }
    if let Some(t) = f.created_to {
        qb.push(" AND created_at <= ");
        D::bind_ts(qb, t);
    }
    match f.escalated {
        Some(true) => {
            qb.push(" AND escalation_level > 0");
        }
        Some(false) => {
            qb.push(" AND escalation_level = 0");
        }
        None => {}
    }
    match f.sla_breached {
        Some(true) => {
            qb.push(" AND sla_breached = TRUE");
        }
        Some(false) => {
            qb.push(" AND sla_breached = FALSE");
        }
        None => {}
    }
    if let Some(now) = f.violated_at {
        qb.push(
            " AND status NOT IN ('resolved', 'closed') AND (sla_breached = TRUE OR (status <> 'on-hold' AND sla_deadline <= ",
        );
        D::bind_ts(qb, now);
        qb.push("))");
    }
    if let Some(q) = &f.q {
        let terms = search_terms(q);
        if !terms.is_empty() {
            D::push_search(qb, &terms);
        }
    }
}

/// Appends the keyset condition for newest-first pages.
pub(crate) fn push_keyset<D: Dialect>(qb: &mut QueryBuilder<D::DB>, cursor: Option<Cursor>) {
    if let Some(c) = cursor {
        qb.push(" AND (created_at, id) < (");
        D::bind_ts(qb, c.created_at);
        qb.push(", ");
        D::bind_id(qb, c.id);
        qb.push(")");
    }
}

/// Appends ` AND ...` for every set field of an audit filter.
pub(crate) fn push_audit_filter<D: Dialect>(qb: &mut QueryBuilder<D::DB>, f: &AuditFilter) {
    if let Some(a) = f.action {
        qb.push(" AND action = ");
        D::bind_text(qb, a.as_str().to_string());
    }
    if let Some(a) = f.actor {
        qb.push(" AND actor = ");
        D::bind_text(qb, a.to_string());
    }
    if let Some(t) = &f.target {
        qb.push(" AND target = ");
        D::bind_text(qb, t.clone());
    }
    if let Some(t) = f.from {
        qb.push(" AND created_at >= ");
        D::bind_ts(qb, t);
    }
    if let Some(t) = f.to {
        qb.push(" AND created_at <= ");
        D::bind_ts(qb, t);
    }
}

/// Something listed newest first by `(created_at, id)`.
pub(crate) trait Positioned {
    /// The cursor that continues after it.
    fn position(&self) -> Cursor;
}

impl Positioned for Incident {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for AuditEntry {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for Notification {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

/// Appends the keyset condition, the newest-first order and `LIMIT limit + 1`
/// (the extra row only tells whether a next page exists).
pub(crate) fn push_page<D: Dialect>(qb: &mut QueryBuilder<D::DB>, page: PageRequest) {
    push_keyset::<D>(qb, page.cursor);
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ");
    D::bind_int(qb, i64::from(page.limit) + 1);
}

/// Splits the `limit + 1` rows fetched after [`push_page`] into a page.
pub(crate) fn into_page<T: Positioned>(mut items: Vec<T>, limit: u32) -> imas_core::model::Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(Positioned::position)
    } else {
        None
    };
    imas_core::model::Page { items, next }
}

/// The `created_at` of an outbox row's stored intent.
pub(crate) fn intent_created_at(backend: &'static str, intent: &str) -> Result<Timestamp> {
    serde_json::from_str::<NotificationIntent>(intent)
        .map(|i| i.created_at)
        .map_err(|e| corrupt(backend, format_args!("outbox intent: {e}")))
}
