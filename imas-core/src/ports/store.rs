//! The [`Store`] bundle: every port a backend implements, as one trait object for
//! the engine.

use super::{
    AlertStore, AuditStore, ChangeStore, EscalationPolicyStore, IncidentStore, IntegrationStore,
    NotificationStore, OutboxStore, RotationStore, ScheduleStore, ServiceStore, UserStore,
};

/// Everything the engine needs from a store. Implemented for any type that
/// implements the parts.
pub trait Store:
    UserStore
    + IncidentStore
    + ServiceStore
    + IntegrationStore
    + AlertStore
    + RotationStore
    + ScheduleStore
    + EscalationPolicyStore
    + AuditStore
    + NotificationStore
    + OutboxStore
    + ChangeStore
{
}

impl<T> Store for T where
    T: UserStore
        + IncidentStore
        + ServiceStore
        + IntegrationStore
        + AlertStore
        + RotationStore
        + ScheduleStore
        + EscalationPolicyStore
        + AuditStore
        + NotificationStore
        + OutboxStore
        + ChangeStore
{
}
