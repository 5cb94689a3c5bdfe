//! [`MemoryQueue`]: the queue port in process memory, with visibility timeouts,
//! retries with backoff and dead letters, on the engine's clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::Result;
use crate::model::millis;
use crate::ports::{
    Clock, DeadLetter, FailOutcome, Job, NewJob, Queue, QueueStats, RetryPolicy, SystemClock,
};

use super::lock;

/// An in-process queue with visibility timeouts, retries with backoff and a
/// dead-letter list. Time comes from a [`Clock`]. Jobs live in memory: a process
/// crash loses them, which the outbox relay makes good (entries are published again
/// after their lease).
#[derive(Debug)]
pub struct MemoryQueue {
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    inner: Mutex<QueueInner>,
    signal: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct QueueInner {
    next_id: u64,
    jobs: HashMap<u64, QueuedJob>,
    /// The live job of each key (one at most).
    by_key: HashMap<String, u64>,
    /// Every live job by the instant it becomes reservable (for an in-flight job:
    /// when its reservation expires).
    schedule: BTreeSet<(i64, u64)>,
    dead: BTreeMap<u64, DeadLetter>,
    reservations: u64,
}

#[derive(Debug)]
struct QueuedJob {
    key: String,
    payload: serde_json::Value,
    attempt: u32,
    visible_at: i64,
    token: Option<String>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock), RetryPolicy::default())
    }
}

