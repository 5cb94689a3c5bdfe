//! Single-document mode (standalone servers, which have no transactions): the
//! entity write (the *carrier*: the user, the incident, or else the first of
//! the versioned writes: service, rotation, schedule, escalation policy)
//! carries the change's audit entries, outbox rows and other entity writes in a
//! `_pending` array of the same document (a change without a carrier writes a
//! `pending_changes` journal document instead); they are then applied
//! (idempotently) and pulled from `_pending`. The carrier write is the moment
//! the change commits: before it nothing is visible, after it everything is
//! applied, by the commit or else by [recovery](super::recovery).
//!
//! The other entity writes come in two kinds:
//!
//! - inserts of services, integrations, alerts, rotations, schedules and
//!   policies (the ones that do not carry) are *reserved* before the
//!   carrier write: inserted with a `_cid` (the change's id), which hides them
//!   from every read while their unique indexes already hold (a second open
//!   alert with the same dedup key is refused then, and the change commits
//!   nothing: its reservations are removed). Applying the change removes the
//!   `_cid`. A reservation whose change never reached its carrier write (the
//!   process stopped in between) is removed by recovery once it is older than
//!   [`RESERVATION_GRACE`](super::recovery::RESERVATION_GRACE);
//! - updates (an alert's status, a revoke, a versioned update or delete that
//!   is not the carrier) are conditional writes that cannot conflict once their
//!   target is checked to exist: they are recorded in the pending entry and
//!   applied after the carrier write (applying one twice changes nothing).
//!
//! A deleted incident or versioned entity is first marked `_deleting`
//! (invisible to reads) with its pending entries, then removed. Deleting an
//! escalation policy a service uses is refused by a read of `services` before
//! anything is written (not atomic with the delete: see the crate docs).

use imas_core::error::{Error, Result};
use imas_core::ports::{AlertWrite, Change, IncidentWrite, IntegrationWrite, UserWrite};
use mongodb::Collection;
use mongodb::bson::{Bson, Document, doc};
use uuid::Uuid;

use super::{
    ALERT_ID_TAKEN, ALERT_OPEN, AUDIT_TAKEN, EMAIL_TAKEN, GROUP_OPEN, INCIDENT_TAKEN,
    INTEGRATION_ID_TAKEN, KEY_HASH_TAKEN, Kind, Op, USER_TAKEN, Versioned, alert_status_update,
    insert_conflict, missing_or_stale, profile_update, revoke_update, upsert_outbox_row,
    versioned_writes, with_id,
};
use crate::MongoStore;
use crate::codec::{alert_doc, audit_doc, incident_doc, integration_doc, outbox_docs, user_doc};
use crate::error::{err, is_duplicate};
use crate::query::live;

/// The collections whose inserts are reserved (see the module docs).
pub(super) const RESERVED_IN: [&str; 6] = [
    "services",
    "integrations",
    "alerts",
    "rotations",
    "schedules",
    "escalation_policies",
];

/// The collections whose documents carry changes' pending entries.
pub(super) const CARRIERS_IN: [&str; 6] = [
    "users",
    "incidents",
    "services",
    "rotations",
    "schedules",
    "escalation_policies",
];

/// The collections whose deletions are marked (`_deleting`) first.
pub(super) const MARKED_IN: [&str; 5] = [
    "incidents",
    "services",
    "rotations",
    "schedules",
    "escalation_policies",
];

/// An insert reserved before the carrier write.
struct Reservation {
    coll: &'static str,
    id: String,
    doc: Document,
    id_taken: &'static str,
    index_taken: &'static str,
}

/// Where a change's entry was written with an entity: (collection, entity id).
type Carrier = (Collection<Document>, Bson);

