//! [`NotificationStore`] on `notifications` (unique `key`, so a redelivered
//! notification is stored once) and `channel_deliveries` (one receipt per
//! channel and key).

use async_trait::async_trait;
use imas_core::error::{Error, Result};
use imas_core::model::{Cursor, Notification, NotificationId, Page, PageRequest, UserId};
use imas_core::ports::NotificationStore;
use mongodb::bson::doc;
use mongodb::options::ReturnDocument;

use crate::MongoStore;
use crate::codec::{decode_notification, notification_doc};
use crate::error::{err, is_duplicate};

#[async_trait]
impl NotificationStore for MongoStore {
    async fn insert_notification(&self, n: &Notification) -> Result<bool> {
        match self.notifications().insert_one(notification_doc(n)).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        self.page(
            self.notifications(),
            doc! { "user": user.to_string() },
            page,
            decode_notification,
            |n| Cursor {
                created_at: n.created_at,
                id: n.id.0,
            },
        )
        .await
    }

    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification> {
        let d = self
            .notifications()
            .find_one_and_update(
                doc! { "_id": id.to_string(), "user": user.to_string() },
                doc! { "$set": { "read": true } },
            )
            .return_document(ReturnDocument::After)
            .await
            .map_err(err)?
            .ok_or(Error::NotFound {
                entity: "notification",
            })?;
        decode_notification(&d)
    }

    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool> {
        let id = format!("{channel}\u{0}{key}");
        match self
            .deliveries()
            .insert_one(doc! { "_id": id, "key": key, "channel": channel })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool> {
        let id = format!("{channel}\u{0}{key}");
        Ok(self
            .deliveries()
            .find_one(doc! { "_id": id })
            .await
            .map_err(err)?
            .is_some())
    }
}
