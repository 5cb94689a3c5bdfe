//! Schedules (SPEC §5): create, read, list, update, delete; overrides; who is
//! on call and the shifts. Admins change schedules; admins and engineers read
//! them; an engineer may add or delete an override that adds or removes
//! himself. Each change commits with its audit entry (`SCHEDULE_CREATED`,
//! `SCHEDULE_UPDATED`, `SCHEDULE_DELETED`, `OVERRIDE_CREATED`,
//! `OVERRIDE_DELETED`).

use std::collections::{HashMap, HashSet};

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, MAX_OVERRIDES, MAX_RULES, MAX_SHIFT_RANGE_DAYS, NewOverride,
    NewSchedule, OVERRIDE_RETENTION_DAYS, OnCall, OnCallEverywhere, Override, OverrideId, Page,
    PageRequest, PolicyTarget, Rotation, RotationId, RuleTarget, Schedule, ScheduleId,
    ScheduleOnCall, SchedulePatch, ScheduleRule, Shift, Timestamp, User, UserId, UserSummary,
    check_instant, parse_time_zone,
};
use crate::ports::{Change, ScheduleWrite};
use crate::rbac::{self, Permission};
use crate::validation::{
    MAX_DESCRIPTION, check_count, check_len, check_time_range, validate_name, whole_minute,
};

/// Who may add or delete an override adding `add` and removing `remove`:
/// whoever manages on-call (admins), or an engineer it adds or removes.
fn may_manage_override(by: &Principal, add: Option<UserId>, remove: Option<UserId>) -> Result<()> {
    if rbac::allows(by.role, Permission::ManageOnCall) {
        return Ok(());
    }
    rbac::require(by.role, Permission::ManageOwnOverrides)?;
    if add == Some(by.id) || remove == Some(by.id) {
        Ok(())
    } else {
        Err(Error::forbidden(messages::OWN_OVERRIDES_ONLY))
    }
}

/// Rotations and users read while answering who is on call, each once.
#[derive(Default)]
struct Lookups {
    rotations: HashMap<RotationId, Option<Rotation>>,
    users: HashMap<UserId, Option<UserSummary>>,
}

impl Engine {
    /// A schedule by id, `NotFound` when there is none (no permission check).
    pub(super) async fn load_schedule(&self, id: ScheduleId) -> Result<Schedule> {
        self.inner
            .store
            .get_schedule(id)
            .await?
            .ok_or(Error::NotFound { entity: "schedule" })
    }

