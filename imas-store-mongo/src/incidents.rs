//! [`IncidentStore`] on the `incidents` collection: reads, filtered lists and
//! counts, and the conditional claim of due incidents. Incidents being deleted
//! (single-document mode) are invisible to every read.

use std::time::Duration;

use async_trait::async_trait;
use imas_core::error::Result;
use imas_core::model::{
    Cursor, Incident, IncidentFilter, IncidentId, Page, PageRequest, Timestamp, plus,
};
use imas_core::ports::IncidentStore;
use mongodb::bson::{Bson, doc};

use crate::MongoStore;
use crate::codec::{DocExt, date, decode_incident};
use crate::error::err;
use crate::query::{incident_query, live};

#[async_trait]
impl IncidentStore for MongoStore {
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        let d = self
            .incidents()
            .find_one(live(doc! { "_id": id.to_string() }))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_incident).transpose()
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        self.page(
            self.incidents(),
            live(incident_query(filter)),
            page,
            decode_incident,
            |i| Cursor {
                created_at: i.created_at,
                id: i.id.0,
            },
        )
        .await
    }

    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64> {
        self.incidents()
            .count_documents(live(incident_query(filter)))
            .await
            .map_err(err)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        let docs = self
            .claim(
                self.incidents(),
                live(doc! { "next_due_at": { "$ne": Bson::Null, "$lte": date(now) } }),
                doc! { "next_due_at": 1, "_id": 1 },
                "next_due_at",
                doc! { "$set": { "next_due_at": date(plus(now, lease)) } },
                limit,
            )
            .await?;
        self.generations.bump(false, !docs.is_empty());
        docs.iter().map(decode_incident).collect()
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        let d = self
            .incidents()
            .find_one(live(doc! { "next_due_at": { "$ne": Bson::Null } }))
            .sort(doc! { "next_due_at": 1 })
            .projection(doc! { "next_due_at": 1 })
            .await
            .map_err(err)?;
        match d {
            Some(d) => d.opt_ts("next_due_at"),
            None => Ok(None),
        }
    }
}
