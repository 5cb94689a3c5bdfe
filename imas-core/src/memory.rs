//! In-memory backends: [`MemoryStore`] implements every store port and
//! [`MemoryQueue`] the queue port. They are complete products for embedding,
//! examples and single-process deployments that need no persistence; they pass the
//! same conformance suites as the database backends.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::model::{
    AuditEntry, AuditFilter, AuditId, Cursor, Incident, IncidentFilter, IncidentId, Notification,
    NotificationId, OutboxEntry, Page, PageRequest, Role, Timestamp, User, UserId, millis, plus,
};
use crate::ports::{
    AuditStore, Change, ChangeStore, Clock, DeadLetter, FailOutcome, Generation, Generations,
    IncidentStore, IncidentWrite, Job, NewJob, NotificationStore, OutboxStore, Queue, QueueStats,
    RetryPolicy, SystemClock, UserStore, UserWrite,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-written: every
    // mutation validates first and then applies infallible inserts.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Collects one newest-first page from an iterator of `(created_at, id, item)`
/// already in descending order and past the cursor.
fn page_of<T>(mut items: impl Iterator<Item = (Cursor, T)>, limit: u32) -> Page<T> {
    let mut out = Vec::with_capacity(limit as usize);
    let mut last = None;
    for (pos, item) in items.by_ref() {
        if out.len() == limit as usize {
            return Page {
                items: out,
                next: last,
            };
        }
        last = Some(pos);
        out.push(item);
    }
    Page {
        items: out,
        next: None,
    }
}

/// Every store port in memory, behind one mutex (never held across an await).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    generations: Generations,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<UserId, User>,
    usernames: HashMap<String, UserId>,
    emails: HashMap<String, UserId>,
    incidents: HashMap<IncidentId, Incident>,
    by_created: BTreeSet<(Timestamp, IncidentId)>,
    due: BTreeSet<(Timestamp, IncidentId)>,
    audit: BTreeMap<(Timestamp, AuditId), AuditEntry>,
    audit_ids: HashSet<AuditId>,
    notifications: HashMap<NotificationId, Notification>,
    notification_keys: HashSet<String>,
    by_user: HashMap<UserId, BTreeSet<(Timestamp, NotificationId)>>,
    channel_deliveries: HashSet<(String, String)>,
    outbox: HashMap<String, OutboxEntry>,
    outbox_seen: HashSet<String>,
    outbox_ready: BTreeSet<(Timestamp, u64, String)>,
    outbox_seq: HashMap<String, u64>,
    next_seq: u64,
    /// Delivered entries by the end of their last lease, for retention.
    outbox_done: BTreeSet<(Timestamp, String)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Inner {
    fn index_incident(&mut self, i: &Incident) {
        self.by_created.insert((i.created_at, i.id));
        if let Some(at) = i.next_due_at {
            self.due.insert((at, i.id));
        }
    }

    fn unindex_incident(&mut self, i: &Incident) {
        self.by_created.remove(&(i.created_at, i.id));
        if let Some(at) = i.next_due_at {
            self.due.remove(&(at, i.id));
        }
    }

    fn check_version(&self, id: IncidentId, expected: i64) -> Result<()> {
        match self.incidents.get(&id) {
            None => Err(Error::NotFound { entity: "incident" }),
            Some(cur) if cur.version != expected => Err(Error::conflict(format!(
                "incident {id} was modified concurrently (version {} now, {expected} expected); reload and retry",
                cur.version
            ))),
            Some(_) => Ok(()),
        }
    }

    fn validate(&self, change: &Change) -> Result<()> {
        match &change.user {
            Some(UserWrite::Insert(u)) => {
                if self.users.contains_key(&u.id) {
                    return Err(Error::conflict("user id already exists"));
                }
                if self.usernames.contains_key(&u.username) {
                    return Err(Error::conflict("username already taken"));
                }
                if self.emails.contains_key(&u.email) {
                    return Err(Error::conflict("email already registered"));
                }
            }
            Some(UserWrite::SetRole { id, .. }) if !self.users.contains_key(id) => {
                return Err(Error::NotFound { entity: "user" });
            }
            _ => {}
        }
        match &change.incident {
            Some(IncidentWrite::Insert(i)) if self.incidents.contains_key(&i.id) => {
                return Err(Error::conflict("incident id already exists"));
            }
            Some(IncidentWrite::Update {
                incident,
                expected_version,
            }) => self.check_version(incident.id, *expected_version)?,
            Some(IncidentWrite::Delete {
                id,
                expected_version,
            }) => self.check_version(*id, *expected_version)?,
            _ => {}
        }
        let mut ids = HashSet::new();
        for e in &change.audit {
            if self.audit_ids.contains(&e.id) || !ids.insert(e.id) {
                return Err(Error::conflict(format!(
                    "audit entry {} already exists",
                    e.id
                )));
            }
        }
        Ok(())
    }

    fn apply(&mut self, change: Change) {
        match change.user {
            Some(UserWrite::Insert(u)) => {
                self.usernames.insert(u.username.clone(), u.id);
                self.emails.insert(u.email.clone(), u.id);
                self.users.insert(u.id, u);
            }
            Some(UserWrite::SetRole { id, role }) => {
                if let Some(u) = self.users.get_mut(&id) {
                    u.role = role;
                }
            }
            None => {}
        }
        match change.incident {
            Some(IncidentWrite::Insert(i)) | Some(IncidentWrite::Update { incident: i, .. }) => {
                if let Some(old) = self.incidents.remove(&i.id) {
                    self.unindex_incident(&old);
                }
                self.index_incident(&i);
                self.incidents.insert(i.id, i);
            }
            Some(IncidentWrite::Delete { id, .. }) => {
                if let Some(old) = self.incidents.remove(&id) {
                    self.unindex_incident(&old);
                }
            }
            None => {}
        }
        for e in change.audit {
            self.audit_ids.insert(e.id);
            self.audit.insert((e.created_at, e.id), e);
        }
        for intent in change.outbox {
            if !self.outbox_seen.insert(intent.key.clone()) {
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let key = intent.key.clone();
            let available_at = intent.created_at;
            self.outbox_ready.insert((available_at, seq, key.clone()));
            self.outbox_seq.insert(key.clone(), seq);
            self.outbox.insert(
                key,
                OutboxEntry {
                    intent,
                    attempts: 0,
                    available_at,
                },
            );
        }
    }
}

#[async_trait]
impl ChangeStore for MemoryStore {
    async fn commit(&self, change: Change) -> Result<()> {
        let mut inner = lock(&self.inner);
        inner.validate(&change)?;
        self.generations.bump_for(&change);
        inner.apply(change);
        Ok(())
    }

    fn generation(&self) -> Option<Generation> {
        self.generations.current()
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        Ok(lock(&self.inner).users.get(&id).cloned())
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let inner = lock(&self.inner);
        Ok(inner
            .usernames
            .get(username)
            .and_then(|id| inner.users.get(id))
            .cloned())
    }

    async fn users_with_role(&self, role: Role) -> Result<Vec<User>> {
        let inner = lock(&self.inner);
        let mut users: Vec<User> = inner
            .users
            .values()
            .filter(|u| u.role == role)
            .cloned()
            .collect();
        users.sort_by_key(|u| (u.created_at, u.id));
        Ok(users)
    }
}

#[async_trait]
impl IncidentStore for MemoryStore {
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        Ok(lock(&self.inner).incidents.get(&id).cloned())
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        let inner = lock(&self.inner);
        let items = inner
            .by_created
            .iter()
            .rev()
            .filter(|(at, id)| page.cursor.is_none_or(|c| c.precedes(*at, id.0)))
            .filter_map(|(at, id)| {
                inner
                    .incidents
                    .get(id)
                    .map(|i| (Cursor::after(*at, id.0), i))
            })
            .filter(|(_, i)| filter.matches(i))
            .map(|(c, i)| (c, i.clone()));
        Ok(page_of(items, page.limit))
    }

    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64> {
        Ok(lock(&self.inner)
            .incidents
            .values()
            .filter(|i| filter.matches(i))
            .count() as u64)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let due: Vec<(Timestamp, IncidentId)> = inner
            .due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit as usize)
            .copied()
            .collect();
        // A claim moves the incident's due time to the end of the lease: nobody
        // else sees it as due until then, and if the claimer dies it comes back.
        let until = plus(now, lease);
        let mut out = Vec::with_capacity(due.len());
        for slot in due {
            inner.due.remove(&slot);
            if let Some(i) = inner.incidents.get_mut(&slot.1) {
                i.next_due_at = Some(until);
                out.push(i.clone());
                inner.due.insert((until, slot.1));
            }
        }
        self.generations.bump(false, !out.is_empty());
        Ok(out)
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        Ok(lock(&self.inner).due.first().map(|(at, _)| *at))
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let inner = lock(&self.inner);
        let items = inner
            .audit
            .iter()
            .rev()
            .filter(|((at, id), _)| page.cursor.is_none_or(|c| c.precedes(*at, id.0)))
            .filter(|(_, e)| filter.matches(e))
            .map(|((at, id), e)| (Cursor::after(*at, id.0), e.clone()));
        Ok(page_of(items, page.limit))
    }
}

