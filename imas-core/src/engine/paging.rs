//! Paging through an incident's escalation policy (SPEC §5): the step it has
//! reached runs with its targets resolved at that instant (an empty one is
//! skipped at once, `ESCALATION_SKIPPED`), manual escalation runs the next
//! step whatever the status, and an expired acknowledgement opens the incident
//! again and resumes. [`crate::escalation::next_step`] says when; the sweep
//! (`sla.rs`) and manual escalation (`escalations.rs`) call these.

use super::recipients::Notice;
use super::{Engine, Principal, SweepReport};
use crate::error::Result;
use crate::escalation::Target;
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, EscalationPolicy, EscalationPolicyId, Incident,
    NotificationIntent, NotificationType, Status, Timestamp, plus_ms,
};

/// What running one position of a policy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ran {
    /// Somebody was paged: the level went up.
    Paged,
    /// Nobody to page: skipped, the next position (if any) due at once.
    Skipped,
    /// No step at this position (the run is over, or the policy is gone).
    Ended,
}

/// The policy of the incident a sweep is working on, read once per incident
/// however many of its steps the sweep runs.
#[derive(Debug, Default)]
pub(super) struct PolicyCache(Option<Option<EscalationPolicy>>);

/// Most positions one run through a policy has (20 steps, 6 passes).
pub(super) const MAX_RUN: u32 = crate::model::MAX_STEPS as u32 * (crate::model::MAX_REPEAT + 1);

impl Engine {
    /// A policy by id, `None` when it is gone.
    async fn load_policy(&self, id: EscalationPolicyId) -> Result<Option<EscalationPolicy>> {
        self.inner.store.get_escalation_policy(id).await
    }

    /// The incident's policy through `cache` (read from the store the first
    /// time).
    pub(super) async fn cached_policy(
        &self,
        incident: &Incident,
        cache: &mut PolicyCache,
    ) -> Result<Option<EscalationPolicy>> {
        if cache.0.is_none() {
            cache.0 = Some(match incident.escalation_policy_id {
                Some(id) => self.load_policy(id).await?,
                None => None,
            });
        }
        Ok(cache.0.clone().flatten())
    }

