//! Alerts (SPEC §4): reading them, and what every source's events do to them —
//! a first trigger opens an alert and its incident, a repeated trigger counts,
//! an acknowledge or resolve moves the open alert (and, when the last alert of
//! an incident resolves, resolves the incident if its service auto-resolves).
//! The formats are read in `events_v2.rs` and `alertmanager.rs`.

use std::time::Duration;

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::escalation;
use crate::lifecycle;
use crate::messages;
use crate::model::{
    Actor, Alert, AlertFilter, AlertStatus, AuditAction, AuditEntry, Incident, IncidentId,
    IncidentSource, MAX_LIMIT, NotificationIntent, Page, PageRequest, Priority, ServiceId, Status,
    Timestamp,
};
use crate::ports::{AlertWrite, Change};
use crate::rbac::{self, Permission};

/// What [`Engine::enqueue_event`] answers when it accepted an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The event's dedup key (generated for a trigger that sent none).
    pub dedup_key: String,
}

/// Why [`Engine::enqueue_event`] refused an event.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The event is invalid: every problem, in PagerDuty's words (an unknown,
    /// revoked or wrong-kind routing key is one). HTTP 400 in PagerDuty's shape.
    #[error("invalid event: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Anything else: over the key's rate limit (`RateLimited`), or the store
    /// failed (`Backend`, HTTP 5xx so the sender retries).
    #[error(transparent)]
    Failed(#[from] Error),
}

/// What [`Engine::receive_alertmanager`] did with a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerReceipt {
    /// The group's incident (`None` when the notification held only resolved
    /// alerts of no open incident: nothing to do).
    pub incident_id: Option<IncidentId>,
    /// Alerts of the notification that opened a new alert.
    pub opened: usize,
    /// Alerts that resolved an open alert.
    pub resolved: usize,
}

/// How many times an alert event re-reads and tries again after losing a
/// race (a `Conflict`: another request opened the alert, or changed its
/// incident, first).
pub(super) const RETRIES: usize = 8;

/// Waits before attempt `attempt` (0-based) of a retry loop: not at all
/// before the first retry (the usual race, a twin trigger, is settled by the
/// re-read), then a few random milliseconds more each time, so that requests
/// that keep colliding (or a store whose winner is not visible yet) spread out
/// instead of spending their attempts at once.
pub(super) async fn pause_before(attempt: usize) {
    if attempt < 2 {
        return;
    }
    let jitter = u64::try_from(uuid::Uuid::new_v4().as_u128() % 5).unwrap_or(0) + 1;
    let attempt = u64::try_from(attempt).unwrap_or(u64::MAX);
    tokio::time::sleep(Duration::from_millis(jitter.saturating_mul(attempt))).await;
}

/// What an event that kept losing races answers: try again shortly (503).
pub(super) fn contended() -> Error {
    Error::unavailable(messages::ALERT_CONTENDED, Duration::from_secs(1))
}

/// An audit entry about an alert, by `actor`.
pub(super) fn alert_entry(
    action: AuditAction,
    actor: Actor,
    alert: &Alert,
    description: String,
    now: Timestamp,
) -> AuditEntry {
    AuditEntry::new(action, actor, Some(alert.id.to_string()), description, now)
}

/// The `ALERT_TRIGGERED` entry of a new alert.
pub(super) fn triggered_entry(alert: &Alert, now: Timestamp) -> AuditEntry {
    alert_entry(
        AuditAction::AlertTriggered,
        Actor::System,
        alert,
        messages::alert_triggered(&alert.summary, alert.severity, &alert.source),
        now,
    )
}

/// The write and `ALERT_RESOLVED` entry (by SYSTEM) of a source resolving an
/// open alert.
fn resolve_by_source(
    alert: &Alert,
    now: Timestamp,
    audit: &mut Vec<AuditEntry>,
    writes: &mut Vec<AlertWrite>,
) {
    audit.push(alert_entry(
        AuditAction::AlertResolved,
        Actor::System,
        alert,
        messages::alert_resolved(&alert.summary),
        now,
    ));
    writes.push(AlertWrite::SetStatus {
        id: alert.id,
        status: AlertStatus::Resolved,
        at: now,
    });
}

/// How a new incident opened by an integration looks before its alerts.
pub(super) struct Opening {
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub service_id: ServiceId,
    pub source: IncidentSource,
    pub group_key: Option<String>,
    pub alert_count: u32,
}

impl Engine {
    /// Alerts matching `filter`, newest first (admin, engineer).
    pub async fn list_alerts(
        &self,
        by: &Principal,
        filter: AlertFilter,
        page: PageRequest,
    ) -> Result<Page<Alert>> {
        rbac::require(by.role, Permission::ListAlerts)?;
        page.validate()?;
        filter.validate()?;
        self.inner.store.list_alerts(&filter, page).await
    }

