//! Transaction mode (replica sets, sharded clusters): a change's writes in one
//! multi-document transaction, run again while it loses a write conflict to a
//! concurrent one, and its commit repeated while its outcome is unknown.

use std::time::Duration;

use imas_core::error::{Error, Result};
use imas_core::model::IncidentId;
use imas_core::ports::{Change, IncidentWrite, UserWrite};
use mongodb::ClientSession;
use mongodb::bson::doc;

use super::{AUDIT_TAKEN, INCIDENT_TAKEN, USER_TAKEN, missing_or_stale, upsert_outbox_row};
use crate::MongoStore;
use crate::codec::{audit_doc, incident_doc, outbox_docs, user_doc};
use crate::error::{err, is_duplicate, is_transient, is_unknown_commit};

/// How many times a change is tried when its transaction keeps losing write
/// conflicts.
const TRANSACTION_ATTEMPTS: u64 = 20;

impl MongoStore {
    /// Commits `change` in a transaction of its own.
    pub(super) async fn commit_in_transaction(&self, change: &Change) -> Result<()> {
        let mut s = self.client.start_session().await.map_err(err)?;
        let mut attempt = 1;
        loop {
            s.start_transaction().await.map_err(err)?;
            let outcome = match self.apply(&mut s, change).await {
                Ok(()) => commit_transaction(&mut s).await,
                Err(e) => {
                    if let Err(abort) = s.abort_transaction().await {
                        tracing::debug!(error = %abort, "aborting a failed change");
                    }
                    Err(e)
                }
            };
            // A transaction that lost a write conflict to a concurrent one did
            // nothing; the server says so with a label (or the WriteConflict
            // code), and it is run again.
            match outcome {
                Err(e) if attempt < TRANSACTION_ATTEMPTS && is_transient(&e) => {
                    tokio::time::sleep(Duration::from_millis(2 * attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
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
                    .map_err(|e| duplicate(e, USER_TAKEN))?;
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
                    .map_err(|e| duplicate(e, INCIDENT_TAKEN))?;
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
                    return Err(self.missing_or_stale_in(s, incident.id).await);
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
                    return Err(self.missing_or_stale_in(s, *id).await);
                }
            }
            None => {}
        }
        if !change.audit.is_empty() {
            self.audit()
                .insert_many(change.audit.iter().map(audit_doc))
                .session(&mut *s)
                .await
                .map_err(|e| duplicate(e, AUDIT_TAKEN))?;
        }
        for row in outbox_docs(&change.outbox)? {
            // An intent whose key is (or was) in the outbox is skipped.
            upsert_outbox_row(&self.outbox(), row, Some(&mut *s)).await?;
        }
        Ok(())
    }

    /// [`missing_or_stale`], read inside the transaction.
    async fn missing_or_stale_in(&self, s: &mut ClientSession, id: IncidentId) -> Error {
        let found = self
            .incidents()
            .find_one(doc! { "_id": id.to_string() })
            .session(&mut *s)
            .await;
        missing_or_stale(id, found)
    }
}

/// Commits the session's transaction, again while the server cannot say
/// whether it committed (committing twice is safe).
async fn commit_transaction(s: &mut ClientSession) -> Result<()> {
    let mut attempt = 1;
    loop {
        match s.commit_transaction().await {
            Err(e) if attempt < TRANSACTION_ATTEMPTS && is_unknown_commit(&e) => {
                attempt += 1;
            }
            other => return other.map_err(err),
        }
    }
}
