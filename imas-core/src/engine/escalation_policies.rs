//! Escalation policies as data (SPEC §5): create, read, list, update, delete.
//! Admins change them; admins and engineers read them. Each change commits with
//! its audit entry (`ESCALATION_POLICY_CREATED`, `_UPDATED`, `_DELETED`). How
//! an incident steps through its policy is in `sla.rs` (the sweep) and
//! `escalations.rs` (manual escalation).

use super::{Engine, Principal};
use crate::error::Result;
use crate::model::{
    EscalationPolicy, EscalationPolicyId, EscalationPolicyPatch, NewEscalationPolicy, Page,
    PageRequest,
};

impl Engine {
    /// Creates a policy (admin): name 1..=100, repeat 0..=5 (default 3), 1..=20
    /// steps each with a delay of 1..=9000 minutes and 1..=10 targets that
    /// exist.
    pub async fn create_escalation_policy(
        &self,
        by: &Principal,
        new: NewEscalationPolicy,
    ) -> Result<EscalationPolicy> {
        let _ = (by, new);
        todo!("issue 18: escalation policies")
    }

    /// A policy (admin, engineer).
    pub async fn get_escalation_policy(
        &self,
        by: &Principal,
        id: EscalationPolicyId,
    ) -> Result<EscalationPolicy> {
        let _ = (by, id);
        todo!("issue 18: escalation policies")
    }

    /// Policies newest first (admin, engineer).
    pub async fn list_escalation_policies(
        &self,
        by: &Principal,
        page: PageRequest,
    ) -> Result<Page<EscalationPolicy>> {
        let _ = (by, page);
        todo!("issue 18: escalation policies")
    }

    /// Changes a policy (admin), validated as on creation; incidents already
    /// stepping through it take the new steps from their next step on.
    pub async fn update_escalation_policy(
        &self,
        by: &Principal,
        id: EscalationPolicyId,
        patch: EscalationPolicyPatch,
    ) -> Result<EscalationPolicy> {
        let _ = (by, id, patch);
        todo!("issue 18: escalation policies")
    }

    /// Deletes a policy (admin); `Conflict` (409) while a service uses it.
    pub async fn delete_escalation_policy(
        &self,
        by: &Principal,
        id: EscalationPolicyId,
    ) -> Result<()> {
        let _ = (by, id);
        todo!("issue 18: escalation policies")
    }
}
