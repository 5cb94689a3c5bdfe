//! [`SqlStore`]: every store port of `imas-core`, written once over a
//! [`Dialect`]: the reads run through sqlx on the store's read pool, the writes
//! and claims through the dialect (the SQLite writer thread, or the
//! PostgreSQL pool), with the statements of `sql`.

use std::time::Duration;

use async_trait::async_trait;
use imas_core::error::{Error, Result};
use imas_core::model::{
    Alert, AlertFilter, AlertId, AuditEntry, AuditFilter, EscalationPolicy, EscalationPolicyId,
    Incident, IncidentFilter, IncidentId, Integration, IntegrationId, Notification, NotificationId,
    OutboxEntry, Page, PageRequest, Role, Rotation, RotationId, Schedule, ScheduleId, Service,
    ServiceId, Timestamp, User, UserId,
};
use imas_core::ports::{
    AlertStore, AuditStore, Change, ChangeStore, EscalationPolicyStore, Generation, IncidentStore,
    IntegrationStore, NotificationStore, OutboxStore, Pruned, RotationStore, ScheduleStore,
    ServiceStore, UserStore,
};
use sqlx::{Database, Executor, IntoArguments, Pool, QueryBuilder};

use crate::dialect::{DbQuery, Dialect, lease_end};
use crate::error::SqlError;
use crate::filter::{push_alert_filter, push_audit_filter, push_incident_filter};
use crate::sql::Stmt;
use crate::table::{
    ALERTS, AUDIT, Claimed, Decode, ESCALATION_POLICIES, INCIDENTS, NOTIFICATIONS, ROTATIONS,
    RowExt, SCHEDULES, SERVICES, USERS, Value,
};

/// A store on a SQL database of dialect `D`: [`SqliteStore`](crate::SqliteStore)
/// or [`PostgresStore`](crate::PostgresStore).
pub struct SqlStore<D: Dialect> {
    /// The pool reads run on.
    pub(crate) pool: Pool<D::DB>,
    pub(crate) state: D::State,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            state: self.state.clone(),
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &D::BACKEND)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A query of fixed text with its values bound.
pub(crate) fn query<D: Dialect>(sql: &'static str, args: Vec<Value>) -> DbQuery<'static, D> {
    args.into_iter()
        .fold(sqlx::query(sql), |q, v| D::bind(q, v))
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    fn err(e: sqlx::Error) -> Error {
        SqlError::sqlx(D::BACKEND, e).into()
    }

    async fn optional<T: Decode>(&self, sql: &'static str, args: Vec<Value>) -> Result<Option<T>> {
        let row = query::<D>(sql, args)
            .fetch_optional(&self.pool)
            .await
            .map_err(Self::err)?;
        row.as_ref().map(T::decode).transpose()
    }

    async fn one(&self, sql: &'static str, args: Vec<Value>) -> Result<<D::DB as Database>::Row> {
        query::<D>(sql, args)
            .fetch_one(&self.pool)
            .await
            .map_err(Self::err)
    }

    async fn exists(&self, sql: &'static str, args: Vec<Value>) -> Result<bool> {
        let row = query::<D>(sql, args)
            .fetch_optional(&self.pool)
            .await
            .map_err(Self::err)?;
        Ok(row.is_some())
    }

    async fn count(&self, qb: &mut QueryBuilder<D::DB>) -> Result<u64> {
        let row = qb.build().fetch_one(&self.pool).await.map_err(Self::err)?;
        Ok(row.int("n")?.max(0) as u64)
    }

    /// The claim statements' values: lease end, now, limit.
    fn claim_args(now: Timestamp, lease: Duration, limit: u32) -> Vec<Value> {
        vec![
            Value::Ts(Some(lease_end(now, lease))),
            Value::Ts(Some(now)),
            Value::Int(i64::from(limit)),
        ]
    }
}

#[async_trait]
impl<D: Dialect> ChangeStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn commit(&self, change: Change) -> Result<()> {
        D::commit(self, change).await
    }

    fn generation(&self) -> Option<Generation> {
        D::generations(self).current()
    }
}

