//! [`AlertStore`] on the `alerts` collection: reads, filtered lists newest first
//! by `(started_at, id)`, and the repeated trigger, one atomic
//! `findOneAndUpdate` on the open alert found through the partial unique index
//! on `(service_id, dedup_key)`. Alert writes go through the
//! [commit](crate::commit).

use async_trait::async_trait;
use imas_core::error::Result;
use imas_core::model::{
    Alert, AlertFilter, AlertId, Cursor, Page, PageRequest, ServiceId, Timestamp,
};
use imas_core::ports::AlertStore;
use mongodb::bson::{Document, doc};
use mongodb::options::{Hint, ReturnDocument};

use crate::MongoStore;
use crate::codec::{date, decode_alert};
use crate::error::err;
use crate::indexes::OPEN_ALERT_INDEX;
use crate::query::{alert_query, visible};

/// The hint to the partial unique index: SecantusDB's planner scans the
/// collection for a query with an `$exists: false` condition (the `_cid` of
/// [`visible`]) unless it is told the index.
fn open_alert_index() -> Hint {
    Hint::Name(OPEN_ALERT_INDEX.to_string())
}

/// The query of the open alert of `service` with `dedup_key`: the keys and the
/// partial filter of the unique index `alerts_open_dedup`, so it is a point
/// read on that index.
fn open_alert_query(service: ServiceId, dedup_key: &str) -> Document {
    visible(doc! { "service_id": service.to_string(), "dedup_key": dedup_key, "open": true })
}

#[async_trait]
impl AlertStore for MongoStore {
    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>> {
        let d = self
            .alerts()
            .find_one(visible(doc! { "_id": id.to_string() }))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_alert).transpose()
    }

    async fn open_alert(&self, service: ServiceId, dedup_key: &str) -> Result<Option<Alert>> {
        let d = self
            .alerts()
            .find_one(open_alert_query(service, dedup_key))
            .hint(open_alert_index())
            .await
            .map_err(err)?;
        d.as_ref().map(decode_alert).transpose()
    }

    async fn list_alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<Alert>> {
        filter.validate()?;
        self.page_on(
            self.alerts(),
            "started_at",
            alert_query(filter),
            page,
            decode_alert,
            |a| Cursor {
                created_at: a.started_at,
                id: a.id.0,
            },
        )
        .await
    }

    async fn repeat_trigger(
        &self,
        service: ServiceId,
        dedup_key: &str,
        at: Timestamp,
    ) -> Result<Option<Alert>> {
        // One document update: the server applies `$inc` and `$max` atomically,
        // so concurrent repeats all count. No change stream consumer treats it
        // as an incident write (see `change_stream`).
        let d = self
            .alerts()
            .find_one_and_update(
                open_alert_query(service, dedup_key),
                doc! {
                    "$inc": { "event_count": 1_i64 },
                    "$max": { "last_event_at": date(at) },
                },
            )
            .hint(open_alert_index())
            .return_document(ReturnDocument::After)
            .await
            .map_err(err)?;
        d.as_ref().map(decode_alert).transpose()
    }
}
