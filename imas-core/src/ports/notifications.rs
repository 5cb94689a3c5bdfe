//! The notifications port: delivered in-app notifications (inserted once per
//! idempotency key) and the receipts of each channel's delivery.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Notification, NotificationId, Page, PageRequest, UserId};

/// Delivered in-app notifications.
#[async_trait]
pub trait NotificationStore: Send + Sync + Debug + 'static {
    /// Inserts a notification unless one with the same `key` exists. Returns
    /// whether it was inserted. Idempotent: redelivery never duplicates.
    async fn insert_notification(&self, n: &Notification) -> Result<bool>;

    /// [`insert_notification`](Self::insert_notification) of each, in one
    /// write where the store can (a worker's batch of deliveries then costs
    /// one commit, not one per notification): whether each was inserted, in
    /// order; a key twice in `ns` inserts the first. All or nothing: on an
    /// error none may be taken as inserted (a retry finds those that were).
    /// The default inserts them one by one.
    async fn insert_notifications(&self, ns: &[Notification]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(ns.len());
        for n in ns {
            out.push(self.insert_notification(n).await?);
        }
        Ok(out)
    }

    /// A user's notifications, newest first by `(created_at, id)`.
    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>>;

    /// Marks a notification read if it belongs to `user`; `NotFound` otherwise
    /// (also when it exists but is somebody else's).
    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification>;

    /// Records that notification `key` went out through `channel`. Returns false
    /// when it was already recorded.
    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool>;

    /// Whether notification `key` already went out through `channel`.
    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool>;
}
