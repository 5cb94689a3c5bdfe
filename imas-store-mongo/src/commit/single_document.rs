//! Single-document mode (standalone servers, which have no transactions): the
//! entity write carries the change's audit entries and outbox rows in a
//! `_pending` array of the same document (a change without an entity writes a
//! `pending_changes` journal document); they are then moved to their collections
//! (idempotently: audit entries by id, outbox rows by key) and pulled from
//! `_pending`. A deleted incident is first marked `_deleting` (invisible to
//! reads) with its pending entries, then removed.

use imas_core::error::{Error, Result};
use imas_core::model::IncidentId;
use imas_core::ports::{Change, IncidentWrite, UserWrite};
use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};
use uuid::Uuid;

use super::{AUDIT_TAKEN, INCIDENT_TAKEN, USER_TAKEN, missing_or_stale, upsert_outbox_row};
use crate::MongoStore;
use crate::codec::{audit_doc, incident_doc, outbox_docs, user_doc};
use crate::error::{err, is_duplicate};
use crate::query::live;

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

impl MongoStore {
    /// Commits `change` through single-document writes (see the module docs).
    pub(super) async fn commit_single_document(&self, change: &Change) -> Result<()> {
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
                return Err(Error::conflict(AUDIT_TAKEN));
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
                insert_carrying(&self.users(), user_doc(u), &entry, USER_TAKEN).await?;
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
                insert_carrying(&self.incidents(), incident_doc(i), &entry, INCIDENT_TAKEN).await?;
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

    /// [`missing_or_stale`] for a live (not being deleted) incident.
    async fn missing_or_stale_now(&self, id: IncidentId) -> Error {
        let found = self
            .incidents()
            .find_one(live(doc! { "_id": id.to_string() }))
            .await;
        missing_or_stale(id, found)
    }

    /// Writes a pending entry's audit entries and outbox rows to their
    /// collections; a second run changes nothing.
    pub(super) async fn move_out(&self, entry: &Document) -> Result<()> {
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
            upsert_outbox_row(&self.outbox(), row, None).await?;
        }
        Ok(())
    }
}