    /// Rules as stored: at most 100, weekdays not empty, the users and
    /// rotations they name exist (errors name `rules[i].…`).
    async fn check_rules(&self, rules: &[ScheduleRule]) -> Result<()> {
        check_count("rules", rules.len(), 0, MAX_RULES, "rules")?;
        let mut checked_users = HashSet::new();
        let mut checked_rotations = HashSet::new();
        for (i, r) in rules.iter().enumerate() {
            if r.weekdays.is_empty() {
                return Err(Error::validation(
                    format!("rules[{i}].weekdays"),
                    messages::NO_WEEKDAYS,
                ));
            }
            let field = format!("rules[{i}].target");
            match r.target {
                RuleTarget::User { id } if checked_users.insert(id) => {
                    self.check_users_exist(&field, &[id]).await?;
                }
                RuleTarget::Rotation { id } if checked_rotations.insert(id) => {
                    self.check_rotation_exists(&field, id).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The rotations a schedule's rules name that exist (a deleted one puts
    /// nobody on call).
    async fn rotations_of(&self, s: &Schedule, seen: &mut Lookups) -> Result<Vec<Rotation>> {
        let mut out = Vec::new();
        for id in s.rotation_ids() {
            let r = match seen.rotations.get(&id) {
                Some(r) => r.clone(),
                None => {
                    let r = self.inner.store.get_rotation(id).await?;
                    seen.rotations.insert(id, r.clone());
                    r
                }
            };
            out.extend(r);
        }
        Ok(out)
    }

    /// The summaries of users in order; a user missing from the store is
    /// left out.
    async fn summaries(&self, ids: &[UserId], seen: &mut Lookups) -> Result<Vec<UserSummary>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let u = match seen.users.get(id) {
                Some(u) => u.clone(),
                None => {
                    let u = self
                        .inner
                        .store
                        .get_user(*id)
                        .await?
                        .as_ref()
                        .map(UserSummary::from);
                    seen.users.insert(*id, u.clone());
                    u
                }
            };
            out.extend(u);
        }
        Ok(out)
    }

    /// Creates a schedule (admin): name 1..=100, a known time zone (default
    /// UTC), at most 100 rules whose users and rotations exist and whose
    /// weekdays are not empty.
    pub async fn create_schedule(&self, by: &Principal, new: NewSchedule) -> Result<Schedule> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let name = validate_name("name", &new.name)?;
        check_len("description", &new.description, 0, MAX_DESCRIPTION)?;
        let time_zone = match &new.time_zone {
            Some(z) => parse_time_zone("timeZone", z)?,
            None => chrono_tz::UTC,
        };
        self.check_rules(&new.rules).await?;
        let now = self.now();
        let schedule = Schedule {
            id: ScheduleId::new(),
            name,
            description: new.description,
            time_zone,
            rules: new.rules,
            overrides: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let audit = AuditEntry::new(
            AuditAction::ScheduleCreated,
            Actor::User(by.id),
            Some(schedule.id.to_string()),
            messages::schedule_created(&schedule.name, schedule.rules.len()),
            now,
        );
        self.commit(Change {
            schedule: Some(ScheduleWrite::Insert(schedule.clone())),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(schedule)
    }

    /// A schedule with its rules and overrides (admin, engineer).
    pub async fn get_schedule(&self, by: &Principal, id: ScheduleId) -> Result<Schedule> {
        rbac::require(by.role, Permission::ReadOnCall)?;
        self.load_schedule(id).await
    }

    /// Schedules newest first (admin, engineer).
    pub async fn list_schedules(
        &self,
        by: &Principal,
        page: PageRequest,
    ) -> Result<Page<Schedule>> {
        rbac::require(by.role, Permission::ReadOnCall)?;
        page.validate()?;
        self.inner.store.list_schedules(page).await
    }

    /// Changes a schedule's name, description, time zone or rules (admin).
    pub async fn update_schedule(
        &self,
        by: &Principal,
        id: ScheduleId,
        patch: SchedulePatch,
    ) -> Result<Schedule> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let name = patch
            .name
            .as_deref()
            .map(|n| validate_name("name", n))
            .transpose()?;
        if let Some(d) = &patch.description {
            check_len("description", d, 0, MAX_DESCRIPTION)?;
        }
        let time_zone = patch
            .time_zone
            .as_deref()
            .map(|z| parse_time_zone("timeZone", z))
            .transpose()?;
        if let Some(r) = &patch.rules {
            self.check_rules(r).await?;
        }
        let before = self.load_schedule(id).await?;
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
        if let Some(z) = time_zone.filter(|z| *z != before.time_zone) {
            after.time_zone = z;
            changed.push("timeZone");
        }
        if let Some(r) = patch.rules.filter(|r| *r != before.rules) {
            after.rules = r;
            changed.push("rules");
        }
        if changed.is_empty() {
            return Ok(before);
        }
        let now = self.now();
        after.updated_at = now;
        after.version = before.version + 1;
        let audit = AuditEntry::new(
            AuditAction::ScheduleUpdated,
            Actor::User(by.id),
            Some(id.to_string()),
            messages::schedule_updated(&after.name, &changed),
            now,
        );
        self.commit(Change {
            schedule: Some(ScheduleWrite::Update {
                schedule: after.clone(),
                expected_version: before.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(after)
    }

    /// Deletes a schedule (admin); `Conflict` while an escalation policy names
    /// it.
    pub async fn delete_schedule(&self, by: &Principal, id: ScheduleId) -> Result<()> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let schedule = self.load_schedule(id).await?;
        let target = PolicyTarget::Schedule { id };
        if let Some(p) = self
            .every_escalation_policy()
            .await?
            .into_iter()
            .find(|p| p.steps.iter().any(|s| s.targets.contains(&target)))
        {
            return Err(Error::conflict(messages::in_use(
                "schedule",
                &schedule.name,
                "escalation policy",
                &p.name,
            )));
        }
        let now = self.now();
        let audit = AuditEntry::new(
            AuditAction::ScheduleDeleted,
            Actor::User(by.id),
            Some(id.to_string()),
            messages::schedule_deleted(&schedule.name),
            now,
        );
        self.commit(Change {
            schedule: Some(ScheduleWrite::Delete {
                id,
                expected_version: schedule.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await
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
        may_manage_override(by, new.add_user_id, new.remove_user_id)?;
        let start = whole_minute("start", new.start)?;
        let end = whole_minute("end", new.end)?;
        let (add, remove) = (new.add_user_id, new.remove_user_id);
        match (add, remove) {
            (None, None) => {
                return Err(Error::validation("addUserId", messages::OVERRIDE_NOBODY));
            }
            (Some(a), Some(r)) if a == r => {
                return Err(Error::validation(
                    "removeUserId",
                    messages::OVERRIDE_SAME_USER,
                ));
            }
            _ => {}
        }
        if end <= start {
            return Err(Error::validation("end", messages::OVERRIDE_EMPTY));
        }
        let now = self.now();
        if end <= now {
            return Err(Error::validation("end", messages::OVERRIDE_IN_THE_PAST));
        }
        let added = self.override_user("addUserId", add).await?;
        let removed = self.override_user("removeUserId", remove).await?;
        let before = self.load_schedule(schedule).await?;
        let mut after = before.clone();
        let horizon = now - chrono::TimeDelta::days(OVERRIDE_RETENTION_DAYS);
        after.overrides.retain(|o| o.end >= horizon);
        if after.overrides.len() >= MAX_OVERRIDES {
            return Err(Error::conflict(messages::too_many_overrides(
                &before.name,
                MAX_OVERRIDES,
            )));
        }
        let o = Override {
            id: OverrideId::new(),
            start,
            end,
            add_user_id: add,
            remove_user_id: remove,
            created_by: by.id,
            created_at: now,
        };
        let at = after
            .overrides
            .partition_point(|x| (x.start, x.created_at) <= (o.start, o.created_at));
        after.overrides.insert(at, o.clone());
        after.updated_at = now;
        after.version = before.version + 1;
        let what = messages::override_what(
            added.as_ref().map(|u| u.username.as_str()),
            removed.as_ref().map(|u| u.username.as_str()),
            start,
            end,
        );
        let audit = AuditEntry::new(
            AuditAction::OverrideCreated,
            Actor::User(by.id),
            Some(schedule.to_string()),
            messages::override_created(&before.name, o.id, &what),
            now,
        );
        self.commit(Change {
            schedule: Some(ScheduleWrite::Update {
                schedule: after,
                expected_version: before.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(o)
    }

    /// The user an override names, a validation error naming `field` when
    /// there is none with that id.
    async fn override_user(&self, field: &str, id: Option<UserId>) -> Result<Option<User>> {
        let Some(id) = id else { return Ok(None) };
        match self.inner.store.get_user(id).await? {
            Some(u) => Ok(Some(u)),
            None => Err(Error::validation(field, messages::no_such("user", id))),
        }
    }

    /// Deletes an override (admin; an engineer when he is its added or
    /// removed user).
    pub async fn delete_override(
        &self,
        by: &Principal,
        schedule: ScheduleId,
        id: OverrideId,
    ) -> Result<()> {
        rbac::require(by.role, Permission::ManageOwnOverrides)?;
        let before = self.load_schedule(schedule).await?;
        let Some(at) = before.overrides.iter().position(|o| o.id == id) else {
            return Err(Error::NotFound { entity: "override" });
        };
        let o = before.overrides[at].clone();
        may_manage_override(by, o.add_user_id, o.remove_user_id)?;
        let mut after = before.clone();
        after.overrides.remove(at);
        let now = self.now();
        after.updated_at = now;
        after.version = before.version + 1;
        let name_of = async |u: Option<UserId>| -> Result<Option<String>> {
            let Some(u) = u else { return Ok(None) };
            Ok(Some(match self.inner.store.get_user(u).await? {
                Some(user) => user.username,
                None => u.to_string(),
            }))
        };
        let added = name_of(o.add_user_id).await?;
        let removed = name_of(o.remove_user_id).await?;
        let what = messages::override_what(added.as_deref(), removed.as_deref(), o.start, o.end);
        let audit = AuditEntry::new(
            AuditAction::OverrideDeleted,
            Actor::User(by.id),
            Some(schedule.to_string()),
            messages::override_deleted(&before.name, id, &what),
            now,
        );
        self.commit(Change {
            schedule: Some(ScheduleWrite::Update {
                schedule: after,
                expected_version: before.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await
    }

    /// Who is on call in a schedule at `at` (now when `None`) (admin,
    /// engineer).
    pub async fn schedule_on_call(
        &self,
        by: &Principal,
        id: ScheduleId,
        at: Option<Timestamp>,
    ) -> Result<OnCall> {
        rbac::require(by.role, Permission::ReadOnCall)?;
        let at = check_instant("at", at.unwrap_or_else(|| self.now()))?;
        let schedule = self.load_schedule(id).await?;
        let mut seen = Lookups::default();
        let rotations = self.rotations_of(&schedule, &mut seen).await?;
        let ids = schedule.on_call_at(at, &rotations);
        let users = self.summaries(&ids, &mut seen).await?;
        Ok(OnCall { at, users })
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
        rbac::require(by.role, Permission::ReadOnCall)?;
        check_time_range(start, end, MAX_SHIFT_RANGE_DAYS)?;
        let schedule = self.load_schedule(id).await?;
        let rotations = self
            .rotations_of(&schedule, &mut Lookups::default())
            .await?;
        Ok(schedule.shifts(start, end, &rotations))
    }

    /// Every schedule with who is on call at `at` (now when `None`) (admin,
    /// engineer).
    pub async fn on_call_everywhere(
        &self,
        by: &Principal,
        at: Option<Timestamp>,
    ) -> Result<OnCallEverywhere> {
        rbac::require(by.role, Permission::ReadOnCall)?;
        let at = check_instant("at", at.unwrap_or_else(|| self.now()))?;
        let mut seen = Lookups::default();
        let mut schedules = Vec::new();
        for s in self.every_schedule().await? {
            let rotations = self.rotations_of(&s, &mut seen).await?;
            let ids = s.on_call_at(at, &rotations);
            schedules.push(ScheduleOnCall {
                schedule_id: s.id,
                name: s.name,
                users: self.summaries(&ids, &mut seen).await?,
            });
        }
        Ok(OnCallEverywhere { at, schedules })
    }
}
