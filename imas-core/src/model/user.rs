//! Users and their roles: who can sign in, and with which permissions
//! ([`crate::rbac`]).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::UserId;

/// A user's role. Permissions per role are in [`crate::rbac`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the system: every permission.
    Admin,
    /// Works incidents.
    Engineer,
    /// Reports incidents.
    User,
}
string_enum!(Role, "role", { Admin => "admin", Engineer => "engineer", User => "user" });

/// A person who can sign in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Unique login name.
    pub username: String,
    /// Unique email address.
    pub email: String,
    /// Argon2id PHC string. Never serialised.
    #[serde(skip_serializing, default)]
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// The user's time zone (IANA name, default `UTC`): how the console and
    /// the user's notifications show times.
    #[serde(default = "utc")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Berlin"))]
    pub time_zone: chrono_tz::Tz,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn utc() -> chrono_tz::Tz {
    chrono_tz::UTC
}

/// What `GET /users` lists of each user (and `GET /users/me` answers).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    /// Id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Time zone.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Berlin"))]
    pub time_zone: chrono_tz::Tz,
}

impl From<&User> for UserSummary {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            name: u.name.clone(),
            username: u.username.clone(),
            role: u.role,
            time_zone: u.time_zone,
        }
    }
}

/// What `PATCH /users/me` takes: any subset; a new password needs the current
/// one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfilePatch {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New email address.
    #[serde(default)]
    pub email: Option<String>,
    /// New time zone (IANA name).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// New password (with `currentPassword`).
    #[serde(default)]
    pub password: Option<String>,
    /// The current password, required with `password`.
    #[serde(default)]
    pub current_password: Option<String>,
}

impl fmt::Debug for ProfilePatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfilePatch")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("time_zone", &self.time_zone)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "current_password",
                &self.current_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
