//! Services (SPEC §4): create, read, list, update, delete. Admins change them;
//! admins and engineers read them. Each change commits with its audit entry.

use super::{Engine, Principal};
use crate::error::Result;
use crate::model::{NewService, Page, PageRequest, Service, ServiceId, ServicePatch};

impl Engine {
    /// Creates a service (admin). The name is 1..=100 characters and unique
    /// (`Conflict` otherwise); audited `SERVICE_CREATED`.
    pub async fn create_service(&self, by: &Principal, new: NewService) -> Result<Service> {
        let _ = (by, new);
        todo!("issue 17: engine/services.rs")
    }

    /// A service (admin, engineer).
    pub async fn get_service(&self, by: &Principal, id: ServiceId) -> Result<Service> {
        let _ = (by, id);
        todo!("issue 17: engine/services.rs")
    }

    /// Services newest first (admin, engineer).
    pub async fn list_services(&self, by: &Principal, page: PageRequest) -> Result<Page<Service>> {
        let _ = (by, page);
        todo!("issue 17: engine/services.rs")
    }

    /// Changes a service's fields (admin); audited `SERVICE_UPDATED`.
    pub async fn update_service(
        &self,
        by: &Principal,
        id: ServiceId,
        patch: ServicePatch,
    ) -> Result<Service> {
        let _ = (by, id, patch);
        todo!("issue 17: engine/services.rs")
    }

    /// Deletes a service (admin): `Conflict` while it has open incidents
    /// (not resolved or closed); revokes its integrations in the same change;
    /// audited `SERVICE_DELETED`.
    pub async fn delete_service(&self, by: &Principal, id: ServiceId) -> Result<()> {
        let _ = (by, id);
        todo!("issue 17: engine/services.rs")
    }
}
