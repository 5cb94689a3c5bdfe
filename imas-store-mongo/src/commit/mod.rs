//! The atomic commit of a domain change (entity writes + audit entries + outbox
//! rows), in one of two ways ([`Atomicity`]): a multi-document transaction
//! ([`transaction`]) or single-document writes with a journal
//! ([`single_document`]), whose interrupted changes [`recovery`] finishes.
//!
//! Both modes apply a change's writes in the order of [`Change`]: user,
//! incident, service, integrations, alerts, rotation, schedule, escalation
//! policy, audit, outbox. The writes of the versioned entities (services,
//! rotations, schedules, escalation policies: insert, replace at a version,
//! delete at a version) are one shape, [`Versioned`], in both modes. The
//! conditional writes both modes share (an alert's status change, a revoke)
//! and the conflicts of unique indexes are here.

mod recovery;
mod single_document;
mod transaction;

use async_trait::async_trait;
use imas_core::error::{Error, Result};
use imas_core::model::{AlertStatus, Timestamp, User};
use imas_core::ports::{
    Change, ChangeStore, EscalationPolicyWrite, Generation, RotationWrite, ScheduleWrite,
    ServiceWrite, run_detached,
};
use mongodb::bson::{Bson, Document, doc};
use mongodb::{ClientSession, Collection};

use crate::codec::{escalation_policy_doc, rotation_doc, schedule_doc, service_doc};
use crate::error::err;
use crate::{Atomicity, BACKEND, MongoStore};

/// The conflict of a user insert whose username or email is taken.
const USER_TAKEN: &str = "username or email already taken";
/// The conflict of a profile update to an email another user has.
const EMAIL_TAKEN: &str = "email already registered";
/// The conflict of a rotation insert whose id exists.
const ROTATION_ID_TAKEN: &str = "rotation id already exists";
/// The conflict of a schedule insert whose id exists.
const SCHEDULE_ID_TAKEN: &str = "schedule id already exists";
/// The conflict of an escalation policy insert whose id exists.
const POLICY_ID_TAKEN: &str = "escalation policy id already exists";
/// The conflict of an incident insert whose id exists.
const INCIDENT_TAKEN: &str = "incident id already exists";
/// The conflict of an audit entry whose id exists.
const AUDIT_TAKEN: &str = "audit entry id already exists";
/// The conflict of an incident insert or update whose service has another open
/// incident with its group key.
const GROUP_OPEN: &str = "the service already has an open incident with this group key \
     (unique index incidents_open_group)";
/// The conflict of a service insert whose id exists.
const SERVICE_ID_TAKEN: &str = "service id already exists";
/// The conflict of a service insert or rename to a name another service has.
const SERVICE_NAME_TAKEN: &str =
    "a service with this name already exists (unique index services_name)";
/// The conflict of an integration insert whose id exists.
const INTEGRATION_ID_TAKEN: &str = "integration id already exists";
/// The conflict of an integration insert whose key hash another one has.
const KEY_HASH_TAKEN: &str =
    "an integration with this key hash already exists (unique index integrations_key_hash)";
