//! Incidents: their priority, type and lifecycle status, and the incident record
//! with its SLA and escalation state. The transition rules are in
//! [`crate::lifecycle`], the SLA arithmetic in [`crate::sla`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EscalationPolicyId, IncidentId, IntegrationKind, ServiceId, Timestamp, UserId};

/// An incident's priority; it selects the SLA targets.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Low.
    Low,
    /// Medium (the default).
    #[default]
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}
string_enum!(Priority, "priority", { Low => "low", Medium => "medium", High => "high", Critical => "critical" });

impl Priority {
    /// Position in [`Priority::ALL`], for per-priority tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What kind of work an incident is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IncidentType {
    /// A defect.
    Bug,
    /// A feature request.
    Feature,
    /// A task (the default).
    #[default]
    Task,
}
string_enum!(IncidentType, "type", { Bug => "bug", Feature => "feature", Task => "task" });

/// An incident's lifecycle status. See [`Status::can_transition_to`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub enum Status {
    /// New, nobody has responded yet.
    #[default]
    #[serde(rename = "open")]
    Open,
    /// Somebody has seen it.
    #[serde(rename = "acknowledged")]
    Acknowledged,
    /// Being worked on.
    #[serde(rename = "in-progress")]
    InProgress,
    /// Waiting on something outside; the SLA clock is paused.
    #[serde(rename = "on-hold")]
    OnHold,
    /// Fixed; may be reopened.
    #[serde(rename = "resolved")]
    Resolved,
    /// Final.
    #[serde(rename = "closed")]
    Closed,
}
string_enum!(Status, "status", {
    Open => "open",
    Acknowledged => "acknowledged",
    InProgress => "in-progress",
    OnHold => "on-hold",
    Resolved => "resolved",
    Closed => "closed",
});

impl Status {
    /// Whether the lifecycle allows going from `self` to `to` (SPEC §1). Staying in
    /// the same status is not a transition and is refused too.
    pub const fn can_transition_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Open, Acknowledged | InProgress | OnHold | Resolved | Closed)
                | (Acknowledged, InProgress | OnHold | Resolved | Closed)
                | (InProgress, OnHold | Resolved | Closed)
                | (OnHold, InProgress | Resolved | Closed)
                | (Resolved, Closed | InProgress)
        )
    }

    /// Resolved and closed incidents have no running SLA.
    pub const fn is_done(self) -> bool {
        matches!(self, Status::Resolved | Status::Closed)
    }
}

/// Where an incident came from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum IncidentSource {
    /// Reported by a person (`POST /incidents`).
    #[default]
    #[serde(rename = "manual")]
    Manual,
    /// Opened by a PagerDuty Events v2 trigger.
    #[serde(rename = "events-v2")]
    EventsV2,
    /// Opened by an Alertmanager notification.
    #[serde(rename = "alertmanager")]
    Alertmanager,
}
string_enum!(IncidentSource, "source", {
    Manual => "manual",
    EventsV2 => "events-v2",
    Alertmanager => "alertmanager",
});

impl From<IntegrationKind> for IncidentSource {
    fn from(kind: IntegrationKind) -> Self {
        match kind {
            IntegrationKind::EventsV2 => IncidentSource::EventsV2,
            IntegrationKind::Alertmanager => IncidentSource::Alertmanager,
        }
    }
}

