//! The ids of the entities: UUID v7 newtypes that parse with a validation error
//! naming the field, and print as the bare UUID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random, time-ordered id (UUID v7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| {
                    Error::validation($what, "expected an id (a UUID such as 0190f3c2-7b1e-7c3a-9d4e-1f2a3b4c5d6e)")
                })
            }
        }
    };
}

id_type!(
    /// Identifies a [`User`](super::User).
    UserId,
    "userId"
);
id_type!(
    /// Identifies an [`Incident`](super::Incident).
    IncidentId,
    "incidentId"
);
id_type!(
    /// Identifies a [`Notification`](super::Notification).
    NotificationId,
    "notificationId"
);
id_type!(
    /// Identifies an [`AuditEntry`](super::AuditEntry).
    AuditId,
    "auditId"
);
id_type!(
    /// Identifies a [`Service`](super::Service).
    ServiceId,
    "serviceId"
);
id_type!(
    /// Identifies an [`Integration`](super::Integration).
    IntegrationId,
    "integrationId"
);
id_type!(
    /// Identifies an [`Alert`](super::Alert).
    AlertId,
    "alertId"
);
id_type!(
    /// Identifies a [`Rotation`](super::Rotation).
    RotationId,
    "rotationId"
);
id_type!(
    /// Identifies a [`Schedule`](super::Schedule).
    ScheduleId,
    "scheduleId"
);
id_type!(
    /// Identifies an [`Override`](super::Override) within its schedule.
    OverrideId,
    "overrideId"
);
id_type!(
    /// Identifies an [`EscalationPolicy`](super::EscalationPolicy).
    EscalationPolicyId,
    "escalationPolicyId"
);