    /// An incident's alerts, newest first (whoever may read the incident).
    pub async fn incident_alerts(
        &self,
        by: &Principal,
        incident: IncidentId,
        page: PageRequest,
    ) -> Result<Page<Alert>> {
        page.validate()?;
        self.get_incident(by, incident).await?;
        let filter = AlertFilter {
            incident_id: Some(incident),
            ..AlertFilter::default()
        };
        self.inner.store.list_alerts(&filter, page).await
    }

    /// Every open alert of an incident.
    async fn open_alerts_of(&self, incident: IncidentId) -> Result<Vec<Alert>> {
        let filter = AlertFilter {
            incident_id: Some(incident),
            ..AlertFilter::default()
        };
        let mut open = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .inner
                .store
                .list_alerts(
                    &filter,
                    PageRequest {
                        limit: MAX_LIMIT,
                        cursor,
                    },
                )
                .await?;
            open.extend(page.items.into_iter().filter(|a| a.status.is_open()));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(open),
            }
        }
    }

    /// The alert writes (and their audit entries, by `actor`) that make an
    /// incident's alerts follow it to `status`: acknowledged → its triggered
    /// alerts acknowledged; resolved or closed (or deleted) → its open alerts
    /// resolved and its alert count 0. Incidents without a service have no
    /// alerts.
    pub(super) async fn alerts_follow_incident(
        &self,
        incident: &mut Incident,
        status: Status,
        actor: Actor,
        now: Timestamp,
        audit: &mut Vec<AuditEntry>,
    ) -> Result<Vec<AlertWrite>> {
        let (to, action): (AlertStatus, AuditAction) = match status {
            _ if incident.service_id.is_none() => return Ok(Vec::new()),
            Status::Acknowledged => (AlertStatus::Acknowledged, AuditAction::AlertAcknowledged),
            Status::Resolved | Status::Closed => {
                (AlertStatus::Resolved, AuditAction::AlertResolved)
            }
            _ => return Ok(Vec::new()),
        };
        let mut writes = Vec::new();
        for alert in self.open_alerts_of(incident.id).await? {
            if to == AlertStatus::Acknowledged && alert.status != AlertStatus::Triggered {
                continue;
            }
            let text = match to {
                AlertStatus::Acknowledged => messages::alert_acknowledged(&alert.summary),
                _ => messages::alert_resolved(&alert.summary),
            };
            audit.push(alert_entry(action, actor, &alert, text, now));
            writes.push(AlertWrite::SetStatus {
                id: alert.id,
                status: to,
                at: now,
            });
        }
        if to == AlertStatus::Resolved {
            incident.alert_count = 0;
        }
        Ok(writes)
    }

    /// A new incident opened by an integration (no reporter), with its SLA,
    /// escalation policy (its service's) and due time assigned and the
    /// intents its creation sends, exactly as [`Engine::create_incident`]
    /// does, and its `INCIDENT_CREATED` entry.
    pub(super) async fn opened_incident(
        &self,
        opening: Opening,
        now: Timestamp,
    ) -> Result<(Incident, AuditEntry, Vec<NotificationIntent>)> {
        let service = self.service_for_events(opening.service_id).await?;
        let mut incident = Incident::opened(opening.title, None, now);
        incident.description = opening.description;
        incident.service_id = Some(opening.service_id);
        incident.source = opening.source;
        incident.group_key = opening.group_key;
        incident.alert_count = opening.alert_count;
        let outbox = self.open_incident(&mut incident, opening.priority, service.as_ref(), now);
        let audit = AuditEntry::new(
            AuditAction::IncidentCreated,
            Actor::System,
            Some(incident.id.to_string()),
            messages::incident_created(&incident.title, incident.priority),
            now,
        );
        Ok((incident, audit, outbox))
    }

    /// Whether the service's incidents resolve themselves when their last
    /// alert resolves (a service that is gone: the default, yes).
    pub(super) async fn auto_resolves(&self, service: ServiceId) -> Result<bool> {
        Ok(self
            .service_for_events(service)
            .await?
            .is_none_or(|s| s.auto_resolve))
    }

    /// Resolves `resolved` (open alerts of `incident`) into `writes` and
    /// `audit`: the alert count goes down by one each, `ALERT_RESOLVED` each;
    /// when none is left open, the service auto-resolves and the incident is
    /// not done, the incident resolves (`STATUS_CHANGED` and
    /// `INCIDENT_AUTO_RESOLVED`, by SYSTEM).
    pub(super) fn resolve_in(
        incident: &mut Incident,
        resolved: &[Alert],
        auto_resolve: bool,
        now: Timestamp,
        audit: &mut Vec<AuditEntry>,
        writes: &mut Vec<AlertWrite>,
    ) -> Result<()> {
        for alert in resolved {
            incident.alert_count = incident.alert_count.saturating_sub(1);
            resolve_by_source(alert, now, audit, writes);
        }
        if !resolved.is_empty()
            && incident.alert_count == 0
            && auto_resolve
            && !incident.status.is_done()
        {
            let from = incident.status;
            lifecycle::transition(incident, Status::Resolved, now)?;
            // Resolving starts no acknowledgement timeout: none is needed.
            escalation::after_transition(incident, from, None, now);
            // The status history reads the same as for any other resolve.
            audit.push(AuditEntry::new(
                AuditAction::StatusChanged,
                Actor::System,
                Some(incident.id.to_string()),
                messages::status_changed(from, Status::Resolved),
                now,
            ));
            audit.push(AuditEntry::new(
                AuditAction::IncidentAutoResolved,
                Actor::System,
                Some(incident.id.to_string()),
                messages::incident_auto_resolved(&incident.title),
                now,
            ));
        }
        Ok(())
    }

    /// Acknowledges the open alert of `service` with `dedup_key` (a no-op
    /// when there is none, or it is acknowledged already), and its incident
    /// if that is still open (audited as a status change would be).
    pub(super) async fn acknowledge_alert(
        &self,
        service: ServiceId,
        dedup_key: &str,
    ) -> Result<()> {
        for attempt in 0..RETRIES {
            pause_before(attempt).await;
            let Some(alert) = self.inner.store.open_alert(service, dedup_key).await? else {
                return Ok(());
            };
            if alert.status != AlertStatus::Triggered {
                return Ok(());
            }
            let now = self.now();
            let mut audit = vec![alert_entry(
                AuditAction::AlertAcknowledged,
                Actor::System,
                &alert,
                messages::alert_acknowledged(&alert.summary),
                now,
            )];
            let writes = vec![AlertWrite::SetStatus {
                id: alert.id,
                status: AlertStatus::Acknowledged,
                at: now,
            }];
            let incident = self.inner.store.get_incident(alert.incident_id).await?;
            let outcome = match incident.filter(|i| i.status == Status::Open) {
                Some(before) => {
                    let mut after = before.clone();
                    self.move_to(&mut after, Status::Acknowledged, now).await?;
                    audit.push(AuditEntry::new(
                        AuditAction::IncidentUpdated,
                        Actor::System,
                        Some(before.id.to_string()),
                        messages::incident_updated(&after.title, &["status"]),
                        now,
                    ));
                    audit.push(Self::status_changed_entry(
                        &before,
                        &after,
                        Actor::System,
                        now,
                    ));
                    self.commit_update_with(&before, after, now, audit, Vec::new(), writes)
                        .await
                        .map(drop)
                }
                None => {
                    self.commit(Change {
                        alerts: writes,
                        audit,
                        ..Change::default()
                    })
                    .await
                }
            };
            match outcome {
                Err(Error::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(contended())
    }

    /// Resolves the open alert of `service` with `dedup_key` (a no-op when
    /// there is none): its incident's alert count goes down, and the incident
    /// resolves itself when it was the last one ([`Engine::resolve_in`]).
    pub(super) async fn resolve_alert(&self, service: ServiceId, dedup_key: &str) -> Result<()> {
        for attempt in 0..RETRIES {
            pause_before(attempt).await;
            let Some(alert) = self.inner.store.open_alert(service, dedup_key).await? else {
                return Ok(());
            };
            let now = self.now();
            let mut audit = Vec::new();
            let mut writes = Vec::new();
            let outcome = match self.inner.store.get_incident(alert.incident_id).await? {
                Some(before) => {
                    let auto = self.auto_resolves(service).await?;
                    let mut after = before.clone();
                    Self::resolve_in(
                        &mut after,
                        std::slice::from_ref(&alert),
                        auto,
                        now,
                        &mut audit,
                        &mut writes,
                    )?;
                    self.commit_update_with(&before, after, now, audit, Vec::new(), writes)
                        .await
                        .map(drop)
                }
                None => {
                    // Its incident is gone (deleted while the alert was open):
                    // the alert resolves alone.
                    resolve_by_source(&alert, now, &mut audit, &mut writes);
                    self.commit(Change {
                        alerts: writes,
                        audit,
                        ..Change::default()
                    })
                    .await
                }
            };
            match outcome {
                Err(Error::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(contended())
    }
}
