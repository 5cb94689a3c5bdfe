//! The integrations port: integration keys by id, by key hash and by service,
//! and the [`IntegrationWrite`] a [`Change`](super::Change) carries.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Integration, IntegrationId, ServiceId, Timestamp};

/// A write to the integrations table, part of a [`Change`](super::Change).
#[derive(Debug, Clone, PartialEq)]
pub enum IntegrationWrite {
    /// A new integration. A duplicate id or key hash is a conflict.
    Insert(Integration),
    /// Sets `revoked_at` of the integration (if it is not revoked already; a
    /// second revoke keeps the first instant). `NotFound` when it does not
    /// exist.
    Revoke {
        /// Which.
        id: IntegrationId,
        /// When.
        at: Timestamp,
    },
}

/// Integration keys.
#[async_trait]
pub trait IntegrationStore: Send + Sync + Debug + 'static {
    /// An integration by id, revoked or not.
    async fn get_integration(&self, id: IntegrationId) -> Result<Option<Integration>>;

    /// The integration whose `key_hash` is this, revoked or not: how a
    /// request's key is authenticated (an indexed point read; it runs on every
    /// event).
    async fn integration_by_key_hash(&self, key_hash: &str) -> Result<Option<Integration>>;

    /// A service's integrations that are not revoked, oldest first by
    /// `(created_at, id)`.
    async fn list_integrations(&self, service: ServiceId) -> Result<Vec<Integration>>;
}
