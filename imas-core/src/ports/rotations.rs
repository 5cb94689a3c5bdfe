//! The rotations port: reads, and the [`RotationWrite`] a
//! [`Change`](super::Change) carries.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Page, PageRequest, Rotation, RotationId};

/// A write to the rotations, part of a [`Change`](super::Change).
#[derive(Debug, Clone, PartialEq)]
pub enum RotationWrite {
    /// A new one (`version` 1); a duplicate id is a conflict.
    Insert(Rotation),
    /// Replace the one whose version is `expected_version` with `rotation`
    /// (version `expected_version + 1`); otherwise `Conflict`, or `NotFound`
    /// when it does not exist.
    Update {
        /// The new state.
        rotation: Rotation,
        /// The version the change was computed from.
        expected_version: i64,
    },
    /// Delete the one at `expected_version` (`Conflict` / `NotFound` as for
    /// updates).
    Delete {
        /// Which.
        id: RotationId,
        /// The version the deletion was decided on.
        expected_version: i64,
    },
}

/// Rotations.
#[async_trait]
pub trait RotationStore: Send + Sync + Debug + 'static {
    /// A rotation by id.
    async fn get_rotation(&self, id: RotationId) -> Result<Option<Rotation>>;

    /// Rotations newest first by `(created_at, id)`, one page.
    async fn list_rotations(&self, page: PageRequest) -> Result<Page<Rotation>>;
}
