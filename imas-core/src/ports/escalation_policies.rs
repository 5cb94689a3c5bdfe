//! The escalation policies port: reads, and the [`EscalationPolicyWrite`] a
//! [`Change`](super::Change) carries.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{EscalationPolicy, EscalationPolicyId, Page, PageRequest};

/// A write to the escalation policies, part of a [`Change`](super::Change).
#[derive(Debug, Clone, PartialEq)]
pub enum EscalationPolicyWrite {
    /// A new one (`version` 1); a duplicate id is a conflict.
    Insert(EscalationPolicy),
    /// Replace the one whose version is `expected_version` with `escalation_policy`
    /// (version `expected_version + 1`); otherwise `Conflict`, or `NotFound`
    /// when it does not exist.
    Update {
        /// The new state.
        escalation_policy: EscalationPolicy,
        /// The version the change was computed from.
        expected_version: i64,
    },
    /// Delete the one at `expected_version` (`Conflict` / `NotFound` as for
    /// updates).
    Delete {
        /// Which.
        id: EscalationPolicyId,
        /// The version the deletion was decided on.
        expected_version: i64,
    },
}

/// Escalation policies.
#[async_trait]
pub trait EscalationPolicyStore: Send + Sync + Debug + 'static {
    /// A policy by id.
    async fn get_escalation_policy(
        &self,
        id: EscalationPolicyId,
    ) -> Result<Option<EscalationPolicy>>;

    /// Policies newest first by `(created_at, id)`, one page.
    async fn list_escalation_policies(&self, page: PageRequest) -> Result<Page<EscalationPolicy>>;
}
