//! The alerts port: reads, the repeated trigger (a counter, outside any
//! [`Change`](super::Change)), and the [`AlertWrite`] a change carries.
//!
//! Deduplication is the store's: at most one open (not resolved) alert per
//! `(service_id, dedup_key)`, enforced by a unique index (partial where the
//! database has them), so that racing requests on any number of nodes open
//! one alert, never two.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{
    Alert, AlertFilter, AlertId, AlertStatus, Page, PageRequest, ServiceId, Timestamp,
};

/// A write to the alerts table, part of a [`Change`](super::Change).
// An insert carries a whole alert; boxing it would only move the allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AlertWrite {
    /// A new open alert. `Conflict` when its id exists, or when the service
    /// has an open alert with the same dedup key (the unique index on open
    /// alerts): the whole change then commits nothing.
    Insert(Alert),
    /// Moves an open alert to `status` at `at`: `Acknowledged` only from
    /// `Triggered`; `Resolved` from either open status, setting `resolved_at`
    /// (the dedup key is free again). An alert already in that status, or
    /// resolved, is left as it is (not an error): a source may send a resolve
    /// twice. `NotFound` when it does not exist.
    SetStatus {
        /// Which.
        id: AlertId,
        /// `Acknowledged` or `Resolved`.
        status: AlertStatus,
        /// When.
        at: Timestamp,
    },
}

/// Alerts.
#[async_trait]
pub trait AlertStore: Send + Sync + Debug + 'static {
    /// An alert by id.
    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>>;

    /// The open (triggered or acknowledged) alert of `service` with this dedup
    /// key, if any.
    async fn open_alert(&self, service: ServiceId, dedup_key: &str) -> Result<Option<Alert>>;

    /// Alerts matching `filter` (reference semantics: [`AlertFilter::matches`]),
    /// newest first by `(started_at, id)`, one page.
    async fn list_alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<Alert>>;

    /// A repeated trigger: atomically adds 1 to `event_count` and sets
    /// `last_event_at` to `at` (if later) on the open alert of `service` with
    /// this dedup key, and returns it as it is now; `None` when there is no
    /// open alert (the caller then opens one). No audit entry, no
    /// notification, no incident write: this is the hot path of a source that
    /// fires every few seconds, and concurrent calls must all count (no lost
    /// update). A store may batch concurrent calls into one write, as long as
    /// each call returns only after its increment is durable.
    async fn repeat_trigger(
        &self,
        service: ServiceId,
        dedup_key: &str,
        at: Timestamp,
    ) -> Result<Option<Alert>>;
}
