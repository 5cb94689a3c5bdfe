//! The outbox port: notification intents committed with their change, claimed by
//! the relay, completed once delivered, pruned by retention.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{OutboxEntry, Timestamp};

/// The transactional outbox of notification intents.
#[async_trait]
pub trait OutboxStore: Send + Sync + Debug + 'static {
    /// Up to `limit` undelivered entries whose `available_at <= now`, oldest
    /// first; each is made unavailable until `now + lease` and its `attempts`
    /// incremented, so a publication the queue loses is retried after the lease.
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>>;

    /// Marks entries delivered at `now`; they are never handed out again. Unknown
    /// keys are ignored.
    async fn complete_outbox(&self, keys: &[String], now: Timestamp) -> Result<()>;

    /// How many entries are not yet delivered.
    async fn pending_outbox(&self) -> Result<u64>;

    /// When the oldest undelivered entry was created (its intent's
    /// `created_at`); `None` when nothing is pending. Indexed: it does not scan
    /// delivered rows.
    async fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>>;

    /// Retention (SPEC §8): deletes up to `limit` delivered entries whose last
    /// publication is older than `before` (`available_at < before`: the lease of
    /// the claim that delivered them ended before it), together with the
    /// channel receipts ([`NotificationStore::record_delivery`](super::NotificationStore::record_delivery)) of their keys.
    /// Undelivered entries, the audit log and in-app notifications are never
    /// touched. A pruned key is forgotten: an intent with the same key committed
    /// later is written again (the in-app notification stays deduplicated by
    /// key). Indexed: the cost grows with what is deleted, not with the table.
    async fn prune_delivered(&self, before: Timestamp, limit: u32) -> Result<Pruned>;
}

/// What one [`OutboxStore::prune_delivered`] call removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Delivered outbox entries deleted.
    pub outbox: u64,
    /// Channel receipts deleted.
    pub receipts: u64,
}
