//! [`MongoStore`]: every store port of `imas-core` on MongoDB (the official
//! `mongodb` 3.x driver), for users of the original IMAS's database.
//!
//! Collections (`connect` creates them and their indexes): `users` (unique
//! `username` and `email`), `incidents` (the due-time index, list and filter
//! indexes, and a `search` array of terms for full-text search without a text
//! index), `audit_log`, `notifications` (unique `key`), `channel_deliveries`,
//! `outbox`. Instants are BSON dates (milliseconds), ids UUID strings, so keyset
//! pagination on `(created_at, _id)` orders as in the other stores.
//!
//! A domain change (incident or user + audit entries + outbox rows) commits
//! atomically in one of two ways ([`Atomicity`]), chosen at connect time from the
//! server's `hello` answer:
//!
//! - on a replica set or a sharded cluster, in one multi-document transaction;
//! - on a standalone server, which has no transactions, through single-document
//!   atomicity: the entity write carries the change's audit entries and outbox
//!   rows in a `_pending` array of the same document (a change without an entity
//!   goes into a `pending_changes` document); they are then moved to their
//!   collections (idempotently: audit entries by id, outbox rows by key) and
//!   pulled from `_pending`. A change interrupted between the two is finished by
//!   [`MongoStore::recover`], which runs at connect time and before every outbox
//!   claim, so nothing committed is lost. A deleted incident is first marked
//!   (`_deleting`, invisible to reads) with its pending entries, then removed.
//!
//! Due-incident and outbox claims are conditional `findOneAndUpdate`s: a document
//! is claimed only if its due time is still the one read, so two nodes never take
//! the same one.
//!
//! Each store watches its database's change stream for writes to `users` and
//! `incidents`, so its [generation](ChangeStore::generation) moves with every
//! node's changes (its own at once, when they commit). Change streams need a
//! replica set or a sharded cluster: on a standalone server, and while the stream
//! is down, the store reports no generation and the engine reads through.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use imas_core::error::{Error, Result};
use imas_core::model::{
    Actor, AuditAction, AuditEntry, AuditFilter, AuditId, Cursor, Incident, IncidentFilter,
    IncidentId, IncidentType, Notification, NotificationId, NotificationIntent, NotificationType,
    OutboxEntry, Page, PageRequest, Priority, Role, Status, Timestamp, User, UserId, from_millis,
    incident_terms, plus, search_terms,
};
use imas_core::ports::{
    AuditStore, Change, ChangeStore, Generation, Generations, IncidentStore, IncidentWrite,
    NotificationStore, OutboxStore, UserStore, UserWrite, run_detached,
};
use mongodb::bson::{Bson, DateTime as BsonDate, Document, doc};
use mongodb::error::{
    ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use uuid::Uuid;

const BACKEND: &str = "mongodb";

/// The database IMAS uses when the URL names none.
pub const DEFAULT_DATABASE: &str = "imas";

fn err(e: mongodb::error::Error) -> Error {
    Error::backend(BACKEND, e)
}

/// Whether a driver error is a unique-index violation (E11000).
fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("E11000"),
    }
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::backend(BACKEND, format!("unreadable document: {what}"))
}

fn date(t: Timestamp) -> BsonDate {
    BsonDate::from_millis(t.timestamp_millis())
}

fn opt_date(t: Option<Timestamp>) -> Bson {
    t.map_or(Bson::Null, |t| Bson::DateTime(date(t)))
}

/// Typed reads from a document, with an error naming the field.
trait DocExt {
    fn text(&self, k: &str) -> Result<&str>;
    fn ts(&self, k: &str) -> Result<Timestamp>;
    fn opt_ts(&self, k: &str) -> Result<Option<Timestamp>>;
    fn uuid(&self, k: &str) -> Result<Uuid>;
    fn opt_uuid(&self, k: &str) -> Result<Option<Uuid>>;
    fn int(&self, k: &str) -> Result<i64>;
    fn parsed<T: std::str::FromStr>(&self, k: &str) -> Result<T>;
}

impl DocExt for Document {
    fn text(&self, k: &str) -> Result<&str> {
        self.get_str(k)
            .map_err(|e| corrupt(format_args!("{k}: {e}")))
    }
    fn ts(&self, k: &str) -> Result<Timestamp> {
        self.get_datetime(k)
            .map(|d| from_millis(d.timestamp_millis()))
            .map_err(|e| corrupt(format_args!("{k}: {e}")))
    }
    fn opt_ts(&self, k: &str) -> Result<Option<Timestamp>> {
        match self.get(k) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::DateTime(d)) => Ok(Some(from_millis(d.timestamp_millis()))),
            Some(other) => Err(corrupt(format_args!("{k}: not a date: {other}"))),
        }
    }
    fn uuid(&self, k: &str) -> Result<Uuid> {
        Uuid::parse_str(self.text(k)?).map_err(|e| corrupt(format_args!("{k}: {e}")))
    }
    fn opt_uuid(&self, k: &str) -> Result<Option<Uuid>> {
        match self.get(k) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => self.uuid(k).map(Some),
        }
    }
    fn int(&self, k: &str) -> Result<i64> {
        match self.get(k) {
            Some(Bson::Int64(n)) => Ok(*n),
            Some(Bson::Int32(n)) => Ok(i64::from(*n)),
            Some(Bson::Double(n)) if n.fract() == 0.0 => Ok(*n as i64),
            other => Err(corrupt(format_args!("{k}: not an integer: {other:?}"))),
        }
    }
    fn parsed<T: std::str::FromStr>(&self, k: &str) -> Result<T> {
        self.text(k)?
            .parse()
            .map_err(|_| corrupt(format_args!("{k}: unknown value")))
    }
}

fn user_doc(u: &User) -> Document {
    doc! {
        "_id": u.id.to_string(),
        "name": &u.name,
        "username": &u.username,
        "email": &u.email,
        "password_hash": &u.password_hash,
        "role": u.role.as_str(),
        "created_at": date(u.created_at),
    }
}