#[async_trait]
impl NotificationStore for MemoryStore {
    async fn insert_notification(&self, n: &Notification) -> Result<bool> {
        let mut inner = lock(&self.inner);
        if inner.notification_keys.contains(&n.key) {
            return Ok(false);
        }
        if inner.notifications.contains_key(&n.id) {
            return Err(Error::conflict("notification id already exists"));
        }
        inner.notification_keys.insert(n.key.clone());
        inner
            .by_user
            .entry(n.user)
            .or_default()
            .insert((n.created_at, n.id));
        inner.notifications.insert(n.id, n.clone());
        Ok(true)
    }

    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        let inner = lock(&self.inner);
        let Some(ids) = inner.by_user.get(&user) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let items = ids
            .iter()
            .rev()
            .filter(|(at, id)| page.cursor.is_none_or(|c| c.precedes(*at, id.0)))
            .filter_map(|(at, id)| {
                inner
                    .notifications
                    .get(id)
                    .map(|n| (Cursor::after(*at, id.0), n.clone()))
            });
        Ok(page_of(items, page.limit))
    }

    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification> {
        let mut inner = lock(&self.inner);
        match inner.notifications.get_mut(&id) {
            Some(n) if n.user == user => {
                n.read = true;
                Ok(n.clone())
            }
            _ => Err(Error::NotFound {
                entity: "notification",
            }),
        }
    }

    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool> {
        Ok(lock(&self.inner)
            .channel_deliveries
            .insert((key.to_string(), channel.to_string())))
    }

    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool> {
        Ok(lock(&self.inner)
            .channel_deliveries
            .contains(&(key.to_string(), channel.to_string())))
    }
}

