//! Background loops: the SLA monitor, the notifier (relay and worker) and
//! retention. Each only runs the engine's steps until shut down.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use tracing::{debug, warn};

use super::Engine;
use super::operations::RETENTION_BATCH;

impl Engine {
    /// Runs the SLA monitor until `shutdown` turns true: sweeps everything due,
    /// then sleeps until the next due instant, at most `poll`, or until a change
    /// made through this engine re-arms it. A step in progress finishes before it
    /// returns.
    pub async fn run_sla_monitor(
        &self,
        poll: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            // Awake: a change committed from here on (which the lookup below
            // may miss) wakes the monitor again.
            self.inner.armed_until.store(i64::MIN, SeqCst);
            if let Err(e) = self.sweep_all().await {
                warn!(error = %e, "SLA sweep failed; retrying");
            }
            let now = self.now();
            let wait = match self.inner.store.next_due_at().await {
                Ok(Some(at)) => (at - now).to_std().unwrap_or(Duration::ZERO).min(poll),
                _ => poll,
            };
            let wake = crate::model::plus(now, wait).timestamp_millis();
            self.inner.armed_until.store(wake, SeqCst);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.rearm.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Runs the outbox relay and the notification worker until `shutdown` turns
    /// true. When idle it waits for the queue, at most `poll`. A step in progress
    /// finishes before it returns.
    pub async fn run_notifier(
        &self,
        poll: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            let relayed = self.relay_step().await;
            let worked = self.work_step().await;
            let idle = match (&relayed, &worked) {
                (Ok(0), Ok(r)) => r.jobs == 0,
                (Ok(_), Ok(_)) => false,
                _ => {
                    for e in [relayed.err(), worked.err()].into_iter().flatten() {
                        warn!(error = %e, "notification relay or worker failed; retrying");
                    }
                    // Back off rather than spin while a backend is down.
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            if idle {
                tokio::select! {
                    _ = self.inner.queue.wait(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// Runs retention until `shutdown` turns true: steps until nothing old is
    /// left, then waits `every`. A step in progress finishes before it returns.
    pub async fn run_retention(
        &self,
        older_than: Duration,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            match self.retention_step(older_than).await {
                Ok(p) if p.outbox >= u64::from(RETENTION_BATCH) => continue,
                Ok(p) if p.outbox > 0 => {
                    debug!(
                        outbox = p.outbox,
                        receipts = p.receipts,
                        "retention pruned delivered rows"
                    )
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "retention step failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