fn decode_user(d: &Document) -> Result<User> {
    Ok(User {
        id: UserId(d.uuid("_id")?),
        name: d.text("name")?.to_string(),
        username: d.text("username")?.to_string(),
        email: d.text("email")?.to_string(),
        password_hash: d.text("password_hash")?.to_string(),
        role: d.parsed::<Role>("role")?,
        created_at: d.ts("created_at")?,
    })
}

fn incident_doc(i: &Incident) -> Document {
    doc! {
        "_id": i.id.to_string(),
        "title": &i.title,
        "description": &i.description,
        "kind": i.kind.as_str(),
        "priority": i.priority.as_str(),
        "status": i.status.as_str(),
        "done": i.status.is_done(),
        "assigned_to": i.assigned_to.map_or(Bson::Null, |u| Bson::String(u.to_string())),
        "reported_by": i.reported_by.to_string(),
        "created_at": date(i.created_at),
        "updated_at": date(i.updated_at),
        "sla_target_ms": i.sla_target_ms,
        "sla_deadline": date(i.sla_deadline),
        "response_target_ms": i.response_target_ms,
        "response_deadline": date(i.response_deadline),
        "response_breached_at": opt_date(i.response_breached_at),
        "at_risk_at": opt_date(i.at_risk_at),
        "sla_breached": i.sla_breached,
        "breached_at": opt_date(i.breached_at),
        "escalation_level": i64::from(i.escalation_level),
        "escalated_at": opt_date(i.escalated_at),
        "acknowledged_at": opt_date(i.acknowledged_at),
        "resolved_at": opt_date(i.resolved_at),
        "closed_at": opt_date(i.closed_at),
        "held_ms": i.held_ms,
        "hold_started_at": opt_date(i.hold_started_at),
        "next_due_at": opt_date(i.next_due_at),
        "version": i.version,
        "search": incident_terms(i),
    }
}

fn decode_incident(d: &Document) -> Result<Incident> {
    Ok(Incident {
        id: IncidentId(d.uuid("_id")?),
        title: d.text("title")?.to_string(),
        description: d.text("description")?.to_string(),
        kind: d.parsed::<IncidentType>("kind")?,
        priority: d.parsed::<Priority>("priority")?,
        status: d.parsed::<Status>("status")?,
        assigned_to: d.opt_uuid("assigned_to")?.map(UserId),
        reported_by: UserId(d.uuid("reported_by")?),
        created_at: d.ts("created_at")?,
        updated_at: d.ts("updated_at")?,
        sla_target_ms: d.int("sla_target_ms")?,
        sla_deadline: d.ts("sla_deadline")?,
        response_target_ms: d.int("response_target_ms")?,
        response_deadline: d.ts("response_deadline")?,
        response_breached_at: d.opt_ts("response_breached_at")?,
        at_risk_at: d.opt_ts("at_risk_at")?,
        sla_breached: d
            .get_bool("sla_breached")
            .map_err(|e| corrupt(format_args!("sla_breached: {e}")))?,
        breached_at: d.opt_ts("breached_at")?,
        escalation_level: u32::try_from(d.int("escalation_level")?).unwrap_or(u32::MAX),
        escalated_at: d.opt_ts("escalated_at")?,
        acknowledged_at: d.opt_ts("acknowledged_at")?,
        resolved_at: d.opt_ts("resolved_at")?,
        closed_at: d.opt_ts("closed_at")?,
        held_ms: d.int("held_ms")?,
        hold_started_at: d.opt_ts("hold_started_at")?,
        next_due_at: d.opt_ts("next_due_at")?,
        version: d.int("version")?,
    })
}

fn audit_doc(e: &AuditEntry) -> Document {
    doc! {
        "_id": e.id.to_string(),
        "action": e.action.as_str(),
        "actor": e.actor.to_string(),
        "target": e.target.clone().map_or(Bson::Null, Bson::String),
        "description": &e.description,
        "created_at": date(e.created_at),
    }
}

fn decode_audit(d: &Document) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: AuditId(d.uuid("_id")?),
        action: d.parsed::<AuditAction>("action")?,
        actor: d.parsed::<Actor>("actor")?,
        target: match d.get("target") {
            None | Some(Bson::Null) => None,
            Some(_) => Some(d.text("target")?.to_string()),
        },
        description: d.text("description")?.to_string(),
        created_at: d.ts("created_at")?,
    })
}

fn decode_notification(d: &Document) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId(d.uuid("_id")?),
        user: UserId(d.uuid("user")?),
        message: d.text("message")?.to_string(),
        kind: d.parsed::<NotificationType>("kind")?,
        incident_id: d.opt_uuid("incident_id")?.map(IncidentId),
        read: d
            .get_bool("read")
            .map_err(|e| corrupt(format_args!("read: {e}")))?,
        created_at: d.ts("created_at")?,
        key: d.text("key")?.to_string(),
    })
}

fn decode_outbox(d: &Document) -> Result<OutboxEntry> {
    let intent: NotificationIntent = serde_json::from_str(d.text("intent")?)
        .map_err(|e| corrupt(format_args!("outbox intent: {e}")))?;
    Ok(OutboxEntry {
        intent,
        attempts: u32::try_from(d.int("attempts")?).unwrap_or(u32::MAX),
        available_at: d.ts("available_at")?,
    })
}

/// Inserts `d` carrying a change's pending `entry` (single-document mode); a
/// unique-index violation is a `Conflict` saying `taken`.
async fn insert_carrying(
    coll: &Collection<Document>,
    mut d: Document,
    entry: &Document,
    taken: &str,
) -> Result<()> {
    d.insert("_pending", vec![entry.clone()]);
    match coll.insert_one(d).await {
        Ok(_) => Ok(()),
        Err(e) if is_duplicate(&e) => Err(Error::conflict(taken.to_string())),
        Err(e) => Err(err(e)),
    }
}

