//! Escalation policies as data (SPEC §5): `/escalation-policies` (list,
//! create) and `/escalation-policies/{id}` (read, change, delete). Admins
//! change them, admins and engineers read them; the engine checks it,
//! validates them (steps, delays, targets that exist) and refuses to delete a
//! policy a service uses (409).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imas_core::model::{
    EscalationPolicy, EscalationPolicyId, EscalationPolicyPatch, NewEscalationPolicy,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, paged, parse_path};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, JsonBody, ListParams, PageQuery};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_escalation_policies, create_escalation_policy))
        .routes(routes!(
            get_escalation_policy,
            update_escalation_policy,
            delete_escalation_policy
        ))
}

#[utoipa::path(get, tag = "on-call", path = "/escalation-policies", params(PageQuery), responses((status = 200, body = Vec<EscalationPolicy>, description = "newest first; Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_escalation_policies(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    Ok(paged(
        &uri,
        s.engine.list_escalation_policies(&who, p.page()?).await?,
    ))
}

#[utoipa::path(post, tag = "on-call", path = "/escalation-policies", request_body = NewEscalationPolicy, responses((status = 201, body = EscalationPolicy), (status = 400, body = ErrorAnswer, description = "a field is invalid (named in `field`): repeat out of 0..=5, no steps or more than 20, a delay out of 1..=9000, no targets or more than 10, a target that does not exist, ..."), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn create_escalation_policy(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(new): JsonBody<NewEscalationPolicy>,
) -> ApiResult<Response> {
    let policy = s.engine.create_escalation_policy(&who, new).await?;
    Ok((StatusCode::CREATED, Json(policy)).into_response())
}

#[utoipa::path(get, tag = "on-call", path = "/escalation-policies/{id}", params(("id" = EscalationPolicyId, Path, description = "escalation policy id")), responses((status = 200, body = EscalationPolicy), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn get_escalation_policy(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<EscalationPolicy>> {
    Ok(Json(
        s.engine
            .get_escalation_policy(&who, parse_path(&id)?)
            .await?,
    ))
}

#[utoipa::path(patch, tag = "on-call", path = "/escalation-policies/{id}", params(("id" = EscalationPolicyId, Path, description = "escalation policy id")), request_body = EscalationPolicyPatch, responses((status = 200, body = EscalationPolicy, description = "changed; incidents already stepping through it take the new steps from their next step on"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "the escalation policy changed meanwhile (a concurrent write): read it again and retry")), security(("bearer" = [])))]
pub(crate) async fn update_escalation_policy(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<EscalationPolicyPatch>,
) -> ApiResult<Json<EscalationPolicy>> {
    Ok(Json(
        s.engine
            .update_escalation_policy(&who, parse_path(&id)?, patch)
            .await?,
    ))
}

#[utoipa::path(delete, tag = "on-call", path = "/escalation-policies/{id}", params(("id" = EscalationPolicyId, Path, description = "escalation policy id")), responses((status = 204, description = "deleted"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "a service uses the policy")), security(("bearer" = [])))]
pub(crate) async fn delete_escalation_policy(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.engine
        .delete_escalation_policy(&who, parse_path(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
