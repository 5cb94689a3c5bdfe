//! [`MemoryStore`]: every store port over maps behind one mutex, committing each
//! change all at once; the reference the SQL and Mongo stores are checked against.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::{
    Alert, AlertFilter, AlertId, AlertStatus, AuditEntry, AuditFilter, AuditId, Cursor,
    EscalationPolicy, EscalationPolicyId, Incident, IncidentFilter, IncidentId, Integration,
    IntegrationId, Notification, NotificationId, OutboxEntry, Page, PageRequest, Role, Rotation,
    RotationId, Schedule, ScheduleId, Service, ServiceId, Timestamp, User, UserId, plus,
};
use crate::ports::{
    AlertStore, AlertWrite, AuditStore, Change, ChangeStore, EscalationPolicyStore,
    EscalationPolicyWrite, Generation, Generations, IncidentStore, IncidentWrite, IntegrationStore,
    IntegrationWrite, NotificationStore, OutboxStore, RotationStore, RotationWrite, ScheduleStore,
    ScheduleWrite, ServiceStore, ServiceWrite, UserStore, UserWrite,
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

/// An entity kept by id with a version and a creation time: what the
/// rotation, schedule and escalation-policy tables have in common.
trait Versioned: Clone {
    /// Its id as a UUID (the keyset tie-breaker).
    type Id: Copy + Ord + std::hash::Hash + std::fmt::Display;
    /// What `NotFound` names.
    const ENTITY: &'static str;
    fn id(&self) -> Self::Id;
    fn uuid(id: Self::Id) -> uuid::Uuid;
    fn created_at(&self) -> Timestamp;
    fn version(&self) -> i64;
}

macro_rules! versioned {
    ($ty:ty, $id:ty, $entity:literal) => {
        impl Versioned for $ty {
            type Id = $id;
            const ENTITY: &'static str = $entity;
            fn id(&self) -> $id {
                self.id
            }
            fn uuid(id: $id) -> uuid::Uuid {
                id.0
            }
            fn created_at(&self) -> Timestamp {
                self.created_at
            }
            fn version(&self) -> i64 {
                self.version
            }
        }
    };
}
versioned!(Rotation, RotationId, "rotation");
versioned!(Schedule, ScheduleId, "schedule");
versioned!(EscalationPolicy, EscalationPolicyId, "escalation policy");

/// A table of [`Versioned`] entities with its newest-first index.
#[derive(Debug)]
struct Table<T: Versioned> {
    rows: HashMap<T::Id, T>,
    by_created: BTreeSet<(Timestamp, T::Id)>,
}

impl<T: Versioned> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            by_created: BTreeSet::new(),
        }
    }
}

impl<T: Versioned> Table<T> {
    fn get(&self, id: T::Id) -> Option<T> {
        self.rows.get(&id).cloned()
    }

    fn page(&self, page: PageRequest) -> Page<T> {
        let items = self
            .by_created
            .iter()
            .rev()
            .filter(|(at, id)| page.cursor.is_none_or(|c| c.precedes(*at, T::uuid(*id))))
            .filter_map(|(at, id)| {
                self.rows
                    .get(id)
                    .map(|r| (Cursor::after(*at, T::uuid(*id)), r.clone()))
            });
        page_of(items, page.limit)
    }

    fn check_insert(&self, row: &T) -> Result<()> {
        if self.rows.contains_key(&row.id()) {
            return Err(Error::conflict(format!("{} id already exists", T::ENTITY)));
        }
        Ok(())
    }

    fn check_version(&self, id: T::Id, expected: i64) -> Result<()> {
        match self.rows.get(&id) {
            None => Err(Error::NotFound { entity: T::ENTITY }),
            Some(cur) if cur.version() != expected => Err(Error::conflict(format!(
                "{} {id} was modified concurrently (version {} now, {expected} expected); reload and retry",
                T::ENTITY,
                cur.version()
            ))),
            Some(_) => Ok(()),
        }
    }

    fn put(&mut self, row: T) {
        if let Some(old) = self.rows.remove(&row.id()) {
            self.by_created.remove(&(old.created_at(), old.id()));
        }
        self.by_created.insert((row.created_at(), row.id()));
        self.rows.insert(row.id(), row);
    }

