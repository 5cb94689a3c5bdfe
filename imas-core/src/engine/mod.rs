//! The engine: every use case of IMAS (SPEC §1), written once against the ports.
//! Each use case checks the caller's permission ([`crate::rbac`]), validates its
//! input, and commits the domain change with its audit entries and notification
//! intents as one atomic [`Change`]. This file holds the builder, the
//! configuration and the commit; each use-case group is an `impl Engine` block in
//! a file of its own (users, incidents, sla, escalations, recipients,
//! notifications, delivery, loops, reports, audit, operations, services,
//! integrations, alerts, and the two alert formats: events_v2, alertmanager;
//! rotations, schedules, escalation_policies, and paging: stepping an incident
//! through its escalation policy).

mod alertmanager;
mod alerts;
mod audit;
mod delivery;
mod downloads;
mod escalation_policies;
mod escalations;
mod events_v2;
mod health;
mod incidents;
mod integrations;
mod loops;
mod notifications;
mod operations;
mod paging;
mod recipients;
mod reports;
mod rotations;
mod schedules;
mod services;
mod sla;
mod users;

pub use crate::validation::{validate_email, validate_password};
pub use alerts::{AlertmanagerReceipt, EnqueueError, Enqueued};
pub use delivery::DeliveryReport;
pub use downloads::{Download, DownloadError, ReportRequest};
pub use health::Health;
pub use incidents::{IncidentPatch, NewIncident};
pub use operations::DEFAULT_RETENTION;
pub use sla::{SweepReport, Violations};
pub use users::NewUser;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
use std::time::Duration;

use tracing::warn;

use self::notifications::LIVE_CAPACITY;
use self::reports::REPORT_LOCKS;
use crate::auth::{DEFAULT_TOKEN_TTL, JwtKeys};
use crate::cache::ReadCache;
use crate::error::{Error, Result};
use crate::escalation::SlaEscalation;
use crate::limiter::{
    EventLimiter, HashPool, HashPoolConfig, RateLimit, SignInGuard, SignInLimits,
};
use crate::memory::MemoryQueue;
use crate::model::{Incident, IncidentId, Notification, Role, Timestamp, UserId};
use crate::ports::{Change, Channel, Clock, IncidentWrite, Queue, Store, SystemClock};
use crate::sla::SlaPolicy;

/// The authenticated caller of a use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub id: UserId,
    /// The user's current role.
    pub role: Role,
}

/// Tunables of the engine's background steps.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Resolution and response targets.
    pub sla: SlaPolicy,
    /// Automatic escalation levels.
    pub escalation: SlaEscalation,
    /// How long an SLA sweep holds a claimed incident before another node may take
    /// it over.
    pub claim_lease: Duration,
    /// Incidents claimed per sweep step.
    pub sweep_batch: u32,
    /// How long after publishing an outbox entry the relay publishes it again when
    /// no worker has confirmed its delivery.
    pub outbox_lease: Duration,
    /// Outbox entries (and jobs) handled per relay (worker) step.
    pub notify_batch: u32,
    /// How long a reserved job stays invisible to other workers unless its
    /// worker extends it: a worker extends its jobs every third of this while
    /// it delivers them, so only a worker that crashed or stalled this long
    /// loses its jobs to another.
    pub job_visibility: Duration,
    /// Live notification streams one user may hold open at once; one more is
    /// refused ([`Error::RateLimited`]) until one of them ends.
    pub max_streams_per_user: usize,
    /// Failed sign-in attempts allowed per username and per client address.
    pub sign_in: SignInLimits,
    /// The bounded pool that hashes and verifies passwords.
    pub hash_pool: HashPoolConfig,
    /// Incidents a caller with role `user` may report per window (default 60
    /// an hour; `None`: no limit). Admins and engineers are not limited.
    pub report_limit: Option<RateLimit>,
    /// Events one integration key may post per window (SPEC §4: default 1,000
    /// a minute; `None`: no limit). Over it the event is refused with
    /// `RateLimited` and its `Retry-After`.
    pub ingest_limit: Option<RateLimit>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            sla: SlaPolicy::default(),
            escalation: SlaEscalation::default(),
            claim_lease: Duration::from_secs(30),
            sweep_batch: 100,
            outbox_lease: Duration::from_secs(30),
            notify_batch: 100,
            job_visibility: Duration::from_secs(30),
            max_streams_per_user: DEFAULT_MAX_STREAMS_PER_USER,
            sign_in: SignInLimits::default(),
            hash_pool: HashPoolConfig::default(),
            report_limit: Some(RateLimit::new(60, Duration::from_secs(3600))),
            ingest_limit: Some(RateLimit::new(1_000, Duration::from_secs(60))),
        }
    }
}