/// An incident with its SLA and escalation state.
///
/// Serialises to the API's JSON (camelCase, `type`, `slaHours`); bookkeeping the
/// engine needs but clients do not (`heldMs`, `holdStartedAt`, `nextDueAt`) is
/// kept out of the JSON.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Id.
    pub id: IncidentId,
    /// Title, 1..=200 characters.
    pub title: String,
    /// Description, at most 10,000 characters.
    pub description: String,
    /// Kind of work.
    #[serde(rename = "type")]
    pub kind: IncidentType,
    /// Priority.
    pub priority: Priority,
    /// Status.
    pub status: Status,
    /// Assignee.
    pub assigned_to: Option<UserId>,
    /// Who reported it (set by the server); `None` for incidents an integration
    /// opened.
    pub reported_by: Option<UserId>,
    /// The service it belongs to (`None` for incidents reported without one).
    pub service_id: Option<ServiceId>,
    /// Where it came from.
    pub source: IncidentSource,
    /// How many of its alerts are open (not resolved).
    pub alert_count: u32,
    /// The Alertmanager `groupKey` of an incident opened by an Alertmanager
    /// notification: at most one incident per (service, group key) is open (not
    /// resolved or closed), which the stores enforce with a unique index. `None`
    /// for every other incident.
    #[serde(skip, default)]
    pub group_key: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Resolution target, in milliseconds (JSON: `slaHours`, fractional).
    #[serde(rename = "slaHours", with = "hours")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub sla_target_ms: i64,
    /// Resolution deadline: created + target + time spent on hold (while on hold,
    /// the value at the start of the hold; it moves on resume).
    pub sla_deadline: DateTime<Utc>,
    /// Response target in milliseconds (JSON: `responseHours`).
    #[serde(rename = "responseHours", with = "hours")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub response_target_ms: i64,
    /// Leave `open` before this instant.
    pub response_deadline: DateTime<Utc>,
    /// When the missed response target was recorded.
    pub response_breached_at: Option<DateTime<Utc>>,
    /// When the at-risk warning was recorded.
    pub at_risk_at: Option<DateTime<Utc>>,
    /// Whether the resolution SLA was breached (never reset).
    pub sla_breached: bool,
    /// When the breach was recorded.
    pub breached_at: Option<DateTime<Utc>>,
    /// 0 = not escalated.
    pub escalation_level: u32,
    /// When the current escalation level was reached.
    pub escalated_at: Option<DateTime<Utc>>,
    /// The escalation policy it pages through: its service's when it opened
    /// (`None`: the SLA-driven escalation). `escalationLevel` then counts the
    /// policy's steps that paged somebody.
    pub escalation_policy_id: Option<EscalationPolicyId>,
    /// Position (0-based, repeats counted) of the policy step that runs next;
    /// see [`crate::model::EscalationPolicy::step_at`].
    #[serde(skip, default)]
    pub escalation_step: u32,
    /// When that step is due (`None`: no step pending: the policy ran out, or
    /// the incident is no longer open).
    pub next_escalation_at: Option<DateTime<Utc>>,
    /// When the current acknowledgement expires (its service's
    /// `ackTimeoutSeconds` after it): the incident is then open again.
    pub ack_expires_at: Option<DateTime<Utc>>,
    /// First time the incident left `open`; stops automatic escalation.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When it was last resolved (cleared on reopen).
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Milliseconds spent on hold before the current hold (the SLA pause).
    #[serde(skip, default)]
    pub held_ms: i64,
    /// Start of the current hold.
    #[serde(skip, default)]
    pub hold_started_at: Option<DateTime<Utc>>,
    /// Next instant the SLA monitor must look at this incident (none when nothing
    /// is pending). Maintained by the engine, indexed by stores.
    #[serde(skip, default)]
    pub next_due_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version, incremented by every write.
    pub version: i64,
}

impl Incident {
    /// A new `open` incident with no SLA targets yet (see
    /// [`crate::sla::SlaPolicy::assign`]), version 1, reported by hand without a
    /// service.
    pub fn open(title: impl Into<String>, reported_by: UserId, now: Timestamp) -> Self {
        Self::opened(title, Some(reported_by), now)
    }

    /// A new `open` incident as [`Incident::open`], reported by `reported_by`
    /// (`None` when an integration opens it); the caller sets `service_id`,
    /// `source`, `alert_count` and `group_key`.
    pub fn opened(title: impl Into<String>, reported_by: Option<UserId>, now: Timestamp) -> Self {
        Self {
            id: IncidentId::new(),
            title: title.into(),
            description: String::new(),
            kind: IncidentType::default(),
            priority: Priority::default(),
            status: Status::Open,
            assigned_to: None,
            reported_by,
            service_id: None,
            source: IncidentSource::Manual,
            alert_count: 0,
            group_key: None,
            created_at: now,
            updated_at: now,
            sla_target_ms: 0,
            sla_deadline: now,
            response_target_ms: 0,
            response_deadline: now,
            response_breached_at: None,
            at_risk_at: None,
            sla_breached: false,
            breached_at: None,
            escalation_level: 0,
            escalated_at: None,
            escalation_policy_id: None,
            escalation_step: 0,
            next_escalation_at: None,
            ack_expires_at: None,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            held_ms: 0,
            hold_started_at: None,
            next_due_at: None,
            version: 1,
        }
    }
}

mod hours {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(*ms as f64 / 3_600_000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let hours = f64::deserialize(d)?;
        Ok((hours * 3_600_000.0).round() as i64)
    }
}
