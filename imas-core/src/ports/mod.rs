//! Ports: the traits adapters implement. Stores (users, incidents, services,
//! integrations, alerts, rotations, schedules, escalation policies, audit, notifications, outbox, and the one atomic [`ChangeStore::commit`]), the
//! notification [`Queue`], delivery [`Channel`]s and the [`Clock`].
//!
//! Every trait is object-safe; the engine holds `Arc<dyn Store>`, `Arc<dyn Queue>`
//! and `Arc<dyn Clock>`. Adapters translate: they hold no business rule, and
//! `crate::testkit` (feature `testkit`) checks each one against the same contract.
//! One file per port; everything is re-exported here, so `imas_core::ports::X`
//! is the path to use. `channel` shows how to implement a port.

mod alerts;
mod audit;
mod change;
mod channel;
mod clock;
mod escalation_policies;
mod incidents;
mod integrations;
mod notifications;
mod outbox;
mod queue;
mod rotations;
mod schedules;
mod services;
mod store;
mod users;

pub use alerts::*;
pub use audit::*;
pub use change::*;
pub use channel::*;
pub use clock::*;
pub use escalation_policies::*;
pub use incidents::*;
pub use integrations::*;
pub use notifications::*;
pub use outbox::*;
pub use queue::*;
pub use rotations::*;
pub use schedules::*;
pub use services::*;
pub use store::*;
pub use users::*;