/// Integration keys whose recent events the ingest limiter remembers at once.
const INGEST_KEYS_TRACKED: usize = 100_000;

/// Default of [`EngineConfig::max_streams_per_user`].
pub const DEFAULT_MAX_STREAMS_PER_USER: usize = 3;

/// Builds an [`Engine`]. Only the store is required: the clock defaults to the
/// system clock, the queue to an in-process [`MemoryQueue`], and the JWT keys to a
/// random development secret (tokens die with the process; say so in logs).
#[derive(Debug)]
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    queue: Option<Arc<dyn Queue>>,
    clock: Arc<dyn Clock>,
    keys: Option<JwtKeys>,
    config: EngineConfig,
    channels: Vec<Arc<dyn Channel>>,
}

impl EngineBuilder {
    /// The notification queue.
    pub fn queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// JWT signing keys.
    pub fn jwt_keys(mut self, keys: JwtKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The whole configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// The SLA policy.
    pub fn sla_policy(mut self, sla: SlaPolicy) -> Self {
        self.config.sla = sla;
        self
    }

    /// The escalation policy.
    pub fn escalation_policy(mut self, escalation: SlaEscalation) -> Self {
        self.config.escalation = escalation;
        self
    }

    /// Adds a delivery channel (the in-app store is always one).
    pub fn channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channels.push(channel);
        self
    }

    /// The engine.
    pub fn build(self) -> Result<Engine> {
        let keys = match self.keys {
            Some(k) => k,
            None => {
                warn!(
                    "no JWT secret configured: using a random one; tokens will not survive a restart"
                );
                JwtKeys::random(DEFAULT_TOKEN_TTL)?
            }
        };
        if self.config.sweep_batch == 0 || self.config.notify_batch == 0 {
            return Err(Error::config("batch size", "expected at least 1"));
        }
        if self.config.report_limit.is_some_and(|l| l.max == 0) {
            return Err(Error::config("report limit", "expected at least 1"));
        }
        let hash_pool = HashPool::new(&self.config.hash_pool)?;
        // A limit of 0 events means none (SPEC §4).
        let ingest = self
            .config
            .ingest_limit
            .filter(|l| l.max > 0)
            .map(|l| EventLimiter::new(l, INGEST_KEYS_TRACKED));
        let sign_in = Arc::new(SignInGuard::new(&self.config.sign_in));
        let queue = self
            .queue
            .unwrap_or_else(|| Arc::new(MemoryQueue::new(self.clock.clone(), Default::default())));
        Ok(Engine {
            inner: Arc::new(Inner {
                hash_pool,
                sign_in,
                ingest,
                integration_keys: integrations::KeyCache::default(),
                services: integrations::ServiceCache::default(),
                role_change: tokio::sync::Mutex::new(()),
                report_locks: (0..REPORT_LOCKS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                store: self.store,
                queue,
                clock: self.clock,
                keys,
                config: self.config,
                counters: crate::metrics::Counters::with_channels(
                    self.channels.iter().map(|c| c.name()),
                ),
                channels: self.channels,
                live: tokio::sync::broadcast::channel(LIVE_CAPACITY).0,
                rearm: tokio::sync::Notify::new(),
                armed_until: AtomicI64::new(i64::MIN),
                cache: ReadCache::new(),
                counts: CountCache::default(),
                streams: Arc::default(),
            }),
        })
    }
}

/// Incident counts by filter ([`Engine::count_incidents`]), each valid at the
/// incidents generation it was counted at.
#[derive(Debug, Default)]
struct CountCache {
    entries: std::sync::Mutex<Vec<(crate::model::IncidentFilter, u64, u64)>>,
}

/// Most counts kept.
const MAX_COUNTS: usize = 64;

impl CountCache {
    fn get(&self, filter: &crate::model::IncidentFilter, at: u64) -> Option<u64> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .iter()
            .find(|(f, g, _)| *g == at && f == filter)
            .map(|(_, _, n)| *n)
    }

