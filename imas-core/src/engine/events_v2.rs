//! PagerDuty Events API v2 (`POST /v2/enqueue`, SPEC §4): the routing key
//! authenticates, a trigger opens (or repeats) an alert and its incident,
//! acknowledge and resolve move the open alert with the dedup key.

use serde_json::{Map, Value};

use super::Engine;
use super::alerts::{
    EnqueueError, Enqueued, Opening, RETRIES, contended, pause_before, triggered_entry,
};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Alert, Event, EventAction, EventPayload, IncidentSource, Integration, IntegrationKind,
};
use crate::ports::{AlertWrite, Change, IncidentWrite};
use crate::validation::MAX_TITLE;

impl Engine {
    /// A PagerDuty Events v2 event (`POST /v2/enqueue`; the routing key
    /// authenticates): parsed ([`crate::model::Event::parse`]), checked against
    /// the key's rate limit, then applied. A trigger with an open alert of the
    /// same dedup key is a repeat (counted, nobody paged, no audit); otherwise
    /// it opens an alert and an incident of the key's service. Acknowledge and
    /// resolve apply to the open alert with the key, and are a no-op without one.
    pub async fn enqueue_event(&self, body: &[u8]) -> Result<Enqueued, EnqueueError> {
        let event = Event::parse(body).map_err(EnqueueError::Invalid)?;
        let integration = self
            .integration_for_key(&event.routing_key, IntegrationKind::EventsV2)
            .await?
            .ok_or_else(|| EnqueueError::Invalid(vec![messages::UNKNOWN_ROUTING_KEY.into()]))?;
        self.admit_event(&integration)?;
        let service = integration.service_id;
        let dedup_key = match (&event.dedup_key, event.action) {
            (Some(k), _) => k.clone(),
            // PagerDuty generates a key for a trigger without one, so that
            // trigger always opens a new alert.
            (None, EventAction::Trigger) => uuid::Uuid::new_v4().to_string(),
            (None, _) => {
                return Err(EnqueueError::Invalid(vec![
                    messages::EVENT_NEEDS_DEDUP_KEY.into(),
                ]));
            }
        };
        match (event.action, &event.payload) {
            (EventAction::Trigger, Some(payload)) => {
                self.trigger_alert(&integration, &dedup_key, payload, &event)
                    .await?;
            }
            (EventAction::Trigger, None) => {
                return Err(EnqueueError::Invalid(vec![
                    messages::EVENT_NEEDS_PAYLOAD.into(),
                ]));
            }
            (EventAction::Acknowledge, _) => self.acknowledge_alert(service, &dedup_key).await?,
            (EventAction::Resolve, _) => self.resolve_alert(service, &dedup_key).await?,
        }
        Ok(Enqueued { dedup_key })
    }

    /// A trigger: a repeat of the open alert with the key, or a new alert in
    /// a new incident (one change); a racing trigger that opened it first
    /// makes this one a repeat.
    async fn trigger_alert(
        &self,
        integration: &Integration,
        dedup_key: &str,
        payload: &EventPayload,
        event: &Event,
    ) -> Result<()> {
        let service = integration.service_id;
        for attempt in 0..RETRIES {
            pause_before(attempt).await;
            let now = self.now();
            if self
                .inner
                .store
                .repeat_trigger(service, dedup_key, now)
                .await?
                .is_some()
            {
                return Ok(());
            }
            let title: String = payload.summary.chars().take(MAX_TITLE).collect();
            // A summary longer than a title is kept whole in the description.
            let description = if title.len() < payload.summary.len() {
                payload.summary.clone()
            } else {
                String::new()
            };
            let (incident, created, outbox) = self
                .opened_incident(
                    Opening {
                        title,
                        description,
                        priority: payload.severity.priority(),
                        service_id: service,
                        source: IncidentSource::EventsV2,
                        group_key: None,
                        alert_count: 1,
                    },
                    now,
                )
                .await?;
            let mut alert = Alert::triggered(
                incident.id,
                service,
                integration.id,
                dedup_key,
                payload.summary.clone(),
                now,
            );
            alert.severity = payload.severity;
            alert.source = payload.source.clone();
            alert.component = payload.component.clone();
            alert.group = payload.group.clone();
            alert.class = payload.class.clone();
            alert.links = event.links.clone();
            alert.details = details(payload, event);
            let triggered = triggered_entry(&alert, now);
            let outcome = self
                .commit(Change {
                    incident: Some(IncidentWrite::Insert(incident)),
                    alerts: vec![AlertWrite::Insert(alert)],
                    audit: vec![created, triggered],
                    outbox,
                    ..Change::default()
                })
                .await;
            match outcome {
                // Another request opened the alert first: this is a repeat.
                Err(Error::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(contended())
    }
}

/// What an alert keeps of an event beyond its columns: `custom_details`, the
/// source's `timestamp`, `client`, `client_url` and `images`.
fn details(payload: &EventPayload, event: &Event) -> Value {
    let mut details = Map::new();
    if let Some(custom) = &payload.custom_details {
        details.insert("custom_details".into(), custom.clone());
    }
    if let Some(t) = payload.timestamp {
        details.insert(
            "timestamp".into(),
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
    }
    for field in ["client", "client_url", "images"] {
        if let Some(v) = event.extra.get(field) {
            details.insert(field.into(), v.clone());
        }
    }
    Value::Object(details)
}
