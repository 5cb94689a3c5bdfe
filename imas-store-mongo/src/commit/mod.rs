//! The atomic commit of a domain change (entity + audit entries + outbox rows),
//! in one of two ways ([`Atomicity`]): a multi-document transaction
//! ([`transaction`]) or single-document writes with a journal
//! ([`single_document`]), whose interrupted changes [`recovery`] finishes.

mod recovery;
mod single_document;
mod transaction;

use async_trait::async_trait;
use imas_core::error::{Error, Result};
use imas_core::model::IncidentId;
use imas_core::ports::{Change, ChangeStore, Generation, run_detached};
use mongodb::bson::{Bson, Document, doc};
use mongodb::{ClientSession, Collection};

use crate::error::err;
use crate::{Atomicity, BACKEND, MongoStore};

/// The conflict of a user insert whose username or email is taken.
const USER_TAKEN: &str = "username or email already taken";
/// The conflict of an incident insert whose id exists.
const INCIDENT_TAKEN: &str = "incident id already exists";
/// The conflict of an audit entry whose id exists.
const AUDIT_TAKEN: &str = "audit entry id already exists";

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
        match self.atomicity {
            Atomicity::SingleDocument => self.commit_single_document(&change).await,
            Atomicity::Transactions => self.commit_in_transaction(&change).await,
        }
    }
}

/// Why a versioned write of incident `id` matched nothing: `found` is the
/// incident read again (with the filter of the write, without its version).
fn missing_or_stale(id: IncidentId, found: mongodb::error::Result<Option<Document>>) -> Error {
    match found {
        Ok(None) => Error::NotFound { entity: "incident" },
        Ok(Some(_)) => Error::conflict(format!(
            "incident {id} was modified concurrently; reload and retry"
        )),
        Err(e) => err(e),
    }
}

/// Inserts an outbox row unless its key is (or was) in the outbox, in
/// `session`'s transaction if one is given.
async fn upsert_outbox_row(
    outbox: &Collection<Document>,
    row: Document,
    session: Option<&mut ClientSession>,
) -> Result<()> {
    let key = row.get("_id").cloned().unwrap_or(Bson::Null);
    let write = outbox
        .update_one(doc! { "_id": key }, doc! { "$setOnInsert": row })
        .upsert(true);
    match session {
        Some(s) => write.session(s).await,
        None => write.await,
    }
    .map_err(err)?;
    Ok(())
}
