//! The audit log, read by filter (the entries are written with each change).

use super::{Engine, Principal};
use crate::error::Result;
use crate::model::{AuditEntry, AuditFilter, Page, PageRequest};
use crate::rbac::{self, Permission};

impl Engine {
    /// The audit log, newest first.
    pub async fn list_audit(
        &self,
        who: &Principal,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        rbac::require(who.role, Permission::ReadAudit)?;
        page.validate()?;
        filter.validate()?;
        self.inner.store.list_audit(filter, page).await
    }
}