/// Outbox rows for intents, keyed by the intent's key.
fn outbox_docs(intents: &[NotificationIntent]) -> Result<Vec<Document>> {
    intents
        .iter()
        .map(|intent| {
            let json =
                serde_json::to_string(intent).map_err(|e| Error::backend("serde_json", e))?;
            Ok(doc! {
                "_id": &intent.key,
                "intent": json,
                "available_at": date(intent.created_at),
                "created_at": date(intent.created_at),
                "attempts": 0_i64,
                "delivered": false,
            })
        })
        .collect()
}

/// Adds `from <= created_at <= to` for the bounds given.
fn created_between(q: &mut Document, from: Option<Timestamp>, to: Option<Timestamp>) {
    let mut range = Document::new();
    if let Some(t) = from {
        range.insert("$gte", date(t));
    }
    if let Some(t) = to {
        range.insert("$lte", date(t));
    }
    if !range.is_empty() {
        q.insert("created_at", range);
    }
}

/// The incident filter as a query.
fn incident_query(f: &IncidentFilter) -> Document {
    let mut q = Document::new();
    if !f.status.is_empty() {
        let s: Vec<&str> = f.status.iter().map(|s| s.as_str()).collect();
        q.insert("status", doc! { "$in": s });
    }
    if !f.priority.is_empty() {
        let p: Vec<&str> = f.priority.iter().map(|p| p.as_str()).collect();
        q.insert("priority", doc! { "$in": p });
    }
    if let Some(a) = f.assigned_to {
        q.insert("assigned_to", a.to_string());
    }
    if let Some(r) = f.reported_by {
        q.insert("reported_by", r.to_string());
    }
    created_between(&mut q, f.created_from, f.created_to);
    match f.escalated {
        Some(true) => {
            q.insert("escalation_level", doc! { "$gt": 0_i64 });
        }
        Some(false) => {
            q.insert("escalation_level", 0_i64);
        }
        None => {}
    }
    if let Some(b) = f.sla_breached {
        q.insert("sla_breached", b);
    }
    let mut and = Vec::new();
    if let Some(now) = f.violated_at {
        q.insert("done", false);
        and.push(doc! { "$or": [
            { "sla_breached": true },
            { "status": { "$ne": Status::OnHold.as_str() }, "sla_deadline": { "$lte": date(now) } },
        ] });
    }
    if let Some(text) = &f.q {
        let terms = search_terms(text);
        if !terms.is_empty() {
            q.insert("search", doc! { "$all": terms });
        }
    }
    if !and.is_empty() {
        q.insert("$and", and);
    }
    q
}

fn audit_query(f: &AuditFilter) -> Document {
    let mut q = Document::new();
    if let Some(a) = f.action {
        q.insert("action", a.as_str());
    }
    if let Some(a) = f.actor {
        q.insert("actor", a.to_string());
    }
    if let Some(t) = &f.target {
        q.insert("target", t.clone());
    }
    created_between(&mut q, f.from, f.to);
    q
}

/// Adds the keyset condition: strictly after `cursor` in newest-first order.
fn after(mut q: Document, cursor: Option<Cursor>) -> Document {
    if let Some(c) = cursor {
        let keyset = doc! { "$or": [
            { "created_at": { "$lt": date(c.created_at) } },
            { "created_at": date(c.created_at), "_id": { "$lt": c.id.to_string() } },
        ] };
        q = if q.is_empty() {
            keyset
        } else {
            doc! { "$and": [q, keyset] }
        };
    }
    q
}

/// How a [`MongoStore`] makes a change atomic (see the crate documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atomicity {
    /// Multi-document transactions (replica sets, sharded clusters).
    Transactions,
    /// Single-document writes carrying the change's side effects, moved out
    /// afterwards (standalone servers).
    SingleDocument,
}

/// The MongoDB store.
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    atomicity: Atomicity,
    generations: Arc<Generations>,
}

