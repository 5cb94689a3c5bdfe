//! A store that fails on purpose, for tests of what the engine and the HTTP
//! layer do when the store does: [`FaultyStore`] wraps any [`Store`] and fails
//! the n-th commit, or the n-th call of any other method, with a `Backend`
//! error whose text looks like a driver's (SQL, a connection string with a
//! password, a column of password hashes), so that a test can check that none
//! of it reaches a client.
//!
//! ```
//! # async fn demo() {
//! use std::sync::Arc;
//! use imas_core::memory::MemoryStore;
//! use imas_core::ports::{Change, ChangeStore};
//! use imas_core::testkit::fault::{Fault, FaultyStore};
//!
//! let store = FaultyStore::new(Arc::new(MemoryStore::new()));
//! store.fail_nth_commit(1, Fault::Before);
//! let e = store.commit(Change::default()).await.expect_err("the next commit fails");
//! assert!(FaultyStore::is_injected(&e));
//! store.commit(Change::default()).await.expect("the one after does not");
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::{
    AuditEntry, AuditFilter, Incident, IncidentFilter, IncidentId, Notification, NotificationId,
    OutboxEntry, Page, PageRequest, Role, Timestamp, User, UserId,
};
use crate::ports::{
    AuditStore, Change, ChangeStore, Generation, IncidentStore, NotificationStore, OutboxStore,
    Pruned, Store, UserStore,
};

/// The text of every injected error: what a careless error mapping would show
/// a client. None of it may appear in an HTTP answer.
pub const INJECTED: &str = "injected fault: ERROR 40001: could not serialize access \
    (SELECT id, password_hash FROM imas.users WHERE username = $1) \
    on postgres://imas:hunter2@db.internal:5432/imas";

/// Pieces of [`INJECTED`] to look for in an answer (one is enough to leak).
pub const INJECTED_PIECES: [&str; 6] = [
    "injected",
    "40001",
    "serialize",
    "password_hash",
    "hunter2",
    "db.internal",
];

/// The source of an injected `Backend` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFault;

impl std::fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(INJECTED)
    }
}

impl std::error::Error for InjectedFault {}

/// When an armed fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails before it reaches the store: nothing happens there.
    Before,
    /// The call runs in the store and succeeds, then the caller gets the error:
    /// an answer lost on the way back. A commit is then committed although its
    /// caller was told it failed.
    After,
}

/// The store methods a fault can be armed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Call {
    Commit,
    GetUser,
    UserByUsername,
    UsersWithRole,
    GetIncident,
    ListIncidents,
    CountIncidents,
    ClaimDue,
    NextDueAt,
    ListAudit,
    InsertNotification,
    ListNotifications,
    MarkRead,
    RecordDelivery,
    WasDelivered,
    ClaimOutbox,
    CompleteOutbox,
    PendingOutbox,
    OldestPendingOutbox,
    PruneDelivered,
    GetService,
    ListServices,
    GetIntegration,
    IntegrationByKeyHash,
    ListIntegrations,
    GetAlert,
    OpenAlert,
    ListAlerts,
    RepeatTrigger,
    ListUsers,
    GetRotation,
    ListRotations,
    GetSchedule,
    ListSchedules,
    GetEscalationPolicy,
    ListEscalationPolicies,
}

#[derive(Debug, Default)]
struct State {
    /// Calls made so far, per method.
    calls: HashMap<Call, u64>,
    /// Armed faults: at which call number of the method, and how.
    armed: HashMap<Call, Vec<(u64, Fault)>>,
    /// Faults that struck.
    injected: u64,
}

/// See the [module documentation](self). Without armed faults it is the
/// wrapped store, call for call (the store conformance suite checks that).
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    state: Mutex<State>,
    hide_generation: bool,
}

