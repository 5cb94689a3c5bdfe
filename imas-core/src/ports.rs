//! Ports: the traits adapters implement. Stores (users, incidents, audit,
//! notifications, outbox, and the one atomic [`ChangeStore::commit`]), the
//! notification [`Queue`], delivery [`Channel`]s and the [`Clock`].
//!
//! Every trait is object-safe; the engine holds `Arc<dyn Store>`, `Arc<dyn Queue>`
//! and `Arc<dyn Clock>`. Adapters translate: they hold no business rule, and
//! `crate::testkit` (feature `testkit`) checks each one against the same contract.
//!
//! Implementing a port for a custom backend, e.g. a delivery channel:
//!
//! ```
//! use async_trait::async_trait;
//! use imas_core::model::Notification;
//! use imas_core::ports::Channel;
//! use imas_core::Result;
//!
//! #[derive(Debug)]
//! struct Stdout;
//!
//! #[async_trait]
//! impl Channel for Stdout {
//!     fn name(&self) -> &'static str {
//!         "stdout"
//!     }
//!     async fn deliver(&self, n: &Notification) -> Result<()> {
//!         println!("{} <- {} ({})", n.user, n.message, n.key);
//!         Ok(())
//!     }
//! }
//! ```

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{
    AuditEntry, AuditFilter, Incident, IncidentFilter, IncidentId, Notification, NotificationId,
    NotificationIntent, OutboxEntry, Page, PageRequest, Role, Timestamp, User, UserId, from_millis,
    truncate_millis,
};

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

/// A write to the incidents table, part of a [`Change`].
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentWrite {
    /// A new incident (`version` 1). A duplicate id is a conflict.
    Insert(Incident),
    /// Replace the incident whose version is `expected_version` with `incident`
    /// (whose version is `expected_version + 1`); otherwise `Conflict`, or
    /// `NotFound` when it does not exist. Its `next_due_at` replaces any claim.
    Update {
        /// The new state.
        incident: Incident,
        /// The version the change was computed from.
        expected_version: i64,
    },
    /// Delete the incident at `expected_version` (`Conflict` / `NotFound` as for
    /// updates). Its audit entries stay.
    Delete {
        /// Which.
        id: IncidentId,
        /// The version the deletion was decided on.
        expected_version: i64,
    },
}

/// A write to the users table, part of a [`Change`].
#[derive(Debug, Clone, PartialEq)]
pub enum UserWrite {
    /// A new user; a taken username or email is a `Conflict`.
    Insert(User),
    /// Change a user's role (`NotFound` when absent).
    SetRole {
        /// Which user.
        id: UserId,
        /// The new role.
        role: Role,
    },
}

/// One atomic domain change: the entity writes, their audit entries and their
/// notification intents (the outbox) commit together or not at all (DESIGN.md
/// invariant 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// At most one user write.
    pub user: Option<UserWrite>,
    /// At most one incident write.
    pub incident: Option<IncidentWrite>,
    /// Audit entries to append.
    pub audit: Vec<AuditEntry>,
    /// Notification intents to put in the outbox. An intent whose key is already
    /// in the outbox (or was delivered from it) is skipped, not an error.
    pub outbox: Vec<NotificationIntent>,
}

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync + Debug + 'static {
    /// A user by id.
    async fn get_user(&self, id: UserId) -> Result<Option<User>>;
    /// A user by exact username.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>>;
    /// Every user with a role, oldest first.
    async fn users_with_role(&self, role: Role) -> Result<Vec<User>>;
}

/// Incidents.
#[async_trait]
pub trait IncidentStore: Send + Sync + Debug + 'static {
    /// An incident by id.
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>>;

    /// Incidents matching `filter` (reference semantics:
    /// [`IncidentFilter::matches`]), newest first by `(created_at, id)`, one page.
    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>>;

    /// How many incidents match `filter`.
    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64>;

    /// Claims the (up to) `limit` earliest-due incidents whose `next_due_at <=
    /// now`, returned in no particular order. Claiming moves each one's `next_due_at` to `now + lease` (as the
    /// returned incidents show), so no other call returns it, however many
    /// nodes call concurrently, until the claimer commits an update (which sets a
    /// new due time) or the lease runs out (the claimer died: it is due again).
    async fn claim_due(&self, now: Timestamp, lease: Duration, limit: u32)
    -> Result<Vec<Incident>>;

    /// The earliest `next_due_at` of any incident: when `claim_due` could next
    /// return something.
    async fn next_due_at(&self) -> Result<Option<Timestamp>>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync + Debug + 'static {
    /// Entries matching `filter`, newest first by `(created_at, id)`, one page.
    async fn list_audit(&self, filter: &AuditFilter, page: PageRequest)
    -> Result<Page<AuditEntry>>;
}

