//! The Prometheus Alertmanager webhook (`POST /integrations/alertmanager`,
//! SPEC §4): one open incident per (service, group key); each alert of a
//! notification, by fingerprint, is an alert of it; resolved alerts resolve
//! theirs, and the incident resolves itself when none is left open.

use std::collections::BTreeMap;

use serde_json::json;

use super::Engine;
use super::alerts::{
    AlertmanagerReceipt, Opening, RETRIES, contended, pause_before, triggered_entry,
};
use super::services::NOT_DONE;
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Alert, AlertLink, AlertmanagerAlert, AlertmanagerMessage, Incident, IncidentFilter, IncidentId,
    IncidentSource, Integration, IntegrationKind, PageRequest, Timestamp,
};
use crate::ports::{AlertWrite, Change, IncidentWrite};

impl Engine {
    /// An Alertmanager webhook notification (`POST /integrations/alertmanager`)
    /// with the integration key `key`: `Unauthorized` for a missing, unknown,
    /// revoked or wrong-kind key; `Validation` naming the field for a bad body;
    /// `RateLimited` over the key's limit. One open incident per (service,
    /// group key); each alert by fingerprint is an alert of it; resolved
    /// alerts resolve theirs, and the incident resolves itself when none is
    /// left open (if the service auto-resolves).
    pub async fn receive_alertmanager(
        &self,
        key: &str,
        body: &[u8],
    ) -> Result<AlertmanagerReceipt> {
        // The key first: who has none learns nothing about the body.
        let integration = self
            .integration_for_key(key, IntegrationKind::Alertmanager)
            .await?
            .ok_or_else(|| Error::unauthorized(messages::UNKNOWN_ALERTMANAGER_KEY))?;
        self.admit_event(&integration)?;
        let message = AlertmanagerMessage::parse(body)?;
        // One alert per fingerprint: the last one of the notification counts.
        let mut by_fingerprint: BTreeMap<&str, &AlertmanagerAlert> = BTreeMap::new();
        for alert in &message.alerts {
            by_fingerprint.insert(alert.fingerprint.as_str(), alert);
        }
        let alerts: Vec<&AlertmanagerAlert> = by_fingerprint.into_values().collect();
        for attempt in 0..RETRIES {
            pause_before(attempt).await;
            match self.apply_group(&integration, &message, &alerts).await {
                // Another request opened the group's incident, or changed it,
                // first: read it again and join it.
                Err(Error::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(contended())
    }

    /// The group's open incident (not resolved or closed), if any: an index
    /// lookup on (service, group key).
    async fn open_group_incident(
        &self,
        integration: &Integration,
        group_key: &str,
    ) -> Result<Option<Incident>> {
        let filter = IncidentFilter {
            service_id: Some(integration.service_id),
            group_key: Some(group_key.to_string()),
            status: NOT_DONE.to_vec(),
            ..IncidentFilter::default()
        };
        Ok(self
            .inner
            .store
            .list_incidents(&filter, PageRequest::first(1))
            .await?
            .items
            .into_iter()
            .next())
    }

    /// One attempt at applying a notification; `Conflict` when a racing
    /// request changed the group first.
    async fn apply_group(
        &self,
        integration: &Integration,
        message: &AlertmanagerMessage,
        alerts: &[&AlertmanagerAlert],
    ) -> Result<AlertmanagerReceipt> {
        let now = self.now();
        let service = integration.service_id;
        let group_key = message.group_key.as_str();
        let Some(before) = self.open_group_incident(integration, group_key).await? else {
            let firing: Vec<&AlertmanagerAlert> =
                alerts.iter().copied().filter(|a| a.is_firing()).collect();
            if firing.is_empty() {
                return Ok(AlertmanagerReceipt {
                    incident_id: None,
                    opened: 0,
                    resolved: 0,
                });
            }
            let (incident, created, outbox) = self
                .opened_incident(
                    Opening {
                        title: message.title(),
                        description: message.description(),
                        priority: message.priority(),
                        service_id: service,
                        source: IncidentSource::Alertmanager,
                        group_key: Some(message.group_key.clone()),
                        alert_count: u32::try_from(firing.len()).unwrap_or(u32::MAX),
                    },
                    now,
                )
                .await?;
            let new: Vec<Alert> = firing
                .iter()
                .map(|a| new_alert(incident.id, integration, message, a, now))
                .collect();
            let mut audit = vec![created];
            audit.extend(new.iter().map(|a| triggered_entry(a, now)));
            let id = incident.id;
            self.commit(Change {
                incident: Some(IncidentWrite::Insert(incident)),
                alerts: new.into_iter().map(AlertWrite::Insert).collect(),
                audit,
                outbox,
                ..Change::default()
            })
            .await?;
            return Ok(AlertmanagerReceipt {
                incident_id: Some(id),
                opened: firing.len(),
                resolved: 0,
            });
        };

        let mut after = before.clone();
        let mut audit = Vec::new();
        let mut writes = Vec::new();
        let mut repeats = Vec::new();
        let mut to_resolve = Vec::new();
        let mut opened = 0;
        for a in alerts {
            let key = a.dedup_key(group_key);
            let open = self.inner.store.open_alert(service, &key).await?;
            match (a.is_firing(), open) {
                (true, Some(_)) => repeats.push(key),
                (true, None) => {
                    let alert = new_alert(before.id, integration, message, a, now);
                    audit.push(triggered_entry(&alert, now));
                    writes.push(AlertWrite::Insert(alert));
                    after.alert_count = after.alert_count.saturating_add(1);
                    opened += 1;
                }
                (false, Some(open)) if open.incident_id == before.id => to_resolve.push(open),
                // Resolved and not open (or not this group's): nothing to do.
                (false, _) => {}
            }
        }
        let resolved = to_resolve.len();
        if !writes.is_empty() || !to_resolve.is_empty() {
            let auto = self.auto_resolves(service).await?;
            Self::resolve_in(&mut after, &to_resolve, auto, now, &mut audit, &mut writes)?;
            self.commit_update_with(&before, after, now, audit, Vec::new(), writes)
                .await?;
        }
        // Counted only once the change above is in, so that a retried
        // attempt does not count them twice.
        for key in repeats {
            self.inner.store.repeat_trigger(service, &key, now).await?;
        }
        Ok(AlertmanagerReceipt {
            incident_id: Some(before.id),
            opened,
            resolved,
        })
    }
}

/// A new alert of the group's incident from one alert of a notification.
fn new_alert(
    incident: IncidentId,
    integration: &Integration,
    message: &AlertmanagerMessage,
    a: &AlertmanagerAlert,
    now: Timestamp,
) -> Alert {
    let mut alert = Alert::triggered(
        incident,
        integration.service_id,
        integration.id,
        a.dedup_key(&message.group_key),
        a.summary(),
        now,
    );
    alert.severity = a.severity();
    alert.source = a
        .labels
        .get("instance")
        .or_else(|| a.labels.get("job"))
        .cloned()
        .unwrap_or_else(|| "alertmanager".to_string());
    alert.component = a.labels.get("job").cloned();
    alert.class = a.labels.get("alertname").cloned();
    alert.labels = a.labels.clone();
    alert.details = json!({
        "annotations": a.annotations,
        "generatorURL": a.generator_url,
        "externalURL": message.external_url,
        "startsAt": a.starts_at,
        "endsAt": a.ends_at,
        "receiver": message.receiver,
    });
    if !a.generator_url.is_empty() {
        alert.links = vec![AlertLink {
            href: a.generator_url.clone(),
            text: Some("Source".to_string()),
        }];
    }
    alert
}
