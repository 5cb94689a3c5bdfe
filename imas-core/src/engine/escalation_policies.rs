//! Escalation policies as data (SPEC §5): create, read, list, update, delete.
//! Admins change them; admins and engineers read them. Each change commits with
//! its audit entry (`ESCALATION_POLICY_CREATED`, `_UPDATED`, `_DELETED`). How
//! an incident steps through its policy is in `sla.rs` (the sweep) and
//! `escalations.rs` (manual escalation).

use std::collections::HashSet;

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, DEFAULT_REPEAT, EscalationPolicy, EscalationPolicyId,
    EscalationPolicyPatch, EscalationStep, MAX_DELAY_MINUTES, MAX_REPEAT, MAX_STEPS, MAX_TARGETS,
    NewEscalationPolicy, Page, PageRequest, PolicyTarget,
};
use crate::ports::{Change, EscalationPolicyWrite};
use crate::rbac::{self, Permission};
use crate::validation::{MAX_DESCRIPTION, check_count, check_len, check_range_u32, validate_name};

fn check_repeat(repeat: u32) -> Result<u32> {
    check_range_u32("repeat", repeat, 0, MAX_REPEAT, "repeats")
}

impl Engine {
    /// A policy by id, `NotFound` when there is none (no permission check).
    pub(super) async fn load_escalation_policy(
        &self,
        id: EscalationPolicyId,
    ) -> Result<EscalationPolicy> {
        self.inner
            .store
            .get_escalation_policy(id)
            .await?
            .ok_or(Error::NotFound {
                entity: "escalation policy",
            })
    }

    /// Steps as stored: 1..=20, each with a delay of 1..=9000 minutes and
    /// 1..=10 targets whose users, schedules and rotations exist (errors name
    /// `steps[i].…`).
    async fn check_steps(&self, steps: &[EscalationStep]) -> Result<()> {
        check_count("steps", steps.len(), 1, MAX_STEPS, "steps")?;
        let mut checked = HashSet::new();
        for (i, step) in steps.iter().enumerate() {
            check_range_u32(
                &format!("steps[{i}].delayMinutes"),
                step.delay_minutes,
                1,
                MAX_DELAY_MINUTES,
                "minutes",
            )?;
            check_count(
                &format!("steps[{i}].targets"),
                step.targets.len(),
                1,
                MAX_TARGETS,
                "targets",
            )?;
            for (j, target) in step.targets.iter().enumerate() {
                if !checked.insert(*target) {
                    continue;
                }
                let field = format!("steps[{i}].targets[{j}]");
                match *target {
                    PolicyTarget::User { id } => self.check_users_exist(&field, &[id]).await?,
                    PolicyTarget::Rotation { id } => self.check_rotation_exists(&field, id).await?,
                    PolicyTarget::Schedule { id } => {
                        if self.inner.store.get_schedule(id).await?.is_none() {
                            return Err(Error::validation(
                                field,
                                messages::no_such("schedule", id),
                            ));
                        }
                    }
                    PolicyTarget::Role { .. } | PolicyTarget::Assignee => {}
                }
            }
        }
        Ok(())
    }

    /// Creates a policy (admin): name 1..=100, repeat 0..=5 (default 3), 1..=20
    /// steps each with a delay of 1..=9000 minutes and 1..=10 targets that
    /// exist.
    pub async fn create_escalation_policy(
        &self,
        by: &Principal,
        new: NewEscalationPolicy,
    ) -> Result<EscalationPolicy> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let name = validate_name("name", &new.name)?;
        check_len("description", &new.description, 0, MAX_DESCRIPTION)?;
        let repeat = check_repeat(new.repeat.unwrap_or(DEFAULT_REPEAT))?;
        self.check_steps(&new.steps).await?;
        let now = self.now();
        let policy = EscalationPolicy {
            id: EscalationPolicyId::new(),
            name,
            description: new.description,
            repeat,
            steps: new.steps,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let audit = AuditEntry::new(
            AuditAction::EscalationPolicyCreated,
            Actor::User(by.id),
            Some(policy.id.to_string()),
            messages::escalation_policy_created(&policy.name, policy.steps.len()),
            now,
        );
        self.commit(Change {
            escalation_policy: Some(EscalationPolicyWrite::Insert(policy.clone())),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(policy)
    }

    /// A policy (admin, engineer).
    pub async fn get_escalation_policy(
        &self,
        by: &Principal,
        id: EscalationPolicyId,
    ) -> Result<EscalationPolicy> {
        rbac::require(by.role, Permission::ReadOnCall)?;
        self.load_escalation_policy(id).await
    }

    /// Policies newest first (admin, engineer).
    pub async fn list_escalation_policies(
        &self,
        by: &Principal,
        page: PageRequest,
    ) -> Result<Page<EscalationPolicy>> {
        rbac::require(by.role, Permission::ReadOnCall)?;
        page.validate()?;
        self.inner.store.list_escalation_policies(page).await
    }

    /// Changes a policy (admin), validated as on creation; incidents already
    /// stepping through it take the new steps from their next step on.
    pub async fn update_escalation_policy(
        &self,
        by: &Principal,
        id: EscalationPolicyId,
        patch: EscalationPolicyPatch,
    ) -> Result<EscalationPolicy> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let name = patch
            .name
            .as_deref()
            .map(|n| validate_name("name", n))
            .transpose()?;
        if let Some(d) = &patch.description {
            check_len("description", d, 0, MAX_DESCRIPTION)?;
        }
        let repeat = patch.repeat.map(check_repeat).transpose()?;
        if let Some(s) = &patch.steps {
            self.check_steps(s).await?;
        }
        let before = self.load_escalation_policy(id).await?;
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
        if let Some(r) = repeat.filter(|r| *r != before.repeat) {
            after.repeat = r;
            changed.push("repeat");
        }
        if let Some(s) = patch.steps.filter(|s| *s != before.steps) {
            after.steps = s;
            changed.push("steps");
        }
        if changed.is_empty() {
            return Ok(before);
        }
        let now = self.now();
        after.updated_at = now;
        after.version = before.version + 1;
        let audit = AuditEntry::new(
            AuditAction::EscalationPolicyUpdated,
            Actor::User(by.id),
            Some(id.to_string()),
            messages::escalation_policy_updated(&after.name, &changed),
            now,
        );
        self.commit(Change {
            escalation_policy: Some(EscalationPolicyWrite::Update {
                escalation_policy: after.clone(),
                expected_version: before.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(after)
    }

    /// Deletes a policy (admin); `Conflict` (409) while a service uses it.
    pub async fn delete_escalation_policy(
        &self,
        by: &Principal,
        id: EscalationPolicyId,
    ) -> Result<()> {
        rbac::require(by.role, Permission::ManageOnCall)?;
        let policy = self.load_escalation_policy(id).await?;
        if let Some(s) = self
            .every_service()
            .await?
            .into_iter()
            .find(|s| s.escalation_policy_id == Some(id))
        {
            return Err(Error::conflict(messages::in_use(
                "escalation policy",
                &policy.name,
                "service",
                &s.name,
            )));
        }
        let now = self.now();
        let audit = AuditEntry::new(
            AuditAction::EscalationPolicyDeleted,
            Actor::User(by.id),
            Some(id.to_string()),
            messages::escalation_policy_deleted(&policy.name),
            now,
        );
        self.commit(Change {
            escalation_policy: Some(EscalationPolicyWrite::Delete {
                id,
                expected_version: policy.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await
    }
}
