//! [`AuditStore`] on the `audit_log` collection: filtered pages, newest first.
//! Entries are written by the [commit](crate::commit).

use async_trait::async_trait;
use imas_core::error::Result;
use imas_core::model::{AuditEntry, AuditFilter, Cursor, Page, PageRequest};
use imas_core::ports::AuditStore;

use crate::MongoStore;
use crate::codec::decode_audit;
use crate::query::audit_query;

#[async_trait]
impl AuditStore for MongoStore {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        self.page(self.audit(), audit_query(filter), page, decode_audit, |e| {
            Cursor {
                created_at: e.created_at,
                id: e.id.0,
            }
        })
        .await
    }
}
