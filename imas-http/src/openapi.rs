//! `GET /openapi.json`: the API description, generated with utoipa from the
//! handlers (each resource module of `api` declares its routes with their
//! OpenAPI entries) and the model types.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The whole OpenAPI document of the IMAS API, as `GET /openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    crate::api::router().into_openapi()
}

/// The document's frame: its title and description and the bearer security
/// scheme; the paths and their schemas come from the routes ([`document`]).
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "IMAS", description = "Incident management and alerting: incidents, SLAs, escalation, notifications, audit."),
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
