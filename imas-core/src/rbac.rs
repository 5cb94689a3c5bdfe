//! Role-based access control: one table of permissions per role (SPEC §2), checked
//! by the engine on every use case so that every front end enforces the same rules.

use crate::error::{Error, Result};
use crate::model::Role;

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// `GET /incidents`.
    ListIncidents,
    /// `GET /incidents/{id}` for any incident (reporters may always read their own).
    ReadAnyIncident,
    /// `POST /incidents`.
    CreateIncident,
    /// `assignedTo` in `POST /incidents` (assigning while reporting).
    AssignOnReport,
    /// `PUT /incidents/{id}`.
    UpdateIncident,
    /// `DELETE /incidents/{id}`.
    DeleteIncident,
    /// `POST /sla/assign-sla`.
    AssignSla,
    /// `GET /sla/violations`.
    ListViolations,
    /// `GET /api/escalations`.
    ListEscalations,
    /// `POST /api/escalations/manual`.
    EscalateManually,
    /// `GET /notifications`, `PATCH /notifications/{id}/read` (own only).
    ReadOwnNotifications,
    /// `GET /reports/incidents`.
    ExportReports,
    /// `GET /audit`.
    ReadAudit,
    /// `PATCH /users/{id}/role`.
    ChangeRole,
    /// `GET /admin/dead-letters`, `POST /admin/dead-letters/{key}/redrive`.
    ManageDeadLetters,
    /// `GET /services`, `GET /services/{id}`.
    ReadServices,
    /// `POST /services`, `PATCH /services/{id}`, `DELETE /services/{id}`.
    ManageServices,
    /// `POST /services/{id}/integrations`, `GET /services/{id}/integrations`,
    /// `DELETE /integrations/{id}`.
    ManageIntegrations,
    /// `GET /alerts` (an incident's alerts go with reading the incident).
    ListAlerts,
    /// `GET /users`.
    ListUsers,
    /// Reading rotations, schedules (with who is on call and shifts) and
    /// escalation policies.
    ReadOnCall,
    /// Creating, changing and deleting rotations, schedules and escalation
    /// policies, and any override.
    ManageOnCall,
    /// Adding or deleting an override that adds or removes oneself.
    ManageOwnOverrides,
}

use Permission::*;
use Role::{Admin, Engineer, User};

/// The permission table: who may do what. Nothing else grants access.
pub const TABLE: &[(Permission, &[Role])] = &[
    (ListIncidents, &[Admin, Engineer]),
    (ReadAnyIncident, &[Admin, Engineer]),
    (CreateIncident, &[Admin, Engineer, User]),
    (AssignOnReport, &[Admin, Engineer]),
    (UpdateIncident, &[Admin, Engineer]),
    (DeleteIncident, &[Admin]),
    (AssignSla, &[Admin]),
    (ListViolations, &[Admin, Engineer]),
    (ListEscalations, &[Admin, Engineer]),
    (EscalateManually, &[Admin]),
    (ReadOwnNotifications, &[Admin, Engineer, User]),
    (ExportReports, &[Admin, Engineer]),
    (ReadAudit, &[Admin, Engineer]),
    (ChangeRole, &[Admin]),
    (ManageDeadLetters, &[Admin]),
    (ReadServices, &[Admin, Engineer]),
    (ManageServices, &[Admin]),
    (ManageIntegrations, &[Admin]),
    (ListAlerts, &[Admin, Engineer]),
    (ListUsers, &[Admin, Engineer]),
    (ReadOnCall, &[Admin, Engineer]),
    (ManageOnCall, &[Admin]),
    (ManageOwnOverrides, &[Admin, Engineer]),
];

/// The roles holding a permission.
pub fn roles_for(permission: Permission) -> &'static [Role] {
    TABLE
        .iter()
        .find(|(p, _)| *p == permission)
        .map(|(_, roles)| *roles)
        .unwrap_or(&[])
}

/// Whether `role` holds `permission`.
pub fn allows(role: Role, permission: Permission) -> bool {
    roles_for(permission).contains(&role)
}

/// `Ok` when `role` holds `permission`, else [`Error::Forbidden`].
pub fn require(role: Role, permission: Permission) -> Result<()> {
    if allows(role, permission) {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "role {role} may not {}",
            describe(permission)
        )))
    }
}

fn describe(p: Permission) -> &'static str {
    match p {
        ListIncidents => "list incidents",
        ReadAnyIncident => "read incidents reported by others",
        CreateIncident => "create incidents",
        AssignOnReport => "assign the incidents they report",
        UpdateIncident => "update incidents",
        DeleteIncident => "delete incidents",
        AssignSla => "assign SLAs",
        ListViolations => "list SLA violations",
        ListEscalations => "list escalations",
        EscalateManually => "escalate incidents",
        ReadOwnNotifications => "read notifications",
        ExportReports => "export reports",
        ReadAudit => "read the audit log",
        ChangeRole => "change roles",
        ManageDeadLetters => "list or redrive dead letters",
        ReadServices => "read services",
        ManageServices => "create, change or delete services",
        ManageIntegrations => "manage integration keys",
        ListAlerts => "list alerts",
        ListUsers => "list users",
        ReadOnCall => "read rotations, schedules or escalation policies",
        ManageOnCall => {
            "create, change or delete rotations, schedules, escalation policies or others' overrides"
        }
        ManageOwnOverrides => "add or delete overrides",
    }
}