#[async_trait]
impl<D: Dialect> UserStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        self.optional(&D::SQL.get_user, vec![Value::Id(Some(id.0))])
            .await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        let qb = D::page_query(&USERS);
        D::fetch_page(self, qb, &USERS, page).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.optional(&D::SQL.user_by_username, vec![Value::text(username)])
            .await
    }

    async fn users_with_role(&self, role: Role) -> Result<Vec<User>> {
        let rows = query::<D>(&D::SQL.users_with_role, vec![Value::text(role.as_str())])
            .fetch_all(&self.pool)
            .await
            .map_err(Self::err)?;
        rows.iter().map(User::decode).collect()
    }
}

#[async_trait]
impl<D: Dialect> IncidentStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn get_incident(&self, id: IncidentId) -> Result<Option<Incident>> {
        self.optional(&D::SQL.get_incident, vec![Value::Id(Some(id.0))])
            .await
    }

    async fn list_incidents(
        &self,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        let mut qb = D::page_query(&INCIDENTS);
        push_incident_filter::<D>(&mut qb, filter);
        D::fetch_page(self, qb, &INCIDENTS, page).await
    }

    async fn count_incidents(&self, filter: &IncidentFilter) -> Result<u64> {
        let mut qb = QueryBuilder::new(D::SQL.count_incidents.as_str());
        push_incident_filter::<D>(&mut qb, filter);
        self.count(&mut qb).await
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        let stmt = Stmt::new(&D::SQL.claim_due, Self::claim_args(now, lease, limit));
        let claimed: Vec<Incident> = D::write_rows(self, stmt).await?;
        D::generations(self).bump(false, !claimed.is_empty());
        Ok(claimed)
    }

    async fn next_due_at(&self) -> Result<Option<Timestamp>> {
        self.one(&D::SQL.next_due_at, Vec::new()).await?.opt_ts("t")
    }
}

#[async_trait]
impl<D: Dialect> AuditStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let mut qb = D::page_query(&AUDIT);
        push_audit_filter::<D>(&mut qb, filter);
        D::fetch_page(self, qb, &AUDIT, page).await
    }
}

#[async_trait]
impl<D: Dialect> NotificationStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn insert_notification(&self, n: &Notification) -> Result<bool> {
        let stmt = Stmt::new(&D::SQL.insert_notification, NOTIFICATIONS.values(n));
        Ok(D::write(self, stmt).await? == 1)
    }

    async fn insert_notifications(&self, ns: &[Notification]) -> Result<Vec<bool>> {
        D::insert_notifications(self, ns).await
    }

    async fn list_notifications(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        let mut qb = D::page_query(&NOTIFICATIONS);
        qb.push(" AND user_id = ");
        D::push_bind(&mut qb, Value::Id(Some(user.0)));
        D::fetch_page(self, qb, &NOTIFICATIONS, page).await
    }

    async fn mark_read(&self, user: UserId, id: NotificationId) -> Result<Notification> {
        let args = vec![Value::Id(Some(id.0)), Value::Id(Some(user.0))];
        D::write_rows(self, Stmt::new(&D::SQL.mark_read, args))
            .await?
            .pop()
            .ok_or(Error::NotFound {
                entity: "notification",
            })
    }

    async fn record_delivery(&self, key: &str, channel: &str) -> Result<bool> {
        let args = vec![Value::text(key), Value::text(channel)];
        let stmt = Stmt::new(&D::SQL.record_delivery, args);
        Ok(D::write(self, stmt).await? == 1)
    }

    async fn was_delivered(&self, key: &str, channel: &str) -> Result<bool> {
        self.exists(
            &D::SQL.was_delivered,
            vec![Value::text(key), Value::text(channel)],
        )
        .await
    }
}

#[async_trait]
impl<D: Dialect> OutboxStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn claim_outbox(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>> {
        let stmt = Stmt::new(&D::SQL.claim_outbox, Self::claim_args(now, lease, limit));
        let mut claimed: Vec<Claimed> = D::write_rows(self, stmt).await?;
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed.into_iter().map(|c| c.entry).collect())
    }

    async fn complete_outbox(&self, keys: &[String], now: Timestamp) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        D::complete_outbox(self, keys, now).await
    }

    async fn pending_outbox(&self) -> Result<u64> {
        Ok(self
            .one(&D::SQL.pending_outbox, Vec::new())
            .await?
            .int("n")?
            .max(0) as u64)
    }

    async fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>> {
        let row = query::<D>(&D::SQL.oldest_pending_outbox, Vec::new())
            .fetch_optional(&self.pool)
            .await
            .map_err(Self::err)?;
        row.map(|r| crate::intent_created_at(D::BACKEND, &r.text("intent")?))
            .transpose()
    }

    async fn prune_delivered(&self, before: Timestamp, limit: u32) -> Result<Pruned> {
        D::prune_delivered(self, before, limit).await
    }
}

