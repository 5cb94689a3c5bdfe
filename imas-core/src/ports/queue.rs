//! The queue port: a durable work queue with at-least-once delivery, one live job
//! per key, reservations extended while a worker delivers, retries and dead letters.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Timestamp;

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
