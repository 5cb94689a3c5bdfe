//! Integration keys (SPEC §4): create (the key is shown once), list, revoke;
//! admins only. Creating and revoking are audited.

use super::{Engine, Principal};
use crate::error::Result;
use crate::model::{CreatedIntegration, Integration, IntegrationId, NewIntegration, ServiceId};

impl Engine {
    /// Creates an integration key for a service (admin): a new random key
    /// ([`crate::model::new_key`]) of which the store keeps only the hash.
    /// The answer is the only place the key is shown. `NotFound` for an
    /// unknown service; audited `INTEGRATION_CREATED`.
    pub async fn create_integration(
        &self,
        by: &Principal,
        service: ServiceId,
        new: NewIntegration,
    ) -> Result<CreatedIntegration> {
        let _ = (by, service, new);
        todo!("issue 17: engine/integrations.rs")
    }

    /// A service's integrations that are not revoked, without keys (admin).
    pub async fn list_integrations(
        &self,
        by: &Principal,
        service: ServiceId,
    ) -> Result<Vec<Integration>> {
        let _ = (by, service);
        todo!("issue 17: engine/integrations.rs")
    }

    /// Revokes an integration key at once (admin); audited
    /// `INTEGRATION_REVOKED`. Revoking a revoked key is `NotFound`.
    pub async fn revoke_integration(&self, by: &Principal, id: IntegrationId) -> Result<()> {
        let _ = (by, id);
        todo!("issue 17: engine/integrations.rs")
    }
}
