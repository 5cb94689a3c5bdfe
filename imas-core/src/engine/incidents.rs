//! Incidents: create, read, list, update (fields and status), delete. Each
//! change commits with its audit entries and the assignee's notification. An
//! incident of a service with an escalation policy opens stepping through it;
//! a status change starts or stops its acknowledgement timeout.

use std::sync::Arc;

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::escalation::{self};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, Incident, IncidentFilter, IncidentId, IncidentType,
    NotificationIntent, NotificationType, Page, PageRequest, Priority, Service, ServiceId, Status,
    Timestamp, UserId,
};
use crate::ports::{AlertWrite, Change, IncidentWrite};
use crate::rbac::{self, Permission};
use crate::validation::{MAX_DESCRIPTION, check_len, validate_title};

/// Input of [`Engine::create_incident`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewIncident {
    /// 1..=200 characters.
    pub title: String,
    /// At most 10,000 characters.
    pub description: Option<String>,
    /// Default `task`.
    pub kind: Option<IncidentType>,
    /// Default `medium`.
    pub priority: Option<Priority>,
    /// An existing user.
    pub assigned_to: Option<UserId>,
    /// An existing service the incident belongs to.
    pub service_id: Option<ServiceId>,
}

/// Input of [`Engine::update_incident`]: the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentPatch {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New kind.
    pub kind: Option<IncidentType>,
    /// New priority (re-computes the SLA).
    pub priority: Option<Priority>,
    /// New status (must be an allowed transition).
    pub status: Option<Status>,
    /// `Some(None)` unassigns.
    pub assigned_to: Option<Option<UserId>>,
}

impl Engine {
    pub(super) async fn require_user(&self, field: &str, id: UserId) -> Result<()> {
        match self.inner.store.get_user(id).await? {
            Some(_) => Ok(()),
            None => Err(Error::validation(field, "no user has this id")),
        }
    }

    /// The `info` notification to a new assignee, keyed by the version that
    /// makes the assignment.
    pub(super) fn assignment_intent(
        &self,
        incident: &Incident,
        version: i64,
        assignee: UserId,
        now: Timestamp,
    ) -> NotificationIntent {
        NotificationIntent {
            key: format!("{}:assigned:{}:{}", incident.id, version, assignee),
            user: assignee,
            message: messages::assigned(&incident.title),
            kind: NotificationType::Info,
            incident_id: Some(incident.id),
            created_at: now,
        }
    }

    /// A new incident's SLA targets, escalation policy (its service's, if
    /// any: step 1 due at once) and due time, and the notification intents
    /// its creation sends (to the assignee, unless the reporter assigned
    /// themselves): the one way an incident is opened, by a person
    /// ([`Engine::create_incident`]) or by an integration's alerts.
    pub(super) fn open_incident(
        &self,
        incident: &mut Incident,
        priority: Priority,
        service: Option<&Service>,
        now: Timestamp,
    ) -> Vec<NotificationIntent> {
        self.sla().assign(incident, priority);
        if let Some(policy) = service.and_then(|s| s.escalation_policy_id) {
            incident.escalation_policy_id = Some(policy);
            incident.escalation_step = 0;
            incident.next_escalation_at = Some(incident.created_at);
        }
        incident.next_due_at = escalation::next_due(incident, self.sla(), self.escalation());
        match incident.assigned_to {
            Some(a) if incident.reported_by != Some(a) => {
                vec![self.assignment_intent(incident, incident.version, a, now)]
            }
            _ => Vec::new(),
        }
    }

    /// Moves `incident` to `to` as the lifecycle allows
    /// ([`crate::lifecycle::transition`]), with what that does to its policy
    /// stepping and acknowledgement timeout (its service's
    /// `ackTimeoutSeconds`): [`escalation::after_transition`].
    pub(super) async fn move_to(
        &self,
        incident: &mut Incident,
        to: Status,
        now: Timestamp,
    ) -> Result<()> {
        let from = incident.status;
        crate::lifecycle::transition(incident, to, now)?;
        let timeout = match incident.service_id {
            Some(s) if escalation::starts_ack_timeout(from, to) => self
                .inner
                .store
                .get_service(s)
                .await?
                .and_then(|s| s.ack_timeout_seconds)
                .map(|secs| std::time::Duration::from_secs(u64::from(secs))),
            _ => None,
        };
        escalation::after_transition(incident, from, timeout, now);
        Ok(())
    }

