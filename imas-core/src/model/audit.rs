//! The append-only audit log: what happened ([`AuditAction`]), who did it
//! ([`Actor`]) and the record itself ([`AuditEntry`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AuditId, Timestamp, UserId};
use crate::error::{Error, Result};

/// Known audit actions. Stores keep the string from [`AuditAction::as_str`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AuditAction {
    /// A user registered (or was bootstrapped).
    UserRegistered,
    /// A sign-in failed.
    LoginFailed,
    /// A user signed in.
    Login,
    /// An admin changed a user's role.
    RoleChanged,
    /// An incident was created.
    IncidentCreated,
    /// An incident's fields changed.
    IncidentUpdated,
    /// An incident was deleted.
    IncidentDeleted,
    /// An incident's status changed.
    StatusChanged,
    /// An SLA was (re)assigned.
    SlaAssigned,
    /// The at-risk fraction of the SLA elapsed.
    SlaAtRisk,
    /// The resolution SLA was breached.
    SlaBreach,
    /// The response target was missed.
    SlaResponseBreach,
    /// The escalation level rose.
    Escalation,
    /// An admin redrove a dead-lettered notification.
    DeadLetterRedriven,
    /// A service was created.
    ServiceCreated,
    /// A service's fields changed.
    ServiceUpdated,
    /// A service was deleted.
    ServiceDeleted,
    /// An integration key was created.
    IntegrationCreated,
    /// An integration key was revoked.
    IntegrationRevoked,
    /// A new alert was triggered (not written for repeated triggers).
    AlertTriggered,
    /// An alert was acknowledged.
    AlertAcknowledged,
    /// An alert was resolved.
    AlertResolved,
    /// An incident was resolved by its source: its last open alert resolved.
    IncidentAutoResolved,
    /// A user changed their own name, email or time zone.
    ProfileUpdated,
    /// A user changed their own password.
    PasswordChanged,
    /// A rotation was created.
    RotationCreated,
    /// A rotation was changed.
    RotationUpdated,
    /// A rotation was deleted.
    RotationDeleted,
    /// A schedule was created.
    ScheduleCreated,
    /// A schedule's fields or rules were changed.
    ScheduleUpdated,
    /// A schedule was deleted.
    ScheduleDeleted,
    /// An override was added to a schedule.
    OverrideCreated,
    /// An override was removed from a schedule.
    OverrideDeleted,
    /// An escalation policy was created.
    EscalationPolicyCreated,
    /// An escalation policy was changed.
    EscalationPolicyUpdated,
    /// An escalation policy was deleted.
    EscalationPolicyDeleted,
    /// A step of an incident's escalation policy resolved to nobody and was
    /// skipped at once.
    EscalationSkipped,
    /// An acknowledged incident was not resolved within its service's
    /// acknowledgement timeout and is open again.
    AckExpired,
}
string_enum!(AuditAction, "action", {
    UserRegistered => "USER_REGISTERED",
    LoginFailed => "LOGIN_FAILED",
    Login => "LOGIN",
    RoleChanged => "ROLE_CHANGED",
    IncidentCreated => "INCIDENT_CREATED",
    IncidentUpdated => "INCIDENT_UPDATED",
    IncidentDeleted => "INCIDENT_DELETED",
    StatusChanged => "STATUS_CHANGED",
    SlaAssigned => "SLA_ASSIGNED",
    SlaAtRisk => "SLA_AT_RISK",
    SlaBreach => "SLA_BREACH",
    SlaResponseBreach => "SLA_RESPONSE_BREACH",
    Escalation => "ESCALATION",
    DeadLetterRedriven => "DEAD_LETTER_REDRIVEN",
    ServiceCreated => "SERVICE_CREATED",
    ServiceUpdated => "SERVICE_UPDATED",
    ServiceDeleted => "SERVICE_DELETED",
    IntegrationCreated => "INTEGRATION_CREATED",
    IntegrationRevoked => "INTEGRATION_REVOKED",
    AlertTriggered => "ALERT_TRIGGERED",
    AlertAcknowledged => "ALERT_ACKNOWLEDGED",
    AlertResolved => "ALERT_RESOLVED",
    IncidentAutoResolved => "INCIDENT_AUTO_RESOLVED",
    ProfileUpdated => "PROFILE_UPDATED",
    PasswordChanged => "PASSWORD_CHANGED",
    RotationCreated => "ROTATION_CREATED",
    RotationUpdated => "ROTATION_UPDATED",
    RotationDeleted => "ROTATION_DELETED",
    ScheduleCreated => "SCHEDULE_CREATED",
    ScheduleUpdated => "SCHEDULE_UPDATED",
    ScheduleDeleted => "SCHEDULE_DELETED",
    OverrideCreated => "OVERRIDE_CREATED",
    OverrideDeleted => "OVERRIDE_DELETED",
    EscalationPolicyCreated => "ESCALATION_POLICY_CREATED",
    EscalationPolicyUpdated => "ESCALATION_POLICY_UPDATED",
    EscalationPolicyDeleted => "ESCALATION_POLICY_DELETED",
    EscalationSkipped => "ESCALATION_SKIPPED",
    AckExpired => "ACK_EXPIRED",
});

/// Who did something: a user, or the system (the SLA monitor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// IMAS itself (JSON: `"SYSTEM"`).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(id) => fmt::Display::fmt(id, f),
            Actor::System => f.write_str("SYSTEM"),
        }
    }
}

impl FromStr for Actor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "SYSTEM" {
            Ok(Actor::System)
        } else {
            s.parse::<UserId>()
                .map(Actor::User)
                .map_err(|_| Error::validation("actor", "expected a user id or SYSTEM"))
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One append-only audit record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Id.
    pub id: AuditId,
    /// What happened.
    pub action: AuditAction,
    /// Who did it: a user id, or `SYSTEM`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub actor: Actor,
    /// What it happened to (an incident or user id, or a username for failed
    /// logins).
    pub target: Option<String>,
    /// Human-readable detail.
    pub description: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl AuditEntry {
    /// A new entry with a fresh id.
    pub fn new(
        action: AuditAction,
        actor: Actor,
        target: Option<String>,
        description: impl Into<String>,
        at: Timestamp,
    ) -> Self {
        Self {
            id: AuditId::new(),
            action,
            actor,
            target,
            description: description.into(),
            created_at: at,
        }
    }
}
