//! Rotations (SPEC §5): create, read, list, update, delete, and their shifts.
//! Admins change them; admins and engineers read them. Each change commits with
//! its audit entry (`ROTATION_CREATED`, `ROTATION_UPDATED`, `ROTATION_DELETED`).

use std::collections::HashSet;

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, EscalationPolicy, MAX_LIMIT, MAX_PARTICIPANTS,
    MAX_SHIFT_LENGTH, MAX_SHIFT_RANGE_DAYS, NewRotation, Page, PageRequest, PolicyTarget, Rotation,
    RotationId, RotationPatch, RuleTarget, Schedule, Service, Shift, Timestamp, UserId,
    parse_time_zone,
};
use crate::ports::{Change, RotationWrite};
use crate::rbac::{self, Permission};
use crate::validation::{
    MAX_DESCRIPTION, check_count, check_len, check_range_u32, check_time_range, validate_name,
    whole_minute,
};

/// Every item of a newest-first list, page by page (the reference checks of
/// deletes read every schedule, policy or service).
async fn every<T, F, Fut>(mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut out = Vec::new();
    let mut page = PageRequest::first(MAX_LIMIT);
    loop {
        let got = fetch(page).await?;
        out.extend(got.items);
        match got.next {
            Some(c) => page.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

impl Engine {
    /// Every schedule, newest first.
    pub(super) async fn every_schedule(&self) -> Result<Vec<Schedule>> {
        every(|p| self.inner.store.list_schedules(p)).await
    }

    /// Every escalation policy, newest first.
    pub(super) async fn every_escalation_policy(&self) -> Result<Vec<EscalationPolicy>> {
        every(|p| self.inner.store.list_escalation_policies(p)).await
    }

    /// Every service, newest first.
    pub(super) async fn every_service(&self) -> Result<Vec<Service>> {
        every(|p| self.inner.store.list_services(p)).await
    }

    /// `Ok` when every user of `ids` exists, else a validation error naming
    /// `field` and the first unknown id.
    pub(super) async fn check_users_exist(&self, field: &str, ids: &[UserId]) -> Result<()> {
        let mut seen = HashSet::new();
        for id in ids {
            if seen.insert(*id) && self.inner.store.get_user(*id).await?.is_none() {
                return Err(Error::validation(field, messages::no_such("user", id)));
            }
        }
        Ok(())
    }

    /// `Ok` when the rotation exists, else a validation error naming `field`.
    pub(super) async fn check_rotation_exists(&self, field: &str, id: RotationId) -> Result<()> {
        match self.inner.store.get_rotation(id).await? {
            Some(_) => Ok(()),
            None => Err(Error::validation(field, messages::no_such("rotation", id))),
        }
    }

    /// A rotation by id, `NotFound` when there is none (no permission check).
    pub(super) async fn load_rotation(&self, id: RotationId) -> Result<Rotation> {
        self.inner
            .store
            .get_rotation(id)
            .await?
            .ok_or(Error::NotFound { entity: "rotation" })
    }

    async fn check_participants(&self, participants: &[UserId]) -> Result<()> {
        check_count(
            "participants",
            participants.len(),
            0,
            MAX_PARTICIPANTS,
            "participants",
        )?;
        self.check_users_exist("participants", participants).await
    }

    /// Creates a rotation (admin): name 1..=100, shift length 1..=9000 (default
    /// 1), start truncated to the minute, a known time zone (default UTC),
    /// at most 100 participants who all exist.
    pub async fn create_rotation(&self, by: &Principal, new: NewRotation) -> Result<Rotation> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let name = validate_name("name", &new.name)?;
        check_len("description", &new.description, 0, MAX_DESCRIPTION)?;
        let shift_length = check_shift_length(new.shift_length.unwrap_or(1))?;
        let start = whole_minute("start", new.start)?;
        let time_zone = match &new.time_zone {
            Some(z) => parse_time_zone("timeZone", z)?,
            None => chrono_tz::UTC,
        };
        self.check_participants(&new.participants).await?;
        let now = self.now();
        let rotation = Rotation {
            id: RotationId::new(),
            name,
            description: new.description,
            kind: new.kind,
            shift_length,
            start,
            time_zone,
            participants: new.participants,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let audit = AuditEntry::new(
            AuditAction::RotationCreated,
            Actor::User(by.id),
            Some(rotation.id.to_string()),
            messages::rotation_created(&rotation.name, rotation.participants.len()),
            now,
        );
        self.commit(Change {
            rotation: Some(RotationWrite::Insert(rotation.clone())),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(rotation)
    }

    /// A rotation (admin, engineer).
    pub async fn get_rotation(&self, by: &Principal, id: RotationId) -> Result<Rotation> {
        rbac::require(by.role, Permission::ReadOnCall)?;
        self.load_rotation(id).await
    }

    /// Rotations newest first (admin, engineer).
    pub async fn list_rotations(
        &self,
        by: &Principal,
        page: PageRequest,
    ) -> Result<Page<Rotation>> {
        rbac::require(by.role, Permission::ReadOnCall)?;
        page.validate()?;
        self.inner.store.list_rotations(page).await
    }

    /// Changes a rotation (admin), validated as on creation.
    pub async fn update_rotation(
        &self,
        by: &Principal,
        id: RotationId,
        patch: RotationPatch,
    ) -> Result<Rotation> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let name = patch
            .name
            .as_deref()
            .map(|n| validate_name("name", n))
            .transpose()?;
        if let Some(d) = &patch.description {
            check_len("description", d, 0, MAX_DESCRIPTION)?;
        }
        let shift_length = patch.shift_length.map(check_shift_length).transpose()?;
        let start = patch.start.map(|s| whole_minute("start", s)).transpose()?;
        let time_zone = patch
            .time_zone
            .as_deref()
            .map(|z| parse_time_zone("timeZone", z))
            .transpose()?;
        if let Some(p) = &patch.participants {
            self.check_participants(p).await?;
        }
        let before = self.load_rotation(id).await?;
        let mut after = before.clone();
        let mut changed = Vec::new();
        if let Some(n) = name.filter(|n| *n != before.name) {
            after.name = n;
            changed.push("name");
        }
        if let Some(d) = patch.description.filter(|d| *d != before.description) {
            after.description = d;
            changed.push("description");
        }
        if let Some(k) = patch.kind.filter(|k| *k != before.kind) {
            after.kind = k;
            changed.push("type");
        }
        if let Some(l) = shift_length.filter(|l| *l != before.shift_length) {
            after.shift_length = l;
            changed.push("shiftLength");
        }
        if let Some(s) = start.filter(|s| *s != before.start) {
            after.start = s;
            changed.push("start");
        }
        if let Some(z) = time_zone.filter(|z| *z != before.time_zone) {
            after.time_zone = z;
            changed.push("timeZone");
        }
        if let Some(p) = patch.participants.filter(|p| *p != before.participants) {
            after.participants = p;
            changed.push("participants");
        }
        if changed.is_empty() {
            return Ok(before);
        }
        let now = self.now();
        after.updated_at = now;
        after.version = before.version + 1;
        let audit = AuditEntry::new(
            AuditAction::RotationUpdated,
            Actor::User(by.id),
            Some(id.to_string()),
            messages::rotation_updated(&after.name, &changed),
            now,
        );
        self.commit(Change {
            rotation: Some(RotationWrite::Update {
                rotation: after.clone(),
                expected_version: before.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(after)
    }

    /// Deletes a rotation (admin); `Conflict` while a schedule rule or an
    /// escalation policy names it.
    pub async fn delete_rotation(&self, by: &Principal, id: RotationId) -> Result<()> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let rotation = self.load_rotation(id).await?;
        let target = RuleTarget::Rotation { id };
        if let Some(s) = self
            .every_schedule()
            .await?
            .into_iter()
            .find(|s| s.rules.iter().any(|r| r.target == target))
        {
            return Err(Error::conflict(messages::in_use(
                "rotation",
                &rotation.name,
                "schedule",
                &s.name,
            )));
        }
        let target = PolicyTarget::Rotation { id };
        if let Some(p) = self
            .every_escalation_policy()
            .await?
            .into_iter()
            .find(|p| p.steps.iter().any(|s| s.targets.contains(&target)))
        {
            return Err(Error::conflict(messages::in_use(
                "rotation",
                &rotation.name,
                "escalation policy",
                &p.name,
            )));
        }
        let now = self.now();
        let audit = AuditEntry::new(
            AuditAction::RotationDeleted,
            Actor::User(by.id),
            Some(id.to_string()),
            messages::rotation_deleted(&rotation.name),
            now,
        );
        self.commit(Change {
            rotation: Some(RotationWrite::Delete {
                id,
                expected_version: rotation.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await
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
        rbac::require(by.role, Permission::ReadOnCall)?;
        check_time_range(start, end, MAX_SHIFT_RANGE_DAYS)?;
        let rotation = self.load_rotation(id).await?;
        Ok(rotation.shifts(start, end))
    }
}

fn check_shift_length(n: u32) -> Result<u32> {
    check_range_u32(
        "shiftLength",
        n,
        1,
        MAX_SHIFT_LENGTH,
        "units of the rotation's type",
    )
}
