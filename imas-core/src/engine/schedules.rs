//! Schedules (SPEC §5): create, read, list, update, delete; overrides; who is
//! on call and the shifts. Admins change schedules; admins and engineers read
//! them; an engineer may add or delete an override that adds or removes
//! himself. Each change commits with its audit entry (`SCHEDULE_CREATED`,
//! `SCHEDULE_UPDATED`, `SCHEDULE_DELETED`, `OVERRIDE_CREATED`,
//! `OVERRIDE_DELETED`).

use super::{Engine, Principal};
use crate::error::Result;
use crate::model::{
    NewOverride, NewSchedule, OnCall, OnCallEverywhere, Override, OverrideId, Page, PageRequest,
    Schedule, ScheduleId, SchedulePatch, Shift, Timestamp,
};

impl Engine {
    /// Creates a schedule (admin): name 1..=100, a known time zone (default
    /// UTC), at most 100 rules whose users and rotations exist and whose
    /// weekdays are not empty.
    pub async fn create_schedule(&self, by: &Principal, new: NewSchedule) -> Result<Schedule> {
        let _ = (by, new);
        todo!("issue 18: schedules")
    }

    /// A schedule with its rules and overrides (admin, engineer).
    pub async fn get_schedule(&self, by: &Principal, id: ScheduleId) -> Result<Schedule> {
        let _ = (by, id);
        todo!("issue 18: schedules")
    }

    /// Schedules newest first (admin, engineer).
    pub async fn list_schedules(
        &self,
        by: &Principal,
        page: PageRequest,
    ) -> Result<Page<Schedule>> {
        let _ = (by, page);
        todo!("issue 18: schedules")
    }

    /// Changes a schedule's name, description, time zone or rules (admin).
    pub async fn update_schedule(
        &self,
        by: &Principal,
        id: ScheduleId,
        patch: SchedulePatch,
    ) -> Result<Schedule> {
        let _ = (by, id, patch);
        todo!("issue 18: schedules")
    }

    /// Deletes a schedule (admin); `Conflict` while an escalation policy names
    /// it.
    pub async fn delete_schedule(&self, by: &Principal, id: ScheduleId) -> Result<()> {
        let _ = (by, id);
        todo!("issue 18: schedules")
    }

    /// Adds an override (admin; an engineer when he is its added or removed
    /// user): `start < end` (whole minutes), an add and/or a remove of users
    /// who exist, `end` not in the past; ended overrides older than 90 days
    /// are dropped; at most 1,000 kept.
    pub async fn add_override(
        &self,
        by: &Principal,
        schedule: ScheduleId,
        new: NewOverride,
    ) -> Result<Override> {
        let _ = (by, schedule, new);
        todo!("issue 18: overrides")
    }

    /// Deletes an override (admin; an engineer when he is its added or
    /// removed user).
    pub async fn delete_override(
        &self,
        by: &Principal,
        schedule: ScheduleId,
        id: OverrideId,
    ) -> Result<()> {
        let _ = (by, schedule, id);
        todo!("issue 18: overrides")
    }

    /// Who is on call in a schedule at `at` (now when `None`) (admin,
    /// engineer).
    pub async fn schedule_on_call(
        &self,
        by: &Principal,
        id: ScheduleId,
        at: Option<Timestamp>,
    ) -> Result<OnCall> {
        let _ = (by, id, at);
        todo!("issue 18: on call")
    }

    /// A schedule's shifts over `[start, end)` (admin, engineer); the range at
    /// most 90 days, `end` after `start`.
    pub async fn schedule_shifts(
        &self,
        by: &Principal,
        id: ScheduleId,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Shift>> {
        let _ = (by, id, start, end);
        todo!("issue 18: on call")
    }

    /// Every schedule with who is on call at `at` (now when `None`) (admin,
    /// engineer).
    pub async fn on_call_everywhere(
        &self,
        by: &Principal,
        at: Option<Timestamp>,
    ) -> Result<OnCallEverywhere> {
        let _ = (by, at);
        todo!("issue 18: on call")
    }
}