#[async_trait]
impl<D: Dialect> ServiceStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn get_service(&self, id: ServiceId) -> Result<Option<Service>> {
        self.optional(&D::SQL.get_service, vec![Value::Id(Some(id.0))])
            .await
    }

    async fn list_services(&self, page: PageRequest) -> Result<Page<Service>> {
        let qb = D::page_query(&SERVICES);
        D::fetch_page(self, qb, &SERVICES, page).await
    }
}

#[async_trait]
impl<D: Dialect> IntegrationStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn get_integration(&self, id: IntegrationId) -> Result<Option<Integration>> {
        self.optional(&D::SQL.get_integration, vec![Value::Id(Some(id.0))])
            .await
    }

    async fn integration_by_key_hash(&self, key_hash: &str) -> Result<Option<Integration>> {
        self.optional(&D::SQL.integration_by_key_hash, vec![Value::text(key_hash)])
            .await
    }

    async fn list_integrations(&self, service: ServiceId) -> Result<Vec<Integration>> {
        let rows = query::<D>(&D::SQL.list_integrations, vec![Value::Id(Some(service.0))])
            .fetch_all(&self.pool)
            .await
            .map_err(Self::err)?;
        rows.iter().map(Integration::decode).collect()
    }
}

#[async_trait]
impl<D: Dialect> AlertStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn get_alert(&self, id: AlertId) -> Result<Option<Alert>> {
        self.optional(&D::SQL.get_alert, vec![Value::Id(Some(id.0))])
            .await
    }

    async fn open_alert(&self, service: ServiceId, dedup_key: &str) -> Result<Option<Alert>> {
        let args = vec![Value::Id(Some(service.0)), Value::text(dedup_key)];
        self.optional(&D::SQL.open_alert, args).await
    }

    async fn list_alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<Alert>> {
        let mut qb = D::page_query(&ALERTS);
        push_alert_filter::<D>(&mut qb, filter);
        D::fetch_page(self, qb, &ALERTS, page).await
    }

    /// Batched: concurrent calls share one transaction (`repeat`).
    async fn repeat_trigger(
        &self,
        service: ServiceId,
        dedup_key: &str,
        at: Timestamp,
    ) -> Result<Option<Alert>> {
        D::repeats(self).call(service, dedup_key, at).await
    }
}

#[async_trait]
impl<D: Dialect> RotationStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn get_rotation(&self, id: RotationId) -> Result<Option<Rotation>> {
        self.optional(&D::SQL.rotations.get, vec![Value::Id(Some(id.0))])
            .await
    }

    async fn list_rotations(&self, page: PageRequest) -> Result<Page<Rotation>> {
        let qb = D::page_query(&ROTATIONS);
        D::fetch_page(self, qb, &ROTATIONS, page).await
    }
}

#[async_trait]
impl<D: Dialect> ScheduleStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>> {
        self.optional(&D::SQL.schedules.get, vec![Value::Id(Some(id.0))])
            .await
    }

    async fn list_schedules(&self, page: PageRequest) -> Result<Page<Schedule>> {
        let qb = D::page_query(&SCHEDULES);
        D::fetch_page(self, qb, &SCHEDULES, page).await
    }
}

#[async_trait]
impl<D: Dialect> EscalationPolicyStore for SqlStore<D>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    <D::DB as Database>::Arguments: IntoArguments<D::DB>,
{
    async fn get_escalation_policy(
        &self,
        id: EscalationPolicyId,
    ) -> Result<Option<EscalationPolicy>> {
        self.optional(&D::SQL.escalation_policies.get, vec![Value::Id(Some(id.0))])
            .await
    }

    async fn list_escalation_policies(&self, page: PageRequest) -> Result<Page<EscalationPolicy>> {
        let qb = D::page_query(&ESCALATION_POLICIES);
        D::fetch_page(self, qb, &ESCALATION_POLICIES, page).await
    }
}
