//! # IMAS
//!
//! An embeddable incident management and alerting engine. This facade re-exports
//! [`imas_core`] and, behind features, the adapters.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use imas_core::*;

/// SQLite and PostgreSQL stores.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use imas_store_sqlx as store_sqlx;

/// MongoDB store.
#[cfg(feature = "mongo")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongo")))]
pub use imas_store_mongo as store_mongo;

/// Redis queue.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use imas_queue_redis as queue_redis;

/// The HTTP API.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use imas_http as http;

/// The reference server: configuration, engine assembly and serving.
#[cfg(all(feature = "http", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "http", feature = "sqlite"))))]
pub mod server;

/// Delivery channels beyond the in-app store.
#[cfg(any(feature = "webhook", feature = "email"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "webhook", feature = "email"))))]
pub mod channels;
