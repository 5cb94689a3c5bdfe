//! The RBAC matrix of SPEC §2, route by route and role by role, checked against
//! the permission table and enforced by the engine itself.

mod common;

use imas_core::Error;
use imas_core::engine::{IncidentPatch, NewIncident};
use imas_core::model::{AuditFilter, IncidentFilter, NotificationId, PageRequest, Priority, Role};
use imas_core::rbac::{self, Permission};

const ALL: &[Role] = &[Role::Admin, Role::Engineer, Role::User];

/// SPEC §2, as written there.
const SPEC: &[(&str, Permission, &[Role])] = &[
    (
        "GET /incidents",
        Permission::ListIncidents,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "GET /incidents/{id} (others')",
        Permission::ReadAnyIncident,
        &[Role::Admin, Role::Engineer],
    ),
    ("POST /incidents", Permission::CreateIncident, ALL),
    (
        "POST /incidents with assignedTo",
        Permission::AssignOnReport,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "PUT /incidents/{id}",
        Permission::UpdateIncident,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "DELETE /incidents/{id}",
        Permission::DeleteIncident,
        &[Role::Admin],
    ),
    (
        "POST /sla/assign-sla",
        Permission::AssignSla,
        &[Role::Admin],
    ),
    (
        "GET /sla/violations",
        Permission::ListViolations,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "GET /api/escalations",
        Permission::ListEscalations,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "POST /api/escalations/manual",
        Permission::EscalateManually,
        &[Role::Admin],
    ),
    ("GET /notifications", Permission::ReadOwnNotifications, ALL),
    (
        "GET /reports/incidents",
        Permission::ExportReports,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "GET /audit",
        Permission::ReadAudit,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "PATCH /users/{id}/role",
        Permission::ChangeRole,
        &[Role::Admin],
    ),
    (
        "GET /admin/dead-letters, POST /admin/dead-letters/{key}/redrive",
        Permission::ManageDeadLetters,
        &[Role::Admin],
    ),
    (
        "GET /services, GET /services/{id}",
        Permission::ReadServices,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "POST /services, PATCH /services/{id}, DELETE /services/{id}",
        Permission::ManageServices,
        &[Role::Admin],
    ),
    (
        "POST|GET /services/{id}/integrations, DELETE /integrations/{id}",
        Permission::ManageIntegrations,
        &[Role::Admin],
    ),
    (
        "GET /alerts",
        Permission::ListAlerts,
        &[Role::Admin, Role::Engineer],
    ),
    // SPEC §5.
    (
        "GET /users",
        Permission::ListUsers,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "GET /rotations, /schedules, /escalation-policies (and on-call, shifts, /oncall)",
        Permission::ReadOnCall,
        &[Role::Admin, Role::Engineer],
    ),
    (
        "POST|PATCH|DELETE /rotations, /schedules, /escalation-policies; anyone's override",
        Permission::ManageOnCall,
        &[Role::Admin],
    ),
    (
        "POST|DELETE /schedules/{id}/overrides adding or removing oneself",
        Permission::ManageOwnOverrides,
        &[Role::Admin, Role::Engineer],
    ),
];

#[test]
fn table_matches_the_spec() {
    assert_eq!(
        SPEC.len(),
        rbac::TABLE.len(),
        "every permission is in the SPEC matrix"
    );
    for (route, permission, roles) in SPEC {
        for role in ALL {
            assert_eq!(
                rbac::allows(*role, *permission),
                roles.contains(role),
                "{route} for {role}"
            );
        }
    }
}

fn forbidden<T: std::fmt::Debug>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Forbidden { .. }))
}

#[tokio::test]
async fn the_engine_enforces_the_matrix() {
    let w = common::world();
    let root = w.root().await;
    let victim = w.user("victim", Role::User).await;
    for role in ALL {
        let who = w.user(&format!("caller-{role}"), *role).await;
        let inc = w
            .engine
            .create_incident(
                &root,
                NewIncident {
                    title: format!("for {role}"),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
        let allowed = |p: Permission| rbac::allows(*role, p);
        let page = PageRequest::default();
        let checks: Vec<(Permission, bool)> = vec![
            (
                Permission::ListIncidents,
                forbidden(
                    &w.engine
                        .list_incidents(&who, &IncidentFilter::default(), page)
                        .await,
                ),
            ),
            (
                Permission::CreateIncident,
                forbidden(
                    &w.engine
                        .create_incident(
                            &who,
                            NewIncident {
                                title: "x".into(),
                                ..Default::default()
                            },
                        )
                        .await,
                ),
            ),
            (
                Permission::AssignOnReport,
                forbidden(
                    &w.engine
                        .create_incident(
                            &who,
                            NewIncident {
                                title: "assigned".into(),
                                assigned_to: Some(victim.id),
                                ..Default::default()
                            },
                        )
                        .await,
                ),
            ),
            (
                Permission::UpdateIncident,
                forbidden(
                    &w.engine
                        .update_incident(
                            &who,
                            inc.id,
                            IncidentPatch {
                                title: Some("y".into()),
                                ..Default::default()
                            },
                            None,
                        )
                        .await,
                ),
            ),
            (
                Permission::AssignSla,
                forbidden(&w.engine.assign_sla(&who, inc.id, Priority::High).await),
            ),
            (
                Permission::ListViolations,
                forbidden(&w.engine.list_violations(&who, page).await),
            ),
            (
                Permission::ListEscalations,
                forbidden(&w.engine.list_escalations(&who, page).await),
            ),
            (
                Permission::EscalateManually,
                forbidden(&w.engine.escalate_manually(&who, inc.id, None).await),
            ),
            (
                Permission::ReadOwnNotifications,
                forbidden(&w.engine.list_notifications(&who, page).await),
            ),
            (
                Permission::ReadAudit,
                forbidden(
                    &w.engine
                        .list_audit(&who, &AuditFilter::default(), page)
                        .await,
                ),
            ),
            (
                Permission::ChangeRole,
                forbidden(&w.engine.change_role(&who, victim.id, Role::User).await),
            ),
            (
                Permission::DeleteIncident,
                forbidden(&w.engine.delete_incident(&who, inc.id).await),
            ),
        ];
        for (permission, was_forbidden) in checks {
            assert_eq!(
                was_forbidden,
                !allowed(permission),
                "{permission:?} for {role}"
            );
        }
        // Reading one incident: anyone may read their own; others' only with
        // ReadAnyIncident, and a refusal is NotFound (no information leak).
        let own = w
            .engine
            .create_incident(
                &who,
                NewIncident {
                    title: "mine".into(),
                    ..Default::default()
                },
            )
            .await
            .expect("own");
        assert!(w.engine.get_incident(&who, own.id).await.is_ok());
        let other = w
            .engine
            .create_incident(
                &root,
                NewIncident {
                    title: "theirs".into(),
                    ..Default::default()
                },
            )
            .await
            .expect("other");
        let r = w.engine.get_incident(&who, other.id).await;
        if allowed(Permission::ReadAnyIncident) {
            assert!(r.is_ok());
        } else {
            assert!(matches!(r, Err(Error::NotFound { .. })), "{role}: {r:?}");
        }
        let r = w
            .engine
            .mark_notification_read(&who, NotificationId::new())
            .await;
        assert!(matches!(r, Err(Error::NotFound { .. })));
    }
}
