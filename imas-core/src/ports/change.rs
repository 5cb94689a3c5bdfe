//! The atomic write path: one [`Change`] (entity writes, audit entries, outbox
//! intents) committed together or not at all, and the generation counters the
//! engine's read cache is keyed on.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;

use super::{
    AlertWrite, EscalationPolicyWrite, IncidentWrite, IntegrationWrite, RotationWrite,
    ScheduleWrite, ServiceWrite, UserWrite,
};
use crate::error::Result;
use crate::model::{AuditEntry, NotificationIntent};

/// One atomic domain change: the entity writes, their audit entries and their
/// notification intents (the outbox) commit together or not at all (DESIGN.md
/// invariant 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// At most one user write.
    pub user: Option<UserWrite>,
    /// At most one incident write.
    pub incident: Option<IncidentWrite>,
    /// At most one service write.
    pub service: Option<ServiceWrite>,
    /// Integration writes, applied in order.
    pub integrations: Vec<IntegrationWrite>,
    /// Alert writes, applied in order (after the incident write, so an alert
    /// may belong to the incident this change inserts).
    pub alerts: Vec<AlertWrite>,
    /// At most one rotation write.
    pub rotation: Option<RotationWrite>,
    /// At most one schedule write (overrides are written with their schedule).
    pub schedule: Option<ScheduleWrite>,
    /// At most one escalation-policy write.
    pub escalation_policy: Option<EscalationPolicyWrite>,
    /// Audit entries to append.
    pub audit: Vec<AuditEntry>,
    /// Notification intents to put in the outbox. An intent whose key is already
    /// in the outbox (or was delivered from it) is skipped, not an error.
    pub outbox: Vec<NotificationIntent>,
}

/// The atomic write path.
#[async_trait]
pub trait ChangeStore: Send + Sync + Debug + 'static {
    /// Commits a [`Change`] atomically: every part or none.
    ///
    /// Cancel-safe: once called, dropping the returned future (a request whose
    /// client went away) does not cut the change short, and leaves nothing
    /// behind (no transaction open on a pooled connection) that later work
    /// could run inside. The change is then committed whole or not at all, the
    /// caller just does not learn which. [`run_detached`] is the usual way.
    async fn commit(&self, change: Change) -> Result<()>;

    /// How far the store's users, incidents and integrations have moved, as counters that grow
    /// with every committed change (and every claim) that touches them — the
    /// changes of every writer, not only this process's. The engine caches reads
    /// against it. `None` (the default) when the store cannot vouch for that,
    /// for instance while its change feed is disconnected: the engine then reads
    /// through.
    fn generation(&self) -> Option<Generation> {
        None
    }
}

/// Runs `work` (a store's transaction) in a task of its own and waits for it,
/// so that a caller that stops waiting cannot stop it half-way: dropping the
/// returned future only drops the wait. This is what makes
/// [`ChangeStore::commit`] cancel-safe in the stores that ship with IMAS. A
/// panic in `work` is the caller's panic; a runtime shutting down is a
/// `Backend` error of `backend`.
pub async fn run_detached<T, F>(backend: &'static str, work: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(crate::Error::backend(
            backend,
            "the runtime is shutting down; the change may or may not be committed",
        )),
    }
}

/// See [`ChangeStore::generation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Generation {
    /// Moves when a user row changes.
    pub users: u64,
    /// Moves when an incident row changes.
    pub incidents: u64,
    /// Moves when an integration row changes (created, revoked) or a service
    /// row does: the engine's caches of integration keys and of the services
    /// alert events read are valid while it holds.
    pub integrations: u64,
}

/// Counters behind [`ChangeStore::generation`], for store implementations
/// (`Default`: live, for a store only this process writes to).
///
/// A store bumps them after each successful write, and, when other processes
/// can write to the same data, after each change it hears of from them. While
/// it cannot hear of them it marks the counters not live.
#[derive(Debug)]
pub struct Generations {
    users: AtomicU64,
    incidents: AtomicU64,
    integrations: AtomicU64,
    live: AtomicBool,
}

impl Default for Generations {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Generations {
    /// Counters starting at zero; `live` says whether every writer is heard of.
    pub fn new(live: bool) -> Self {
        Self {
            users: AtomicU64::new(0),
            incidents: AtomicU64::new(0),
            integrations: AtomicU64::new(0),
            live: AtomicBool::new(live),
        }
    }

    /// Records writes to users and/or incidents.
    pub fn bump(&self, users: bool, incidents: bool) {
        if users {
            self.users.fetch_add(1, Ordering::SeqCst);
        }
        if incidents {
            self.incidents.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Records writes to integrations or services.
    pub fn bump_integrations(&self) {
        self.integrations.fetch_add(1, Ordering::SeqCst);
    }

    /// Records what a committed [`Change`] wrote. Alert writes count as
    /// incident writes (an incident's alerts are part of what its readers see).
    pub fn bump_for(&self, change: &Change) {
        self.bump(
            change.user.is_some(),
            change.incident.is_some() || !change.alerts.is_empty(),
        );
        if !change.integrations.is_empty() || change.service.is_some() {
            self.bump_integrations();
        }
    }

    /// Marks the counters live or not. Going live bumps both first, so nothing
    /// read before (or while not live) is taken as current.
    pub fn set_live(&self, live: bool) {
        if live {
            self.bump(true, true);
            self.bump_integrations();
        }
        self.live.store(live, Ordering::SeqCst);
    }

    /// The current generation, `None` while not live.
    #[must_use]
    pub fn current(&self) -> Option<Generation> {
        if !self.live.load(Ordering::SeqCst) {
            return None;
        }
        Some(Generation {
            users: self.users.load(Ordering::SeqCst),
            incidents: self.incidents.load(Ordering::SeqCst),
            integrations: self.integrations.load(Ordering::SeqCst),
        })
    }
}