/// The conflict of an alert insert whose id exists.
const ALERT_ID_TAKEN: &str = "alert id already exists";
/// The conflict of an alert insert whose service has an open alert with its
/// dedup key.
const ALERT_OPEN: &str = "the service already has an open alert with this dedup key \
     (unique index alerts_open_dedup)";

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
        run_detached(BACKEND, async move {
            store.commit_now(&change).await?;
            // Other nodes hear of it through the change stream; this one at
            // once (in the detached task: a dropped caller does not skip it).
            // Alert writes count as incident writes.
            store.generations.bump_for(&change);
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
    async fn commit_now(&self, change: &Change) -> Result<()> {
        match self.atomicity {
            Atomicity::SingleDocument => self.commit_single_document(change).await,
            Atomicity::Transactions => self.commit_in_transaction(change).await,
        }
    }
}

/// Why a versioned write of `entity` `id` matched nothing: `found` is the
/// document read again (with the filter of the write, without its version).
fn missing_or_stale(
    entity: &'static str,
    id: &str,
    found: mongodb::error::Result<Option<Document>>,
) -> Error {
    match found {
        Ok(None) => Error::NotFound { entity },
        Ok(Some(_)) => Error::conflict(format!(
            "{entity} {id} was modified concurrently; reload and retry"
        )),
        Err(e) => err(e),
    }
}

/// The conflict of an insert refused by a unique index (code 11000) into a
/// collection whose documents have one unique index beside `_id`: which one
/// refused it is read back (outside any transaction, which the refusal ended),
/// not taken from the server's message text.
async fn insert_conflict(
    coll: &Collection<Document>,
    id: &str,
    id_taken: &'static str,
    index_taken: &'static str,
) -> Error {
    match coll.find_one(doc! { "_id": id }).await {
        Ok(Some(_)) => Error::conflict(id_taken),
        Ok(None) => Error::conflict(index_taken),
        Err(e) => err(e),
    }
}

/// An alert's status change as a conditional update `(condition, update)`:
/// acknowledging only a triggered alert, resolving only an open one (which
/// clears `open`, freeing the dedup key). `None` for a status no write moves an
/// alert to (`Triggered`). Applying it twice changes nothing.
fn alert_status_update(status: AlertStatus, at: Timestamp) -> Option<(Document, Document)> {
    match status {
        AlertStatus::Acknowledged => Some((
            doc! { "status": AlertStatus::Triggered.as_str() },
            doc! { "$set": { "status": AlertStatus::Acknowledged.as_str() } },
        )),
        AlertStatus::Resolved => Some((
            doc! { "open": true },
            doc! { "$set": {
                "status": AlertStatus::Resolved.as_str(),
                "open": Bson::Null,
                "resolved_at": crate::codec::date(at),
            } },
        )),
        AlertStatus::Triggered => None,
    }
}

/// A revoke as a conditional update `(condition, update)`: only an integration
/// not revoked yet (a second revoke keeps the first instant).
fn revoke_update(at: Timestamp) -> (Document, Document) {
    (
        doc! { "revoked_at": Bson::Null },
        doc! { "$set": { "revoked_at": crate::codec::date(at) } },
    )
}

/// `condition` with `_id: id` added.
fn with_id(mut condition: Document, id: &str) -> Document {
    condition.insert("_id", id);
    condition
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

/// The fields a profile update sets (`UserWrite::UpdateProfile`): name, email,
/// time zone and password hash; id, username, role and creation time stay.
fn profile_update(u: &User) -> Document {
    doc! {
        "name": &u.name,
        "email": &u.email,
        "time_zone": u.time_zone.name(),
        "password_hash": &u.password_hash,
    }
}

/// What a write to a versioned entity does.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Insert the document (`_id` included).
    Insert(Document),
    /// Replace the document whose version is `expected` with `doc`.
    Update { doc: Document, expected: i64 },
    /// Delete the document whose version is `expected`.
    Delete { expected: i64 },
}

/// A versioned entity's collection and the words of its errors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kind {
    /// Its collection.
    pub(super) coll: &'static str,
    /// Its name in `NotFound` and conflicts.
    pub(super) entity: &'static str,
    /// The conflict of an insert whose id exists.
    pub(super) id_taken: &'static str,
    /// The conflict of a write refused by the collection's other unique index
    /// (services: the name); `id_taken` where there is none.
    pub(super) index_taken: &'static str,
}

const SERVICES: Kind = Kind {
    coll: "services",
    entity: "service",
    id_taken: SERVICE_ID_TAKEN,
    index_taken: SERVICE_NAME_TAKEN,
};
const ROTATIONS: Kind = Kind {
    coll: "rotations",
    entity: "rotation",
    id_taken: ROTATION_ID_TAKEN,
    index_taken: ROTATION_ID_TAKEN,
};
const SCHEDULES: Kind = Kind {
    coll: "schedules",
    entity: "schedule",
    id_taken: SCHEDULE_ID_TAKEN,
    index_taken: SCHEDULE_ID_TAKEN,
};
pub(super) const ESCALATION_POLICIES: Kind = Kind {
    coll: "escalation_policies",
    entity: "escalation policy",
    id_taken: POLICY_ID_TAKEN,
    index_taken: POLICY_ID_TAKEN,
};