#[async_trait]
impl OutboxStore for MemoryStore {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let due: Vec<(Timestamp, u64, String)> = inner
            .outbox_ready
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(limit as usize)
            .cloned()
            .collect();
        let until = plus(now, lease);
        let mut out = Vec::with_capacity(due.len());
        for slot in due {
            inner.outbox_ready.remove(&slot);
            let (_, seq, key) = slot;
            if let Some(entry) = inner.outbox.get_mut(&key) {
                entry.attempts += 1;
                entry.available_at = until;
                out.push(entry.clone());
                inner.outbox_ready.insert((until, seq, key));
            }
        }
        Ok(out)
    }

    async fn complete_outbox(&self, keys: &[String], _now: Timestamp) -> Result<()> {
        let mut inner = lock(&self.inner);
        for key in keys {
            if let Some(entry) = inner.outbox.remove(key) {
                let seq = inner.outbox_seq.remove(key).unwrap_or_default();
                inner
                    .outbox_ready
                    .remove(&(entry.available_at, seq, key.clone()));
                inner.outbox_done.insert((entry.available_at, key.clone()));
            }
        }
        Ok(())
    }

    async fn pending_outbox(&self) -> Result<u64> {
        Ok(lock(&self.inner).outbox.len() as u64)
    }

    async fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>> {
        Ok(lock(&self.inner)
            .outbox
            .values()
            .map(|e| e.intent.created_at)
            .min())
    }

    async fn prune_delivered(&self, before: Timestamp, limit: u32) -> Result<crate::ports::Pruned> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let old: Vec<(Timestamp, String)> = inner
            .outbox_done
            .iter()
            .take_while(|(at, _)| *at < before)
            .take(limit as usize)
            .cloned()
            .collect();
        let mut keys = HashSet::with_capacity(old.len());
        for slot in old {
            inner.outbox_done.remove(&slot);
            inner.outbox_seen.remove(&slot.1);
            keys.insert(slot.1);
        }
        let receipts = inner.channel_deliveries.len();
        if !keys.is_empty() {
            inner.channel_deliveries.retain(|(k, _)| !keys.contains(k));
        }
        Ok(crate::ports::Pruned {
            outbox: keys.len() as u64,
            receipts: (receipts - inner.channel_deliveries.len()) as u64,
        })
    }
}

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
