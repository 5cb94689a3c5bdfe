//! The audit port: the append-only log, read by filter; entries are written only
//! as part of a [`Change`].

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{AuditEntry, AuditFilter, Page, PageRequest};

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync + Debug + 'static {
    /// Entries matching `filter`, newest first by `(created_at, id)`, one page.
    async fn list_audit(&self, filter: &AuditFilter, page: PageRequest)
    -> Result<Page<AuditEntry>>;
}
