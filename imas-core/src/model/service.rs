//! Services: what alerts and incidents belong to (SPEC §4). A service's name is
//! unique; its integrations are the keys monitoring sources post with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EscalationPolicyId, ServiceId, Timestamp};

/// Longest acknowledgement timeout, in seconds (a week).
pub const MAX_ACK_TIMEOUT_SECONDS: u32 = 604_800;

/// A service: alerts and the incidents they open belong to one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Id.
    pub id: ServiceId,
    /// Unique name, 1..=100 characters.
    pub name: String,
    /// Description, at most 10,000 characters.
    pub description: String,
    /// Whether an incident of this service whose alerts have all resolved
    /// resolves itself (default true).
    pub auto_resolve: bool,
    /// The escalation policy its incidents page through (`None`: the SLA-driven
    /// escalation of SPEC §1).
    pub escalation_policy_id: Option<EscalationPolicyId>,
    /// Seconds after which an acknowledged, unresolved incident of this service
    /// is open again (`ACK_EXPIRED`) and escalation resumes; `None`: never.
    pub ack_timeout_seconds: Option<u32>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, incremented by every write.
    pub version: i64,
}

impl Service {
    /// A new service, version 1, auto-resolving.
    pub fn new(name: impl Into<String>, now: Timestamp) -> Self {
        Self {
            id: ServiceId::new(),
            name: name.into(),
            description: String::new(),
            auto_resolve: true,
            escalation_policy_id: None,
            ack_timeout_seconds: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}

/// What `POST /services` takes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewService {
    /// Unique name, 1..=100 characters.
    pub name: String,
    /// Description (default empty).
    #[serde(default)]
    pub description: String,
    /// Default true.
    #[serde(default)]
    pub auto_resolve: Option<bool>,
    /// The escalation policy (default none).
    #[serde(default)]
    pub escalation_policy_id: Option<EscalationPolicyId>,
    /// Acknowledgement timeout, 1..=604,800 seconds (a week; default none).
    #[serde(default)]
    pub ack_timeout_seconds: Option<u32>,
}

/// What `PATCH /services/{id}` takes: any subset of the editable fields.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New auto-resolve setting.
    #[serde(default)]
    pub auto_resolve: Option<bool>,
    /// New escalation policy; `null` removes it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EscalationPolicyId>))]
    pub escalation_policy_id: Option<Option<EscalationPolicyId>>,
    /// New acknowledgement timeout; `null` removes it.
    #[serde(default, deserialize_with = "super::nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub ack_timeout_seconds: Option<Option<u32>>,
}
