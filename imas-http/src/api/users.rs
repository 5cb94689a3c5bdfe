//! Users: `POST /auth/register`, `POST /auth/login`, `PATCH /users/{id}/role`
//! (the engine's sign-up, sign-in and role changes), `GET /users` (who can be
//! put on call: admins and engineers read it) and the caller's own account,
//! `GET /users/me` and `PATCH /users/me` (name, email, time zone, password
//! with the current one).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imas_core::engine::NewUser;
use imas_core::model::{ProfilePatch, Role, User, UserId, UserSummary};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ErrorAnswer, paged, parse_path};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, ClientAddr, JsonBody, ListParams, PageQuery};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(change_role))
        .routes(routes!(list_users))
        .routes(routes!(me, update_me))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterBody {
    /// Display name.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Letters, digits, `.`, `_` and `-`.
    #[schema(min_length = 3, max_length = 50, pattern = "^[A-Za-z0-9._-]+$")]
    username: String,
    /// At least 8 characters, not a commonly used password.
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    /// An email address.
    #[schema(min_length = 3, max_length = 254)]
    email: String,
}

/// Answer of `POST /auth/register`: the user's public fields and a token.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Registered {
    #[serde(flatten)]
    user: User,
    token: String,
}

/// Answer of `POST /auth/login`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenAnswer {
    token: String,
}

#[utoipa::path(post, tag = "users", path = "/auth/register", request_body = RegisterBody, responses((status = 201, body = Registered), (status = 400, body = ErrorAnswer), (status = 409, body = ErrorAnswer), (status = 503, body = ErrorAnswer, description = "password hashing at capacity; see Retry-After")))]
pub(crate) async fn register(
    State(s): State<AppState>,
    JsonBody(b): JsonBody<RegisterBody>,
) -> ApiResult<Response> {
    let (user, token) = s
        .engine
        .register(NewUser {
            name: b.name,
            username: b.username,
            email: b.email,
            password: b.password,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Registered { user, token })).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    username: String,
    password: String,
}

#[utoipa::path(post, tag = "users", path = "/auth/login", request_body = LoginBody, responses((status = 200, body = TokenAnswer), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 429, body = ErrorAnswer, description = "too many failed attempts for the username or the address; see Retry-After"), (status = 503, body = ErrorAnswer, description = "password hashing at capacity; see Retry-After")))]
pub(crate) async fn login(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    JsonBody(b): JsonBody<LoginBody>,
) -> ApiResult<Response> {
    let token = s
        .engine
        .login_from(&b.username, &b.password, client)
        .await?;
    Ok(Json(TokenAnswer { token }).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    role: Role,
}

#[utoipa::path(patch, tag = "users", path = "/users/{id}/role", params(("id" = UserId, Path, description = "user id")), request_body = RoleBody, responses((status = 200, body = User), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer), (status = 404, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "the last admin cannot be demoted")), security(("bearer" = [])))]
pub(crate) async fn change_role(
    State(s): State<AppState>,
    Auth(who): Auth,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RoleBody>,
) -> ApiResult<Json<User>> {
    let id: UserId = parse_path(&id)?;
    Ok(Json(s.engine.change_role(&who, id, b.role).await?))
}

#[utoipa::path(get, tag = "users", path = "/users", params(PageQuery), responses((status = 200, body = Vec<UserSummary>, description = "newest first; Link: <...>; rel=\"next\" when there is more"), (status = 400, body = ErrorAnswer), (status = 401, body = ErrorAnswer), (status = 403, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn list_users(
    State(s): State<AppState>,
    Auth(who): Auth,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<ListParams>,
) -> ApiResult<Response> {
    Ok(paged(&uri, s.engine.list_users(&who, p.page()?).await?))
}

#[utoipa::path(get, tag = "users", path = "/users/me", responses((status = 200, body = User, description = "the caller's own account"), (status = 401, body = ErrorAnswer)), security(("bearer" = [])))]
pub(crate) async fn me(State(s): State<AppState>, Auth(who): Auth) -> ApiResult<Json<User>> {
    Ok(Json(s.engine.me(&who).await?))
}

#[utoipa::path(patch, tag = "users", path = "/users/me", request_body(content = ProfilePatch, description = "any of name, email, timeZone; a new password with currentPassword"), responses((status = 200, body = User), (status = 400, body = ErrorAnswer, description = "a field is invalid (named in `field`), or currentPassword is missing or wrong for a new password"), (status = 401, body = ErrorAnswer), (status = 409, body = ErrorAnswer, description = "another user has this email, or the password was changed by another request meanwhile"), (status = 429, body = ErrorAnswer, description = "too many wrong current passwords for this user; see Retry-After"), (status = 503, body = ErrorAnswer, description = "password hashing at capacity; see Retry-After")), security(("bearer" = [])))]
pub(crate) async fn update_me(
    State(s): State<AppState>,
    Auth(who): Auth,
    JsonBody(patch): JsonBody<ProfilePatch>,
) -> ApiResult<Json<User>> {
    Ok(Json(s.engine.update_me(&who, patch).await?))
}
