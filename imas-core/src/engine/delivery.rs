//! Delivery: the outbox relay publishes committed intents to the queue; the
//! worker step delivers each job to the in-app store and the channels, at most
//! once per key and channel, and acks it; failures retry or are dead-lettered.

use std::collections::HashSet;
use std::time::Duration;

use tracing::{debug, warn};

use super::Engine;
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{Notification, NotificationIntent};
use crate::ports::{FailOutcome, Job, NewJob, Recipient};

/// What one notification worker step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Jobs reserved.
    pub jobs: usize,
    /// New in-app notifications.
    pub delivered: usize,
    /// Jobs whose notification already existed (redeliveries).
    pub duplicates: usize,
    /// Jobs that failed (retried or dead-lettered by the queue).
    pub failed: usize,
    /// Of those, jobs that went to the dead letters (a failure retrying cannot
    /// fix, or the last attempt); their outbox entries are completed.
    pub dead_lettered: usize,
}

/// The reservations of one worker step that are no longer its own: handed
/// back (failed, dead-lettered, being acked) or lost to another worker.
#[derive(Default)]
struct Released(std::sync::Mutex<HashSet<String>>);

impl Released {
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn contains(&self, job: &Job) -> bool {
        self.tokens().contains(&job.token)
    }

    fn insert(&self, job: &Job) {
        self.tokens().insert(job.token.clone());
    }

    /// The jobs of `jobs` still held.
    fn held(&self, jobs: &[Job]) -> Vec<Job> {
        let tokens = self.tokens();
        jobs.iter()
            .filter(|j| !tokens.contains(&j.token))
            .cloned()
            .collect()
    }
}

impl Engine {
    /// One relay step: publishes due outbox entries to the queue. An entry stays in
    /// the outbox until a worker confirms delivery; if the queue loses the job, the
    /// entry is published again after [`EngineConfig::outbox_lease`](super::EngineConfig::outbox_lease).
    pub async fn relay_step(&self) -> Result<usize> {
        let cfg = &self.inner.config;
        let entries = self
            .inner
            .store
            .claim_outbox(self.now(), cfg.outbox_lease, cfg.notify_batch)
            .await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let jobs = entries
            .iter()
            .map(|e| {
                serde_json::to_value(&e.intent)
                    .map(|payload| NewJob::new(e.intent.key.clone(), payload))
                    .map_err(|err| Error::backend("serde_json", err))
            })
            .collect::<Result<Vec<_>>>()?;
        let n = jobs.len();
        self.inner.queue.enqueue(jobs).await?;
        Ok(n)
    }

    /// One worker step: reserves jobs, delivers each to the in-app store (by
    /// idempotency key) and the channels, then acks the job and completes its
    /// outbox entry. A failed delivery is reported to the queue for retry.
    /// While it works the jobs stay reserved to it ([`Queue::extend`](crate::ports::Queue::extend)), however
    /// slow the channels are: no other worker is handed them meanwhile.
    pub async fn work_step(&self) -> Result<DeliveryReport> {
        let cfg = &self.inner.config;
        let jobs = self
            .inner
            .queue
            .reserve(cfg.notify_batch as usize, cfg.job_visibility)
            .await?;
        if jobs.is_empty() {
            return Ok(DeliveryReport::default());
        }
        let lost = Released::default();
        let work = std::pin::pin!(self.deliver_jobs(&jobs, &lost));
        let beat = std::pin::pin!(self.keep_reserved(&jobs, &lost));
        match futures::future::select(work, beat).await {
            futures::future::Either::Left((done, _)) => done,
            futures::future::Either::Right(((), work)) => work.await,
        }
    }

    /// Extends the reservation of `jobs` every third of the visibility until
    /// none is held any more (or, in practice, until the delivery that runs
    /// beside it ends and drops it). `lost` holds the reservations no longer ours:
    /// those the delivery handed back (failed, dead-lettered, being acked),
    /// and those whose reservation proved stale, whose delivery then stops
    /// before its next channel.
    async fn keep_reserved(&self, jobs: &[Job], lost: &Released) {
        let visibility = self.inner.config.job_visibility;
        let every = (visibility / 3).max(Duration::from_millis(1));
        loop {
            tokio::time::sleep(every).await;
            let held = lost.held(jobs);
            if held.is_empty() {
                return;
            }
            match self.inner.queue.extend(&held, visibility).await {
                Ok(flags) => {
                    for (job, kept) in held.iter().zip(flags) {
                        if !kept {
                            warn!(key = %job.key, "job reservation lost while delivering: another worker has it");
                            lost.insert(job);
                        }
                    }
                }
                // The next beat tries again; the visibility is three beats.
                Err(e) => warn!(error = %e, "could not extend job reservations"),
            }
        }
    }