/// Delivered in-app notifications.
#[async_trait]
pub trait NotificationStore: Send + Sync + Debug + 'static {
    /// Inserts a notification unless one with the same `key` exists. Returns
    /// whether it was inserted. Idempotent: redelivery never duplicates.
    async fn insert_notification(&self, n: &Notification) -> Result<bool>;

    /// A user's notifications, newest first by `(created_at, id)`.
    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>>;

    /// Marks a notification read if it belongs to `user`; `NotFound` otherwise
    /// (also when it exists but is somebody else's).
    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification>;

    /// Records that notification `key` went out through `channel`. Returns false
    /// when it was already recorded.
    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool>;

    /// Whether notification `key` already went out through `channel`.
    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool>;
}

/// The transactional outbox of notification intents.
#[async_trait]
pub trait OutboxStore: Send + Sync + Debug + 'static {
    /// Up to `limit` undelivered entries whose `available_at <= now`, oldest
    /// first; each is made unavailable until `now + lease` and its `attempts`
    /// incremented, so a publication the queue loses is retried after the lease.
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>>;

    /// Marks entries delivered at `now`; they are never handed out again. Unknown
    /// keys are ignored.
    async fn complete_outbox(&self, keys: &[String], now: Timestamp) -> Result<()>;

    /// How many entries are not yet delivered.
    async fn pending_outbox(&self) -> Result<u64>;

    /// When the oldest undelivered entry was created (its intent's
    /// `created_at`); `None` when nothing is pending. Indexed: it does not scan
    /// delivered rows.
    async fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>>;

    /// Retention (SPEC §8): deletes up to `limit` delivered entries whose last
    /// publication is older than `before` (`available_at < before`: the lease of
    /// the claim that delivered them ended before it), together with the
    /// channel receipts ([`NotificationStore::record_delivery`]) of their keys.
    /// Undelivered entries, the audit log and in-app notifications are never
    /// touched. A pruned key is forgotten: an intent with the same key committed
    /// later is written again (the in-app notification stays deduplicated by
    /// key). Indexed: the cost grows with what is deleted, not with the table.
    async fn prune_delivered(&self, before: Timestamp, limit: u32) -> Result<Pruned>;
}

/// What one [`OutboxStore::prune_delivered`] call removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Delivered outbox entries deleted.
    pub outbox: u64,
    /// Channel receipts deleted.
    pub receipts: u64,
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

    /// How far the store's users and incidents have moved, as counters that grow
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

    /// Records what a committed [`Change`] wrote.
    pub fn bump_for(&self, change: &Change) {
        self.bump(change.user.is_some(), change.incident.is_some());
    }

    /// Marks the counters live or not. Going live bumps both first, so nothing
    /// read before (or while not live) is taken as current.
    pub fn set_live(&self, live: bool) {
        if live {
            self.bump(true, true);
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
        })
    }
}

/// Everything the engine needs from a store. Implemented for any type that
/// implements the parts.
pub trait Store:
    UserStore + IncidentStore + AuditStore + NotificationStore + OutboxStore + ChangeStore
{
}

impl<T> Store for T where
    T: UserStore + IncidentStore + AuditStore + NotificationStore + OutboxStore + ChangeStore
{
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Idempotency key, carried to the handler.
    pub key: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// Hold the job back this long before it can be reserved.
    pub delay: Duration,
}

impl NewJob {
    /// A job ready now.
    pub fn new(key: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            key: key.into(),
            payload,
            delay: Duration::ZERO,
        }
    }
}

/// A reserved job. Until acked or failed, it is invisible to other workers for
/// the visibility timeout given to [`Queue::reserve`]; then it is handed out again.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Idempotency key.
    pub key: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// 1 on the first delivery, then 2, 3...
    pub attempt: u32,
    /// Identifies this reservation; a stale reservation cannot ack or fail the job.
    pub token: String,
}

