//! The core's conformance suites on PostgreSQL (`DATABASE_URL`), each test in a
//! schema of its own so that tests run in parallel.

#![cfg(feature = "postgres")]

use std::sync::Arc;

use imas_core::ports::Store;
use imas_core::testkit::service_url;
use imas_store_sqlx::PostgresStore;

async fn store() -> Option<Arc<dyn Store>> {
    let url = service_url("DATABASE_URL")?;
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    Some(Arc::new(
        PostgresStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect"),
    ))
}

imas_core::store_conformance_tests!(store);
