//! Alerts: one signal from a monitoring source, inside exactly one incident
//! (SPEC §4). At most one alert per (service, dedup key) is open (not
//! resolved) at a time; the stores enforce it with a unique index.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    AlertId, IncidentId, IntegrationId, Priority, ServiceId, Timestamp, query_terms, search_terms,
};
use crate::error::Result;

/// An alert's status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// Firing, nobody has acknowledged it.
    #[default]
    Triggered,
    /// Somebody (or the source) acknowledged it; still open.
    Acknowledged,
    /// Over. Its dedup key is free again: a new trigger opens a new alert.
    Resolved,
}
string_enum!(AlertStatus, "status", {
    Triggered => "triggered",
    Acknowledged => "acknowledged",
    Resolved => "resolved",
});

impl AlertStatus {
    /// Triggered and acknowledged alerts are open.
    pub const fn is_open(self) -> bool {
        !matches!(self, AlertStatus::Resolved)
    }
}

/// How bad a source says an alert is (PagerDuty's `payload.severity`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Information.
    Info,
    /// A warning (the default of sources that say nothing).
    #[default]
    Warning,
    /// An error.
    Error,
    /// Critical.
    Critical,
}
string_enum!(Severity, "severity", {
    Info => "info",
    Warning => "warning",
    Error => "error",
    Critical => "critical",
});

impl Severity {
    /// The priority of an incident an alert of this severity opens (SPEC §4):
    /// critical → critical, error → high, warning → medium, info → low.
    pub const fn priority(self) -> Priority {
        match self {
            Severity::Critical => Priority::Critical,
            Severity::Error => Priority::High,
            Severity::Warning => Priority::Medium,
            Severity::Info => Priority::Low,
        }
    }

    /// Reads an Alertmanager `severity` label (SPEC §4): `critical`, `error`,
    /// `warning` and `info` as PagerDuty's, `high` and `page` as `error`
    /// (priority high), anything else (or none) as `warning` (medium).
    /// Case-insensitive.
    pub fn from_label(label: Option<&str>) -> Self {
        match label.map(|l| l.trim().to_ascii_lowercase()).as_deref() {
            Some("critical") => Severity::Critical,
            Some("error" | "high" | "page") => Severity::Error,
            Some("info") => Severity::Info,
            _ => Severity::Warning,
        }
    }
}

/// A link a source attached to an alert.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertLink {
    /// Where it points.
    pub href: String,
    /// What to show for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One signal from a monitoring source.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Id.
    pub id: AlertId,
    /// The incident it belongs to.
    pub incident_id: IncidentId,
    /// The service it belongs to.
    pub service_id: ServiceId,
    /// The integration it came through.
    pub integration_id: IntegrationId,
    /// Unique among the service's open alerts (at most 255 characters for
    /// events-v2; `groupKey/fingerprint` for Alertmanager).
    pub dedup_key: String,
    /// Status.
    pub status: AlertStatus,
    /// What the source says is wrong, at most 1,024 characters.
    pub summary: String,
    /// How bad.
    pub severity: Severity,
    /// Where it happened (host, job...).
    pub source: String,
    /// The part of the source.
    pub component: Option<String>,
    /// A grouping of sources (a cluster, a team).
    pub group: Option<String>,
    /// The class or type of the problem.
    pub class: Option<String>,
    /// Labels (Alertmanager's labels; empty for events-v2).
    pub labels: BTreeMap<String, String>,
    /// Everything else the source sent (a JSON object): `custom_details`,
    /// Alertmanager's annotations, `generatorURL`, `externalURL`...
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
    /// Links the source attached.
    pub links: Vec<AlertLink>,
    /// When IMAS received its first trigger; lists are ordered by it, newest
    /// first. (The source's own timestamps are kept in `details`.)
    pub started_at: DateTime<Utc>,
    /// When the last event for it arrived.
    pub last_event_at: DateTime<Utc>,
    /// How many trigger events it has had (1 for a new alert).
    pub event_count: i64,
    /// When it resolved.
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Alert {
    /// A new triggered alert with one event at `now`, no labels, details or
    /// links.
    pub fn triggered(
        incident_id: IncidentId,
        service_id: ServiceId,
        integration_id: IntegrationId,
        dedup_key: impl Into<String>,
        summary: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: AlertId::new(),
            incident_id,
            service_id,
            integration_id,
            dedup_key: dedup_key.into(),
            status: AlertStatus::Triggered,
            summary: summary.into(),
            severity: Severity::default(),
            source: String::new(),
            component: None,
            group: None,
            class: None,
            labels: BTreeMap::new(),
            details: serde_json::Value::Object(serde_json::Map::new()),
            links: Vec::new(),
            started_at: now,
            last_event_at: now,
            event_count: 1,
            resolved_at: None,
        }
    }
}

/// Filters for listing alerts. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AlertFilter {
    /// Of this service.
    pub service_id: Option<ServiceId>,
    /// Of this incident.
    pub incident_id: Option<IncidentId>,
    /// In this status.
    pub status: Option<AlertStatus>,
    /// Every word must appear in the summary (whole words, case-insensitive;
    /// the same terms as the incidents' `q`, see [`search_terms`]).
    pub q: Option<String>,
}

impl AlertFilter {
    /// Whether an alert passes the filter; the reference semantics every store
    /// must reproduce.
    pub fn matches(&self, a: &Alert) -> bool {
        if self.service_id.is_some_and(|s| s != a.service_id)
            || self.incident_id.is_some_and(|i| i != a.incident_id)
            || self.status.is_some_and(|s| s != a.status)
        {
            return false;
        }
        if let Some(q) = &self.q {
            let wanted = search_terms(q);
            if !wanted.is_empty() {
                let have = search_terms(&a.summary);
                if !wanted.iter().all(|w| have.binary_search(w).is_ok()) {
                    return false;
                }
            }
        }
        true
    }

    /// Checks what a caller can set: the query within the term limits (naming
    /// `q`).
    pub fn validate(&self) -> Result<()> {
        if let Some(q) = &self.q {
            query_terms(q)?;
        }
        Ok(())
    }
}
