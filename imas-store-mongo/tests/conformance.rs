//! The core's store conformance suite on a MongoDB-wire server (`MONGODB_URL`),
//! each test in a database of its own so that tests run in parallel.

use std::sync::Arc;

use imas_core::ports::Store;
use imas_core::testkit::service_url;
use imas_store_mongo::MongoStore;

async fn store() -> Option<Arc<dyn Store>> {
    let url = service_url("MONGODB_URL")?;
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    Some(Arc::new(
        MongoStore::connect_to(&url, &name).await.expect("connect"),
    ))
}

imas_core::store_conformance_tests!(store);