impl FaultyStore {
    /// Wraps `inner`, with no fault armed.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            state: Mutex::new(State::default()),
            hide_generation: false,
        }
    }

    /// Reports no [generation](ChangeStore::generation), as a store that cannot
    /// vouch for one does: the engine then caches nothing.
    #[must_use]
    pub fn without_generation(mut self) -> Self {
        self.hide_generation = true;
        self
    }

    /// The wrapped store, to inspect what really happened.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Arms a fault on the `n`-th call of `call` from now (1: the next one).
    pub fn fail_nth(&self, call: Call, n: u64, fault: Fault) {
        let mut s = self.lock();
        let at = s.calls.get(&call).copied().unwrap_or(0) + n.max(1);
        s.armed.entry(call).or_default().push((at, fault));
    }

    /// Arms a fault on the `n`-th commit from now (1: the next one).
    pub fn fail_nth_commit(&self, n: u64, fault: Fault) {
        self.fail_nth(Call::Commit, n, fault);
    }

    /// How many calls of `call` were made (failed ones included).
    pub fn calls(&self, call: Call) -> u64 {
        self.lock().calls.get(&call).copied().unwrap_or(0)
    }

    /// How many armed faults struck.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// How many armed faults have not struck yet.
    pub fn armed(&self) -> usize {
        self.lock().armed.values().map(Vec::len).sum()
    }

    /// Whether `e` is a fault this module injected.
    pub fn is_injected(e: &Error) -> bool {
        matches!(e, Error::Backend { source, .. } if source.downcast_ref::<InjectedFault>().is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a call of `call` and takes the fault armed on it, if any.
    fn strike(&self, call: Call) -> Option<Fault> {
        let mut s = self.lock();
        let n = {
            let count = s.calls.entry(call).or_insert(0);
            *count += 1;
            *count
        };
        let armed = s.armed.get_mut(&call)?;
        let i = armed.iter().position(|(at, _)| *at == n)?;
        let (_, fault) = armed.remove(i);
        s.injected += 1;
        Some(fault)
    }

    async fn guarded<T>(&self, call: Call, work: impl Future<Output = Result<T>>) -> Result<T> {
        match self.strike(call) {
            None => work.await,
            Some(Fault::Before) => Err(injected()),
            Some(Fault::After) => {
                work.await?;
                Err(injected())
            }
        }
    }
}

fn injected() -> Error {
    Error::backend("postgres", InjectedFault)
}

#[async_trait]
impl UserStore for FaultyStore {
    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        self.guarded(Call::GetUser, self.inner.get_user(id)).await
    }
    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.guarded(Call::UserByUsername, self.inner.user_by_username(username))
            .await
    }
    async fn users_with_role(&self, role: Role) -> Result<Vec<User>> {
        self.guarded(Call::UsersWithRole, self.inner.users_with_role(role))
            .await
    }
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        self.guarded(Call::ListUsers, self.inner.list_users(page))
            .await
    }
}

#[async_trait]
impl crate::ports::RotationStore for FaultyStore {
    async fn get_rotation(
        &self,
        id: crate::model::RotationId,
    ) -> Result<Option<crate::model::Rotation>> {
        self.guarded(Call::GetRotation, self.inner.get_rotation(id))
            .await
    }
    async fn list_rotations(&self, page: PageRequest) -> Result<Page<crate::model::Rotation>> {
        self.guarded(Call::ListRotations, self.inner.list_rotations(page))
            .await
    }
}

#[async_trait]
impl crate::ports::ScheduleStore for FaultyStore {
    async fn get_schedule(
        &self,
        id: crate::model::ScheduleId,
    ) -> Result<Option<crate::model::Schedule>> {
        self.guarded(Call::GetSchedule, self.inner.get_schedule(id))
            .await
    }
    async fn list_schedules(&self, page: PageRequest) -> Result<Page<crate::model::Schedule>> {
        self.guarded(Call::ListSchedules, self.inner.list_schedules(page))
            .await
    }
}

#[async_trait]
impl crate::ports::EscalationPolicyStore for FaultyStore {
    async fn get_escalation_policy(
        &self,
        id: crate::model::EscalationPolicyId,
    ) -> Result<Option<crate::model::EscalationPolicy>> {
        self.guarded(
            Call::GetEscalationPolicy,
            self.inner.get_escalation_policy(id),
        )
        .await
    }
    async fn list_escalation_policies(
        &self,
        page: PageRequest,
    ) -> Result<Page<crate::model::EscalationPolicy>> {
        self.guarded(
            Call::ListEscalationPolicies,
            self.inner.list_escalation_policies(page),
        )
        .await
    }
}

#[async_trait]
impl IncidentStore for FaultyStore {
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        self.guarded(Call::GetIncident, self.inner.get_incident(id))
            .await
    }
    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        self.guarded(Call::ListIncidents, self.inner.list_incidents(filter, page))
            .await
    }
    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64> {
        self.guarded(Call::CountIncidents, self.inner.count_incidents(filter))
            .await
    }
    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        self.guarded(Call::ClaimDue, self.inner.claim_due(now, lease, limit))
            .await
    }
    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        self.guarded(Call::NextDueAt, self.inner.next_due_at())
            .await
    }
}

