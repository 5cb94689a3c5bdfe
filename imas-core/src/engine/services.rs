//! Services (SPEC §4): create, read, list, update, delete. Admins change them;
//! admins and engineers read them. Each change commits with its audit entry.

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, EscalationPolicyId, IncidentFilter, MAX_ACK_TIMEOUT_SECONDS,
    NewService, Page, PageRequest, Service, ServiceId, ServicePatch, Status,
};
use crate::ports::{Change, IntegrationWrite, ServiceWrite};
use crate::rbac::{self, Permission};
use crate::validation::{MAX_DESCRIPTION, check_len, check_range_u32, validate_name};

/// The statuses of an incident that is not done (neither resolved nor closed).
pub(super) const NOT_DONE: [Status; 4] = [
    Status::Open,
    Status::Acknowledged,
    Status::InProgress,
    Status::OnHold,
];

/// An acknowledgement timeout: 1..=604,800 seconds (a week).
fn check_ack_timeout(seconds: u32) -> Result<u32> {
    check_range_u32(
        "ackTimeoutSeconds",
        seconds,
        1,
        MAX_ACK_TIMEOUT_SECONDS,
        "seconds",
    )
}

impl Engine {
    /// `Ok` when the policy a service names exists, else a validation error
    /// on `escalationPolicyId`.
    async fn check_policy_exists(&self, id: EscalationPolicyId) -> Result<()> {
        match self.inner.store.get_escalation_policy(id).await? {
            Some(_) => Ok(()),
            None => Err(Error::validation(
                "escalationPolicyId",
                messages::no_such("escalation policy", id),
            )),
        }
    }

    /// A service by id, `NotFound` when there is none (no permission check).
    pub(super) async fn load_service(&self, id: ServiceId) -> Result<Service> {
        self.inner
            .store
            .get_service(id)
            .await?
            .ok_or(Error::NotFound { entity: "service" })
    }

    /// Creates a service (admin). The name is 1..=100 characters and unique
    /// (`Conflict` otherwise); the escalation policy, when given, exists; the
    /// ack timeout, when given, is 1..=604,800 s; audited `SERVICE_CREATED`.
    pub async fn create_service(&self, by: &Principal, new: NewService) -> Result<Service> {
        rbac::require(by.role, Permission::ManageServices)?;
        let name = validate_name("name", &new.name)?;
        check_len("description", &new.description, 0, MAX_DESCRIPTION)?;
        let ack_timeout_seconds = new.ack_timeout_seconds.map(check_ack_timeout).transpose()?;
        if let Some(p) = new.escalation_policy_id {
            self.check_policy_exists(p).await?;
        }
        let now = self.now();
        let mut service = Service::new(name, now);
        service.description = new.description;
        service.auto_resolve = new.auto_resolve.unwrap_or(true);
        service.escalation_policy_id = new.escalation_policy_id;
        service.ack_timeout_seconds = ack_timeout_seconds;
        let audit = AuditEntry::new(
            AuditAction::ServiceCreated,
            Actor::User(by.id),
            Some(service.id.to_string()),
            messages::service_created(&service.name),
            now,
        );
        self.commit(Change {
            service: Some(ServiceWrite::Insert(service.clone())),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(service)
    }

    /// A service (admin, engineer).
    pub async fn get_service(&self, by: &Principal, id: ServiceId) -> Result<Service> {
        rbac::require(by.role, Permission::ReadServices)?;
        self.load_service(id).await
    }

    /// Services newest first (admin, engineer).
    pub async fn list_services(&self, by: &Principal, page: PageRequest) -> Result<Page<Service>> {
        rbac::require(by.role, Permission::ReadServices)?;
        page.validate()?;
        self.inner.store.list_services(page).await
    }

    /// Changes a service's fields (admin), validated as on creation (`null`
    /// clears the policy or the ack timeout); audited `SERVICE_UPDATED`,
    /// naming the fields that changed.
    pub async fn update_service(
        &self,
        by: &Principal,
        id: ServiceId,
        patch: ServicePatch,
    ) -> Result<Service> {
        rbac::require(by.role, Permission::ManageServices)?;
        let name = patch
            .name
            .as_deref()
            .map(|n| validate_name("name", n))
            .transpose()?;
        if let Some(d) = &patch.description {
            check_len("description", d, 0, MAX_DESCRIPTION)?;
        }
        if let Some(Some(t)) = patch.ack_timeout_seconds {
            check_ack_timeout(t)?;
        }
        if let Some(Some(p)) = patch.escalation_policy_id {
            self.check_policy_exists(p).await?;
        }
        let before = self.load_service(id).await?;
        let mut after = before.clone();
        let mut changed = Vec::new();
        if let Some(n) = name.filter(|n| *n != before.name) {
            after.name = n;
            changed.push("name");
        }
        if let Some(d) = patch.description.filter(|d| *d != before.description) {
            after.description = d;
            changed.push("description");
        }
        if let Some(a) = patch.auto_resolve.filter(|a| *a != before.auto_resolve) {
            after.auto_resolve = a;
            changed.push("autoResolve");
        }
        if let Some(p) = patch
            .escalation_policy_id
            .filter(|p| *p != before.escalation_policy_id)
        {
            after.escalation_policy_id = p;
            changed.push("escalationPolicyId");
        }
        if let Some(t) = patch
            .ack_timeout_seconds
            .filter(|t| *t != before.ack_timeout_seconds)
        {
            after.ack_timeout_seconds = t;
            changed.push("ackTimeoutSeconds");
        }
        if changed.is_empty() {
            return Ok(before);
        }
        let now = self.now();
        after.updated_at = now;
        after.version = before.version + 1;
        let audit = AuditEntry::new(
            AuditAction::ServiceUpdated,
            Actor::User(by.id),
            Some(id.to_string()),
            messages::service_updated(&after.name, &changed),
            now,
        );
        self.commit(Change {
            service: Some(ServiceWrite::Update {
                service: after.clone(),
                expected_version: before.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(after)
    }

    /// Deletes a service (admin): `Conflict` while it has open incidents
    /// (not resolved or closed); revokes its integrations in the same change;
    /// audited `SERVICE_DELETED` (and `INTEGRATION_REVOKED` for each key).
    pub async fn delete_service(&self, by: &Principal, id: ServiceId) -> Result<()> {
        rbac::require(by.role, Permission::ManageServices)?;
        let service = self.load_service(id).await?;
        let open = self
            .inner
            .store
            .count_incidents(&IncidentFilter {
                service_id: Some(id),
                status: NOT_DONE.to_vec(),
                ..IncidentFilter::default()
            })
            .await?;
        if open > 0 {
            return Err(Error::conflict(messages::service_has_open_incidents(
                &service.name,
                open,
            )));
        }
        let now = self.now();
        let actor = Actor::User(by.id);
        let integrations = self.inner.store.list_integrations(id).await?;
        let mut audit = vec![AuditEntry::new(
            AuditAction::ServiceDeleted,
            actor,
            Some(id.to_string()),
            messages::service_deleted(&service.name),
            now,
        )];
        audit.extend(integrations.iter().map(|i| {
            AuditEntry::new(
                AuditAction::IntegrationRevoked,
                actor,
                Some(i.id.to_string()),
                messages::integration_revoked(&i.name, i.kind),
                now,
            )
        }));
        self.commit(Change {
            service: Some(ServiceWrite::Delete {
                id,
                expected_version: service.version,
            }),
            integrations: integrations
                .iter()
                .map(|i| IntegrationWrite::Revoke { id: i.id, at: now })
                .collect(),
            audit,
            ..Change::default()
        })
        .await
    }
}
