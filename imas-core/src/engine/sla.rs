//! The SLA: re-targeting by priority, the violations list, and the sweep that
//! claims due incidents and applies their automatic steps.

use tracing::{debug, warn};

use super::paging::{MAX_RUN, PolicyCache};
use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::escalation::{self};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, Incident, IncidentFilter, IncidentId, Page, PageRequest,
    Priority,
};
use crate::rbac::{self, Permission};

/// Answer of [`Engine::list_violations`].
#[derive(Debug, Clone, PartialEq)]
pub struct Violations {
    /// Open incidents past their deadline (breached or about to be recorded).
    pub total: u64,
    /// Of those, breaches already recorded and notified.
    pub notified: u64,
    /// Of those, past the deadline but not yet recorded by the monitor.
    pub skipped: u64,
    /// One page of the violating incidents.
    pub page: Page<Incident>,
}

/// What one SLA sweep step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Incidents claimed.
    pub claimed: usize,
    /// Missed response targets recorded.
    pub response_breaches: usize,
    /// At-risk warnings recorded.
    pub at_risk: usize,
    /// Breaches recorded.
    pub breaches: usize,
    /// Escalation levels reached automatically (SLA levels, and policy steps
    /// that paged somebody).
    pub escalations: usize,
    /// Policy steps skipped because nobody was there to page.
    pub skipped: usize,
    /// Acknowledgements that expired (the incident is open again).
    pub ack_expired: usize,
    /// Claims lost to a concurrent change (the incident is handled by its next claim).
    pub conflicts: usize,
}

/// Most steps one sweep applies to one incident: a whole run through the
/// longest policy (every step skipped at once), then once more (an expired
/// acknowledgement re-runs a step), and the SLA steps, with room to spare.
const MAX_STEPS_PER_CLAIM: u32 = 2 * MAX_RUN + 16;

impl Engine {
    /// Re-assigns an incident's SLA from a priority (admin).
    pub async fn assign_sla(
        &self,
        who: &Principal,
        id: IncidentId,
        priority: Priority,
    ) -> Result<Incident> {
        rbac::require(who.role, Permission::AssignSla)?;
        let before = self.load_incident(id).await?;
        let now = self.now();
        let mut after = before.clone();
        self.retarget(&mut after, priority, now);
        let audit = AuditEntry::new(
            AuditAction::SlaAssigned,
            Actor::User(who.id),
            Some(id.to_string()),
            messages::sla_assigned(
                &after.title,
                after.sla_target_ms,
                priority,
                after.sla_deadline,
            ),
            now,
        );
        self.commit_update(&before, after, now, vec![audit], Vec::new())
            .await
    }

    /// Open incidents violating their SLA now, with counts.
    pub async fn list_violations(&self, who: &Principal, page: PageRequest) -> Result<Violations> {
        rbac::require(who.role, Permission::ListViolations)?;
        page.validate()?;
        let filter = IncidentFilter {
            violated_at: Some(self.now()),
            ..Default::default()
        };
        let store = &self.inner.store;
        let total = store.count_incidents(&filter).await?;
        let notified = store
            .count_incidents(&IncidentFilter {
                sla_breached: Some(true),
                ..filter.clone()
            })
            .await?;
        let page = store.list_incidents(&filter, page).await?;
        Ok(Violations {
            total,
            notified,
            skipped: total.saturating_sub(notified),
            page,
        })
    }

    /// One SLA sweep step: claims the incidents whose next step is due, applies
    /// every step due by now (missed response, at-risk, breach, escalation
    /// levels, escalation policy steps, expired acknowledgements),
    /// and commits each incident with its audit entries and notification intents.
    /// Safe to run on any number of nodes at once: claims are exclusive and the
    /// commit checks the version, so each step is applied exactly once.
    pub async fn sweep_step(&self) -> Result<SweepReport> {
        let now = self.now();
        let cfg = &self.inner.config;
        let claimed = self
            .inner
            .store
            .claim_due(now, cfg.claim_lease, cfg.sweep_batch)
            .await?;
        let mut report = SweepReport {
            claimed: claimed.len(),
            ..Default::default()
        };
        // A failed commit (the store is down) fails the step, but only after
        // the rest of the batch was tried: the others are not left to wait out
        // their claim's lease.
        let mut failed: Option<Error> = None;
        for before in claimed {
            let mut after = before.clone();
            let (mut audit, mut outbox) = (Vec::new(), Vec::new());
            let counted = (report.breaches, report.response_breaches);
            let mut policies = PolicyCache::default();
            // Every step moves the incident forward, so this ends; the bound only
            // guards against a policy with zero delays repeating many times. It
            // covers a whole policy run of empty steps (each skipped at once),
            // an expired acknowledgement and the SLA steps, in one pass.
            let mut applied = Ok(());
            for _ in 0..MAX_STEPS_PER_CLAIM {
                match escalation::next_step(&after, self.sla(), self.escalation()) {
                    Some((step, at)) if at <= now => {
                        applied = self
                            .apply_step(
                                &mut after,
                                step,
                                now,
                                &mut policies,
                                &mut audit,
                                &mut outbox,
                                &mut report,
                            )
                            .await;
                        if applied.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            if let Err(e) = applied {
                warn!(incident = %before.id, error = %e, "SLA step not applied; retried after the claim's lease");
                failed.get_or_insert(e);
                continue;
            }
            match self.commit_update(&before, after, now, audit, outbox).await {
                Ok(_) => self.inner.counters.breaches(
                    report.breaches - counted.0,
                    report.response_breaches - counted.1,
                ),
                Err(Error::Conflict { .. } | Error::NotFound { .. }) => {
                    // Changed or deleted since the claim: the change re-armed its
                    // next step; nothing was applied twice.
                    report.conflicts += 1;
                    debug!(incident = %before.id, "sweep lost a claim to a concurrent change");
                }
                Err(e) => {
                    warn!(incident = %before.id, error = %e, "SLA step not committed; retried after the claim's lease");
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Runs sweep steps until nothing is due now.
    pub async fn sweep_all(&self) -> Result<SweepReport> {
        let mut total = SweepReport::default();
        loop {
            let r = self.sweep_step().await?;
            total.claimed += r.claimed;
            total.response_breaches += r.response_breaches;
            total.at_risk += r.at_risk;
            total.breaches += r.breaches;
            total.escalations += r.escalations;
            total.skipped += r.skipped;
            total.ack_expired += r.ack_expired;
            total.conflicts += r.conflicts;
            if r.claimed < self.inner.config.sweep_batch as usize {
                return Ok(total);
            }
        }
    }
}
