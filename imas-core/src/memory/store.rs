//! [`MemoryStore`]: every store port over maps behind one mutex, committing each
//! change all at once; the reference the SQL and Mongo stores are checked against.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::{
    AuditEntry, AuditFilter, AuditId, Cursor, Incident, IncidentFilter, IncidentId, Notification,
    NotificationId, OutboxEntry, Page, PageRequest, Role, Timestamp, User, UserId, plus,
};
use crate::ports::{
    AuditStore, Change, ChangeStore, Generation, Generations, IncidentStore, IncidentWrite,
    NotificationStore, OutboxStore, UserStore, UserWrite,
};

use super::lock;

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

// Scaffolding of issue 17 (services, integrations, alerts): replaced by the
// memory store's real implementation before the issue is done.
#[async_trait]
impl crate::ports::ServiceStore for MemoryStore {
    async fn get_service(
        &self,
        _id: crate::model::ServiceId,
    ) -> Result<Option<crate::model::Service>> {
        todo!("issue 17: memory store")
    }
    async fn list_services(&self, _page: PageRequest) -> Result<Page<crate::model::Service>> {
        todo!("issue 17: memory store")
    }
}

#[async_trait]
impl crate::ports::IntegrationStore for MemoryStore {
    async fn get_integration(
        &self,
        _id: crate::model::IntegrationId,
    ) -> Result<Option<crate::model::Integration>> {
        todo!("issue 17: memory store")
    }
    async fn integration_by_key_hash(
        &self,
        _key_hash: &str,
    ) -> Result<Option<crate::model::Integration>> {
        todo!("issue 17: memory store")
    }
    async fn list_integrations(
        &self,
        _service: crate::model::ServiceId,
    ) -> Result<Vec<crate::model::Integration>> {
        todo!("issue 17: memory store")
    }
}

#[async_trait]
impl crate::ports::AlertStore for MemoryStore {
    async fn get_alert(&self, _id: crate::model::AlertId) -> Result<Option<crate::model::Alert>> {
        todo!("issue 17: memory store")
    }
    async fn open_alert(
        &self,
        _service: crate::model::ServiceId,
        _dedup_key: &str,
    ) -> Result<Option<crate::model::Alert>> {
        todo!("issue 17: memory store")
    }
    async fn list_alerts(
        &self,
        _filter: &crate::model::AlertFilter,
        _page: PageRequest,
    ) -> Result<Page<crate::model::Alert>> {
        todo!("issue 17: memory store")
    }
    async fn repeat_trigger(
        &self,
        _service: crate::model::ServiceId,
        _dedup_key: &str,
        _at: Timestamp,
    ) -> Result<Option<crate::model::Alert>> {
        todo!("issue 17: memory store")
    }
}
