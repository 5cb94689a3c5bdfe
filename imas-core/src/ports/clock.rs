//! The clock port: the one source of time (DESIGN.md invariant 4). Tests drive
//! every deadline with a [`ManualClock`]; servers use the [`SystemClock`]. A host
//! with a time source of its own implements the port and hands it to the engine:
//!
//! ```
//! use std::sync::Arc;
//! use imas_core::model::{Timestamp, from_millis};
//! use imas_core::ports::Clock;
//! use imas_core::{Engine, memory::MemoryStore};
//!
//! /// A clock stopped at one instant (a replay, say).
//! #[derive(Debug)]
//! struct Frozen(Timestamp);
//!
//! impl Clock for Frozen {
//!     fn now(&self) -> Timestamp {
//!         self.0
//!     }
//! }
//!
//! let at = from_millis(1_767_225_600_000); // 2026-01-01T00:00:00Z
//! let engine = Engine::builder(Arc::new(MemoryStore::new()))
//!     .clock(Arc::new(Frozen(at)))
//!     .build()?;
//! assert_eq!(engine.now(), at);
//! # Ok::<(), imas_core::Error>(())
//! ```

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::model::{Timestamp, from_millis, truncate_millis};

/// The source of time. Stores and queues that need time take it as an argument or
/// hold a clock, so tests drive every deadline with a [`ManualClock`].
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current instant, at millisecond precision.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        truncate_millis(chrono::Utc::now())
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start.timestamp_millis())))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(crate::model::millis(by), Ordering::SeqCst);
    }

    /// Sets the clock (it may go backwards).
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        from_millis(self.0.load(Ordering::SeqCst))
    }
}
