//! The schedules port: reads, and the [`ScheduleWrite`] a
//! [`Change`](super::Change) carries.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Page, PageRequest, Schedule, ScheduleId};

/// A write to the schedules, part of a [`Change`](super::Change).
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleWrite {
    /// A new one (`version` 1); a duplicate id is a conflict.
    Insert(Schedule),
    /// Replace the one whose version is `expected_version` with `schedule`
    /// (version `expected_version + 1`); otherwise `Conflict`, or `NotFound`
    /// when it does not exist.
    Update {
        /// The new state.
        schedule: Schedule,
        /// The version the change was computed from.
        expected_version: i64,
    },
    /// Delete the one at `expected_version` (`Conflict` / `NotFound` as for
    /// updates).
    Delete {
        /// Which.
        id: ScheduleId,
        /// The version the deletion was decided on.
        expected_version: i64,
    },
}

/// Schedules, each with its rules and overrides.
#[async_trait]
pub trait ScheduleStore: Send + Sync + Debug + 'static {
    /// A schedule by id.
    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>>;

    /// Schedules newest first by `(created_at, id)`, one page.
    async fn list_schedules(&self, page: PageRequest) -> Result<Page<Schedule>>;
}
