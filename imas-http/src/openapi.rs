//! `GET /openapi.json`: the API description, generated from the handlers and the
//! model types with utoipa.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The OpenAPI document of the IMAS API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "IMAS", description = "Incident management and alerting: incidents, SLAs, escalation, notifications, audit."),
    paths(
        routes::register,
        routes::login,
        routes::change_role,
        routes::create_incident,
        routes::list_incidents,
        routes::get_incident,
        routes::update_incident,
        routes::delete_incident,
        routes::assign_sla,
        routes::violations,
        routes::list_escalations,
        routes::escalate,
        routes::list_notifications,
        routes::mark_read,
        routes::notification_stream,
        routes::list_audit,
        routes::report,
        routes::healthz,
        routes::list_dead_letters,
        routes::redrive_dead_letter,
        routes::metrics,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