    fn delete(&mut self, id: T::Id) {
        if let Some(old) = self.rows.remove(&id) {
            self.by_created.remove(&(old.created_at(), old.id()));
        }
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
    /// Open incidents with a group key, by (service, group key): the unique
    /// index on open groups.
    open_groups: HashMap<(ServiceId, String), IncidentId>,
    services: HashMap<ServiceId, Service>,
    service_names: HashMap<String, ServiceId>,
    services_by_created: BTreeSet<(Timestamp, ServiceId)>,
    integrations: HashMap<IntegrationId, Integration>,
    integration_hashes: HashMap<String, IntegrationId>,
    alerts: HashMap<AlertId, Alert>,
    alerts_by_started: BTreeSet<(Timestamp, AlertId)>,
    /// Open alerts by (service, dedup key): the unique index on open alerts.
    open_alerts: HashMap<(ServiceId, String), AlertId>,
    users_by_created: BTreeSet<(Timestamp, UserId)>,
    rotations: Table<Rotation>,
    schedules: Table<Schedule>,
    escalation_policies: Table<EscalationPolicy>,
}

/// The slot an incident takes in the unique index on open groups, if any.
fn group_slot(i: &Incident) -> Option<(ServiceId, String)> {
    match (i.service_id, &i.group_key) {
        (Some(s), Some(g)) if !i.status.is_done() => Some((s, g.clone())),
        _ => None,
    }
}

/// An alert's status after a [`AlertWrite::SetStatus`] to `to` from `from`
/// (the port's rules: acknowledge only from triggered, resolve from open).
fn next_alert_status(from: AlertStatus, to: AlertStatus) -> AlertStatus {
    match (from, to) {
        (AlertStatus::Triggered, AlertStatus::Acknowledged) => AlertStatus::Acknowledged,
        (AlertStatus::Triggered | AlertStatus::Acknowledged, AlertStatus::Resolved) => {
            AlertStatus::Resolved
        }
        _ => from,
    }
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
        if let Some(slot) = group_slot(i) {
            self.open_groups.insert(slot, i.id);
        }
    }

    fn unindex_incident(&mut self, i: &Incident) {
        self.by_created.remove(&(i.created_at, i.id));
        if let Some(at) = i.next_due_at {
            self.due.remove(&(at, i.id));
        }
        if let Some(slot) = group_slot(i)
            && self.open_groups.get(&slot) == Some(&i.id)
        {
            self.open_groups.remove(&slot);
        }
    }

    fn check_service_version(&self, id: ServiceId, expected: i64) -> Result<()> {
        match self.services.get(&id) {
            None => Err(Error::NotFound { entity: "service" }),
            Some(cur) if cur.version != expected => Err(Error::conflict(format!(
                "service {id} was modified concurrently (version {} now, {expected} expected); reload and retry",
                cur.version
            ))),
            Some(_) => Ok(()),
        }
    }

    /// The incident write of a change against the unique index on open groups.
    fn validate_group(&self, change: &Change) -> Result<()> {
        let incident = match &change.incident {
            Some(IncidentWrite::Insert(i)) | Some(IncidentWrite::Update { incident: i, .. }) => i,
            _ => return Ok(()),
        };
        if let Some(slot) = group_slot(incident)
            && self
                .open_groups
                .get(&slot)
                .is_some_and(|id| *id != incident.id)
        {
            return Err(Error::conflict(format!(
                "service {} already has an open incident for this alert group",
                slot.0
            )));
        }
        Ok(())
    }

    fn validate_service(&self, change: &Change) -> Result<()> {
        match &change.service {
            Some(ServiceWrite::Insert(s)) => {
                if self.services.contains_key(&s.id) {
                    return Err(Error::conflict("service id already exists"));
                }
                if self.service_names.contains_key(&s.name) {
                    return Err(Error::conflict(format!(
                        "a service named {:?} already exists",
                        s.name
                    )));
                }
            }
            Some(ServiceWrite::Update {
                service,
                expected_version,
            }) => {
                self.check_service_version(service.id, *expected_version)?;
                if self
                    .service_names
                    .get(&service.name)
                    .is_some_and(|id| *id != service.id)
                {
                    return Err(Error::conflict(format!(
                        "a service named {:?} already exists",
                        service.name
                    )));
                }
            }
            Some(ServiceWrite::Delete {
                id,
                expected_version,
            }) => self.check_service_version(*id, *expected_version)?,
            None => {}
        }
        Ok(())
    }

