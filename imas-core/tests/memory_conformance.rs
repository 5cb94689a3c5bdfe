//! The conformance suites on the in-memory backends.

use std::sync::Arc;

use imas_core::memory::{MemoryQueue, MemoryStore};
use imas_core::ports::{ManualClock, Queue, Store};
use imas_core::testkit::queue::RETRY;

async fn store() -> Option<Arc<dyn Store>> {
    Some(Arc::new(MemoryStore::new()))
}

async fn queue(clock: ManualClock) -> Option<Arc<dyn Queue>> {
    Some(Arc::new(MemoryQueue::new(Arc::new(clock), RETRY)))
}

imas_core::store_conformance_tests!(store);
imas_core::queue_conformance_tests!(queue);
