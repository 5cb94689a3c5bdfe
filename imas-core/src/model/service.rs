//! Services: what alerts and incidents belong to (SPEC §4). A service's name is
//! unique; its integrations are the keys monitoring sources post with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ServiceId, Timestamp};

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
}
