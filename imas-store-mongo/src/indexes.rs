//! The indexes `connect` creates: unique usernames, emails and notification keys,
//! and one index for each list, filter, claim and metric the store queries, so
//! that costs grow with the result, not with the collection.
//!
//! The database enforces the uniqueness the alerts depend on (DESIGN.md
//! invariant 2): service names, integration key hashes, at most one open alert
//! per (service, dedup key) and at most one open incident per (service, group
//! key). The last two are partial unique indexes. A partial filter cannot say
//! "status is not resolved" (`$ne`/`$nin` are not allowed in one), so the
//! documents carry an equality flag that is `true` exactly while they count:
//! `open` on alerts, `group_open` on incidents (null otherwise; see the codec).

use imas_core::error::Result;
use mongodb::IndexModel;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;

use crate::MongoStore;
use crate::error::err;

impl MongoStore {
    pub(crate) async fn create_indexes(&self) -> Result<()> {
        let unique = || IndexOptions::builder().unique(true).build();
        let index = |keys: Document| IndexModel::builder().keys(keys).build();
        let unique_index =
            |keys: Document| IndexModel::builder().keys(keys).options(unique()).build();
        let named_unique = |keys: Document, name: &str, partial: Option<Document>| {
            IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .unique(true)
                        .name(name.to_string())
                        .partial_filter_expression(partial)
                        .build(),
                )
                .build()
        };
        self.users()
            .create_indexes([
                unique_index(doc! { "username": 1 }),
                unique_index(doc! { "email": 1 }),
                index(doc! { "role": 1 }),
                index(doc! { "_pending.cid": 1 }),
                // `list_users`, newest first.
                index(doc! { "created_at": -1, "_id": -1 }),
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
                index(doc! { "service_id": 1, "created_at": -1, "_id": -1 }),
                named_unique(
                    doc! { "service_id": 1, "group_key": 1 },
                    OPEN_GROUP_INDEX,
                    Some(doc! { "group_open": true }),
                ),
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
        self.services()
            .create_indexes([
                named_unique(doc! { "name": 1 }, SERVICE_NAME_INDEX, None),
                index(doc! { "created_at": -1, "_id": -1 }),
                index(doc! { "_pending.cid": 1 }),
                index(doc! { "_deleting": 1 }),
                index(doc! { "_cid": 1 }),
                // Whether a policy is in use (refusing its deletion).
                index(doc! { "escalation_policy_id": 1 }),
            ])
            .await
            .map_err(err)?;
        // Rotations, schedules and escalation policies: their pages, newest
        // first, and the single-document mode's markers.
        for coll in [
            self.rotations(),
            self.schedules(),
            self.escalation_policies(),
        ] {
            coll.create_indexes([
                index(doc! { "created_at": -1, "_id": -1 }),
                index(doc! { "_pending.cid": 1 }),
                index(doc! { "_deleting": 1 }),
                index(doc! { "_cid": 1 }),
            ])
            .await
            .map_err(err)?;
        }
        self.integrations()
            .create_indexes([
                named_unique(doc! { "key_hash": 1 }, KEY_HASH_INDEX, None),
                index(doc! { "service_id": 1, "created_at": 1, "_id": 1 }),
                index(doc! { "_cid": 1 }),
            ])
            .await
            .map_err(err)?;
        self.alerts()
            .create_indexes([
                // Also what `open_alert` and `repeat_trigger` (the hot path)
                // look up: a point read on a unique index.
                named_unique(
                    doc! { "service_id": 1, "dedup_key": 1 },
                    OPEN_ALERT_INDEX,
                    Some(doc! { "open": true }),
                ),
                index(doc! { "started_at": -1, "_id": -1 }),
                index(doc! { "incident_id": 1, "started_at": -1, "_id": -1 }),
                index(doc! { "service_id": 1, "started_at": -1, "_id": -1 }),
                index(doc! { "status": 1, "started_at": -1, "_id": -1 }),
                index(doc! { "search": 1 }),
                index(doc! { "_cid": 1 }),
            ])
            .await
            .map_err(err)?;
        Ok(())
    }
}

/// The unique index on service names.
pub(crate) const SERVICE_NAME_INDEX: &str = "services_name";
/// The unique index on integration key hashes.
pub(crate) const KEY_HASH_INDEX: &str = "integrations_key_hash";
/// The partial unique index: one open alert per (service, dedup key).
pub(crate) const OPEN_ALERT_INDEX: &str = "alerts_open_dedup";
/// The partial unique index: one open incident per (service, group key).
pub(crate) const OPEN_GROUP_INDEX: &str = "incidents_open_group";