/// A write to a versioned entity (a service, rotation, schedule or escalation
/// policy), as documents.
#[derive(Debug, Clone)]
pub(super) struct Versioned {
    pub(super) kind: Kind,
    /// The entity's id.
    pub(super) id: String,
    pub(super) op: Op,
}

impl Versioned {
    /// Whether this deletes an escalation policy (which no service may use).
    pub(super) fn deletes_policy(&self) -> bool {
        self.kind.coll == ESCALATION_POLICIES.coll && matches!(self.op, Op::Delete { .. })
    }
}

/// The versioned-entity writes of `change`, in its order: service, rotation,
/// schedule, escalation policy.
pub(super) fn versioned_writes(change: &Change) -> Vec<Versioned> {
    let mut out = Vec::new();
    let mut push = |kind: Kind, id: String, op: Op| out.push(Versioned { kind, id, op });
    match &change.service {
        Some(ServiceWrite::Insert(v)) => {
            push(SERVICES, v.id.to_string(), Op::Insert(service_doc(v)));
        }
        Some(ServiceWrite::Update {
            service: v,
            expected_version,
        }) => {
            let (doc, expected) = (service_doc(v), *expected_version);
            push(SERVICES, v.id.to_string(), Op::Update { doc, expected });
        }
        Some(ServiceWrite::Delete {
            id,
            expected_version,
        }) => {
            let expected = *expected_version;
            push(SERVICES, id.to_string(), Op::Delete { expected });
        }
        None => {}
    }
    match &change.rotation {
        Some(RotationWrite::Insert(v)) => {
            push(ROTATIONS, v.id.to_string(), Op::Insert(rotation_doc(v)));
        }
        Some(RotationWrite::Update {
            rotation: v,
            expected_version,
        }) => {
            let (doc, expected) = (rotation_doc(v), *expected_version);
            push(ROTATIONS, v.id.to_string(), Op::Update { doc, expected });
        }
        Some(RotationWrite::Delete {
            id,
            expected_version,
        }) => {
            let expected = *expected_version;
            push(ROTATIONS, id.to_string(), Op::Delete { expected });
        }
        None => {}
    }
    match &change.schedule {
        Some(ScheduleWrite::Insert(v)) => {
            push(SCHEDULES, v.id.to_string(), Op::Insert(schedule_doc(v)));
        }
        Some(ScheduleWrite::Update {
            schedule: v,
            expected_version,
        }) => {
            let (doc, expected) = (schedule_doc(v), *expected_version);
            push(SCHEDULES, v.id.to_string(), Op::Update { doc, expected });
        }
        Some(ScheduleWrite::Delete {
            id,
            expected_version,
        }) => {
            let expected = *expected_version;
            push(SCHEDULES, id.to_string(), Op::Delete { expected });
        }
        None => {}
    }
    match &change.escalation_policy {
        Some(EscalationPolicyWrite::Insert(v)) => {
            let doc = escalation_policy_doc(v);
            push(ESCALATION_POLICIES, v.id.to_string(), Op::Insert(doc));
        }
        Some(EscalationPolicyWrite::Update {
            escalation_policy: v,
            expected_version,
        }) => {
            let (doc, expected) = (escalation_policy_doc(v), *expected_version);
            push(
                ESCALATION_POLICIES,
                v.id.to_string(),
                Op::Update { doc, expected },
            );
        }
        Some(EscalationPolicyWrite::Delete {
            id,
            expected_version,
        }) => {
            let expected = *expected_version;
            push(ESCALATION_POLICIES, id.to_string(), Op::Delete { expected });
        }
        None => {}
    }
    out
}