    /// Runs position `incident.escalation_step` of `policy` (`None`: the
    /// policy is gone) at `now`, by `by` (the system, or an admin escalating
    /// by hand with `reason`): its targets are resolved now; somebody to page
    /// -> one `escalation` notification each (keyed by position and level, so
    /// that a step run again pages again), the level up, `ESCALATION`, the next
    /// position due `delayMinutes` after `due`; nobody -> `ESCALATION_SKIPPED`
    /// (by the system), the next position due at `due`; no next position ->
    /// nothing pending.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_policy_step(
        &self,
        incident: &mut Incident,
        policy: Option<&EscalationPolicy>,
        due: Timestamp,
        now: Timestamp,
        by: Actor,
        reason: Option<&str>,
        audit: &mut Vec<AuditEntry>,
        outbox: &mut Vec<NotificationIntent>,
    ) -> Result<Ran> {
        let target = Some(incident.id.to_string());
        let Some(policy) = policy else {
            incident.next_escalation_at = None;
            audit.push(AuditEntry::new(
                AuditAction::EscalationSkipped,
                Actor::System,
                target,
                messages::policy_gone(&incident.title),
                now,
            ));
            return Ok(Ran::Ended);
        };
        let n = incident.escalation_step;
        let Some(step) = policy.step_at(n) else {
            incident.next_escalation_at = None;
            return Ok(Ran::Ended);
        };
        let users = self.policy_recipients(incident, &step.targets, now).await?;
        let steps = policy.steps.len();
        incident.escalation_step = n.saturating_add(1);
        let has_next = policy.step_at(incident.escalation_step).is_some();
        if users.is_empty() {
            incident.next_escalation_at = has_next.then_some(due);
            audit.push(AuditEntry::new(
                AuditAction::EscalationSkipped,
                Actor::System,
                target,
                messages::policy_step_skipped(&incident.title, &policy.name, n, steps),
                now,
            ));
            return Ok(Ran::Skipped);
        }
        incident.escalation_level = incident.escalation_level.saturating_add(1);
        incident.escalated_at = Some(now);
        let delay_ms = i64::from(step.delay_minutes) * 60_000;
        incident.next_escalation_at = has_next.then(|| plus_ms(due, delay_ms));
        let (level, title, paged) = (incident.escalation_level, &incident.title, users.len());
        let text = match by {
            Actor::System => {
                messages::policy_step_paged(title, &policy.name, n, steps, level, paged)
            }
            Actor::User(_) => messages::policy_step_escalated_manually(
                title,
                &policy.name,
                n,
                steps,
                level,
                paged,
                reason,
            ),
        };
        audit.push(AuditEntry::new(
            AuditAction::Escalation,
            by,
            target,
            text,
            now,
        ));
        let notice = Notice {
            targets: Vec::new(),
            step: format!("policy-{n}-{level}"),
            kind: NotificationType::Escalation,
            message: messages::policy_step_notice(title, &policy.name, n, steps, level, reason),
        };
        outbox.extend(Self::intents_to(incident, &notice, users, now));
        Ok(Ran::Paged)
    }

    /// Manual escalation of an incident with a policy (the caller checked the
    /// permission and that it is not done): runs the next step now whatever
    /// the status, skipping on through steps with nobody to page; past the
    /// end of the run, the last step again. The step after it is due only
    /// while the incident is `open`.
    pub(super) async fn escalate_by_policy(
        &self,
        who: &Principal,
        before: &Incident,
        policy: EscalationPolicyId,
        reason: Option<&str>,
    ) -> Result<Incident> {
        let now = self.now();
        let policy = self.load_policy(policy).await?;
        let mut after = before.clone();
        if let Some(p) = &policy {
            let total = p.total_steps();
            if after.escalation_step >= total {
                after.escalation_step = total.saturating_sub(1);
            }
        }
        let (mut audit, mut outbox) = (Vec::new(), Vec::new());
        for _ in 0..=MAX_RUN {
            let ran = self
                .run_policy_step(
                    &mut after,
                    policy.as_ref(),
                    now,
                    now,
                    Actor::User(who.id),
                    reason,
                    &mut audit,
                    &mut outbox,
                )
                .await?;
            if ran != Ran::Skipped {
                break;
            }
        }
        if after.status != Status::Open {
            after.next_escalation_at = None;
        }
        self.commit_update(before, after, now, audit, outbox).await
    }

    /// The step of the sweep that runs an incident's due policy step (see
    /// [`Engine::run_policy_step`]), counted in `report`.
    pub(super) async fn sweep_policy_step(
        &self,
        incident: &mut Incident,
        now: Timestamp,
        policies: &mut PolicyCache,
        audit: &mut Vec<AuditEntry>,
        outbox: &mut Vec<NotificationIntent>,
        report: &mut SweepReport,
    ) -> Result<()> {
        let due = incident.next_escalation_at.unwrap_or(now);
        let policy = self.cached_policy(incident, policies).await?;
        let ran = self
            .run_policy_step(
                incident,
                policy.as_ref(),
                due,
                now,
                Actor::System,
                None,
                audit,
                outbox,
            )
            .await?;
        match ran {
            Ran::Paged => report.escalations += 1,
            Ran::Skipped => report.skipped += 1,
            Ran::Ended => {}
        }
        Ok(())
    }

    /// The acknowledgement of `incident` expired (the sweep found
    /// `ack_expires_at` due): it is `open` again (`STATUS_CHANGED` and
    /// `ACK_EXPIRED`, by the system). With a policy, the step last run is due
    /// again now (`apply_step` runs it at once, and tells the assignee when
    /// the rest of the run pages nobody); without one, the assignee (every
    /// engineer when unassigned) is told. Returns what it notifies.
    pub(super) fn expire_ack(
        incident: &mut Incident,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> (Vec<(AuditAction, String)>, Notice) {
        let from = incident.status;
        let expired = incident.ack_expires_at.unwrap_or(now);
        incident.status = Status::Open;
        incident.ack_expires_at = None;
        report.ack_expired += 1;
        let entries = vec![
            (
                AuditAction::StatusChanged,
                messages::status_changed(from, Status::Open),
            ),
            (
                AuditAction::AckExpired,
                messages::ack_expired(&incident.title, expired),
            ),
        ];
        let targets = if incident.escalation_policy_id.is_some() {
            incident.escalation_step = incident.escalation_step.saturating_sub(1);
            incident.next_escalation_at = Some(now);
            Vec::new()
        } else {
            vec![Target::Assignee]
        };
        let notice = Notice {
            targets,
            step: format!("ack-expired-{}", expired.timestamp_millis()),
            kind: NotificationType::Escalation,
            message: messages::ack_expired_notice(&incident.title),
        };
        (entries, notice)
    }
}
