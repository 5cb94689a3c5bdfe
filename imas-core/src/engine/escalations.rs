//! Escalations: manual escalation, the list of escalated incidents, and the one
//! place an automatic step (missed response, at risk, breach, escalation level)
//! changes an incident, audits it and notifies its targets.

use super::{Engine, Principal, SweepReport};
use crate::error::{Error, Result};
use crate::escalation::{Step, Target};
use crate::messages::quoted;
use crate::model::{
    Actor, AuditAction, AuditEntry, Incident, IncidentFilter, IncidentId, NotificationIntent,
    NotificationType, Page, PageRequest, Status, Timestamp,
};
use crate::rbac::{self, Permission};
use crate::validation::*;

impl Engine {
    /// Raises an incident's escalation level by one (admin) and notifies the
    /// level's targets.
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
            return Err(Error::conflict(format!(
                "incident {id} is {} and cannot be escalated",
                before.status
            )));
        }
        let now = self.now();
        let mut after = before.clone();
        after.escalation_level += 1;
        after.escalated_at = Some(now);
        let level = after.escalation_level;
        let why = reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let audit = AuditEntry::new(
            AuditAction::Escalation,
            Actor::User(who.id),
            Some(id.to_string()),
            format!(
                "incident {} escalated manually to level {level}{why}",
                quoted(&after.title)
            ),
            now,
        );
        let message = format!(
            "Incident {} escalated to level {level}{why}",
            quoted(&after.title)
        );
        let targets = self.escalation().level(level).targets.clone();
        let outbox = self
            .intents(
                &after,
                &targets,
                &format!("level{level}"),
                NotificationType::Escalation,
                &message,
                now,
            )
            .await?;
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
    /// entries and intents.
    pub(super) async fn apply_step(
        &self,
        incident: &mut Incident,
        step: Step,
        now: Timestamp,
        audit: &mut Vec<AuditEntry>,
        outbox: &mut Vec<NotificationIntent>,
        report: &mut SweepReport,
    ) -> Result<()> {
        let target = Some(incident.id.to_string());
        let title = quoted(&incident.title);
        match step {
            Step::ResponseBreach => {
                incident.response_breached_at = Some(now);
                report.response_breaches += 1;
                audit.push(AuditEntry::new(
                    AuditAction::SlaResponseBreach,
                    Actor::System,
                    target,
                    format!(
                        "response target missed for {title}: still open at {}",
                        incident.response_deadline.to_rfc3339()
                    ),
                    now,
                ));
                let message =
                    format!("Response target missed for {title}: nobody has acknowledged it yet");
                outbox.extend(
                    self.intents(
                        incident,
                        &[Target::Assignee],
                        "response",
                        NotificationType::Warning,
                        &message,
                        now,
                    )
                    .await?,
                );
            }
            Step::AtRisk => {
                incident.at_risk_at = Some(now);
                report.at_risk += 1;
                let deadline = incident.sla_deadline.to_rfc3339();
                audit.push(AuditEntry::new(
                    AuditAction::SlaAtRisk,
                    Actor::System,
                    target,
                    format!("SLA at risk for {title}: deadline {deadline}"),
                    now,
                ));
                let message = format!("SLA at risk for {title}: deadline {deadline}");
                let key = format!("at-risk:{}", incident.sla_deadline.timestamp_millis());
                outbox.extend(
                    self.intents(
                        incident,
                        &[Target::Assignee],
                        &key,
                        NotificationType::Warning,
                        &message,
                        now,
                    )
                    .await?,
                );
            }
            Step::Breach => {
                incident.sla_breached = true;
                incident.breached_at = Some(now);
                report.breaches += 1;
                audit.push(AuditEntry::new(
                    AuditAction::SlaBreach,
                    Actor::System,
                    target.clone(),
                    format!(
                        "SLA violated for {title}: deadline {}",
                        incident.sla_deadline.to_rfc3339()
                    ),
                    now,
                ));
                let message = format!("SLA violated for {title}");
                let targets = self.escalation().level(1).targets.clone();
                outbox.extend(
                    self.intents(
                        incident,
                        &targets,
                        "breach",
                        NotificationType::Escalation,
                        &message,
                        now,
                    )
                    .await?,
                );
                if incident.escalation_level == 0 && self.escalation().breach_is_level_one() {
                    incident.escalation_level = 1;
                    incident.escalated_at = Some(now);
                    report.escalations += 1;
                    audit.push(AuditEntry::new(
                        AuditAction::Escalation,
                        Actor::System,
                        target,
                        format!("incident {title} escalated to level 1 at SLA breach"),
                        now,
                    ));
                }
            }
            Step::Escalate(level) => {
                incident.escalation_level = level;
                incident.escalated_at = Some(now);
                report.escalations += 1;
                audit.push(AuditEntry::new(
                    AuditAction::Escalation,
                    Actor::System,
                    target,
                    format!("incident {title} escalated automatically to level {level}"),
                    now,
                ));
                let message = format!(
                    "Incident {title} escalated to level {level}: SLA breached and not acknowledged"
                );
                let targets = self.escalation().level(level).targets.clone();
                outbox.extend(
                    self.intents(
                        incident,
                        &targets,
                        &format!("level{level}"),
                        NotificationType::Escalation,
                        &message,
                        now,
                    )
                    .await?,
                );
            }
        }
        Ok(())
    }
}
