//! Health: whether the engine's backends answer, for a readiness probe
//! (`GET /healthz`). The engine asks its store and its queue one cheap question
//! each; a failure is logged here and reported as "unavailable".

use tracing::warn;

use super::Engine;

/// What [`Engine::health`] found: which backends answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The store answered.
    pub store: bool,
    /// The queue answered.
    pub queue: bool,
}

impl Health {
    /// Every backend answered.
    pub fn is_ok(&self) -> bool {
        self.store && self.queue
    }
}

impl Engine {
    /// Asks the store (its next SLA deadline) and the queue (its counts)
    /// whether they answer. The errors are logged, not returned: a probe only
    /// needs to know which backend is down.
    pub async fn health(&self) -> Health {
        let store = self.store().next_due_at().await;
        if let Err(e) = &store {
            warn!(error = %e, "health check: store unreachable");
        }
        let queue = self.queue().stats().await;
        if let Err(e) = &queue {
            warn!(error = %e, "health check: queue unreachable");
        }
        Health {
            store: store.is_ok(),
            queue: queue.is_ok(),
        }
    }
}
