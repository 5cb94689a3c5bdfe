//! IMAS stores on sqlx: [`SqliteStore`], the embedded default that needs no
//! service, and [`PostgresStore`], for several IMAS nodes sharing one database.
//!
//! Both implement every store port of `imas-core` and pass its conformance
//! suites. Each domain change commits in one transaction (incident row, audit
//! entries, outbox rows); incidents use optimistic concurrency on `version`; lists
//! use keyset pagination on `(created_at, id)`; due-incident claims are exclusive
//! across connections and nodes (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the single
//! writer on SQLite). Migrations are embedded and run by `connect`.
//!
//! The store is written once over its two dialects: `table` describes each
//! table's columns and the codec, `sql` builds the statements (those of a
//! `Change` too) from that description, `store` implements the ports once over
//! a `Dialect` ([`SqlStore`]); `sqlite` and `postgres` hold only what differs.
//!
//! ```no_run
//! # async fn demo() -> imas_core::Result<()> {
//! let store = imas_store_sqlx::SqliteStore::connect("sqlite://imas.db").await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use imas_core::error::Result;
use imas_core::model::{NotificationIntent, Timestamp};
use imas_core::ports::Store;

mod dialect;
mod error;
mod filter;
#[cfg(feature = "postgres")]
mod postgres;
mod repeat;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_writer;
mod store;
mod table;

#[cfg(feature = "postgres")]
pub use postgres::{DEFAULT_SCHEMA, PostgresDialect, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteDialect, SqliteStore};
pub use store::SqlStore;

use crate::error::SqlError;

/// Connects to the store a URL names: `sqlite://path` (or `sqlite::memory:`) or
/// `postgres://...` / `postgresql://...`. Runs the migrations.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    let scheme = url.split(':').next().unwrap_or_default();
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(PostgresStore::connect(url).await?)),
        _ => Err(SqlError::config(
            "url",
            "expected a sqlite://... or postgres://... URL (with the matching feature enabled)",
        )
        .into()),
    }
}

/// An outbox row's stored intent.
pub(crate) fn intent_of(backend: &'static str, json: &str) -> Result<NotificationIntent> {
    serde_json::from_str(json)
        .map_err(|e| SqlError::corrupt(backend, format_args!("outbox intent: {e}")).into())
}

/// The `created_at` of an outbox row's stored intent.
pub(crate) fn intent_created_at(backend: &'static str, json: &str) -> Result<Timestamp> {
    intent_of(backend, json).map(|i| i.created_at)
}

pub(crate) fn intent_json(intent: &NotificationIntent) -> Result<String> {
    serde_json::to_string(intent).map_err(|e| SqlError::driver("serde_json", e).into())
}
