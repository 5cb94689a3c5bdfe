//! Escalations: manual escalation, the list of escalated incidents, and the one
//! place an automatic step (missed response, at risk, breach, escalation level,
//! policy step, expired acknowledgement) changes an incident, audits it and
//! notifies its targets. Stepping through an escalation policy is in
//! `paging.rs`.

use super::paging::{MAX_RUN, PolicyCache};
use super::recipients::Notice;
use super::{Engine, Principal, SweepReport};
use crate::error::{Error, Result};
use crate::escalation::{Step, Target};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, Incident, IncidentFilter, IncidentId, NotificationIntent,
    NotificationType, Page, PageRequest, Status, Timestamp,
};
use crate::rbac::{self, Permission};
use crate::validation::{MAX_REASON, check_len};

impl Engine {
    /// Raises an incident's escalation level by one (admin) and notifies the
    /// level's targets. An incident with an escalation policy runs the
    /// policy's next step instead (see `paging.rs`).
    pub async fn escalate_manually(
        &self,
        who: &Principal,
        id: IncidentId,
        reason: Option<String>,
    ) -> Result<Incident> {
        rbac::require(who.role, Permission::EscalateManually)?;
        if let Some(r) = &reason {
            check_len("reason", r, 0, MAX_REASON)?;
        }
        let before = self.load_incident(id).await?;
        if before.status.is_done() {
            return Err(Error::conflict(messages::not_escalatable(
                id,
                before.status,
            )));
        }
        if let Some(policy) = before.escalation_policy_id {
            return self
                .escalate_by_policy(who, &before, policy, reason.as_deref())
                .await;
        }
        let now = self.now();
        let mut after = before.clone();
        after.escalation_level += 1;
        after.escalated_at = Some(now);
        let level = after.escalation_level;
        let reason = reason.as_deref();
        let audit = AuditEntry::new(
            AuditAction::Escalation,
            Actor::User(who.id),
            Some(id.to_string()),
            messages::escalated_manually(&after.title, level, reason),
            now,
        );
        let notice = Notice {
            targets: self.escalation().level(level).targets.clone(),
            step: format!("level{level}"),
            kind: NotificationType::Escalation,
            message: messages::escalated_notice(&after.title, level, reason),
        };
        let outbox = self.intents(&after, &notice, now).await?;
        self.commit_update(&before, after, now, vec![audit], outbox)
            .await
    }

    /// Escalated incidents that are not closed.
    pub async fn list_escalations(
        &self,
        who: &Principal,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        rbac::require(who.role, Permission::ListEscalations)?;
        page.validate()?;
        let filter = IncidentFilter {
            escalated: Some(true),
            status: Status::ALL
                .iter()
                .copied()
                .filter(|s| *s != Status::Closed)
                .collect(),
            ..Default::default()
        };
        self.inner.store.list_incidents(&filter, page).await
    }