    fn validate_integrations(&self, change: &Change) -> Result<()> {
        let mut ids = HashSet::new();
        let mut hashes = HashSet::new();
        for w in &change.integrations {
            match w {
                IntegrationWrite::Insert(i) => {
                    if self.integrations.contains_key(&i.id) || !ids.insert(i.id) {
                        return Err(Error::conflict("integration id already exists"));
                    }
                    if self.integration_hashes.contains_key(&i.key_hash)
                        || !hashes.insert(i.key_hash.as_str())
                    {
                        return Err(Error::conflict("integration key already exists"));
                    }
                }
                IntegrationWrite::Revoke { id, .. } => {
                    if !self.integrations.contains_key(id) && !ids.contains(id) {
                        return Err(Error::NotFound {
                            entity: "integration",
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The alert writes in order, against the unique index on open alerts as
    /// it will be after each of them.
    fn validate_alerts(&self, change: &Change) -> Result<()> {
        // What this change has done so far to statuses and open slots.
        let mut status: HashMap<AlertId, (ServiceId, &str, AlertStatus)> = HashMap::new();
        let mut slots: HashMap<(ServiceId, &str), Option<AlertId>> = HashMap::new();
        for w in &change.alerts {
            match w {
                AlertWrite::Insert(a) => {
                    if self.alerts.contains_key(&a.id) || status.contains_key(&a.id) {
                        return Err(Error::conflict("alert id already exists"));
                    }
                    if a.status.is_open() {
                        let key = (a.service_id, a.dedup_key.as_str());
                        let taken = match slots.get(&key) {
                            Some(slot) => slot.is_some(),
                            None => self
                                .open_alerts
                                .contains_key(&(a.service_id, a.dedup_key.clone())),
                        };
                        if taken {
                            return Err(Error::conflict(format!(
                                "service {} already has an open alert with this dedup key",
                                a.service_id
                            )));
                        }
                        slots.insert(key, Some(a.id));
                    }
                    status.insert(a.id, (a.service_id, a.dedup_key.as_str(), a.status));
                }
                AlertWrite::SetStatus { id, status: to, .. } => {
                    let current = match status.get(id) {
                        Some(s) => *s,
                        None => match self.alerts.get(id) {
                            Some(a) => (a.service_id, a.dedup_key.as_str(), a.status),
                            None => return Err(Error::NotFound { entity: "alert" }),
                        },
                    };
                    let (service, key, from) = current;
                    let next = next_alert_status(from, *to);
                    if from.is_open() && !next.is_open() {
                        slots.insert((service, key), None);
                    }
                    status.insert(*id, (service, key, next));
                }
            }
        }
        Ok(())
    }

    fn apply_service(&mut self, write: ServiceWrite) {
        match write {
            ServiceWrite::Insert(s) | ServiceWrite::Update { service: s, .. } => {
                if let Some(old) = self.services.remove(&s.id) {
                    self.service_names.remove(&old.name);
                    self.services_by_created.remove(&(old.created_at, old.id));
                }
                self.service_names.insert(s.name.clone(), s.id);
                self.services_by_created.insert((s.created_at, s.id));
                self.services.insert(s.id, s);
            }
            ServiceWrite::Delete { id, .. } => {
                if let Some(old) = self.services.remove(&id) {
                    self.service_names.remove(&old.name);
                    self.services_by_created.remove(&(old.created_at, old.id));
                }
            }
        }
    }

    fn apply_integration(&mut self, write: IntegrationWrite) {
        match write {
            IntegrationWrite::Insert(i) => {
                self.integration_hashes.insert(i.key_hash.clone(), i.id);
                self.integrations.insert(i.id, i);
            }
            IntegrationWrite::Revoke { id, at } => {
                if let Some(i) = self.integrations.get_mut(&id) {
                    i.revoked_at.get_or_insert(at);
                }
            }
        }
    }

    fn apply_alert(&mut self, write: AlertWrite) {
        match write {
            AlertWrite::Insert(a) => {
                if a.status.is_open() {
                    self.open_alerts
                        .insert((a.service_id, a.dedup_key.clone()), a.id);
                }
                self.alerts_by_started.insert((a.started_at, a.id));
                self.alerts.insert(a.id, a);
            }
            AlertWrite::SetStatus { id, status, at } => {
                let Some(a) = self.alerts.get_mut(&id) else {
                    return;
                };
                let next = next_alert_status(a.status, status);
                if next == a.status {
                    return;
                }
                a.status = next;
                if !next.is_open() {
                    a.resolved_at = Some(at);
                    let slot = (a.service_id, a.dedup_key.clone());
                    if self.open_alerts.get(&slot) == Some(&id) {
                        self.open_alerts.remove(&slot);
                    }
                }
            }
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
            Some(UserWrite::UpdateProfile(u)) => {
                if !self.users.contains_key(&u.id) {
                    return Err(Error::NotFound { entity: "user" });
                }
                if self.emails.get(&u.email).is_some_and(|id| *id != u.id) {
                    return Err(Error::conflict("email already registered"));
                }
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
        self.validate_group(change)?;
        self.validate_service(change)?;
        self.validate_integrations(change)?;
        self.validate_alerts(change)?;
        self.validate_on_call(change)?;
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

    /// The rotation, schedule and escalation-policy writes of a change.
    fn validate_on_call(&self, change: &Change) -> Result<()> {
        match &change.rotation {
            Some(RotationWrite::Insert(r)) => self.rotations.check_insert(r)?,
            Some(RotationWrite::Update {
                rotation,
                expected_version,
            }) => self
                .rotations
                .check_version(rotation.id, *expected_version)?,
            Some(RotationWrite::Delete {
                id,
                expected_version,
            }) => self.rotations.check_version(*id, *expected_version)?,
            None => {}
        }
        match &change.schedule {
            Some(ScheduleWrite::Insert(s)) => self.schedules.check_insert(s)?,
            Some(ScheduleWrite::Update {
                schedule,
                expected_version,
            }) => self
                .schedules
                .check_version(schedule.id, *expected_version)?,
            Some(ScheduleWrite::Delete {
                id,
                expected_version,
            }) => self.schedules.check_version(*id, *expected_version)?,
            None => {}
        }
        match &change.escalation_policy {
            Some(EscalationPolicyWrite::Insert(p)) => self.escalation_policies.check_insert(p)?,
            Some(EscalationPolicyWrite::Update {
                escalation_policy,
                expected_version,
            }) => self
                .escalation_policies
                .check_version(escalation_policy.id, *expected_version)?,
            Some(EscalationPolicyWrite::Delete {
                id,
                expected_version,
            }) => self
                .escalation_policies
                .check_version(*id, *expected_version)?,
            None => {}
        }
        Ok(())
    }

    fn apply_on_call(
        &mut self,
        rotation: Option<RotationWrite>,
        schedule: Option<ScheduleWrite>,
        policy: Option<EscalationPolicyWrite>,
    ) {
        match rotation {
            Some(RotationWrite::Insert(r)) => self.rotations.put(r),
            Some(RotationWrite::Update { rotation, .. }) => self.rotations.put(rotation),
            Some(RotationWrite::Delete { id, .. }) => self.rotations.delete(id),
            None => {}
        }
        match schedule {
            Some(ScheduleWrite::Insert(s)) => self.schedules.put(s),
            Some(ScheduleWrite::Update { schedule, .. }) => self.schedules.put(schedule),
            Some(ScheduleWrite::Delete { id, .. }) => self.schedules.delete(id),
            None => {}
        }
        match policy {
            Some(EscalationPolicyWrite::Insert(p)) => self.escalation_policies.put(p),
            Some(EscalationPolicyWrite::Update {
                escalation_policy, ..
            }) => self.escalation_policies.put(escalation_policy),
            Some(EscalationPolicyWrite::Delete { id, .. }) => self.escalation_policies.delete(id),
            None => {}
        }
    }

    fn apply(&mut self, change: Change) {
        match change.user {
            Some(UserWrite::Insert(u)) => {
                self.usernames.insert(u.username.clone(), u.id);
                self.emails.insert(u.email.clone(), u.id);
                self.users_by_created.insert((u.created_at, u.id));
                self.users.insert(u.id, u);
            }
            Some(UserWrite::SetRole { id, role }) => {
                if let Some(u) = self.users.get_mut(&id) {
                    u.role = role;
                }
            }
            Some(UserWrite::UpdateProfile(new)) => {
                if let Some(u) = self.users.get_mut(&new.id) {
                    if u.email != new.email {
                        self.emails.remove(&u.email);
                        self.emails.insert(new.email.clone(), u.id);
                    }
                    u.name = new.name;
                    u.email = new.email;
                    u.time_zone = new.time_zone;
                    u.password_hash = new.password_hash;
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
        if let Some(write) = change.service {
            self.apply_service(write);
        }
        self.apply_on_call(change.rotation, change.schedule, change.escalation_policy);
        for write in change.integrations {
            self.apply_integration(write);
        }
        for write in change.alerts {
            self.apply_alert(write);
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

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        let inner = lock(&self.inner);
        let items = inner
            .users_by_created
            .iter()
            .rev()
            .filter(|(at, id)| page.cursor.is_none_or(|c| c.precedes(*at, id.0)))
            .filter_map(|(at, id)| {
                inner
                    .users
                    .get(id)
                    .map(|u| (Cursor::after(*at, id.0), u.clone()))
            });
        Ok(page_of(items, page.limit))
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

#[async_trait]
impl ServiceStore for MemoryStore {
    async fn get_service(&self, id: ServiceId) -> Result<Option<Service>> {
        Ok(lock(&self.inner).services.get(&id).cloned())
    }

    async fn list_services(&self, page: PageRequest) -> Result<Page<Service>> {
        let inner = lock(&self.inner);
        let items = inner
            .services_by_created
            .iter()
            .rev()
            .filter(|(at, id)| page.cursor.is_none_or(|c| c.precedes(*at, id.0)))
            .filter_map(|(at, id)| {
                inner
                    .services
                    .get(id)
                    .map(|s| (Cursor::after(*at, id.0), s.clone()))
            });
        Ok(page_of(items, page.limit))
    }
}

#[async_trait]
impl IntegrationStore for MemoryStore {
    async fn get_integration(&self, id: IntegrationId) -> Result<Option<Integration>> {
        Ok(lock(&self.inner).integrations.get(&id).cloned())
    }

    async fn integration_by_key_hash(&self, key_hash: &str) -> Result<Option<Integration>> {
        let inner = lock(&self.inner);
        Ok(inner
            .integration_hashes
            .get(key_hash)
            .and_then(|id| inner.integrations.get(id))
            .cloned())
    }

    async fn list_integrations(&self, service: ServiceId) -> Result<Vec<Integration>> {
        let inner = lock(&self.inner);
        let mut out: Vec<Integration> = inner
            .integrations
            .values()
            .filter(|i| i.service_id == service && i.revoked_at.is_none())
            .cloned()
            .collect();
        out.sort_by_key(|i| (i.created_at, i.id));
        Ok(out)
    }
}

#[async_trait]
impl AlertStore for MemoryStore {
    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>> {
        Ok(lock(&self.inner).alerts.get(&id).cloned())
    }

    async fn open_alert(&self, service: ServiceId, dedup_key: &str) -> Result<Option<Alert>> {
        let inner = lock(&self.inner);
        Ok(inner
            .open_alerts
            .get(&(service, dedup_key.to_string()))
            .and_then(|id| inner.alerts.get(id))
            .cloned())
    }

    async fn list_alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<Alert>> {
        let inner = lock(&self.inner);
        let items = inner
            .alerts_by_started
            .iter()
            .rev()
            .filter(|(at, id)| page.cursor.is_none_or(|c| c.precedes(*at, id.0)))
            .filter_map(|(at, id)| inner.alerts.get(id).map(|a| (Cursor::after(*at, id.0), a)))
            .filter(|(_, a)| filter.matches(a))
            .map(|(c, a)| (c, a.clone()));
        Ok(page_of(items, page.limit))
    }

    async fn repeat_trigger(
        &self,
        service: ServiceId,
        dedup_key: &str,
        at: Timestamp,
    ) -> Result<Option<Alert>> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let Some(id) = inner.open_alerts.get(&(service, dedup_key.to_string())) else {
            return Ok(None);
        };
        let Some(alert) = inner.alerts.get_mut(id) else {
            return Ok(None);
        };
        alert.event_count += 1;
        if at > alert.last_event_at {
            alert.last_event_at = at;
        }
        let out = alert.clone();
        self.generations.bump(false, true);
        Ok(Some(out))
    }
}

#[async_trait]
impl RotationStore for MemoryStore {
    async fn get_rotation(&self, id: RotationId) -> Result<Option<Rotation>> {
        Ok(lock(&self.inner).rotations.get(id))
    }

    async fn list_rotations(&self, page: PageRequest) -> Result<Page<Rotation>> {
        Ok(lock(&self.inner).rotations.page(page))
    }
}

#[async_trait]
impl ScheduleStore for MemoryStore {
    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>> {
        Ok(lock(&self.inner).schedules.get(id))
    }

    async fn list_schedules(&self, page: PageRequest) -> Result<Page<Schedule>> {
        Ok(lock(&self.inner).schedules.page(page))
    }
}

#[async_trait]
impl EscalationPolicyStore for MemoryStore {
    async fn get_escalation_policy(
        &self,
        id: EscalationPolicyId,
    ) -> Result<Option<EscalationPolicy>> {
        Ok(lock(&self.inner).escalation_policies.get(id))
    }

    async fn list_escalation_policies(&self, page: PageRequest) -> Result<Page<EscalationPolicy>> {
        Ok(lock(&self.inner).escalation_policies.page(page))
    }
}
