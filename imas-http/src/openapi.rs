//! `GET /openapi.json`: the API description, generated with utoipa from the
//! handlers (each resource module of `api` declares its routes with their
//! OpenAPI entries) and the model types.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The whole OpenAPI document of the IMAS API, as `GET /openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    crate::api::router().into_openapi()
}

/// The document's frame: its title and description and the security schemes
/// (a user's JWT as a bearer token; an Alertmanager integration key as a
/// bearer token or the `key` query parameter); the paths and their schemas
/// come from the routes ([`document`]). `POST /v2/enqueue` has no scheme: the
/// event's `routing_key` authenticates it.
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
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT".into());
        jwt.description =
            Some("A user's token from POST /auth/login or POST /auth/register.".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(jwt));
        let mut key = Http::new(HttpAuthScheme::Bearer);
        key.description = Some(
            "The key of an integration of kind `alertmanager` (32 characters [a-z0-9], shown once by POST /services/{id}/integrations), as Alertmanager's http_config.authorization.credentials."
                .into(),
        );
        components.add_security_scheme("integrationKey", SecurityScheme::Http(key));
        components.add_security_scheme(
            "integrationKeyQuery",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "key",
                "The key of an integration of kind `alertmanager`, for senders that cannot set a header.",
            ))),
        );
    }
}
