//! The channel port: delivery of notifications beyond the in-app store (webhook,
//! email, live stream). Implementing it for a custom backend:
//!
//! ```
//! use async_trait::async_trait;
//! use imas_core::model::Notification;
//! use imas_core::ports::Channel;
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
//!     async fn deliver(&self, n: &Notification) -> Result<()> {
//!         println!("{} <- {} ({})", n.user, n.message, n.key);
//!         Ok(())
//!     }
//! }
//! ```

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::Notification;

/// A delivery channel for notifications beyond the in-app store (webhook, email,
/// live stream). Deliveries may repeat: use [`Notification::key`] to deduplicate.
#[async_trait]
pub trait Channel: Send + Sync + Debug + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Delivers one notification.
    async fn deliver(&self, n: &Notification) -> Result<()>;
}
