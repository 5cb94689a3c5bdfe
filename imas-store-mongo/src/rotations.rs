//! [`RotationStore`] on the `rotations` collection; rotation writes go through the
//! [commit](crate::commit).

use async_trait::async_trait;
use imas_core::error::Result;
use imas_core::model::{Cursor, Page, PageRequest, Rotation, RotationId};
use imas_core::ports::RotationStore;
use mongodb::bson::doc;

use crate::MongoStore;
use crate::codec::decode_rotation;
use crate::error::err;
use crate::query::{live, visible};

#[async_trait]
impl RotationStore for MongoStore {
    async fn get_rotation(&self, id: RotationId) -> Result<Option<Rotation>> {
        let d = self
            .rotations()
            .find_one(live(visible(doc! { "_id": id.to_string() })))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_rotation).transpose()
    }

    async fn list_rotations(&self, page: PageRequest) -> Result<Page<Rotation>> {
        self.page(
            self.rotations(),
            live(visible(doc! {})),
            page,
            decode_rotation,
            |r| Cursor {
                created_at: r.created_at,
                id: r.id.0,
            },
        )
        .await
    }
}
