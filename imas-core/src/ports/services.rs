//! The services port: reads, and the [`ServiceWrite`] a
//! [`Change`](super::Change) carries.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Page, PageRequest, Service, ServiceId};

/// A write to the services table, part of a [`Change`](super::Change).
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceWrite {
    /// A new service (`version` 1). A duplicate id, or a name another service
    /// has, is a conflict.
    Insert(Service),
    /// Replace the service whose version is `expected_version` with `service`
    /// (version `expected_version + 1`); otherwise `Conflict`, or `NotFound`
    /// when it does not exist. A name another service has is a conflict.
    Update {
        /// The new state.
        service: Service,
        /// The version the change was computed from.
        expected_version: i64,
    },
    /// Delete the service at `expected_version` (`Conflict` / `NotFound` as for
    /// updates). Its integrations are revoked by the same change
    /// ([`IntegrationWrite::Revoke`](super::IntegrationWrite::Revoke)); its
    /// alerts and incidents stay.
    Delete {
        /// Which.
        id: ServiceId,
        /// The version the deletion was decided on.
        expected_version: i64,
    },
}

/// Services.
#[async_trait]
pub trait ServiceStore: Send + Sync + Debug + 'static {
    /// A service by id.
    async fn get_service(&self, id: ServiceId) -> Result<Option<Service>>;

    /// Services newest first by `(created_at, id)`, one page.
    async fn list_services(&self, page: PageRequest) -> Result<Page<Service>>;
}
