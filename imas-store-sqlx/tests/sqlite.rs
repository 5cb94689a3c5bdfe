//! The core's conformance suites on SQLite, each test on its own temporary file.

#![cfg(feature = "sqlite")]

use std::sync::Arc;

use imas_core::ports::Store;
use imas_store_sqlx::SqliteStore;

async fn store() -> Option<Arc<dyn Store>> {
    // A fresh file per test under cargo's scratch directory (target/tmp).
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("imas-{}.db", uuid::Uuid::new_v4()));
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    Some(Arc::new(store))
}

imas_core::store_conformance_tests!(store);