/// Keeps `generations` moving with the writes to `users` and `incidents` that
/// any node makes in `db`, read from the database's change stream, until the
/// store is dropped. Not live until the stream is open; an error or the end of
/// the stream makes it not live until it is open again (events meanwhile are
/// lost, so going live bumps everything). A server without change streams (a
/// standalone one) is never live: the engine reads through.
async fn follow_changes(db: Database, generations: Weak<Generations>) {
    let pipeline = [doc! { "$match": { "ns.coll": { "$in": ["users", "incidents"] } } }];
    let mut warned = false;
    loop {
        let opened = db
            .watch()
            .pipeline(pipeline.clone())
            .max_await_time(Duration::from_secs(2))
            .await;
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                if generations.strong_count() == 0 {
                    return;
                }
                if !warned {
                    tracing::warn!(error = %e, "change stream: cannot open; reads are not cached");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match generations.upgrade() {
            Some(g) => g.set_live(true),
            None => return,
        }
        warned = false;
        loop {
            // Returns after each server round trip (at most `max_await_time`),
            // so a dropped store is noticed.
            let next = stream.next_if_any().await;
            let Some(g) = generations.upgrade() else {
                return;
            };
            match next {
                Ok(Some(event)) => {
                    let coll = event.ns.and_then(|ns| ns.coll).unwrap_or_default();
                    g.bump(coll == "users", coll == "incidents");
                }
                Ok(None) if stream.is_alive() => {}
                Ok(None) | Err(_) => {
                    g.set_live(false);
                    tracing::warn!(
                        "change stream: interrupted; reads are not cached until it is back"
                    );
                    break;
                }
            }
        }
    }
}

/// Incidents being deleted (single-document mode) are not there for readers.
fn live(mut q: Document) -> Document {
    q.insert("_deleting", doc! { "$exists": false });
    q
}

impl MongoStore {
    /// Connects to the server a `mongodb://...` URL names, in the database the URL
    /// names (default [`DEFAULT_DATABASE`]), and creates the indexes.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = mongodb::options::ClientOptions::parse(url)
            .await
            .map_err(|e| Error::config("MONGODB_URL", format!("not a MongoDB URL ({e})")))?;
        let name = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        Self::connect_to(url, &name).await
    }

    /// Like [`MongoStore::connect`], in the database `name`.
    pub async fn connect_to(url: &str, name: &str) -> Result<Self> {
        Self::connect_with(url, name, None).await
    }

    /// Like [`MongoStore::connect_to`], with the way changes are made atomic
    /// given (`None`: chosen from the server's `hello`: transactions on a replica
    /// set or through `mongos`, single-document writes on a standalone server).
    pub async fn connect_with(url: &str, name: &str, atomicity: Option<Atomicity>) -> Result<Self> {
        let options = mongodb::options::ClientOptions::parse(url)
            .await
            .map_err(|e| Error::config("MONGODB_URL", format!("not a MongoDB URL ({e})")))?;
        let client = Client::with_options(options).map_err(err)?;
        let db = client.database(name);
        let atomicity = match atomicity {
            Some(a) => a,
            None => {
                let hello = db.run_command(doc! { "hello": 1 }).await.map_err(err)?;
                if hello.contains_key("setName") || hello.get_str("msg") == Ok("isdbgrid") {
                    Atomicity::Transactions
                } else {
                    Atomicity::SingleDocument
                }
            }
        };
        tracing::debug!(?atomicity, "MongoDB store");
        let generations = Arc::new(Generations::new(false));
        tokio::spawn(follow_changes(db.clone(), Arc::downgrade(&generations)));
        let store = Self {
            db,
            client,
            atomicity,
            generations,
        };
        store.create_indexes().await?;
        store.recover().await?;
        Ok(store)
    }

    /// How this store makes changes atomic.
    pub fn atomicity(&self) -> Atomicity {
        self.atomicity
    }

    async fn create_indexes(&self) -> Result<()> {
        let unique = || IndexOptions::builder().unique(true).build();
        let index = |keys: Document| IndexModel::builder().keys(keys).build();
        let unique_index =
            |keys: Document| IndexModel::builder().keys(keys).options(unique()).build();
        self.users()
            .create_indexes([
                unique_index(doc! { "username": 1 }),
                unique_index(doc! { "email": 1 }),
                index(doc! { "role": 1 }),
                index(doc! { "_pending.cid": 1 }),
            ])
            .await
            .map_err(err)?;
        self.incidents()
            .create_indexes([
                index(doc! { "next_due_at": 1 }),
                index(doc! { "created_at": -1, "_id": -1 }),
                index(doc! { "status": 1, "created_at": -1, "_id": -1 }),
                index(doc! { "priority": 1, "created_at": -1, "_id": -1 }),
                index(doc! { "assigned_to": 1, "created_at": -1, "_id": -1 }),
                index(doc! { "reported_by": 1, "created_at": -1, "_id": -1 }),
                index(doc! { "done": 1, "sla_deadline": 1 }),
                index(doc! { "search": 1 }),
                index(doc! { "_pending.cid": 1 }),
                index(doc! { "_deleting": 1 }),
            ])
            .await
            .map_err(err)?;
        self.audit()
            .create_indexes([
                index(doc! { "created_at": -1, "_id": -1 }),
                index(doc! { "action": 1, "created_at": -1 }),
            ])
            .await
            .map_err(err)?;
        self.notifications()
            .create_indexes([
                unique_index(doc! { "key": 1 }),
                index(doc! { "user": 1, "created_at": -1, "_id": -1 }),
            ])
            .await
            .map_err(err)?;
        self.outbox()
            .create_indexes([index(doc! { "delivered": 1, "available_at": 1 })])
            .await
            .map_err(err)?;
        // Retention and the outbox metrics: the oldest pending row, and the
        // receipts of a pruned key.
        self.outbox()
            .create_indexes([index(doc! { "delivered": 1, "created_at": 1 })])
            .await
            .map_err(err)?;
        self.deliveries()
            .create_indexes([index(doc! { "key": 1 })])
            .await
            .map_err(err)?;
        // /metrics counts open incidents per (status, priority) at every scrape.
        self.incidents()
            .create_indexes([index(
                doc! { "status": 1, "priority": 1, "sla_breached": 1 },
            )])
            .await
            .map_err(err)?;
        Ok(())
    }

    /// The database, for hosts that want to inspect it.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn users(&self) -> Collection<Document> {
        self.db.collection("users")
    }
    fn incidents(&self) -> Collection<Document> {
        self.db.collection("incidents")
    }
    fn audit(&self) -> Collection<Document> {
        self.db.collection("audit_log")
    }
    fn notifications(&self) -> Collection<Document> {
        self.db.collection("notifications")
    }
    fn deliveries(&self) -> Collection<Document> {
        self.db.collection("channel_deliveries")
    }
    fn outbox(&self) -> Collection<Document> {
        self.db.collection("outbox")
    }
    fn pending_changes(&self) -> Collection<Document> {
        self.db.collection("pending_changes")
    }

    /// One page, newest first, of `coll` matching `q`.
    async fn page<T>(
        &self,
        coll: Collection<Document>,
        q: Document,
        page: PageRequest,
        decode: impl Fn(&Document) -> Result<T>,
        position: impl Fn(&T) -> Cursor,
    ) -> Result<Page<T>> {
        page.validate()?;
        let docs: Vec<Document> = coll
            .find(after(q, page.cursor))
            .sort(doc! { "created_at": -1, "_id": -1 })
            .limit(i64::from(page.limit) + 1)
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let mut items = docs.iter().map(decode).collect::<Result<Vec<_>>>()?;
        let more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = if more {
            items.last().map(&position)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Claims up to `limit` documents of `coll` matching `query`, in `order`:
    /// each is updated with `update` only if it still matches and its `field` (a
    /// due time) is still the value read, so two nodes never take the same one. Returns the claimed
    /// documents as updated.
    async fn claim(
        &self,
        coll: Collection<Document>,
        query: Document,
        order: Document,
        field: &str,
        update: Document,
        limit: u32,
    ) -> Result<Vec<Document>> {
        let candidates: Vec<Document> = coll
            .find(query.clone())
            .sort(order)
            .limit(i64::from(limit))
            .projection(doc! { "_id": 1, field: 1 })
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let mut out = Vec::with_capacity(candidates.len());
        for c in candidates {
            let (Some(id), Some(read)) = (c.get("_id"), c.get(field)) else {
                continue;
            };
            // Still matching the query, with the very value read.
            let mut unchanged = query.clone();
            unchanged.insert("_id", id.clone());
            unchanged.insert(field, read.clone());
            let claimed = coll
                .find_one_and_update(unchanged, update.clone())
                .return_document(ReturnDocument::After)
                .await
                .map_err(err)?;
            out.extend(claimed);
        }
        Ok(out)
    }

    /// The writes of a change, inside `session`'s transaction.
    async fn apply(&self, s: &mut ClientSession, change: &Change) -> Result<()> {
        let duplicate = |e: mongodb::error::Error, what: &str| {
            if is_duplicate(&e) {
                Error::conflict(what.to_string())
            } else {
                err(e)
            }
        };
        match &change.user {
            Some(UserWrite::Insert(u)) => {
                self.users()
                    .insert_one(user_doc(u))
                    .session(&mut *s)
                    .await
                    .map_err(|e| duplicate(e, "username or email already taken"))?;
            }
            Some(UserWrite::SetRole { id, role }) => {
                let done = self
                    .users()
                    .update_one(
                        doc! { "_id": id.to_string() },
                        doc! { "$set": { "role": role.as_str() } },
                    )
                    .session(&mut *s)
                    .await
                    .map_err(err)?;
                if done.matched_count == 0 {
                    return Err(Error::NotFound { entity: "user" });
                }
            }
            None => {}
        }
        match &change.incident {
            Some(IncidentWrite::Insert(i)) => {
                self.incidents()
                    .insert_one(incident_doc(i))
                    .session(&mut *s)
                    .await
                    .map_err(|e| duplicate(e, "incident id already exists"))?;
            }
            Some(IncidentWrite::Update {
                incident,
                expected_version,
            }) => {
                let done = self
                    .incidents()
                    .replace_one(
                        doc! { "_id": incident.id.to_string(), "version": expected_version },
                        incident_doc(incident),
                    )
                    .session(&mut *s)
                    .await
                    .map_err(err)?;
                if done.matched_count == 0 {
                    return Err(self.missing_or_stale(s, incident.id).await);
                }
            }
            Some(IncidentWrite::Delete {
                id,
                expected_version,
            }) => {
                let done = self
                    .incidents()
                    .delete_one(doc! { "_id": id.to_string(), "version": expected_version })
                    .session(&mut *s)
                    .await
                    .map_err(err)?;
                if done.deleted_count == 0 {
                    return Err(self.missing_or_stale(s, *id).await);
                }
            }
            None => {}
        }
        if !change.audit.is_empty() {
            self.audit()
                .insert_many(change.audit.iter().map(audit_doc))
                .session(&mut *s)
                .await
                .map_err(|e| duplicate(e, "audit entry id already exists"))?;
        }
        for row in outbox_docs(&change.outbox)? {
            // An intent whose key is (or was) in the outbox is skipped.
            let key = row.get("_id").cloned().unwrap_or(Bson::Null);
            self.outbox()
                .update_one(doc! { "_id": key }, doc! { "$setOnInsert": row })
                .upsert(true)
                .session(&mut *s)
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    // ----- single-document mode ----------------------------------------------------

    async fn commit_single_document(&self, change: &Change) -> Result<()> {
        // A duplicate audit id must fail the whole change, before anything is
        // written (the move-out treats an existing id as already moved).
        if !change.audit.is_empty() {
            let ids: Vec<String> = change.audit.iter().map(|e| e.id.to_string()).collect();
            let taken = self
                .audit()
                .find_one(doc! { "_id": { "$in": &ids } })
                .await
                .map_err(err)?;
            if taken.is_some() {
                return Err(Error::conflict("audit entry id already exists"));
            }
        }
        let cid = Uuid::now_v7().to_string();
        let entry = doc! {
            "cid": &cid,
            "audit": change.audit.iter().map(audit_doc).collect::<Vec<_>>(),
            "outbox": outbox_docs(&change.outbox)?,
        };
        let has_side_effects = !change.audit.is_empty() || !change.outbox.is_empty();
        // Where the entry was written with the entity: (collection, entity id).
        let mut carrier: Option<(Collection<Document>, Bson)> = None;
        match &change.user {
            Some(UserWrite::Insert(u)) => {
                insert_carrying(
                    &self.users(),
                    user_doc(u),
                    &entry,
                    "username or email already taken",
                )
                .await?;
                carrier = Some((self.users(), Bson::String(u.id.to_string())));
            }
            Some(UserWrite::SetRole { id, role }) => {
                let done = self
                    .users()
                    .update_one(
                        doc! { "_id": id.to_string() },
                        doc! { "$set": { "role": role.as_str() }, "$push": { "_pending": entry.clone() } },
                    )
                    .await
                    .map_err(err)?;
                if done.matched_count == 0 {
                    return Err(Error::NotFound { entity: "user" });
                }
                carrier = Some((self.users(), Bson::String(id.to_string())));
            }
            None => {}
        }
        let mut deleting: Option<String> = None;
        match &change.incident {
            Some(IncidentWrite::Insert(i)) => {
                insert_carrying(
                    &self.incidents(),
                    incident_doc(i),
                    &entry,
                    "incident id already exists",
                )
                .await?;
                carrier = Some((self.incidents(), Bson::String(i.id.to_string())));
            }
            Some(IncidentWrite::Update {
                incident,
                expected_version,
            }) => {
                let mut set = incident_doc(incident);
                set.remove("_id");
                let done = self
                    .incidents()
                    .update_one(
                        live(doc! { "_id": incident.id.to_string(), "version": expected_version }),
                        doc! { "$set": set, "$push": { "_pending": entry.clone() } },
                    )
                    .await
                    .map_err(err)?;
                if done.matched_count == 0 {
                    return Err(self.missing_or_stale_now(incident.id).await);
                }
                carrier = Some((self.incidents(), Bson::String(incident.id.to_string())));
            }
            Some(IncidentWrite::Delete {
                id,
                expected_version,
            }) => {
                let done = self
                    .incidents()
                    .update_one(
                        live(doc! { "_id": id.to_string(), "version": expected_version }),
                        doc! {
                            "$set": { "_deleting": &cid, "next_due_at": Bson::Null },
                            "$push": { "_pending": entry.clone() },
                        },
                    )
                    .await
                    .map_err(err)?;
                if done.matched_count == 0 {
                    return Err(self.missing_or_stale_now(*id).await);
                }
                carrier = Some((self.incidents(), Bson::String(id.to_string())));
                deleting = Some(id.to_string());
            }
            None => {}
        }
        match carrier {
            Some((coll, id)) => {
                if has_side_effects {
                    self.move_out(&entry).await?;
                }
                coll.update_one(
                    doc! { "_id": id },
                    doc! { "$pull": { "_pending": { "cid": &cid } } },
                )
                .await
                .map_err(err)?;
            }
            None if has_side_effects => {
                let mut journal = entry.clone();
                journal.insert("_id", &cid);
                self.pending_changes()
                    .insert_one(journal)
                    .await
                    .map_err(err)?;
                self.move_out(&entry).await?;
                self.pending_changes()
                    .delete_one(doc! { "_id": &cid })
                    .await
                    .map_err(err)?;
            }
            None => {}
        }
        if let Some(id) = deleting {
            self.incidents()
                .delete_one(doc! { "_id": id, "_deleting": &cid })
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn missing_or_stale_now(&self, id: IncidentId) -> Error {
        match self
            .incidents()
            .find_one(live(doc! { "_id": id.to_string() }))
            .await
        {
            Ok(None) => Error::NotFound { entity: "incident" },
            Ok(Some(_)) => Error::conflict(format!(
                "incident {id} was modified concurrently; reload and retry"
            )),
            Err(e) => err(e),
        }
    }

    /// Writes a pending entry's audit entries and outbox rows to their
    /// collections; a second run changes nothing.
    async fn move_out(&self, entry: &Document) -> Result<()> {
        let docs = |k: &str| -> Vec<Document> {
            entry
                .get_array(k)
                .map(|a| a.iter().filter_map(|b| b.as_document().cloned()).collect())
                .unwrap_or_default()
        };
        for a in docs("audit") {
            match self.audit().insert_one(a).await {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(err(e)),
            }
        }
        for row in docs("outbox") {
            let key = row.get("_id").cloned().unwrap_or(Bson::Null);
            self.outbox()
                .update_one(doc! { "_id": key }, doc! { "$setOnInsert": row })
                .upsert(true)
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    /// Finishes changes that were interrupted between their entity write and the
    /// move-out of their audit entries and outbox rows (single-document mode; in
    /// transaction mode there are none). Runs at connect time and before every
    /// outbox claim; safe to run any time, from any node. Its queries are range
    /// conditions on indexed fields (`_pending.cid`, `_deleting`), so an idle
    /// recovery costs a few index lookups, not a scan.
    pub async fn recover(&self) -> Result<()> {
        for coll in [self.users(), self.incidents()] {
            let carriers: Vec<Document> = coll
                .find(doc! { "_pending.cid": { "$gt": "" } })
                .projection(doc! { "_id": 1, "_pending": 1, "_deleting": 1 })
                .await
                .map_err(err)?
                .try_collect()
                .await
                .map_err(err)?;
            for c in carriers {
                let Some(id) = c.get("_id").cloned() else {
                    continue;
                };
                let entries = c
                    .get_array("_pending")
                    .map(|a| a.to_vec())
                    .unwrap_or_default();
                for e in entries.iter().filter_map(Bson::as_document) {
                    self.move_out(e).await?;
                    let cid = e.get("cid").cloned().unwrap_or(Bson::Null);
                    coll.update_one(
                        doc! { "_id": id.clone() },
                        doc! { "$pull": { "_pending": { "cid": cid } } },
                    )
                    .await
                    .map_err(err)?;
                }
            }
        }
        let journal: Vec<Document> = self
            .pending_changes()
            .find(doc! {})
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        for j in journal {
            self.move_out(&j).await?;
            if let Some(id) = j.get("_id") {
                self.pending_changes()
                    .delete_one(doc! { "_id": id.clone() })
                    .await
                    .map_err(err)?;
            }
        }
        // Incidents whose deletion was marked and whose entries are moved out.
        self.incidents()
            .delete_many(doc! { "_deleting": { "$gt": "" }, "_pending.0": { "$exists": false } })
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn missing_or_stale(&self, s: &mut ClientSession, id: IncidentId) -> Error {
        match self
            .incidents()
            .find_one(doc! { "_id": id.to_string() })
            .session(&mut *s)
            .await
        {
            Ok(None) => Error::NotFound { entity: "incident" },
            Ok(Some(_)) => Error::conflict(format!(
                "incident {id} was modified concurrently; reload and retry"
            )),
            Err(e) => err(e),
        }
    }
}

#[async_trait]
impl ChangeStore for MongoStore {
    /// Cancel-safe: the change runs in a task of its own, so a caller that
    /// stops waiting cannot cut it short. Run in the caller's future instead,
    /// a drop would leave a single-document change half moved out (its audit
    /// entries and intents missing until the next recovery) or a transaction
    /// whose `commitTransaction` was never sent open on the server, holding its
    /// documents (every other write to them a `WriteConflict`) until the server
    /// session is reused or the server's transaction lifetime limit ends it:
    /// the driver marks the transaction committed before it sends the command,
    /// so its `Drop` does not abort it.
    async fn commit(&self, change: Change) -> Result<()> {
        let store = self.clone();
        let (users, incidents) = (change.user.is_some(), change.incident.is_some());
        run_detached(BACKEND, async move {
            store.commit_now(change).await?;
            // Other nodes hear of it through the change stream; this one at
            // once (in the detached task: a dropped caller does not skip it).
            store.generations.bump(users, incidents);
            Ok(())
        })
        .await
    }

    fn generation(&self) -> Option<Generation> {
        self.generations.current()
    }
}

impl MongoStore {
    /// [`ChangeStore::commit`] run to its end (it must not be dropped half-way).
    async fn commit_now(&self, change: Change) -> Result<()> {
        if self.atomicity == Atomicity::SingleDocument {
            return self.commit_single_document(&change).await;
        }
        let mut s = self.client.start_session().await.map_err(err)?;
        let mut attempt = 1;
        loop {
            s.start_transaction().await.map_err(err)?;
            let outcome = match self.apply(&mut s, &change).await {
                Ok(()) => commit_transaction(&mut s).await,
                Err(e) => {
                    if let Err(abort) = s.abort_transaction().await {
                        tracing::debug!(error = %abort, "aborting a failed change");
                    }
                    Err(e)
                }
            };
            // A transaction that lost a write conflict to a concurrent one did
            // nothing; the server says so with a label, and it is run again.
            match outcome {
                Err(e)
                    if attempt < TRANSACTION_ATTEMPTS
                        && has_label(&e, TRANSIENT_TRANSACTION_ERROR) =>
                {
                    tokio::time::sleep(Duration::from_millis(2 * attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// How many times a change is tried when its transaction keeps losing write
/// conflicts.
const TRANSACTION_ATTEMPTS: u64 = 20;

/// Commits the session's transaction, again while the server cannot say
/// whether it committed (committing twice is safe).
async fn commit_transaction(s: &mut ClientSession) -> Result<()> {
    let mut attempt = 1;
    loop {
        match s.commit_transaction().await {
            Err(e)
                if attempt < TRANSACTION_ATTEMPTS
                    && e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) =>
            {
                attempt += 1;
            }
            other => return other.map_err(err),
        }
    }
}

/// Whether a store error carries a driver error with this label.
fn has_label(e: &Error, label: &str) -> bool {
    matches!(e, Error::Backend { source, .. }
        if source
            .downcast_ref::<mongodb::error::Error>()
            .is_some_and(|m| m.contains_label(label)))
}

#[async_trait]
impl UserStore for MongoStore {
    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        let d = self
            .users()
            .find_one(doc! { "_id": id.to_string() })
            .await
            .map_err(err)?;
        d.as_ref().map(decode_user).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let d = self
            .users()
            .find_one(doc! { "username": username })
            .await
            .map_err(err)?;
        d.as_ref().map(decode_user).transpose()
    }

    async fn users_with_role(&self, role: Role) -> Result<Vec<User>> {
        let docs: Vec<Document> = self
            .users()
            .find(doc! { "role": role.as_str() })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        docs.iter().map(decode_user).collect()
    }
}

#[async_trait]
impl IncidentStore for MongoStore {
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        let d = self
            .incidents()
            .find_one(live(doc! { "_id": id.to_string() }))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_incident).transpose()
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        self.page(
            self.incidents(),
            live(incident_query(filter)),
            page,
            decode_incident,
            |i| Cursor {
                created_at: i.created_at,
                id: i.id.0,
            },
        )
        .await
    }

    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64> {
        self.incidents()
            .count_documents(live(incident_query(filter)))
            .await
            .map_err(err)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        let docs = self
            .claim(
                self.incidents(),
                live(doc! { "next_due_at": { "$ne": Bson::Null, "$lte": date(now) } }),
                doc! { "next_due_at": 1, "_id": 1 },
                "next_due_at",
                doc! { "$set": { "next_due_at": date(plus(now, lease)) } },
                limit,
            )
            .await?;
        self.generations.bump(false, !docs.is_empty());
        docs.iter().map(decode_incident).collect()
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        let d = self
            .incidents()
            .find_one(live(doc! { "next_due_at": { "$ne": Bson::Null } }))
            .sort(doc! { "next_due_at": 1 })
            .projection(doc! { "next_due_at": 1 })
            .await
            .map_err(err)?;
        match d {
            Some(d) => d.opt_ts("next_due_at"),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl AuditStore for MongoStore {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        self.page(self.audit(), audit_query(filter), page, decode_audit, |e| {
            Cursor {
                created_at: e.created_at,
                id: e.id.0,
            }
        })
        .await
    }
}

#[async_trait]
impl NotificationStore for MongoStore {
    async fn insert_notification(&self, n: &Notification) -> Result<bool> {
        let d = doc! {
            "_id": n.id.to_string(),
            "key": &n.key,
            "user": n.user.to_string(),
            "message": &n.message,
            "kind": n.kind.as_str(),
            "incident_id": n.incident_id.map_or(Bson::Null, |i| Bson::String(i.to_string())),
            "read": n.read,
            "created_at": date(n.created_at),
        };
        match self.notifications().insert_one(d).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        self.page(
            self.notifications(),
            doc! { "user": user.to_string() },
            page,
            decode_notification,
            |n| Cursor {
                created_at: n.created_at,
                id: n.id.0,
            },
        )
        .await
    }

    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification> {
        let d = self
            .notifications()
            .find_one_and_update(
                doc! { "_id": id.to_string(), "user": user.to_string() },
                doc! { "$set": { "read": true } },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(err)?
            .ok_or(Error::NotFound {
                entity: "notification",
            })?;
        decode_notification(&d)
    }

    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool> {
        let id = format!("{channel}\u{0}{key}");
        match self
            .deliveries()
            .insert_one(doc! { "_id": id, "key": key, "channel": channel })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool> {
        let id = format!("{channel}\u{0}{key}");
        Ok(self
            .deliveries()
            .find_one(doc! { "_id": id })
            .await
            .map_err(err)?
            .is_some())
    }
}

#[async_trait]
impl OutboxStore for MongoStore {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        if self.atomicity == Atomicity::SingleDocument {
            // Interrupted changes' outbox rows become claimable here.
            self.recover().await?;
        }
        let docs = self
            .claim(
                self.outbox(),
                doc! { "delivered": false, "available_at": { "$lte": date(now) } },
                doc! { "available_at": 1, "created_at": 1, "_id": 1 },
                "available_at",
                doc! {
                    "$set": { "available_at": date(plus(now, lease)) },
                    "$inc": { "attempts": 1_i64 },
                },
                limit,
            )
            .await?;
        docs.iter().map(decode_outbox).collect()
    }

    async fn complete_outbox(&self, keys: &[String], now: Timestamp) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.outbox()
            .update_many(
                doc! { "_id": { "$in": keys }, "delivered": false },
                doc! { "$set": { "delivered": true, "delivered_at": date(now) } },
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn pending_outbox(&self) -> Result<u64> {
        self.outbox()
            .count_documents(doc! { "delivered": false })
            .await
            .map_err(err)
    }

    async fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>> {
        let d = self
            .outbox()
            .find_one(doc! { "delivered": false })
            .sort(doc! { "created_at": 1 })
            .projection(doc! { "created_at": 1 })
            .await
            .map_err(err)?;
        match d {
            Some(d) => d.opt_ts("created_at"),
            None => Ok(None),
        }
    }

    async fn prune_delivered(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<imas_core::ports::Pruned> {
        let old: Vec<Document> = self
            .outbox()
            .find(doc! { "delivered": true, "available_at": { "$lt": date(before) } })
            .sort(doc! { "available_at": 1 })
            .limit(i64::from(limit))
            .projection(doc! { "_id": 1 })
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let keys: Vec<Bson> = old
            .into_iter()
            .filter_map(|d| d.get("_id").cloned())
            .collect();
        if keys.is_empty() {
            return Ok(imas_core::ports::Pruned::default());
        }
        // Receipts first: a stop in between leaves rows whose receipts are
        // gone, which the next call prunes; no receipt outlives its row.
        let receipts = self
            .deliveries()
            .delete_many(doc! { "key": { "$in": &keys } })
            .await
            .map_err(err)?
            .deleted_count;
        let outbox = self
            .outbox()
            .delete_many(doc! { "_id": { "$in": &keys }, "delivered": true })
            .await
            .map_err(err)?
            .deleted_count;
        Ok(imas_core::ports::Pruned { outbox, receipts })
    }
}

#[cfg(test)]
mod tests {
    //! Recovery of changes interrupted between their entity write and the move-out
    //! of their side effects (single-document mode). The interrupted states are
    //! written here as a crash would leave them.

    use super::*;
    use imas_core::model::{AuditFilter, IncidentFilter, NotificationIntent, NotificationType};
    use imas_core::testkit::service_url;
    use imas_core::testkit::store::{at, incident};

    fn audit_entry(n: i64) -> AuditEntry {
        AuditEntry::new(
            AuditAction::IncidentCreated,
            Actor::System,
            None,
            format!("entry {n}"),
            at(n),
        )
    }

    #[tokio::test]
    async fn recover_finishes_interrupted_changes_once() {
        let Some(url) = service_url("MONGODB_URL") else {
            return;
        };
        let name = format!("imas_test_{}", Uuid::new_v4().simple());
        let store = MongoStore::connect_with(&url, &name, Some(Atomicity::SingleDocument))
            .await
            .expect("connect");
        let reporter = UserId::new();
        let kept = incident(reporter, "kept", at(0));
        store
            .commit(Change {
                incident: Some(IncidentWrite::Insert(kept.clone())),
                ..Change::default()
            })
            .await
            .expect("insert");
        let intent = NotificationIntent {
            key: "k-1".into(),
            user: reporter,
            message: "hello".into(),
            kind: NotificationType::Info,
            incident_id: Some(kept.id),
            created_at: at(1),
        };
        let (e1, e2, e3) = (audit_entry(1), audit_entry(2), audit_entry(3));
        // 1. An update whose entity write landed, carrying an audit entry and an
        //    outbox row, and nothing after.
        store
            .incidents()
            .update_one(
                doc! { "_id": kept.id.to_string() },
                doc! { "$push": { "_pending": {
                    "cid": "c1",
                    "audit": [audit_doc(&e1)],
                    "outbox": outbox_docs(std::slice::from_ref(&intent)).expect("outbox"),
                } } },
            )
            .await
            .expect("interrupted update");
        // 2. A change without an entity: only its journal document.
        store
            .pending_changes()
            .insert_one(doc! { "_id": "c2", "cid": "c2", "audit": [audit_doc(&e2)], "outbox": [] })
            .await
            .expect("journal");
        // 3. A delete that marked its incident and stopped.
        let gone = incident(reporter, "gone", at(0));
        let mut marked = incident_doc(&gone);
        marked.insert("_deleting", "c3");
        marked.insert(
            "_pending",
            vec![doc! { "cid": "c3", "audit": [audit_doc(&e3)], "outbox": [] }],
        );
        store
            .incidents()
            .insert_one(marked)
            .await
            .expect("interrupted delete");

        let audit_count = |s: &MongoStore| {
            let s = s.clone();
            async move {
                s.list_audit(&AuditFilter::default(), PageRequest::first(50))
                    .await
                    .expect("audit")
                    .items
                    .len()
            }
        };
        assert_eq!(audit_count(&store).await, 0);
        assert_eq!(store.pending_outbox().await.expect("pending"), 0);
        assert!(
            store.get_incident(gone.id).await.expect("get").is_none(),
            "an incident being deleted is already invisible"
        );
        assert_eq!(
            store
                .count_incidents(&IncidentFilter::default())
                .await
                .expect("count"),
            1
        );

        for _ in 0..2 {
            store.recover().await.expect("recover");
            assert_eq!(audit_count(&store).await, 3, "each entry once");
            assert_eq!(store.pending_outbox().await.expect("pending"), 1);
        }
        let left = store
            .incidents()
            .count_documents(doc! { "$or": [
                { "_pending.0": { "$exists": true } },
                { "_deleting": { "$exists": true } },
            ] })
            .await
            .expect("count");
        assert_eq!(left, 0, "no pending entry or marked incident is left");
        assert_eq!(
            store
                .pending_changes()
                .count_documents(doc! {})
                .await
                .expect("journal"),
            0
        );
        let claimed = store
            .claim_outbox(at(10), Duration::from_secs(30), 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].intent, intent);
    }
}
