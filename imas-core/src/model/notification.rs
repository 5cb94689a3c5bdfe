//! Notifications: the intent the engine writes to the outbox with a change, the
//! outbox row that tracks its delivery, and the delivered in-app notification.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{IncidentId, NotificationId, Timestamp, UserId};

/// Kind of notification.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationType {
    /// Informational (e.g. an assignment).
    Info,
    /// A warning (at-risk, missed response).
    Warning,
    /// A breach or an escalation.
    Escalation,
}
string_enum!(NotificationType, "type", { Info => "info", Warning => "warning", Escalation => "escalation" });

/// A notification the engine wants delivered: written to the outbox in the same
/// atomic change as the domain change that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationIntent {
    /// Idempotency key: one notification per key, however often it is delivered.
    pub key: String,
    /// Recipient.
    pub user: UserId,
    /// Text.
    pub message: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// The incident it is about.
    pub incident_id: Option<IncidentId>,
    /// When the intent was created.
    pub created_at: Timestamp,
}

/// An outbox row: an intent and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The intent (its `key` identifies the entry).
    pub intent: NotificationIntent,
    /// Publications so far.
    pub attempts: u32,
    /// When the relay may publish it (again).
    pub available_at: Timestamp,
}

/// A delivered in-app notification.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Id.
    pub id: NotificationId,
    /// Recipient.
    pub user: UserId,
    /// Text.
    pub message: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// The incident it is about.
    pub incident_id: Option<IncidentId>,
    /// Whether the recipient marked it read.
    pub read: bool,
    /// When it was delivered.
    pub created_at: DateTime<Utc>,
    /// The intent's idempotency key.
    #[serde(skip_serializing, default)]
    pub key: String,
}

impl Notification {
    /// The in-app notification for an intent, delivered at `at`.
    pub fn from_intent(intent: &NotificationIntent, at: Timestamp) -> Self {
        Self {
            id: NotificationId::new(),
            user: intent.user,
            message: intent.message.clone(),
            kind: intent.kind,
            incident_id: intent.incident_id,
            read: false,
            created_at: at,
            key: intent.key.clone(),
        }
    }
}