    /// The `STATUS_CHANGED` entry of a status change from `before` to `after`.
    pub(super) fn status_changed_entry(
        before: &Incident,
        after: &Incident,
        actor: Actor,
        now: Timestamp,
    ) -> AuditEntry {
        AuditEntry::new(
            AuditAction::StatusChanged,
            actor,
            Some(after.id.to_string()),
            messages::status_changed(before.status, after.status),
            now,
        )
    }

    /// Creates an incident reported by the caller; its SLA follows its priority.
    pub async fn create_incident(&self, who: &Principal, input: NewIncident) -> Result<Incident> {
        rbac::require(who.role, Permission::CreateIncident)?;
        if input.assigned_to.is_some() {
            rbac::require(who.role, Permission::AssignOnReport)?;
        }
        validate_title(&input.title)?;
        let description = input.description.unwrap_or_default();
        check_len("description", &description, 0, MAX_DESCRIPTION)?;
        if let Some(a) = input.assigned_to {
            self.require_user("assignedTo", a).await?;
        }
        let service = match input.service_id {
            Some(s) => match self.inner.store.get_service(s).await? {
                Some(service) => Some(service),
                None => return Err(Error::validation("serviceId", messages::NO_SUCH_SERVICE)),
            },
            None => None,
        };
        // Held from the limit check to the commit (only for a limited caller).
        let _reporting = self.report_turn(who).await;
        let now = self.now();
        self.check_report_limit(who, now).await?;
        let mut incident = Incident::open(input.title, who.id, now);
        incident.description = description;
        incident.kind = input.kind.unwrap_or_default();
        incident.assigned_to = input.assigned_to;
        incident.service_id = input.service_id;
        let priority = input.priority.unwrap_or_default();
        let outbox = self.open_incident(&mut incident, priority, service.as_ref(), now);
        let audit = AuditEntry::new(
            AuditAction::IncidentCreated,
            Actor::User(who.id),
            Some(incident.id.to_string()),
            messages::incident_created(&incident.title, incident.priority),
            now,
        );
        self.commit(Change {
            incident: Some(IncidentWrite::Insert(incident.clone())),
            audit: vec![audit],
            outbox,
            ..Change::default()
        })
        .await?;
        Ok(incident)
    }

    /// One incident: admins and engineers read any; other callers only those they
    /// reported (others are `NotFound`, which leaks nothing).
    pub async fn get_incident(&self, who: &Principal, id: IncidentId) -> Result<Incident> {
        let incident = self.load_incident(id).await?;
        if rbac::allows(who.role, Permission::ReadAnyIncident)
            || incident.reported_by == Some(who.id)
        {
            Ok(incident)
        } else {
            Err(Error::NotFound { entity: "incident" })
        }
    }

    /// Incidents matching a filter, newest first.
    pub async fn list_incidents(
        &self,
        who: &Principal,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        let shared = self.list_incidents_shared(who, filter, page).await?;
        Ok(Arc::unwrap_or_clone(shared))
    }