#[async_trait]
impl crate::ports::ServiceStore for FaultyStore {
    async fn get_service(
        &self,
        id: crate::model::ServiceId,
    ) -> Result<Option<crate::model::Service>> {
        self.guarded(Call::GetService, self.inner.get_service(id))
            .await
    }
    async fn list_services(&self, page: PageRequest) -> Result<Page<crate::model::Service>> {
        self.guarded(Call::ListServices, self.inner.list_services(page))
            .await
    }
}

#[async_trait]
impl crate::ports::IntegrationStore for FaultyStore {
    async fn get_integration(
        &self,
        id: crate::model::IntegrationId,
    ) -> Result<Option<crate::model::Integration>> {
        self.guarded(Call::GetIntegration, self.inner.get_integration(id))
            .await
    }
    async fn integration_by_key_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<crate::model::Integration>> {
        self.guarded(
            Call::IntegrationByKeyHash,
            self.inner.integration_by_key_hash(key_hash),
        )
        .await
    }
    async fn list_integrations(
        &self,
        service: crate::model::ServiceId,
    ) -> Result<Vec<crate::model::Integration>> {
        self.guarded(
            Call::ListIntegrations,
            self.inner.list_integrations(service),
        )
        .await
    }
}

#[async_trait]
impl crate::ports::AlertStore for FaultyStore {
    async fn get_alert(&self, id: crate::model::AlertId) -> Result<Option<crate::model::Alert>> {
        self.guarded(Call::GetAlert, self.inner.get_alert(id)).await
    }
    async fn open_alert(
        &self,
        service: crate::model::ServiceId,
        dedup_key: &str,
    ) -> Result<Option<crate::model::Alert>> {
        self.guarded(Call::OpenAlert, self.inner.open_alert(service, dedup_key))
            .await
    }
    async fn list_alerts(
        &self,
        filter: &crate::model::AlertFilter,
        page: PageRequest,
    ) -> Result<Page<crate::model::Alert>> {
        self.guarded(Call::ListAlerts, self.inner.list_alerts(filter, page))
            .await
    }
    async fn repeat_trigger(
        &self,
        service: crate::model::ServiceId,
        dedup_key: &str,
        at: Timestamp,
    ) -> Result<Option<crate::model::Alert>> {
        self.guarded(
            Call::RepeatTrigger,
            self.inner.repeat_trigger(service, dedup_key, at),
        )
        .await
    }
}

#[async_trait]
impl AuditStore for FaultyStore {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        self.guarded(Call::ListAudit, self.inner.list_audit(filter, page))
            .await
    }
}

#[async_trait]
impl NotificationStore for FaultyStore {
    async fn insert_notification(&self, n: &Notification) -> Result<bool> {
        self.guarded(Call::InsertNotification, self.inner.insert_notification(n))
            .await
    }
    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        self.guarded(
            Call::ListNotifications,
            self.inner.list_notifications(user, page),
        )
        .await
    }
    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification> {
        self.guarded(Call::MarkRead, self.inner.mark_read(user, id))
            .await
    }
    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool> {
        self.guarded(
            Call::RecordDelivery,
            self.inner.record_delivery(key, channel),
        )
        .await
    }
    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool> {
        self.guarded(Call::WasDelivered, self.inner.was_delivered(key, channel))
            .await
    }
}

#[async_trait]
impl OutboxStore for FaultyStore {
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        self.guarded(
            Call::ClaimOutbox,
            self.inner.claim_outbox(now, lease, limit),
        )
        .await
    }
    async fn complete_outbox(&self, keys: &[String], now: Timestamp) -> Result<()> {
        self.guarded(Call::CompleteOutbox, self.inner.complete_outbox(keys, now))
            .await
    }
    async fn pending_outbox(&self) -> Result<u64> {
        self.guarded(Call::PendingOutbox, self.inner.pending_outbox())
            .await
    }
    async fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>> {
        self.guarded(
            Call::OldestPendingOutbox,
            self.inner.oldest_pending_outbox(),
        )
        .await
    }
    async fn prune_delivered(&self, before: Timestamp, limit: u32) -> Result<Pruned> {
        self.guarded(
            Call::PruneDelivered,
            self.inner.prune_delivered(before, limit),
        )
        .await
    }
}

#[async_trait]
impl ChangeStore for FaultyStore {
    /// Cancel-safe as the wrapped store's: a fault before the commit does
    /// nothing, and a fault after it awaits the wrapped commit first.
    async fn commit(&self, change: Change) -> Result<()> {
        self.guarded(Call::Commit, self.inner.commit(change)).await
    }

    fn generation(&self) -> Option<Generation> {
        if self.hide_generation {
            None
        } else {
            self.inner.generation()
        }
    }
}
