//! [`OutboxStore`] on the `outbox` collection: conditional claims of due rows
//! (after a recovery in single-document mode), completion, metrics and the
//! pruning of delivered rows with their channel receipts.

use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use imas_core::error::Result;
use imas_core::model::{OutboxEntry, Timestamp, plus};
use imas_core::ports::{OutboxStore, Pruned};
use mongodb::bson::{Bson, Document, doc};

use crate::codec::{DocExt, date, decode_outbox};
use crate::error::err;
use crate::{Atomicity, MongoStore};

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

    async fn prune_delivered(&self, before: Timestamp, limit: u32) -> Result<Pruned> {
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
            return Ok(Pruned::default());
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
        Ok(Pruned { outbox, receipts })
    }
}
