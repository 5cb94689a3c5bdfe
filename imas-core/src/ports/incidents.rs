//! The incidents port: reads, the SLA sweep's claims, and the [`IncidentWrite`]
//! a [`Change`] carries.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Incident, IncidentFilter, IncidentId, Page, PageRequest, Timestamp};

/// A write to the incidents table, part of a [`Change`](super::Change).
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentWrite {
    /// A new incident (`version` 1). A duplicate id is a conflict.
    Insert(Incident),
    /// Replace the incident whose version is `expected_version` with `incident`
    /// (whose version is `expected_version + 1`); otherwise `Conflict`, or
    /// `NotFound` when it does not exist. Its `next_due_at` replaces any claim.
    Update {
        /// The new state.
        incident: Incident,
        /// The version the change was computed from.
        expected_version: i64,
    },
    /// Delete the incident at `expected_version` (`Conflict` / `NotFound` as for
    /// updates). Its audit entries stay.
    Delete {
        /// Which.
        id: IncidentId,
        /// The version the deletion was decided on.
        expected_version: i64,
    },
}

/// Incidents.
#[async_trait]
pub trait IncidentStore: Send + Sync + Debug + 'static {
    /// An incident by id.
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>>;

    /// Incidents matching `filter` (reference semantics:
    /// [`IncidentFilter::matches`]), newest first by `(created_at, id)`, one page.
    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>>;

    /// How many incidents match `filter`.
    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64>;

    /// Claims the (up to) `limit` earliest-due incidents whose `next_due_at <=
    /// now`, returned in no particular order. Claiming moves each one's `next_due_at` to `now + lease` (as the
    /// returned incidents show), so no other call returns it, however many
    /// nodes call concurrently, until the claimer commits an update (which sets a
    /// new due time) or the lease runs out (the claimer died: it is due again).
    async fn claim_due(&self, now: Timestamp, lease: Duration, limit: u32)
    -> Result<Vec<Incident>>;

    /// The earliest `next_due_at` of any incident: when `claim_due` could next
    /// return something.
    async fn next_due_at(&self) -> Result<Option<Timestamp>>;
}
