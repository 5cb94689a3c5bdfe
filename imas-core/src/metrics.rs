//! What the engine counts as it works (SLA breaches its sweeps recorded,
//! deliveries by channel and outcome, rows retention removed) and the
//! operational snapshot [`crate::Engine::operations`] reads at scrape time. No
//! exposition format here: the HTTP layer turns an [`Operations`] into
//! Prometheus text (SPEC §8).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::model::{Priority, Status};
use crate::ports::{Pruned, QueueStats};

/// The in-app store's name among the delivery channels.
pub const IN_APP: &str = "in-app";

/// How one delivery through one channel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryOutcome {
    /// Sent (or, in-app, stored) now.
    Delivered,
    /// Already done by an earlier attempt: not sent again.
    Duplicate,
    /// The channel failed; the job is retried or dead-lettered.
    Failed,
}

impl DeliveryOutcome {
    /// Every outcome.
    pub const ALL: [DeliveryOutcome; 3] = [Self::Delivered, Self::Duplicate, Self::Failed];

    /// Its label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Duplicate => "duplicate",
            Self::Failed => "failed",
        }
    }
}

/// Counters of one engine (one process), from its start. Cheap to bump from the
/// engine's hot paths: atomics, and one short lock per delivery.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    breaches: AtomicU64,
    response_breaches: AtomicU64,
    /// Keyed by channel name (a fixed set: the in-app store and the configured
    /// channels), then outcome.
    deliveries: Mutex<BTreeMap<(&'static str, DeliveryOutcome), u64>>,
    pruned_outbox: AtomicU64,
    pruned_receipts: AtomicU64,
}

impl Counters {
    /// Starts every channel's series at zero, so that they exist before the
    /// first delivery.
    pub(crate) fn with_channels(names: impl IntoIterator<Item = &'static str>) -> Self {
        let counters = Self::default();
        {
            let mut d = counters.lock();
            for name in std::iter::once(IN_APP).chain(names) {
                for outcome in DeliveryOutcome::ALL {
                    d.entry((name, outcome)).or_insert(0);
                }
            }
        }
        counters
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(&'static str, DeliveryOutcome), u64>> {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Breaches committed by a sweep of this engine.
    pub(crate) fn breaches(&self, resolution: usize, response: usize) {
        self.breaches.fetch_add(resolution as u64, Relaxed);
        self.response_breaches.fetch_add(response as u64, Relaxed);
    }

    /// One delivery through `channel`.
    pub(crate) fn delivery(&self, channel: &'static str, outcome: DeliveryOutcome) {
        *self.lock().entry((channel, outcome)).or_insert(0) += 1;
    }

    /// What a retention step removed.
    pub(crate) fn pruned(&self, p: Pruned) {
        self.pruned_outbox.fetch_add(p.outbox, Relaxed);
        self.pruned_receipts.fetch_add(p.receipts, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            breaches: self.breaches.load(Relaxed),
            response_breaches: self.response_breaches.load(Relaxed),
            deliveries: self
                .lock()
                .iter()
                .map(|(&(channel, outcome), &n)| (channel, outcome, n))
                .collect(),
            pruned: Pruned {
                outbox: self.pruned_outbox.load(Relaxed),
                receipts: self.pruned_receipts.load(Relaxed),
            },
        }
    }
}

/// The engine's counters at one instant (totals since it started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Resolution-target breaches recorded by this engine's SLA sweeps.
    pub breaches: u64,
    /// Missed response targets recorded by this engine's SLA sweeps.
    pub response_breaches: u64,
    /// Deliveries by channel and outcome, every configured channel listed.
    pub deliveries: Vec<(&'static str, DeliveryOutcome, u64)>,
    /// Rows removed by this engine's retention steps.
    pub pruned: Pruned,
}

/// The operational state, read at scrape time by [`crate::Engine::operations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operations {
    /// Incidents not resolved or closed, by priority and status: every
    /// combination, zeros included.
    pub open_incidents: Vec<(Priority, Status, u64)>,
    /// Of those, how many have breached their SLA.
    pub open_breached: u64,
    /// How far the SLA monitor is behind: now minus the earliest due instant
    /// when that is in the past, else zero.
    pub sla_monitor_lag: Duration,
    /// Outbox entries not yet delivered.
    pub outbox_pending: u64,
    /// Age of the oldest of them (zero when there is none).
    pub outbox_oldest_age: Duration,
    /// The queue's jobs by state.
    pub queue: QueueStats,
    /// This engine's counters.
    pub counters: CounterSnapshot,
}