    fn put(&self, filter: crate::model::IncidentFilter, at: u64, n: u64) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|(f, g, _)| *g == at && *f != filter);
        if entries.len() >= MAX_COUNTS {
            entries.remove(0);
        }
        entries.push((filter, at, n));
    }
}

/// The IMAS engine. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    keys: JwtKeys,
    config: EngineConfig,
    channels: Vec<Arc<dyn Channel>>,
    /// What this engine counted (breaches, deliveries, retention), for metrics.
    counters: crate::metrics::Counters,
    /// New in-app notifications delivered by this process, for live streams.
    live: tokio::sync::broadcast::Sender<Notification>,
    /// Wakes the SLA monitor when a change here may have moved a due time
    /// earlier than the one it sleeps towards.
    rearm: tokio::sync::Notify,
    /// The instant (ms since the epoch) the SLA monitor sleeps towards;
    /// `i64::MIN` while it is awake (sweeping, or looking up the next due time),
    /// so that every change made meanwhile wakes it again.
    armed_until: AtomicI64,
    /// Principals and list pages, valid while the store's generation holds.
    cache: ReadCache,
    /// Incident counts by filter, valid while the incidents generation holds.
    counts: CountCache,
    /// Live streams open per user.
    streams: Arc<std::sync::Mutex<std::collections::HashMap<UserId, usize>>>,
    /// Where every password is hashed and verified.
    hash_pool: HashPool,
    /// Failed sign-in attempts per username and per address.
    sign_in: Arc<SignInGuard>,
    /// Events per integration key, when [`EngineConfig::ingest_limit`] is set.
    ingest: Option<EventLimiter>,
    /// Integrations by key hash, valid while the store's integrations
    /// generation holds (see `integrations::KeyCache`).
    integration_keys: integrations::KeyCache,
    /// Services by id for the alert events, valid while the same generation
    /// holds (service writes move it too).
    services: integrations::ServiceCache,
    /// Serialises role changes in this process, so that two admins demoting
    /// each other at once cannot leave no admin.
    role_change: tokio::sync::Mutex<()>,
    /// Serialise one `user`'s reports in this process from the limit check to
    /// the commit, so that reports sent at once cannot all pass the count
    /// together (striped by user: bounded, whatever the number of users).
    report_locks: Box<[tokio::sync::Mutex<()>]>,
}

impl Engine {
    /// Starts building an engine on a store.
    pub fn builder(store: Arc<dyn Store>) -> EngineBuilder {
        EngineBuilder {
            store,
            queue: None,
            clock: Arc::new(SystemClock),
            keys: None,
            config: EngineConfig::default(),
            channels: Vec::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.inner.queue
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The current instant on the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub(super) fn sla(&self) -> &SlaPolicy {
        &self.inner.config.sla
    }

    pub(super) fn escalation(&self) -> &SlaEscalation {
        &self.inner.config.escalation
    }

    pub(super) async fn commit(&self, change: Change) -> Result<()> {
        let due = match &change.incident {
            Some(IncidentWrite::Insert(i) | IncidentWrite::Update { incident: i, .. }) => {
                i.next_due_at
            }
            _ => None,
        };
        // The commit and the monitor's wake-up run detached: a request dropped
        // meanwhile (its client went away) cannot leave a committed change the
        // monitor does not hear of until its next poll.
        let inner = Arc::clone(&self.inner);
        crate::ports::run_detached("engine", async move {
            inner.store.commit(change).await?;
            // Wake the monitor only when this due time comes before the instant
            // it sleeps towards: it finds later ones when it wakes anyway.
            if due.is_some_and(|at| at.timestamp_millis() < inner.armed_until.load(SeqCst)) {
                inner.rearm.notify_one();
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn load_incident(&self, id: IncidentId) -> Result<Incident> {
        self.inner
            .store
            .get_incident(id)
            .await?
            .ok_or(Error::NotFound { entity: "incident" })
    }
}
