//! [`ScheduleStore`] on the `schedules` collection; schedule writes go through the
//! [commit](crate::commit).

use async_trait::async_trait;
use imas_core::error::Result;
use imas_core::model::{Cursor, Page, PageRequest, Schedule, ScheduleId};
use imas_core::ports::ScheduleStore;
use mongodb::bson::doc;

use crate::MongoStore;
use crate::codec::decode_schedule;
use crate::error::err;
use crate::query::{live, visible};

#[async_trait]
impl ScheduleStore for MongoStore {
    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>> {
        let d = self
            .schedules()
            .find_one(live(visible(doc! { "_id": id.to_string() })))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_schedule).transpose()
    }

    async fn list_schedules(&self, page: PageRequest) -> Result<Page<Schedule>> {
        self.page(
            self.schedules(),
            live(visible(doc! {})),
            page,
            decode_schedule,
            |r| Cursor {
                created_at: r.created_at,
                id: r.id.0,
            },
        )
        .await
    }
}
