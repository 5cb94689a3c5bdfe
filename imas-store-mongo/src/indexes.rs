//! The indexes `connect` creates: unique usernames, emails and notification keys,
//! and one index for each list, filter, claim and metric the store queries, so
//! that costs grow with the result, not with the collection.

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
}