    /// Delivers reserved jobs one after another, then acks the delivered ones
    /// and completes their outbox entries. Skips a job whose reservation is in
    /// `lost`: its new holder delivers it.
    async fn deliver_jobs(&self, jobs: &[Job], lost: &Released) -> Result<DeliveryReport> {
        let cfg = &self.inner.config;
        let mut report = DeliveryReport {
            jobs: jobs.len(),
            ..Default::default()
        };
        let is_lost = |job: &Job| lost.contains(job);
        // Handed back: the heartbeat stops extending it (and would otherwise
        // report it lost).
        let release = |job: &Job| lost.insert(job);
        let mut done = Vec::with_capacity(jobs.len());
        let mut dead = Vec::new();
        let mut in_app = self.insert_in_app(jobs, lost).await.into_iter();
        for job in jobs {
            let Some(record) = in_app.next() else { break };
            if is_lost(job) {
                continue;
            }
            match self.deliver(record, || is_lost(job)).await {
                Ok(inserted) => {
                    if inserted {
                        report.delivered += 1;
                    } else {
                        report.duplicates += 1;
                    }
                    done.push(job.clone());
                }
                Err(e) if is_lost(job) => {
                    debug!(key = %job.key, error = %e, "delivery stopped: reservation lost");
                }
                Err(e) => {
                    report.failed += 1;
                    release(job);
                    let message = e.to_string();
                    let outcome = if e.is_permanent() {
                        warn!(key = %job.key, attempt = job.attempt, error = %e, "notification undeliverable: dead-lettered");
                        self.inner.queue.dead_letter(job, &message).await?
                    } else {
                        warn!(key = %job.key, attempt = job.attempt, error = %e, "notification delivery failed");
                        self.inner.queue.fail(job, &message).await?
                    };
                    if outcome == FailOutcome::DeadLettered {
                        dead.push(job.key.clone());
                    }
                }
            }
        }
        if !dead.is_empty() {
            // Dead letters wait in the queue for an admin's redrive: the relay
            // must not publish them again. If this stops before it, the relay
            // publishes an entry once more and its job is dead-lettered again.
            report.dead_lettered = dead.len();
            self.inner.store.complete_outbox(&dead, self.now()).await?;
        }
        if !done.is_empty() {
            // Delivered: the outbox entries are done and the jobs acked, each
            // all at once. If this stops half-way, the relay or the queue hands
            // the work out again and delivery, idempotent by key, repeats
            // nothing.
            let keys: Vec<String> = done.iter().map(|j| j.key.clone()).collect();
            self.inner.store.complete_outbox(&keys, self.now()).await?;
            done.iter().for_each(release);
            self.inner
                .queue
                .ack_and_reserve(&done, 0, cfg.job_visibility)
                .await?;
        }
        Ok(report)
    }

