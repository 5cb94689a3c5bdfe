//! [`IntegrationStore`] on the `integrations` collection (unique `key_hash`);
//! integration writes go through the [commit](crate::commit).

use async_trait::async_trait;
use futures::TryStreamExt;
use imas_core::error::Result;
use imas_core::model::{Integration, IntegrationId, ServiceId};
use imas_core::ports::IntegrationStore;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::Hint;

use crate::MongoStore;
use crate::codec::decode_integration;
use crate::error::err;
use crate::indexes::KEY_HASH_INDEX;
use crate::query::visible;

#[async_trait]
impl IntegrationStore for MongoStore {
    async fn get_integration(&self, id: IntegrationId) -> Result<Option<Integration>> {
        let d = self
            .integrations()
            .find_one(visible(doc! { "_id": id.to_string() }))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_integration).transpose()
    }

    async fn integration_by_key_hash(&self, key_hash: &str) -> Result<Option<Integration>> {
        // A point read on the unique `key_hash` index.
        let d = self
            .integrations()
            .find_one(visible(doc! { "key_hash": key_hash }))
            // Named: SecantusDB's planner scans for an `$exists: false`
            // condition (`visible`) unless it is told the index.
            .hint(Hint::Name(KEY_HASH_INDEX.to_string()))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_integration).transpose()
    }

    async fn list_integrations(&self, service: ServiceId) -> Result<Vec<Integration>> {
        let docs: Vec<Document> = self
            .integrations()
            .find(visible(
                doc! { "service_id": service.to_string(), "revoked_at": Bson::Null },
            ))
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        docs.iter().map(decode_integration).collect()
    }
}
