//! Operations (SPEC §8): the operational state for metrics, and the retention
//! step that prunes delivered outbox rows.

use std::time::Duration;

use super::Engine;
use crate::error::{Error, Result};
use crate::model::{IncidentFilter, Priority, Status, Timestamp};

/// Delivered outbox rows removed per retention step.
pub(super) const RETENTION_BATCH: u32 = 1_000;

/// The default age past which delivered outbox rows and their channel receipts
/// are removed (SPEC §8): 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Engine {
    /// The operational state for metrics, read now: open incidents by priority
    /// and status (one count per pair), breached open incidents, the SLA
    /// monitor's lag, the outbox backlog and its oldest entry's age, the queue's
    /// jobs by state, and this engine's counters. For the operator's scraper;
    /// it carries no incident data, so it takes no principal (the HTTP layer
    /// guards it with its own token).
    pub async fn operations(&self) -> Result<crate::metrics::Operations> {
        let store = &self.inner.store;
        let open: Vec<Status> = Status::ALL
            .iter()
            .copied()
            .filter(|s| !s.is_done())
            .collect();
        let mut open_incidents = Vec::with_capacity(Priority::ALL.len() * open.len());
        for &priority in Priority::ALL {
            for &status in &open {
                let filter = IncidentFilter {
                    status: vec![status],
                    priority: vec![priority],
                    ..IncidentFilter::default()
                };
                open_incidents.push((priority, status, store.count_incidents(&filter).await?));
            }
        }
        let open_breached = store
            .count_incidents(&IncidentFilter {
                status: open,
                sla_breached: Some(true),
                ..IncidentFilter::default()
            })
            .await?;
        let now = self.now();
        let behind = |t: Option<Timestamp>| {
            t.and_then(|t| (now - t).to_std().ok())
                .unwrap_or(Duration::ZERO)
        };
        let sla_monitor_lag = behind(store.next_due_at().await?);
        let outbox_pending = store.pending_outbox().await?;
        let outbox_oldest_age = behind(store.oldest_pending_outbox().await?);
        let queue = self.inner.queue.stats().await?;
        Ok(crate::metrics::Operations {
            open_incidents,
            open_breached,
            sla_monitor_lag,
            outbox_pending,
            outbox_oldest_age,
            queue,
            counters: self.inner.counters.snapshot(),
        })
    }

    /// One retention step (SPEC §8): removes up to 1,000 delivered outbox rows
    /// whose last publication is older than `older_than`, with their channel
    /// receipts. Undelivered rows and the audit log are never touched. Safe on
    /// any number of nodes at once.
    pub async fn retention_step(&self, older_than: Duration) -> Result<crate::ports::Pruned> {
        let before = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|d| self.now().checked_sub_signed(d))
            .ok_or_else(|| Error::config("retention", "the age is too large"))?;
        let pruned = self
            .inner
            .store
            .prune_delivered(before, RETENTION_BATCH)
            .await?;
        self.inner.counters.pruned(pruned);
        Ok(pruned)
    }
}
