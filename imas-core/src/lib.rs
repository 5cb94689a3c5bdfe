//! # imas-core
//!
//! The domain engine of IMAS, an embeddable incident management and alerting
//! engine: incidents with SLAs that pause on hold, at-risk warnings, breach
//! detection and automatic escalation, role-based access, an append-only audit
//! log and notifications that are never lost (a transactional outbox, a queue with
//! at-least-once delivery and idempotent delivery).
//!
//! The engine ([`Engine`]) is written against ports ([`ports`]): stores, a queue,
//! delivery channels and a clock. This crate ships in-memory implementations
//! ([`memory`]); `imas-store-sqlx`, `imas-store-mongo` and `imas-queue-redis`
//! provide the others, and the `testkit` feature holds the conformance suites they
//! all pass.
//!
//! Where things are: [`model`] (one file per entity, plus ids, time and paging),
//! [`ports`] (one file per port), [`engine`] (the builder and commit in its root,
//! one file per use-case group), the pure rules beside them ([`lifecycle`],
//! [`validation`], [`sla`], [`escalation`], [`rbac`]), and [`report`] (the
//! incident summary, CSV and PDF).
//!
//! ```
//! use std::sync::Arc;
//! use imas_core::{Engine, memory::MemoryStore, engine::NewIncident};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> imas_core::Result<()> {
//! let engine = Engine::builder(Arc::new(MemoryStore::new())).build()?;
//! engine.ensure_admin("root", "correct horse battery", "root@example.com").await?;
//! let token = engine.login("root", "correct horse battery").await?;
//! let admin = engine.authenticate(&token).await?;
//! let incident = engine
//!     .create_incident(&admin, NewIncident { title: "Disk full on db-1".into(), ..Default::default() })
//!     .await?;
//! assert_eq!(incident.sla_target_ms, 24 * 3_600_000); // medium priority: 24 h
//! # Ok(())
//! # }
//! ```

pub mod auth;
mod cache;
pub mod engine;
pub mod error;
pub mod escalation;
pub mod lifecycle;
pub mod limiter;
pub mod memory;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod ports;
pub mod rbac;
pub mod report;
pub mod sla;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod validation;

pub use engine::{Engine, EngineBuilder, EngineConfig, Principal};
pub use error::{Error, Result};