/// What [`Queue::fail`] did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will be handed out again at this instant.
    Retry {
        /// When.
        at: Timestamp,
    },
    /// It exhausted its attempts and went to the dead-letter list.
    DeadLettered,
    /// The reservation was stale (the job had been handed to another worker, or
    /// was already acked): nothing changed.
    Stale,
}

/// A job that exhausted its attempts, or failed in a way retrying cannot fix.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Idempotency key.
    pub key: String,
    /// The payload.
    pub payload: serde_json::Value,
    /// How many deliveries were tried.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it was dead-lettered.
    pub failed_at: Timestamp,
}

/// Retry schedule: exponential backoff from `base`, capped at `cap`, at most
/// `max_attempts` deliveries in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries before dead-lettering (at least 1).
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based): `base * 2^(attempt-1)`,
    /// at most `cap`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// Counts of jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Can be reserved now.
    pub ready: u64,
    /// Waiting for their delay or retry time.
    pub delayed: u64,
    /// Reserved and not yet acked.
    pub in_flight: u64,
    /// Dead-lettered.
    pub dead: u64,
}

/// A durable work queue with at-least-once delivery, holding at most one live
/// job per key: a job is live from its enqueue until it is acked or
/// dead-lettered (ready, delayed, retrying or reserved). A worker keeps its
/// reservation for as long as it works on a job with [`Queue::extend`], so no
/// other worker is handed the job while it is being delivered; only a worker
/// that stops extending (it crashed or stalled past the visibility) loses it.
#[async_trait]
pub trait Queue: Send + Sync + Debug + 'static {
    /// Enqueues jobs (atomically where the backend allows). A job whose key is
    /// already live, or repeats a key earlier in `jobs`, is not enqueued: the
    /// live job will deliver it. Returns how many were enqueued.
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<usize>;

    /// Reserves up to `max` ready jobs for `visibility`, oldest first. Returns at
    /// once (possibly empty).
    async fn reserve(&self, max: usize, visibility: Duration) -> Result<Vec<Job>>;

    /// Waits until a job may be ready or `timeout` passes, whichever comes first.
    async fn wait(&self, timeout: Duration);

    /// Removes a successfully handled job. Returns false for a stale reservation.
    async fn ack(&self, job: &Job) -> Result<bool>;

    /// Keeps each job of `jobs` reserved for `visibility` from now, for a worker
    /// still working on it. Returns one flag per job: false when the
    /// reservation is stale (expired and handed to another worker, acked or
    /// failed), which then changes nothing.
    async fn extend(&self, jobs: &[Job], visibility: Duration) -> Result<Vec<bool>>;

    /// [`Queue::ack`] of each job in `done`, then [`Queue::reserve`] of up to
    /// `max` more: the loop of a worker, which hands back the jobs it finished
    /// and takes as many new ones. Returns one flag per job of `done` (false:
    /// a stale reservation) and the new jobs. Queues that can do it all in one
    /// step override it (Redis: one round trip).
    async fn ack_and_reserve(
        &self,
        done: &[Job],
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<bool>, Vec<Job>)> {
        let mut acked = Vec::with_capacity(done.len());
        for job in done {
            acked.push(self.ack(job).await?);
        }
        Ok((acked, self.reserve(max, visibility).await?))
    }

    /// Reports a failed attempt: retried after backoff, or dead-lettered when
    /// attempts are exhausted.
    async fn fail(&self, job: &Job, error: &str) -> Result<FailOutcome>;

    /// Reports a failure that retrying cannot fix: the job goes to the
    /// dead-letter list at once, whatever attempts it has left
    /// ([`FailOutcome::DeadLettered`]), or nothing changes for a stale
    /// reservation ([`FailOutcome::Stale`]).
    async fn dead_letter(&self, job: &Job, error: &str) -> Result<FailOutcome>;

    /// Dead-lettered jobs, oldest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Moves a dead-lettered job back to ready with fresh attempts. Returns
    /// whether it was found.
    async fn redrive(&self, key: &str) -> Result<bool>;

    /// Counts by state.
    async fn stats(&self) -> Result<QueueStats>;
}

/// A delivery channel for notifications beyond the in-app store (webhook, email,
/// live stream). Deliveries may repeat: use [`Notification::key`] to deduplicate.
#[async_trait]
pub trait Channel: Send + Sync + Debug + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Delivers one notification.
    async fn deliver(&self, n: &Notification) -> Result<()>;
}