    /// [`Engine::list_incidents`] without the copy: while the page is cached,
    /// every caller gets the same `Arc`, so a host can key what it derives from
    /// a page (a serialized body, say) on it and drop that with the page.
    pub async fn list_incidents_shared(
        &self,
        who: &Principal,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Arc<Page<Incident>>> {
        rbac::require(who.role, Permission::ListIncidents)?;
        page.validate()?;
        filter.validate()?;
        // A query about one instant (SLA violations now) is never asked twice.
        let at = match filter.violated_at {
            Some(_) => None,
            None => self.inner.store.generation(),
        };
        if let Some(hit) = self.inner.cache.page(filter, page, at) {
            return Ok(hit);
        }
        let found = Arc::new(self.inner.store.list_incidents(filter, page).await?);
        self.inner
            .cache
            .put_page(filter.clone(), page, at, Arc::clone(&found));
        Ok(found)
    }

    /// The incidents a caller may see, matching a filter, newest first: for
    /// admins and engineers [`Engine::list_incidents_shared`]; a `user` sees
    /// only the incidents they reported (the filter's `reported_by` is forced
    /// to them). What the web console's incidents page lists.
    pub async fn list_visible_incidents(
        &self,
        who: &Principal,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Arc<Page<Incident>>> {
        if rbac::allows(who.role, Permission::ListIncidents) {
            return self.list_incidents_shared(who, filter, page).await;
        }
        rbac::require(who.role, Permission::CreateIncident)?;
        let own = IncidentFilter {
            reported_by: Some(who.id),
            ..filter.clone()
        };
        page.validate()?;
        own.validate()?;
        let at = match own.violated_at {
            Some(_) => None,
            None => self.inner.store.generation(),
        };
        if let Some(hit) = self.inner.cache.page(&own, page, at) {
            return Ok(hit);
        }
        let found = Arc::new(self.inner.store.list_incidents(&own, page).await?);
        self.inner.cache.put_page(own, page, at, Arc::clone(&found));
        Ok(found)
    }

    /// How many incidents the caller may see match a filter, scoped like
    /// [`Engine::list_visible_incidents`] (a `user` counts only those they
    /// reported). Counts are kept while the store's incidents generation holds.
    pub async fn count_incidents(&self, who: &Principal, filter: &IncidentFilter) -> Result<u64> {
        let filter = if rbac::allows(who.role, Permission::ListIncidents) {
            filter.clone()
        } else {
            rbac::require(who.role, Permission::CreateIncident)?;
            IncidentFilter {
                reported_by: Some(who.id),
                ..filter.clone()
            }
        };
        filter.validate()?;
        let at = match filter.violated_at {
            Some(_) => None,
            None => self.inner.store.generation().map(|g| g.incidents),
        };
        if let Some(n) = at.and_then(|at| self.inner.counts.get(&filter, at)) {
            return Ok(n);
        }
        let n = self.inner.store.count_incidents(&filter).await?;
        if let Some(at) = at {
            self.inner.counts.put(filter, at, n);
        }
        Ok(n)
    }

    /// The next automatic step of an incident and when it is due, as the SLA
    /// monitor will apply it (`None`: nothing pending, e.g. resolved). For the
    /// console's escalation panel.
    pub fn next_incident_step(&self, incident: &Incident) -> Option<(escalation::Step, Timestamp)> {
        escalation::next_step(incident, self.sla(), self.escalation())
    }

    /// The store's incidents generation: a counter that moves with every
    /// committed change of an incident (by any node of a live store); `None`
    /// while the store cannot vouch for it (then poll on a timer instead).
    /// Live views (the console's `/ui/events`) watch it.
    pub fn incidents_generation(&self) -> Option<u64> {
        self.inner.store.generation().map(|g| g.incidents)
    }

    /// Re-targets the SLA for a priority; a new at-risk instant still ahead re-arms
    /// the warning.
    pub(super) fn retarget(&self, incident: &mut Incident, priority: Priority, now: Timestamp) {
        self.sla().assign(incident, priority);
        if !incident.sla_breached && self.sla().at_risk_instant(incident) > now {
            incident.at_risk_at = None;
        }
    }

    /// Commits an update computed from `before`, with its audit and intents.
    pub(super) async fn commit_update(
        &self,
        before: &Incident,
        after: Incident,
        now: Timestamp,
        audit: Vec<AuditEntry>,
        outbox: Vec<NotificationIntent>,
    ) -> Result<Incident> {
        self.commit_update_with(before, after, now, audit, outbox, Vec::new())
            .await
    }

    /// [`Engine::commit_update`] with the writes to the incident's alerts
    /// that go with it.
    pub(super) async fn commit_update_with(
        &self,
        before: &Incident,
        mut after: Incident,
        now: Timestamp,
        audit: Vec<AuditEntry>,
        outbox: Vec<NotificationIntent>,
        alerts: Vec<AlertWrite>,
    ) -> Result<Incident> {
        after.updated_at = now;
        after.version = before.version + 1;
        after.next_due_at = escalation::next_due(&after, self.sla(), self.escalation());
        self.commit(Change {
            incident: Some(IncidentWrite::Update {
                incident: after.clone(),
                expected_version: before.version,
            }),
            alerts,
            audit,
            outbox,
            ..Change::default()
        })
        .await?;
        Ok(after)
    }

    /// Changes any subset of an incident's editable fields. With
    /// `expected_version`, a concurrent change since that version is a `Conflict`.
    pub async fn update_incident(
        &self,
        who: &Principal,
        id: IncidentId,
        patch: IncidentPatch,
        expected_version: Option<i64>,
    ) -> Result<Incident> {
        rbac::require(who.role, Permission::UpdateIncident)?;
        if let Some(t) = &patch.title {
            validate_title(t)?;
        }
        if let Some(d) = &patch.description {
            check_len("description", d, 0, MAX_DESCRIPTION)?;
        }
        if let Some(Some(a)) = patch.assigned_to {
            self.require_user("assignedTo", a).await?;
        }
        let before = self.load_incident(id).await?;
        if let Some(v) = expected_version.filter(|v| *v != before.version) {
            return Err(Error::conflict(messages::stale_version(
                id,
                before.version,
                v,
            )));
        }
        let now = self.now();
        let mut after = before.clone();
        let mut changed = Vec::new();
        if let Some(t) = patch.title.filter(|t| *t != before.title) {
            after.title = t;
            changed.push("title");
        }
        if let Some(d) = patch.description.filter(|d| *d != before.description) {
            after.description = d;
            changed.push("description");
        }
        if let Some(k) = patch.kind.filter(|k| *k != before.kind) {
            after.kind = k;
            changed.push("type");
        }
        if let Some(a) = patch.assigned_to.filter(|a| *a != before.assigned_to) {
            after.assigned_to = a;
            changed.push("assignedTo");
        }
        if let Some(s) = patch.status.filter(|s| *s != before.status) {
            self.move_to(&mut after, s, now).await?;
            changed.push("status");
        }
        if let Some(p) = patch.priority.filter(|p| *p != before.priority) {
            self.retarget(&mut after, p, now);
            changed.push("priority");
        }
        if changed.is_empty() {
            return Ok(before);
        }
        let actor = Actor::User(who.id);
        let mut audit = vec![AuditEntry::new(
            AuditAction::IncidentUpdated,
            actor,
            Some(id.to_string()),
            messages::incident_updated(&after.title, &changed),
            now,
        )];
        let mut alerts = Vec::new();
        if after.status != before.status {
            audit.push(Self::status_changed_entry(&before, &after, actor, now));
            // The incident's alerts follow it (SPEC §4).
            let to = after.status;
            alerts = self
                .alerts_follow_incident(&mut after, to, actor, now, &mut audit)
                .await?;
        }
        let mut outbox = Vec::new();
        if let Some(a) = after
            .assigned_to
            .filter(|a| before.assigned_to != Some(*a) && *a != who.id)
        {
            outbox.push(self.assignment_intent(&after, before.version + 1, a, now));
        }
        self.commit_update_with(&before, after, now, audit, outbox, alerts)
            .await
    }

    /// Changes only the status (a convenience over [`Engine::update_incident`]).
    pub async fn change_status(
        &self,
        who: &Principal,
        id: IncidentId,
        status: Status,
    ) -> Result<Incident> {
        self.update_incident(
            who,
            id,
            IncidentPatch {
                status: Some(status),
                ..Default::default()
            },
            None,
        )
        .await
    }

    /// Deletes an incident (admin). Its audit trail stays; its open alerts
    /// are resolved by the same change, so that no dedup key stays taken by
    /// an incident that is gone.
    pub async fn delete_incident(&self, who: &Principal, id: IncidentId) -> Result<()> {
        rbac::require(who.role, Permission::DeleteIncident)?;
        let mut incident = self.load_incident(id).await?;
        let now = self.now();
        let actor = Actor::User(who.id);
        let mut audit = vec![AuditEntry::new(
            AuditAction::IncidentDeleted,
            actor,
            Some(id.to_string()),
            messages::incident_deleted(&incident.title),
            now,
        )];
        // Gone is as done as closed, for its alerts.
        let alerts = self
            .alerts_follow_incident(&mut incident, Status::Closed, actor, now, &mut audit)
            .await?;
        self.commit(Change {
            incident: Some(IncidentWrite::Delete {
                id,
                expected_version: incident.version,
            }),
            alerts,
            audit,
            ..Change::default()
        })
        .await
    }
}
