//! Rotations (SPEC §5): create, read, list, update, delete, and their shifts.
//! Admins change them; admins and engineers read them. Each change commits with
//! its audit entry (`ROTATION_CREATED`, `ROTATION_UPDATED`, `ROTATION_DELETED`).

use super::{Engine, Principal};
use crate::error::Result;
use crate::model::{
    NewRotation, Page, PageRequest, Rotation, RotationId, RotationPatch, Shift, Timestamp,
};

impl Engine {
    /// Creates a rotation (admin): name 1..=100, shift length 1..=9000 (default
    /// 1), start truncated to the minute, a known time zone (default UTC),
    /// at most 100 participants who all exist.
    pub async fn create_rotation(&self, by: &Principal, new: NewRotation) -> Result<Rotation> {
        let _ = (by, new);
        todo!("issue 18: rotations")
    }

    /// A rotation (admin, engineer).
    pub async fn get_rotation(&self, by: &Principal, id: RotationId) -> Result<Rotation> {
        let _ = (by, id);
        todo!("issue 18: rotations")
    }

    /// Rotations newest first (admin, engineer).
    pub async fn list_rotations(
        &self,
        by: &Principal,
        page: PageRequest,
    ) -> Result<Page<Rotation>> {
        let _ = (by, page);
        todo!("issue 18: rotations")
    }

    /// Changes a rotation (admin), validated as on creation.
    pub async fn update_rotation(
        &self,
        by: &Principal,
        id: RotationId,
        patch: RotationPatch,
    ) -> Result<Rotation> {
        let _ = (by, id, patch);
        todo!("issue 18: rotations")
    }

    /// Deletes a rotation (admin); `Conflict` while a schedule rule or an
    /// escalation policy names it.
    pub async fn delete_rotation(&self, by: &Principal, id: RotationId) -> Result<()> {
        let _ = (by, id);
        todo!("issue 18: rotations")
    }

    /// The rotation's shifts over `[start, end)` (admin, engineer); the range
    /// at most 90 days, `end` after `start`.
    pub async fn rotation_shifts(
        &self,
        by: &Principal,
        id: RotationId,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Shift>> {
        let _ = (by, id, start, end);
        todo!("issue 18: rotations")
    }
}
