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
