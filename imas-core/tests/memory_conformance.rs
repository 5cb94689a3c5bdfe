//! The conformance suites on the in-memory backends, and on the testkit's
//! fault-injecting wrapper around them with no fault armed (it must be the
//! store it wraps, call for call), with and without a generation.

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

mod faulty {
    use super::*;
    use imas_core::testkit::fault::FaultyStore;

    async fn store() -> Option<Arc<dyn Store>> {
        Some(Arc::new(FaultyStore::new(Arc::new(MemoryStore::new()))))
    }

    imas_core::store_conformance_tests!(store);
}

/// A store declared without generations: the same suite, then the check that
/// it reports none and that the engine reads through it.
mod faulty_without_generation {
    use super::*;
    use imas_core::testkit::fault::FaultyStore;

    async fn store() -> Option<Arc<dyn Store>> {
        Some(Arc::new(
            FaultyStore::new(Arc::new(MemoryStore::new())).without_generation(),
        ))
    }

    imas_core::store_conformance_tests!(store, without_generations);
}
