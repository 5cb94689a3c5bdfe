//! [`ServiceStore`] on the `services` collection (unique `name`); service writes
//! go through the [commit](crate::commit).

use async_trait::async_trait;
use imas_core::error::Result;
use imas_core::model::{Cursor, Page, PageRequest, Service, ServiceId};
use imas_core::ports::ServiceStore;
use mongodb::bson::doc;

use crate::MongoStore;
use crate::codec::decode_service;
use crate::error::err;
use crate::query::{live, visible};

#[async_trait]
impl ServiceStore for MongoStore {
    async fn get_service(&self, id: ServiceId) -> Result<Option<Service>> {
        let d = self
            .services()
            .find_one(live(visible(doc! { "_id": id.to_string() })))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_service).transpose()
    }

    async fn list_services(&self, page: PageRequest) -> Result<Page<Service>> {
        self.page(
            self.services(),
            live(visible(doc! {})),
            page,
            decode_service,
            |s| Cursor {
                created_at: s.created_at,
                id: s.id.0,
            },
        )
        .await
    }
}
