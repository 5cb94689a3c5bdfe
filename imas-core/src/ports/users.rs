//! The users port: reading users; writes go through a [`Change`] as a
//! [`UserWrite`].

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Page, PageRequest, Role, User, UserId};

/// A write to the users table, part of a [`Change`](super::Change).
#[derive(Debug, Clone, PartialEq)]
pub enum UserWrite {
    /// A new user; a taken username or email is a `Conflict`.
    Insert(User),
    /// Change a user's role (`NotFound` when absent).
    SetRole {
        /// Which user.
        id: UserId,
        /// The new role.
        role: Role,
    },
    /// Replace a user's name, email, time zone and password hash with
    /// `user`'s (id, username, role and creation time stay); a taken email is a
    /// `Conflict`, an absent user `NotFound`.
    UpdateProfile(User),
}

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync + Debug + 'static {
    /// A user by id.
    async fn get_user(&self, id: UserId) -> Result<Option<User>>;
    /// A user by exact username.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// Every user with a role, oldest first.
    async fn users_with_role(&self, role: Role) -> Result<Vec<User>>;
    /// Users newest first by `(created_at, id)`, one page.
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>>;
}
