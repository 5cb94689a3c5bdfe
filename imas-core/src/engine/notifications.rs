//! Notifications: the caller's list and live stream, read marks, dead letters,
//! and the delivery path (outbox relay, worker step, channels).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, Notification, NotificationId, NotificationIntent, Page,
    PageRequest, UserId,
};
use crate::ports::{Change, DeadLetter, FailOutcome, Job, NewJob};
use crate::rbac::{self, Permission};

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

/// How long a caller refused a live stream is told to wait before trying again.
const STREAM_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How many undelivered live notifications a slow stream may fall behind by
/// before it skips ahead (the list endpoint still has them all).
pub(super) const LIVE_CAPACITY: usize = 1024;

/// One open live stream of a user: taken from [`Inner::streams`], given back
/// when the stream is dropped (it ended, or its client went away).
#[derive(Debug)]
struct StreamSlot {
    streams: Arc<std::sync::Mutex<std::collections::HashMap<UserId, usize>>>,
    user: UserId,
}

impl StreamSlot {
    fn take(
        streams: &Arc<std::sync::Mutex<std::collections::HashMap<UserId, usize>>>,
        user: UserId,
        max: usize,
    ) -> Result<Self> {
        let mut open = streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(user).or_insert(0);
        if *n >= max {
            return Err(Error::rate_limited(
                messages::too_many_streams(max),
                STREAM_RETRY_AFTER,
            ));
        }
        *n += 1;
        Ok(Self {
            streams: streams.clone(),
            user,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
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
    /// The caller's notifications, newest first.
    pub async fn list_notifications(
        &self,
        who: &Principal,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        page.validate()?;
        self.inner.store.list_notifications(who.id, page).await
    }

    /// The caller's new notifications as they are delivered by this process, for
    /// live streams (Server-Sent Events). Only the caller's own ever appear. A
    /// stream that falls far behind skips ahead; `list_notifications` has all.
    ///
    /// A user holds at most [`EngineConfig::max_streams_per_user`](super::EngineConfig::max_streams_per_user) streams at
    /// once: one more is [`Error::RateLimited`] until one is dropped. The
    /// stream is fused: polled again after its end, it stays ended.
    pub fn subscribe_notifications(
        &self,
        who: &Principal,
    ) -> Result<impl futures::stream::FusedStream<Item = Notification> + Send + 'static + use<>>
    {
        use futures::StreamExt;
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        let slot = StreamSlot::take(
            &self.inner.streams,
            who.id,
            self.inner.config.max_streams_per_user,
        )?;
        let me = who.id;
        let rx = self.inner.live.subscribe();
        Ok(
            futures::stream::unfold((rx, slot), move |(mut rx, slot)| async move {
                loop {
                    match rx.recv().await {
                        Ok(n) if n.user == me => return Some((n, (rx, slot))),
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            continue;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .fuse(),
        )
    }

    /// The live stream of the bearer of `token` ([`Engine::subscribe_notifications`]
    /// after [`Engine::authenticate`]), which ends when the token expires: a
    /// stream never outlives the credentials that opened it.
    pub async fn open_notification_stream(
        &self,
        token: &str,
    ) -> Result<impl futures::stream::FusedStream<Item = Notification> + Send + 'static + use<>>
    {
        let claims = self.inner.keys.verify(token, self.now())?;
        let who = self.principal_of(&claims).await?;
        let events = self.subscribe_notifications(&who)?;
        let left_ms = claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(self.now().timestamp_millis())
            .max(0);
        let expiry = tokio::time::sleep(Duration::from_millis(left_ms as u64));
        Ok(futures::StreamExt::fuse(futures::StreamExt::take_until(
            events, expiry,
        )))
    }

    /// Dead-lettered notifications, oldest first, at most `limit` (1..=500):
    /// deliveries that failed in a way retrying cannot fix, or ran out of
    /// attempts (admin).
    pub async fn list_dead_letters(&self, who: &Principal, limit: u32) -> Result<Vec<DeadLetter>> {
        rbac::require(who.role, Permission::ManageDeadLetters)?;
        PageRequest::first(limit).validate()?;
        self.inner.queue.dead_letters(limit as usize).await
    }

    /// Hands the dead-lettered notification `key` to the workers again, with
    /// fresh attempts (admin; audited as `DEAD_LETTER_REDRIVEN`). Channels
    /// that had already delivered it do not send it again. `NotFound` when no
    /// dead letter has this key.
    pub async fn redrive_dead_letter(&self, who: &Principal, key: &str) -> Result<()> {
        rbac::require(who.role, Permission::ManageDeadLetters)?;
        if !self.inner.queue.redrive(key).await? {
            return Err(Error::NotFound {
                entity: "dead letter",
            });
        }
        let target: String = key.chars().take(200).collect();
        let audit = AuditEntry::new(
            AuditAction::DeadLetterRedriven,
            Actor::User(who.id),
            Some(target.clone()),
            messages::dead_letter_redriven(&target),
            self.now(),
        );
        self.commit(Change {
            audit: vec![audit],
            ..Change::default()
        })
        .await
    }

    /// Marks one of the caller's notifications read; anybody else's is `NotFound`.
    pub async fn mark_notification_read(
        &self,
        who: &Principal,
        id: NotificationId,
    ) -> Result<Notification> {
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        self.inner.store.mark_read(who.id, id).await
    }

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
        for job in jobs {
            if is_lost(job) {
                continue;
            }
            match self.deliver(&job.payload, || is_lost(job)).await {
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

    /// Delivers one intent: the in-app record (idempotent), then every channel,
    /// stopping before a channel once `lost()` says another worker holds the
    /// job now. Returns whether the in-app record was new.
    async fn deliver(&self, payload: &serde_json::Value, lost: impl Fn() -> bool) -> Result<bool> {
        // A payload that is not an intent never will be: no retry helps.
        let intent: NotificationIntent = serde_json::from_value(payload.clone())
            .map_err(|e| Error::undeliverable("queue", messages::not_an_intent(e)))?;
        let n = Notification::from_intent(&intent, self.now());
        let inserted = match self.inner.store.insert_notification(&n).await {
            Ok(inserted) => {
                self.count_delivery(crate::metrics::IN_APP, !inserted, Ok(()))?;
                inserted
            }
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
            let sent = channel.deliver(&n).await;
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
    pub(super) fn count_delivery(
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