/// Inserts `d` carrying a change's pending `entry`; a unique-index violation is
/// a `Conflict` saying which index ([`insert_conflict`]).
async fn insert_carrying(
    coll: &Collection<Document>,
    mut d: Document,
    entry: &Document,
    id_taken: &'static str,
    index_taken: &'static str,
) -> Result<Carrier> {
    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
    d.insert("_pending", vec![entry.clone()]);
    match coll.insert_one(d).await {
        Ok(_) => Ok((coll.clone(), id)),
        Err(e) if is_duplicate(&e) => {
            let id = id.as_str().unwrap_or_default().to_string();
            Err(insert_conflict(coll, &id, id_taken, index_taken).await)
        }
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
        let versioned = versioned_writes(change);
        // Checked before anything is written (the engine checked first; a
        // service write landing between this read and the delete is not seen).
        for w in versioned.iter().filter(|w| w.deletes_policy()) {
            self.policy_in_use(&w.id, None).await?;
        }
        // Without a user or incident write, the first versioned write carries.
        let (carried, secondary) = if change.user.is_none() && change.incident.is_none() {
            match versioned.split_first() {
                Some((first, rest)) => (Some(first), rest),
                None => (None, &versioned[..]),
            }
        } else {
            (None, &versioned[..])
        };
        let (reservations, redo) = self.secondary_writes(change, secondary).await?;
        let cid = Uuid::now_v7().to_string();
        let entry = doc! {
            "cid": &cid,
            "audit": change.audit.iter().map(audit_doc).collect::<Vec<_>>(),
            "outbox": outbox_docs(&change.outbox)?,
            "reserved": reservations
                .iter()
                .map(|r| doc! { "coll": r.coll, "doc": r.doc.clone() })
                .collect::<Vec<_>>(),
            "redo": redo,
        };
        let has_side_effects = !change.audit.is_empty()
            || !change.outbox.is_empty()
            || !reservations.is_empty()
            || !entry.get_array("redo").map_or(true, Vec::is_empty);
        if let Err(e) = self.reserve(&cid, &reservations).await {
            self.release(&cid).await;
            return Err(e);
        }
        let (carriers, deleting) = match self.write_carriers(change, carried, &cid, &entry).await {
            Ok(written) => written,
            Err(e) => {
                self.release(&cid).await;
                return Err(e);
            }
        };
        if carriers.is_empty() {
            if has_side_effects {
                let mut journal = entry.clone();
                journal.insert("_id", &cid);
                if let Err(e) = self.pending_changes().insert_one(journal).await {
                    self.release(&cid).await;
                    return Err(err(e));
                }
                self.move_out(&entry).await?;
                self.pending_changes()
                    .delete_one(doc! { "_id": &cid })
                    .await
                    .map_err(err)?;
            }
        } else {
            if has_side_effects {
                self.move_out(&entry).await?;
            }
            for (coll, id) in carriers {
                coll.update_one(
                    doc! { "_id": id },
                    doc! { "$pull": { "_pending": { "cid": &cid } } },
                )
                .await
                .map_err(err)?;
            }
        }
        if let Some((coll, id)) = deleting {
            coll.delete_one(doc! { "_id": id, "_deleting": &cid })
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    /// The inserts to reserve and the conditional updates to apply after the
    /// carrier write, each update's target checked first (`NotFound`, or a
    /// stale version, fail the change before anything is written).
    async fn secondary_writes(
        &self,
        change: &Change,
        versioned: &[Versioned],
    ) -> Result<(Vec<Reservation>, Vec<Document>)> {
        let mut reserved = Vec::new();
        let mut redo = Vec::new();
        for w in versioned {
            let k = w.kind;
            let id = &w.id;
            match &w.op {
                Op::Insert(d) => reserved.push(Reservation {
                    coll: k.coll,
                    id: id.clone(),
                    doc: d.clone(),
                    id_taken: k.id_taken,
                    index_taken: k.index_taken,
                }),
                Op::Update { doc: d, expected } => {
                    self.check_version(k, id, *expected).await?;
                    let mut set = d.clone();
                    set.remove("_id");
                    redo.push(doc! {
                        "coll": k.coll,
                        "filter": { "_id": id, "version": expected },
                        "update": { "$set": set },
                    });
                }
                Op::Delete { expected } => {
                    self.check_version(k, id, *expected).await?;
                    redo.push(doc! {
                        "coll": k.coll,
                        "filter": { "_id": id, "version": expected },
                        "delete": true,
                    });
                }
            }
        }
        for w in &change.integrations {
            match w {
                IntegrationWrite::Insert(i) => reserved.push(Reservation {
                    coll: "integrations",
                    id: i.id.to_string(),
                    doc: integration_doc(i),
                    id_taken: INTEGRATION_ID_TAKEN,
                    index_taken: KEY_HASH_TAKEN,
                }),
                IntegrationWrite::Revoke { id, at } => {
                    let id = id.to_string();
                    if !reserved.iter().any(|r| r.id == id) {
                        self.check_exists(&self.integrations(), "integration", &id)
                            .await?;
                    }
                    let (condition, update) = revoke_update(*at);
                    redo.push(doc! {
                        "coll": "integrations",
                        "filter": with_id(condition, &id),
                        "update": update,
                    });
                }
            }
        }
        for w in &change.alerts {
            match w {
                AlertWrite::Insert(a) => reserved.push(Reservation {
                    coll: "alerts",
                    id: a.id.to_string(),
                    doc: alert_doc(a)?,
                    id_taken: ALERT_ID_TAKEN,
                    index_taken: ALERT_OPEN,
                }),
                AlertWrite::SetStatus { id, status, at } => {
                    let id = id.to_string();
                    if !reserved.iter().any(|r| r.id == id) {
                        self.check_exists(&self.alerts(), "alert", &id).await?;
                    }
                    if let Some((condition, update)) = alert_status_update(*status, *at) {
                        redo.push(doc! {
                            "coll": "alerts",
                            "filter": with_id(condition, &id),
                            "update": update,
                        });
                    }
                }
            }
        }
        Ok((reserved, redo))
    }

    /// `NotFound` unless `coll` has a document `id`.
    async fn check_exists(
        &self,
        coll: &Collection<Document>,
        entity: &'static str,
        id: &str,
    ) -> Result<()> {
        match coll.find_one(doc! { "_id": id }).await.map_err(err)? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound { entity }),
        }
    }

    /// `NotFound` or a conflict unless the `k` entity `id` is live at
    /// `version`.
    async fn check_version(&self, k: Kind, id: &str, version: i64) -> Result<()> {
        let coll = self.db.collection::<Document>(k.coll);
        let found = coll
            .find_one(live(doc! { "_id": id, "version": version }))
            .await
            .map_err(err)?;
        match found {
            Some(_) => Ok(()),
            None => Err(self.missing_or_stale_now(&coll, k.entity, id).await),
        }
    }

    /// Inserts the reservations, hidden by `_cid`; the first one a unique
    /// index refuses is the change's conflict.
    async fn reserve(&self, cid: &str, reservations: &[Reservation]) -> Result<()> {
        for r in reservations {
            let coll = self.db.collection::<Document>(r.coll);
            let mut d = r.doc.clone();
            d.insert("_cid", cid);
            match coll.insert_one(d).await {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {
                    return Err(insert_conflict(&coll, &r.id, r.id_taken, r.index_taken).await);
                }
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }

    /// Removes the reservations of a change that did not commit (what fails
    /// here, recovery removes later).
    async fn release(&self, cid: &str) {
        for name in RESERVED_IN {
            if let Err(e) = self
                .db
                .collection::<Document>(name)
                .delete_many(doc! { "_cid": cid })
                .await
            {
                tracing::warn!(error = %e, "releasing the reservations of a failed change");
            }
        }
    }

    /// The carrier writes of a change (its user, incident and, when neither,
    /// its first versioned write, `carried`), each carrying `entry`, and the
    /// document being deleted.
    async fn write_carriers(
        &self,
        change: &Change,
        carried: Option<&Versioned>,
        cid: &str,
        entry: &Document,
    ) -> Result<(Vec<Carrier>, Option<Carrier>)> {
        let mut carriers = Vec::new();
        let mut deleting = None;
        match &change.user {
            Some(UserWrite::Insert(u)) => {
                carriers.push(
                    insert_carrying(&self.users(), user_doc(u), entry, USER_TAKEN, USER_TAKEN)
                        .await?,
                );
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
                carriers.push((self.users(), Bson::String(id.to_string())));
            }
            Some(UserWrite::UpdateProfile(u)) => {
                let done = self
                    .users()
                    .update_one(
                        doc! { "_id": u.id.to_string() },
                        doc! { "$set": profile_update(u), "$push": { "_pending": entry.clone() } },
                    )
                    .await
                    .map_err(|e| {
                        if is_duplicate(&e) {
                            Error::conflict(EMAIL_TAKEN)
                        } else {
                            err(e)
                        }
                    })?;
                if done.matched_count == 0 {
                    return Err(Error::NotFound { entity: "user" });
                }
                carriers.push((self.users(), Bson::String(u.id.to_string())));
            }
            None => {}
        }
        match &change.incident {
            Some(IncidentWrite::Insert(i)) => {
                let d = incident_doc(i);
                carriers.push(
                    insert_carrying(&self.incidents(), d, entry, INCIDENT_TAKEN, GROUP_OPEN)
                        .await?,
                );
            }
            Some(IncidentWrite::Update {
                incident,
                expected_version,
            }) => {
                let id = incident.id.to_string();
                let mut set = incident_doc(incident);
                set.remove("_id");
                self.update_carrying(
                    &self.incidents(),
                    "incident",
                    &id,
                    *expected_version,
                    set,
                    entry,
                    GROUP_OPEN,
                )
                .await?;
                carriers.push((self.incidents(), Bson::String(id)));
            }
            Some(IncidentWrite::Delete {
                id,
                expected_version,
            }) => {
                let id = id.to_string();
                let mark = doc! { "_deleting": cid, "next_due_at": Bson::Null };
                self.update_carrying(
                    &self.incidents(),
                    "incident",
                    &id,
                    *expected_version,
                    mark,
                    entry,
                    GROUP_OPEN,
                )
                .await?;
                carriers.push((self.incidents(), Bson::String(id.clone())));
                deleting = Some((self.incidents(), Bson::String(id)));
            }
            None => {}
        }
        if let Some(w) = carried {
            let k = w.kind;
            let coll = self.db.collection::<Document>(k.coll);
            let id = w.id.as_str();
            match &w.op {
                Op::Insert(d) => {
                    let d = d.clone();
                    carriers
                        .push(insert_carrying(&coll, d, entry, k.id_taken, k.index_taken).await?);
                }
                Op::Update { doc: d, expected } => {
                    let mut set = d.clone();
                    set.remove("_id");
                    self.update_carrying(&coll, k.entity, id, *expected, set, entry, k.index_taken)
                        .await?;
                    carriers.push((coll, Bson::String(id.to_string())));
                }
                Op::Delete { expected } => {
                    let mark = doc! { "_deleting": cid };
                    self.update_carrying(
                        &coll,
                        k.entity,
                        id,
                        *expected,
                        mark,
                        entry,
                        k.index_taken,
                    )
                    .await?;
                    carriers.push((coll.clone(), Bson::String(id.to_string())));
                    deleting = Some((coll, Bson::String(id.to_string())));
                }
            }
        }
        Ok((carriers, deleting))
    }

    /// Sets `set` on the live document `id` of `coll` at `expected_version`,
    /// pushing `entry`; `NotFound` or a stale-version conflict when it matches
    /// nothing, `index_taken` when a unique index refuses the new values.
    #[allow(clippy::too_many_arguments)]
    async fn update_carrying(
        &self,
        coll: &Collection<Document>,
        entity: &'static str,
        id: &str,
        expected_version: i64,
        set: Document,
        entry: &Document,
        index_taken: &'static str,
    ) -> Result<()> {
        let done = coll
            .update_one(
                live(doc! { "_id": id, "version": expected_version }),
                doc! { "$set": set, "$push": { "_pending": entry.clone() } },
            )
            .await
            .map_err(|e| {
                if is_duplicate(&e) {
                    Error::conflict(index_taken)
                } else {
                    err(e)
                }
            })?;
        if done.matched_count == 0 {
            return Err(self.missing_or_stale_now(coll, entity, id).await);
        }
        Ok(())
    }

    /// [`missing_or_stale`] for a live (not being deleted) document.
    async fn missing_or_stale_now(
        &self,
        coll: &Collection<Document>,
        entity: &'static str,
        id: &str,
    ) -> Error {
        let found = coll.find_one(live(doc! { "_id": id })).await;
        missing_or_stale(entity, id, found)
    }

    /// Applies a pending entry: makes its reserved inserts visible, applies its
    /// conditional updates, and writes its audit entries and outbox rows to
    /// their collections; a second run changes nothing.
    pub(super) async fn move_out(&self, entry: &Document) -> Result<()> {
        let docs = |k: &str| -> Vec<Document> {
            entry
                .get_array(k)
                .map(|a| a.iter().filter_map(|b| b.as_document().cloned()).collect())
                .unwrap_or_default()
        };
        let cid = entry.get("cid").cloned().unwrap_or(Bson::Null);
        for r in docs("reserved") {
            let (Ok(name), Ok(d)) = (r.get_str("coll"), r.get_document("doc")) else {
                continue;
            };
            let coll = self.db.collection::<Document>(name);
            let id = d.get("_id").cloned().unwrap_or(Bson::Null);
            let done = coll
                .update_one(
                    doc! { "_id": id.clone(), "_cid": cid.clone() },
                    doc! { "$unset": { "_cid": "" } },
                )
                .await
                .map_err(err)?;
            if done.matched_count == 0
                && coll
                    .find_one(doc! { "_id": id.clone() })
                    .await
                    .map_err(err)?
                    .is_none()
            {
                // Recovery took the reservation for abandoned (the change
                // stalled past the grace period): it is written again.
                match coll.insert_one(d.clone()).await {
                    Ok(_) => {}
                    Err(e) if is_duplicate(&e) => {
                        tracing::warn!(collection = name, id = %id, "a reserved insert lost its unique key while its change stalled");
                    }
                    Err(e) => return Err(err(e)),
                }
            }
        }
        for w in docs("redo") {
            let (Ok(name), Ok(filter)) = (w.get_str("coll"), w.get_document("filter")) else {
                continue;
            };
            let coll = self.db.collection::<Document>(name);
            if w.get_bool("delete").unwrap_or(false) {
                coll.delete_one(filter.clone()).await.map_err(err)?;
            } else if let Ok(update) = w.get_document("update") {
                match coll.update_one(filter.clone(), update.clone()).await {
                    Ok(_) => {}
                    Err(e) if is_duplicate(&e) => {
                        tracing::warn!(
                            collection = name,
                            "a pending update was refused by a unique index"
                        );
                    }
                    Err(e) => return Err(err(e)),
                }
            }
        }
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
