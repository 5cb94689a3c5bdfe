//! The [`Store`] bundle: every port a backend implements, as one trait object for
//! the engine.

use super::{AuditStore, ChangeStore, IncidentStore, NotificationStore, OutboxStore, UserStore};

/// Everything the engine needs from a store. Implemented for any type that
/// implements the parts.
pub trait Store:
    UserStore + IncidentStore + AuditStore + NotificationStore + OutboxStore + ChangeStore
{
}

impl<T> Store for T where
    T: UserStore + IncidentStore + AuditStore + NotificationStore + OutboxStore + ChangeStore
{
}
