//! The [`Store`] bundle: every port a backend implements, as one trait object for
//! the engine.

use super::{
    AlertStore, AuditStore, ChangeStore, IncidentStore, IntegrationStore, NotificationStore,
    OutboxStore, ServiceStore, UserStore,
};

/// Everything the engine needs from a store. Implemented for any type that
/// implements the parts.
pub trait Store:
    UserStore
    + IncidentStore
    + ServiceStore
    + IntegrationStore
    + AlertStore
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
        + AuditStore
        + NotificationStore
        + OutboxStore
        + ChangeStore
{
}
