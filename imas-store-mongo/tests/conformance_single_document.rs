//! The core's store conformance suite on MongoDB in single-document mode (as on a
//! standalone server without transactions), forced on the test server.

use std::sync::Arc;

use imas_core::ports::Store;
use imas_core::testkit::service_url;
use imas_store_mongo::{Atomicity, MongoStore};

async fn store() -> Option<Arc<dyn Store>> {
    let url = service_url("MONGODB_URL")?;
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let store = MongoStore::connect_with(&url, &name, Some(Atomicity::SingleDocument))
        .await
        .expect("connect");
    assert_eq!(store.atomicity(), Atomicity::SingleDocument);
    Some(Arc::new(store))
}

imas_core::store_conformance_tests!(store);