impl MemoryQueue {
    /// A queue on `clock` with a retry policy.
    pub fn new(clock: Arc<dyn Clock>, retry: RetryPolicy) -> Self {
        Self {
            clock,
            retry,
            inner: Mutex::new(QueueInner::default()),
            signal: watch::channel(0).0,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn wake(&self) {
        self.signal.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn parse_token(job: &Job) -> Option<u64> {
        job.token
            .split_once(':')
            .and_then(|(id, _)| id.parse().ok())
    }

    /// Removes the job if `job` holds its current reservation.
    fn take_reserved(inner: &mut QueueInner, job: &Job) -> Option<QueuedJob> {
        let id = Self::parse_token(job)?;
        let current = inner.jobs.get(&id)?;
        if current.token.as_deref() != Some(job.token.as_str()) {
            return None;
        }
        let q = inner.jobs.remove(&id)?;
        inner.schedule.remove(&(q.visible_at, id));
        inner.by_key.remove(&q.key);
        Some(q)
    }

    fn bury(&self, inner: &mut QueueInner, id: u64, q: QueuedJob, error: &str) {
        let failed_at = self.clock.now();
        inner.dead.insert(
            id,
            DeadLetter {
                key: q.key,
                payload: q.payload,
                attempts: q.attempt,
                error: error.to_string(),
                failed_at,
            },
        );
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<usize> {
        let now = self.now_ms();
        let mut added = 0;
        {
            let mut inner = lock(&self.inner);
            for job in jobs {
                if inner.by_key.contains_key(&job.key) {
                    continue;
                }
                let id = inner.next_id;
                inner.next_id += 1;
                inner.by_key.insert(job.key.clone(), id);
                added += 1;
                let visible_at = now.saturating_add(millis(job.delay));
                inner.schedule.insert((visible_at, id));
                inner.jobs.insert(
                    id,
                    QueuedJob {
                        key: job.key,
                        payload: job.payload,
                        attempt: 0,
                        visible_at,
                        token: None,
                    },
                );
            }
        }
        if added > 0 {
            self.wake();
        }
        Ok(added)
    }

    async fn reserve(&self, max: usize, visibility: Duration) -> Result<Vec<Job>> {
        let now = self.now_ms();
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(at, id)) = inner.schedule.first() else {
                break;
            };
            if at > now {
                break;
            }
            inner.schedule.remove(&(at, id));
            let Some(mut q) = inner.jobs.remove(&id) else {
                continue;
            };
            if q.token.is_some() && q.attempt >= self.retry.max_attempts {
                // Its worker died on every attempt: a poison job.
                inner.by_key.remove(&q.key);
                self.bury(inner, id, q, "reservation expired on the last attempt");
                continue;
            }
            inner.reservations += 1;
            let token = format!("{id}:{}", inner.reservations);
            q.attempt += 1;
            q.visible_at = now.saturating_add(millis(visibility));
            q.token = Some(token.clone());
            out.push(Job {
                key: q.key.clone(),
                payload: q.payload.clone(),
                attempt: q.attempt,
                token,
            });
            inner.schedule.insert((q.visible_at, id));
            inner.jobs.insert(id, q);
        }
        Ok(out)
    }

    async fn wait(&self, timeout: Duration) {
        let mut rx = self.signal.subscribe();
        let next = {
            let inner = lock(&self.inner);
            inner.schedule.first().map(|(at, _)| *at)
        };
        let now = self.now_ms();
        let timeout = match next {
            Some(at) if at <= now => return,
            Some(at) => timeout.min(Duration::from_millis((at - now) as u64)),
            None => timeout,
        };
        let _ = tokio::time::timeout(timeout, rx.changed()).await;
    }

    async fn ack(&self, job: &Job) -> Result<bool> {
        let mut inner = lock(&self.inner);
        Ok(Self::take_reserved(&mut inner, job).is_some())
    }

    async fn extend(&self, jobs: &[Job], visibility: Duration) -> Result<Vec<bool>> {
        let until = self.now_ms().saturating_add(millis(visibility));
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        Ok(jobs
            .iter()
            .map(|job| {
                let Some(id) = Self::parse_token(job) else {
                    return false;
                };
                let Some(q) = inner.jobs.get_mut(&id) else {
                    return false;
                };
                if q.token.as_deref() != Some(job.token.as_str()) {
                    return false;
                }
                inner.schedule.remove(&(q.visible_at, id));
                q.visible_at = until;
                inner.schedule.insert((until, id));
                true
            })
            .collect())
    }

    async fn fail(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        let outcome = {
            let mut guard = lock(&self.inner);
            let inner = &mut *guard;
            let Some(id) = Self::parse_token(job) else {
                return Ok(FailOutcome::Stale);
            };
            let Some(mut q) = Self::take_reserved(inner, job) else {
                return Ok(FailOutcome::Stale);
            };
            if q.attempt >= self.retry.max_attempts {
                self.bury(inner, id, q, error);
                FailOutcome::DeadLettered
            } else {
                q.visible_at = self
                    .now_ms()
                    .saturating_add(millis(self.retry.backoff(q.attempt)));
                q.token = None;
                let at = crate::model::from_millis(q.visible_at);
                inner.by_key.insert(q.key.clone(), id);
                inner.schedule.insert((q.visible_at, id));
                inner.jobs.insert(id, q);
                FailOutcome::Retry { at }
            }
        };
        self.wake();
        Ok(outcome)
    }

    async fn dead_letter(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let Some(id) = Self::parse_token(job) else {
            return Ok(FailOutcome::Stale);
        };
        let Some(q) = Self::take_reserved(inner, job) else {
            return Ok(FailOutcome::Stale);
        };
        self.bury(inner, id, q, error);
        Ok(FailOutcome::DeadLettered)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(lock(&self.inner)
            .dead
            .values()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn redrive(&self, key: &str) -> Result<bool> {
        let now = self.now_ms();
        let found = {
            let mut inner = lock(&self.inner);
            let id = inner
                .dead
                .iter()
                .find(|(_, d)| d.key == key)
                .map(|(id, _)| *id);
            match id.and_then(|id| inner.dead.remove(&id).map(|d| (id, d))) {
                // A live job of the same key delivers it already.
                Some((_, d)) if inner.by_key.contains_key(&d.key) => true,
                Some((id, d)) => {
                    inner.by_key.insert(d.key.clone(), id);
                    inner.schedule.insert((now, id));
                    inner.jobs.insert(
                        id,
                        QueuedJob {
                            key: d.key,
                            payload: d.payload,
                            attempt: 0,
                            visible_at: now,
                            token: None,
                        },
                    );
                    true
                }
                None => false,
            }
        };
        if found {
            self.wake();
        }
        Ok(found)
    }

    async fn stats(&self) -> Result<QueueStats> {
        let now = self.now_ms();
        let inner = lock(&self.inner);
        let mut stats = QueueStats {
            dead: inner.dead.len() as u64,
            ..QueueStats::default()
        };
        for q in inner.jobs.values() {
            if q.token.is_some() && q.visible_at > now {
                stats.in_flight += 1;
            } else if q.visible_at <= now {
                stats.ready += 1;
            } else {
                stats.delayed += 1;
            }
        }
        Ok(stats)
    }
}
