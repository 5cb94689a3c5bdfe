//! In-memory backends: [`MemoryStore`] implements every store port and
//! [`MemoryQueue`] the queue port. They are complete products for embedding,
//! examples and single-process deployments that need no persistence; they pass the
//! same conformance suites as the database backends.

use std::sync::{Mutex, MutexGuard};

mod queue;
mod store;

pub use queue::MemoryQueue;
pub use store::MemoryStore;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-written: every
    // mutation validates first and then applies infallible inserts.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
