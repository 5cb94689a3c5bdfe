//! Transaction mode (replica sets, sharded clusters): a change's writes in one
//! multi-document transaction, run again while it loses a write conflict to a
//! concurrent one, and its commit repeated while its outcome is unknown.

use std::time::Duration;

use imas_core::error::{Error, Result};
use imas_core::ports::{AlertWrite, Change, IncidentWrite, IntegrationWrite, UserWrite};
use mongodb::bson::{Document, doc};
use mongodb::{ClientSession, Collection};

use super::{
    ALERT_ID_TAKEN, ALERT_OPEN, AUDIT_TAKEN, EMAIL_TAKEN, GROUP_OPEN, INCIDENT_TAKEN,
    INTEGRATION_ID_TAKEN, KEY_HASH_TAKEN, Op, USER_TAKEN, Versioned, alert_status_update,
    insert_conflict, missing_or_stale, profile_update, revoke_update, upsert_outbox_row,
    versioned_writes, with_id,
};
use crate::MongoStore;
use crate::codec::{alert_doc, audit_doc, incident_doc, integration_doc, outbox_docs, user_doc};
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
            Some(UserWrite::UpdateProfile(u)) => {
                let done = self
                    .users()
                    .update_one(
                        doc! { "_id": u.id.to_string() },
                        doc! { "$set": profile_update(u) },
                    )
                    .session(&mut *s)
                    .await
                    .map_err(|e| duplicate(e, EMAIL_TAKEN))?;
                if done.matched_count == 0 {
                    return Err(Error::NotFound { entity: "user" });
                }
            }
            None => {}
        }
        match &change.incident {
            Some(IncidentWrite::Insert(i)) => {
                let id = i.id.to_string();
                self.insert_in(
                    s,
                    &self.incidents(),
                    incident_doc(i),
                    &id,
                    INCIDENT_TAKEN,
                    GROUP_OPEN,
                )
                .await?;
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
                    .map_err(|e| duplicate(e, GROUP_OPEN))?;
                if done.matched_count == 0 {
                    return Err(self
                        .missing_or_stale_in(
                            s,
                            &self.incidents(),
                            "incident",
                            &incident.id.to_string(),
                        )
                        .await);
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
                    return Err(self
                        .missing_or_stale_in(s, &self.incidents(), "incident", &id.to_string())
                        .await);
                }
            }
            None => {}
        }
        // The service write (first of the versioned ones) in its place, the
        // others after the alerts.
        let (services, others): (Vec<_>, Vec<_>) = versioned_writes(change)
            .into_iter()
            .partition(|w| w.kind.coll == "services");
        for w in &services {
            self.apply_versioned(s, w).await?;
        }
        for w in &change.integrations {
            match w {
                IntegrationWrite::Insert(i) => {
                    let id = i.id.to_string();
                    let d = integration_doc(i);
                    self.insert_in(
                        s,
                        &self.integrations(),
                        d,
                        &id,
                        INTEGRATION_ID_TAKEN,
                        KEY_HASH_TAKEN,
                    )
                    .await?;
                }
                IntegrationWrite::Revoke { id, at } => {
                    let id = id.to_string();
                    let write = Some(revoke_update(*at));
                    self.update_existing(s, &self.integrations(), "integration", &id, write)
                        .await?;
                }
            }
        }
        for w in &change.alerts {
            match w {
                AlertWrite::Insert(a) => {
                    let id = a.id.to_string();
                    self.insert_in(
                        s,
                        &self.alerts(),
                        alert_doc(a)?,
                        &id,
                        ALERT_ID_TAKEN,
                        ALERT_OPEN,
                    )
                    .await?;
                }
                AlertWrite::SetStatus { id, status, at } => {
                    let id = id.to_string();
                    let write = alert_status_update(*status, *at);
                    self.update_existing(s, &self.alerts(), "alert", &id, write)
                        .await?;
                }
            }
        }
        for w in &others {
            self.apply_versioned(s, w).await?;
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

    /// A versioned entity's write, inside `session`'s transaction. Deleting
    /// an escalation policy a service uses is a conflict (read in the
    /// transaction, after the engine's own check).
    async fn apply_versioned(&self, s: &mut ClientSession, w: &Versioned) -> Result<()> {
        let k = w.kind;
        let coll = self.db.collection::<Document>(k.coll);
        let id = w.id.as_str();
        let matched = match &w.op {
            Op::Insert(d) => {
                return self
                    .insert_in(s, &coll, d.clone(), id, k.id_taken, k.index_taken)
                    .await;
            }
            Op::Update { doc: d, expected } => {
                coll.replace_one(doc! { "_id": id, "version": expected }, d.clone())
                    .session(&mut *s)
                    .await
                    .map_err(|e| {
                        if is_duplicate(&e) {
                            Error::conflict(k.index_taken)
                        } else {
                            err(e)
                        }
                    })?
                    .matched_count
            }
            Op::Delete { expected } => {
                if w.deletes_policy() {
                    self.policy_in_use(id, Some(&mut *s)).await?;
                }
                coll.delete_one(doc! { "_id": id, "version": expected })
                    .session(&mut *s)
                    .await
                    .map_err(err)?
                    .deleted_count
            }
        };
        if matched == 0 {
            return Err(self.missing_or_stale_in(s, &coll, k.entity, id).await);
        }
        Ok(())
    }

    /// Inserts `d` (id `id`) into `coll` in the transaction; a unique-index
    /// refusal is a conflict saying which index ([`insert_conflict`]).
    async fn insert_in(
        &self,
        s: &mut ClientSession,
        coll: &Collection<Document>,
        d: Document,
        id: &str,
        id_taken: &'static str,
        index_taken: &'static str,
    ) -> Result<()> {
        match coll.insert_one(d).session(&mut *s).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => {
                Err(insert_conflict(coll, id, id_taken, index_taken).await)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Applies the conditional write `(condition, update)` to `entity` `id` if
    /// it matches `condition`; one that does not is left as it is, one that
    /// does not exist is `NotFound`.
    async fn update_existing(
        &self,
        s: &mut ClientSession,
        coll: &Collection<Document>,
        entity: &'static str,
        id: &str,
        write: Option<(Document, Document)>,
    ) -> Result<()> {
        let matched = match write {
            Some((condition, update)) => {
                coll.update_one(with_id(condition, id), update)
                    .session(&mut *s)
                    .await
                    .map_err(err)?
                    .matched_count
            }
            None => 0,
        };
        if matched == 0 {
            let found = coll
                .find_one(doc! { "_id": id })
                .session(&mut *s)
                .await
                .map_err(err)?;
            if found.is_none() {
                return Err(Error::NotFound { entity });
            }
        }
        Ok(())
    }

    /// [`missing_or_stale`], read inside the transaction.
    async fn missing_or_stale_in(
        &self,
        s: &mut ClientSession,
        coll: &Collection<Document>,
        entity: &'static str,
        id: &str,
    ) -> Error {
        let found = coll.find_one(doc! { "_id": id }).session(&mut *s).await;
        missing_or_stale(entity, id, found)
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