    /// The in-app records of `jobs`, all in one store write (a burst of
    /// deliveries costs one commit, not one per job): for each job, in order,
    /// its notification and whether it was new, or why not (a payload that is
    /// not an intent, a store that failed: then every job of the write
    /// failed, and retries). Jobs already lost are left out of the write.
    async fn insert_in_app(
        &self,
        jobs: &[Job],
        lost: &Released,
    ) -> Vec<Result<(Notification, bool)>> {
        let now = self.now();
        let records: Vec<Result<Notification>> = jobs
            .iter()
            .map(|job| {
                // A payload that is not an intent never will be: no retry helps.
                let intent: NotificationIntent = serde_json::from_value(job.payload.clone())
                    .map_err(|e| Error::undeliverable("queue", messages::not_an_intent(e)))?;
                Ok(Notification::from_intent(&intent, now))
            })
            .collect();
        // Written: parsed, and not lost to another worker meanwhile.
        let written: Vec<bool> = records
            .iter()
            .zip(jobs)
            .map(|(r, job)| r.is_ok() && !lost.contains(job))
            .collect();
        let batch: Vec<Notification> = records
            .iter()
            .zip(&written)
            .filter_map(|(r, &w)| if w { r.as_ref().ok().cloned() } else { None })
            .collect();
        let answer = if batch.is_empty() {
            Ok(Vec::new())
        } else {
            match self.inner.store.insert_notifications(&batch).await {
                Ok(flags) if flags.len() == batch.len() => Ok(flags),
                Ok(_) => Err("the store answered for another number of notifications".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        };
        // The answers are in the order of the written records.
        let mut flags = answer.as_ref().map(|f| f.iter().copied());
        records
            .into_iter()
            .zip(written)
            .map(|(record, w)| {
                let n = record?;
                if !w {
                    // Lost: the caller skips it before it looks.
                    return Ok((n, false));
                }
                match &mut flags {
                    Ok(flags) => Ok((n, flags.next().unwrap_or(false))),
                    Err(why) => Err(Error::backend("notifications", why.clone())),
                }
            })
            .collect()
    }

    /// Delivers one intent whose in-app record [`Engine::insert_in_app`]
    /// wrote (or failed to), then every channel, stopping before a channel
    /// once `lost()` says another worker holds the job now. Returns whether
    /// the in-app record was new.
    async fn deliver(
        &self,
        record: Result<(Notification, bool)>,
        lost: impl Fn() -> bool,
    ) -> Result<bool> {
        let (n, inserted) = match record {
            Ok((n, inserted)) => {
                self.count_delivery(crate::metrics::IN_APP, !inserted, Ok(()))?;
                (n, inserted)
            }
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                return self
                    .count_delivery(crate::metrics::IN_APP, false, Err(e))
                    .map(|()| false);
            }
        };
        if inserted {
            // At once, before the channels: a later failure retries the job,
            // and the retry finds the record there and would not send it.
            // Nobody listening is fine.
            let _ = self.inner.live.send(n.clone());
        }
        // Each channel at most once per key: a retry caused by one failing
        // channel does not send again through the others. One channel's
        // failure does not keep the others from delivering; the job is
        // dead-lettered at once only when every failure is permanent.
        let mut failure: Option<Error> = None;
        let mut recipient: Option<Option<Recipient>> = None;
        for channel in &self.inner.channels {
            if lost() {
                return Err(Error::unavailable(
                    "the job's reservation was lost to another worker",
                    Duration::ZERO,
                ));
            }
            if self
                .inner
                .store
                .was_delivered(&n.key, channel.name())
                .await?
            {
                self.count_delivery(channel.name(), true, Ok(()))?;
                continue;
            }
            // Looked up once per job, when a channel is about to send.
            let to = match &recipient {
                Some(to) => to,
                None => {
                    let user = self.inner.store.get_user(n.user).await?;
                    recipient.insert(user.as_ref().map(Recipient::from))
                }
            };
            let sent = channel.deliver(&n, to.as_ref()).await;
            let failed = sent.as_ref().err().map(Error::is_permanent);
            match self.count_delivery(channel.name(), false, sent) {
                Ok(()) => {
                    self.inner
                        .store
                        .record_delivery(&n.key, channel.name())
                        .await?;
                }
                Err(e) => {
                    debug_assert!(failed.is_some());
                    failure = Some(match failure {
                        Some(first) if first.is_permanent() && !e.is_permanent() => e,
                        Some(first) => first,
                        None => e,
                    });
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(inserted)
    }

    /// Relays and delivers until the outbox has nothing due and the queue nothing
    /// ready. For embedding, examples and tests; servers run the steps in loops.
    pub async fn flush_notifications(&self) -> Result<DeliveryReport> {
        let mut total = DeliveryReport::default();
        loop {
            let relayed = self.relay_step().await?;
            let r = self.work_step().await?;
            total.jobs += r.jobs;
            total.delivered += r.delivered;
            total.duplicates += r.duplicates;
            total.failed += r.failed;
            total.dead_lettered += r.dead_lettered;
            if relayed == 0 && r.jobs == 0 {
                return Ok(total);
            }
        }
    }

    /// Counts one delivery through `channel` (`duplicate`: already done by an
    /// earlier attempt) and passes `outcome` on.
    fn count_delivery(
        &self,
        channel: &'static str,
        duplicate: bool,
        outcome: Result<()>,
    ) -> Result<()> {
        use crate::metrics::DeliveryOutcome;
        let counted = match (&outcome, duplicate) {
            (Err(_), _) => DeliveryOutcome::Failed,
            (Ok(()), true) => DeliveryOutcome::Duplicate,
            (Ok(()), false) => DeliveryOutcome::Delivered,
        };
        self.inner.counters.delivery(channel, counted);
        outcome
    }
}
