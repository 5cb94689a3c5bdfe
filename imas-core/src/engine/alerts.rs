//! Alerts (SPEC §4): reading them, and what every source's events do to them —
//! a first trigger opens an alert and its incident, a repeated trigger counts,
//! an acknowledge or resolve moves the open alert (and, when the last alert of
//! an incident resolves, resolves the incident if its service auto-resolves).
//! The formats are read in `events_v2.rs` and `alertmanager.rs`.

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::model::{Alert, AlertFilter, IncidentId, Page, PageRequest};

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

impl Engine {
    /// Alerts matching `filter`, newest first (admin, engineer).
    pub async fn list_alerts(
        &self,
        by: &Principal,
        filter: AlertFilter,
        page: PageRequest,
    ) -> Result<Page<Alert>> {
        let _ = (by, filter, page);
        todo!("issue 17: engine/alerts.rs")
    }

    /// An incident's alerts, newest first (whoever may read the incident).
    pub async fn incident_alerts(
        &self,
        by: &Principal,
        incident: IncidentId,
        page: PageRequest,
    ) -> Result<Page<Alert>> {
        let _ = (by, incident, page);
        todo!("issue 17: engine/alerts.rs")
    }

    /// A PagerDuty Events v2 event (`POST /v2/enqueue`; the routing key
    /// authenticates): parsed ([`crate::model::Event::parse`]), checked against
    /// the key's rate limit, then applied. A trigger with an open alert of the
    /// same dedup key is a repeat (counted, nobody paged, no audit); otherwise
    /// it opens an alert and an incident of the key's service. Acknowledge and
    /// resolve apply to the open alert with the key, and are a no-op without one.
    pub async fn enqueue_event(&self, body: &[u8]) -> Result<Enqueued, EnqueueError> {
        let _ = body;
        todo!("issue 17: engine/events_v2.rs")
    }

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
        let _ = (key, body);
        todo!("issue 17: engine/alertmanager.rs")
    }
}