    /// Applies one due automatic step to `incident` (in memory), adding its audit
    /// entries and intents: [`Engine::take_step`] changes the incident and says
    /// what the step records; this writes that down the same way for every step.
    /// A policy step reads the store (the policy, who is on call), through
    /// `policies` for the incident's policy.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply_step(
        &self,
        incident: &mut Incident,
        step: Step,
        now: Timestamp,
        policies: &mut PolicyCache,
        audit: &mut Vec<AuditEntry>,
        outbox: &mut Vec<NotificationIntent>,
        report: &mut SweepReport,
    ) -> Result<()> {
        if step == Step::PolicyStep {
            return self
                .sweep_policy_step(incident, now, policies, audit, outbox, report)
                .await;
        }
        let (entries, mut notice) = self.take_step(incident, step, now, report);
        let target = incident.id.to_string();
        audit.extend(entries.into_iter().map(|(action, text)| {
            AuditEntry::new(action, Actor::System, Some(target.clone()), text, now)
        }));
        if step == Step::AckExpired && incident.escalation_policy_id.is_some() {
            // The policy resumes at once: the step reached pages again, and
            // steps with nobody to page are skipped on. If the rest of the run
            // pages nobody (every step empty now, or the policy gone), the
            // assignee (every engineer when unassigned) is told instead: an
            // acknowledgement that expires is never left unheard.
            let before = outbox.len();
            for _ in 0..=MAX_RUN {
                if incident.next_escalation_at.is_none() || outbox.len() > before {
                    break;
                }
                self.sweep_policy_step(incident, now, policies, audit, outbox, report)
                    .await?;
            }
            if outbox.len() > before {
                return Ok(());
            }
            notice.targets = vec![Target::Assignee];
        }
        outbox.extend(self.intents(incident, &notice, now).await?);
        Ok(())
    }

    /// Changes `incident` for one automatic step and counts it in `report`;
    /// returns the step's audit entries (action and text, by the system) and
    /// what it notifies.
    fn take_step(
        &self,
        incident: &mut Incident,
        step: Step,
        now: Timestamp,
        report: &mut SweepReport,
    ) -> (Vec<(AuditAction, String)>, Notice) {
        let title = incident.title.clone();
        let to_assignee = |step: String, message: String| Notice {
            targets: vec![Target::Assignee],
            step,
            kind: NotificationType::Warning,
            message,
        };
        match step {
            Step::ResponseBreach => {
                incident.response_breached_at = Some(now);
                report.response_breaches += 1;
                let text = messages::response_missed(&title, incident.response_deadline);
                let notice = to_assignee(
                    "response".to_string(),
                    messages::response_missed_notice(&title),
                );
                (vec![(AuditAction::SlaResponseBreach, text)], notice)
            }
            Step::AtRisk => {
                incident.at_risk_at = Some(now);
                report.at_risk += 1;
                let text = messages::at_risk(&title, incident.sla_deadline);
                let key = format!("at-risk:{}", incident.sla_deadline.timestamp_millis());
                let notice = to_assignee(key, text.clone());
                (vec![(AuditAction::SlaAtRisk, text)], notice)
            }
            Step::Breach => {
                incident.sla_breached = true;
                incident.breached_at = Some(now);
                report.breaches += 1;
                let mut entries = vec![(
                    AuditAction::SlaBreach,
                    messages::breached(&title, incident.sla_deadline),
                )];
                // An incident with a policy steps through it: the breach is
                // recorded and notified, but sets no level.
                if incident.escalation_policy_id.is_none()
                    && incident.escalation_level == 0
                    && self.escalation().breach_is_level_one()
                {
                    incident.escalation_level = 1;
                    incident.escalated_at = Some(now);
                    report.escalations += 1;
                    entries.push((
                        AuditAction::Escalation,
                        messages::escalated_at_breach(&title),
                    ));
                }
                let notice = Notice {
                    targets: self.escalation().level(1).targets.clone(),
                    step: "breach".to_string(),
                    kind: NotificationType::Escalation,
                    message: messages::breached_notice(&title),
                };
                (entries, notice)
            }
            Step::Escalate(level) => {
                incident.escalation_level = level;
                incident.escalated_at = Some(now);
                report.escalations += 1;
                let notice = Notice {
                    targets: self.escalation().level(level).targets.clone(),
                    step: format!("level{level}"),
                    kind: NotificationType::Escalation,
                    message: messages::escalated_unacknowledged(&title, level),
                };
                let text = messages::escalated_automatically(&title, level);
                (vec![(AuditAction::Escalation, text)], notice)
            }
            Step::AckExpired => Self::expire_ack(incident, now, report),
            // Run by `apply_step` (it reads the store); nothing here.
            Step::PolicyStep => (
                Vec::new(),
                Notice {
                    targets: Vec::new(),
                    step: "policy".to_string(),
                    kind: NotificationType::Escalation,
                    message: String::new(),
                },
            ),
        }
    }
}
