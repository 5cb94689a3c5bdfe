//! [`MongoStore`]: every store port of `imas-core` on MongoDB (the official
//! `mongodb` 3.x driver), for users of the original IMAS's database.
//!
//! Collections (`connect` creates them and their indexes): `users` (unique
//! `username` and `email`), `incidents` (the due-time index, list and filter
//! indexes, and a `search` array of terms for full-text search without a text
//! index), `audit_log`, `notifications` (unique `key`), `channel_deliveries`,
//! `outbox`, `services` (unique `name`), `integrations` (unique `key_hash`),
//! `alerts` (at most one open alert per service and dedup key: a partial unique
//! index; `incidents` likewise hold at most one open incident per service and
//! Alertmanager group key), `rotations`, `schedules` (rules and overrides
//! embedded) and `escalation_policies` (steps and targets embedded). Instants
//! are BSON dates (milliseconds), ids UUID strings, so keyset pagination on
//! `(created_at, _id)` orders as in the other stores. Documents written before
//! a field existed decode with its default (a user's time zone UTC, no
//! escalation policy, step 0).
//!
//! A domain change (user, incident, service, integration, alert, rotation,
//! schedule and escalation-policy writes + audit entries + outbox rows)
//! commits atomically in one of two ways ([`Atomicity`]), chosen at connect
//! time from the server's `hello` answer:
//!
//! - on a replica set or a sharded cluster, in one multi-document transaction;
//! - on a standalone server, which has no transactions, through single-document
//!   atomicity: the entity write carries the change's audit entries and outbox
//!   rows in a `_pending` array of the same document (a change without an entity
//!   goes into a `pending_changes` document; the carrier is the user or incident
//!   write, else the first of the service, rotation, schedule and policy writes;
//!   other inserts of services, integrations, alerts, rotations, schedules and
//!   policies are reserved, hidden, before it, so that their unique indexes
//!   decide before anything commits); they are then moved to their
//!   collections (idempotently: audit entries by id, outbox rows by key) and
//!   pulled from `_pending`. A change interrupted between the two is finished by
//!   [`MongoStore::recover`], which runs at connect time and before every outbox
//!   claim, so nothing committed is lost. A deleted incident (service,
//!   rotation, schedule, policy) is first marked (`_deleting`, invisible to
//!   reads) with its pending entries, then removed.
//!
//! Deleting an escalation policy that a service names is a conflict. The engine
//! checks first; the store checks again: in a transaction, inside it (a read
//! of `services` on its `escalation_policy_id` index); in single-document
//! mode, just before the change's first write. Neither closes the window of a
//! concurrent service write naming the policy (no write of the two touches the
//! other's document), so that race is the engine's "the policy has ended".
//!
//! Due-incident and outbox claims are conditional `findOneAndUpdate`s: a document
//! is claimed only if its due time is still the one read, so two nodes never take
//! the same one.
//!
//! Each store watches its database's change stream for writes to `users` and
//! `incidents` (and `alerts`, as incident writes), so its
//! [generation](imas_core::ports::ChangeStore::generation) moves with every
//! node's changes (its own at once, when they commit). Change streams need a
//! replica set or a sharded cluster: on a standalone server, and while the stream
//! is down, the store reports no generation and the engine reads through.
//!
//! Modules, one per concern: `codec` (document <-> model), `query` (filters,
//! keyset pages, search, claims), `indexes`, `commit` (transaction mode,
//! single-document mode and its recovery), `change_stream`, `error`, and one
//! file per store port (`users`, `incidents`, `services`, `integrations`,
//! `alerts`, `rotations`, `schedules`, `escalation_policies`, `audit`,
//! `notifications`, `outbox`).

mod alerts;
mod audit;
mod change_stream;
mod codec;
mod commit;
mod error;
mod escalation_policies;
mod incidents;
mod indexes;
mod integrations;
mod notifications;
mod outbox;
mod query;
mod rotations;
mod schedules;
mod services;
mod users;

use std::sync::Arc;

use imas_core::error::Result;
use imas_core::ports::Generations;
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use crate::error::{MongoError, err};

const BACKEND: &str = "mongodb";

/// The database IMAS uses when the URL names none.
pub const DEFAULT_DATABASE: &str = "imas";

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

impl MongoStore {
    /// Connects to the server a `mongodb://...` URL names, in the database the URL
    /// names (default [`DEFAULT_DATABASE`]), and creates the indexes.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = client_options(url).await?;
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
        let options = client_options(url).await?;
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
        tokio::spawn(change_stream::follow_changes(
            db.clone(),
            Arc::downgrade(&generations),
        ));
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

    /// The database, for hosts that want to inspect it.
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub(crate) fn users(&self) -> Collection<Document> {
        self.db.collection("users")
    }
    pub(crate) fn incidents(&self) -> Collection<Document> {
        self.db.collection("incidents")
    }
    pub(crate) fn audit(&self) -> Collection<Document> {
        self.db.collection("audit_log")
    }
    pub(crate) fn notifications(&self) -> Collection<Document> {
        self.db.collection("notifications")
    }
    pub(crate) fn deliveries(&self) -> Collection<Document> {
        self.db.collection("channel_deliveries")
    }
    pub(crate) fn outbox(&self) -> Collection<Document> {
        self.db.collection("outbox")
    }
    pub(crate) fn services(&self) -> Collection<Document> {
        self.db.collection("services")
    }
    pub(crate) fn integrations(&self) -> Collection<Document> {
        self.db.collection("integrations")
    }
    pub(crate) fn alerts(&self) -> Collection<Document> {
        self.db.collection("alerts")
    }
    pub(crate) fn rotations(&self) -> Collection<Document> {
        self.db.collection("rotations")
    }
    pub(crate) fn schedules(&self) -> Collection<Document> {
        self.db.collection("schedules")
    }
    pub(crate) fn escalation_policies(&self) -> Collection<Document> {
        self.db.collection("escalation_policies")
    }
    pub(crate) fn pending_changes(&self) -> Collection<Document> {
        self.db.collection("pending_changes")
    }
}

/// The driver's options from a `mongodb://...` URL.
async fn client_options(url: &str) -> Result<ClientOptions> {
    Ok(ClientOptions::parse(url).await.map_err(MongoError::Url)?)
}
