//! The channel port: delivery of notifications beyond the in-app store (webhook,
//! email, live stream). Implementing it for a custom backend:
//!
//! ```
//! use async_trait::async_trait;
//! use imas_core::model::Notification;
//! use imas_core::ports::{Channel, Recipient};
//! use imas_core::Result;
//!
//! #[derive(Debug)]
//! struct Stdout;
//!
//! #[async_trait]
//! impl Channel for Stdout {
//!     fn name(&self) -> &'static str {
//!         "stdout"
//!     }
//!     async fn deliver(&self, n: &Notification, to: Option<&Recipient>) -> Result<()> {
//!         let name = to.map_or("(nobody)", |to| to.name.as_str());
//!         println!("{name} <- {} ({})", n.message, n.key);
//!         Ok(())
//!     }
//! }
//! ```

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Notification, User, UserId};

/// A delivery channel for notifications beyond the in-app store (webhook, email,
/// live stream). Deliveries may repeat: use [`Notification::key`] to deduplicate.
#[async_trait]
pub trait Channel: Send + Sync + Debug + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Delivers one notification. `to` is its recipient (`to.id == n.user`),
    /// whom the engine has looked up, so a channel needs no store of its own;
    /// `None` when no such user exists (a channel that needs an address has
    /// nobody to send to).
    async fn deliver(&self, n: &Notification, to: Option<&Recipient>) -> Result<()>;
}

/// The user a notification is for, as a channel addresses them (never the
/// password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The user's id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
}

impl From<&User> for Recipient {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            name: u.name.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
        }
    }
}
