//! The filters of the incident list and of the audit log: every set field must
//! match, checked the same way by every store ([`IncidentFilter::matches`]).

use super::{
    Actor, AuditAction, AuditEntry, Incident, Priority, ServiceId, Status, Timestamp, UserId,
    check_instant, incident_terms, query_terms, search_terms,
};
use crate::error::{Error, Result};

/// Filters for listing incidents. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IncidentFilter {
    /// Any of these statuses (empty: any).
    pub status: Vec<Status>,
    /// Any of these priorities (empty: any).
    pub priority: Vec<Priority>,
    /// Assigned to this user.
    pub assigned_to: Option<UserId>,
    /// Reported by this user.
    pub reported_by: Option<UserId>,
    /// Of this service.
    pub service_id: Option<ServiceId>,
    /// With this Alertmanager group key (see [`Incident::group_key`]); the
    /// engine uses it with `service_id` and the open statuses to find a
    /// group's open incident (an index lookup: the unique index on open
    /// groups covers it).
    pub group_key: Option<String>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created at or before.
    pub created_to: Option<Timestamp>,
    /// Escalated (`escalationLevel > 0`) or not.
    pub escalated: Option<bool>,
    /// `slaBreached` is this.
    pub sla_breached: Option<bool>,
    /// Violating its SLA at this instant: breached, or past its deadline and not on
    /// hold; in both cases not resolved or closed.
    pub violated_at: Option<Timestamp>,
    /// Full-text search: every word of it must appear in the title or description
    /// (whole words, case-insensitive; see [`search_terms`]).
    pub q: Option<String>,
}

impl IncidentFilter {
    /// Whether an incident passes the filter; the reference semantics every store
    /// must reproduce.
    pub fn matches(&self, i: &Incident) -> bool {
        if !self.status.is_empty() && !self.status.contains(&i.status) {
            return false;
        }
        if !self.priority.is_empty() && !self.priority.contains(&i.priority) {
            return false;
        }
        if self.assigned_to.is_some() && self.assigned_to != i.assigned_to {
            return false;
        }
        if self.reported_by.is_some_and(|r| Some(r) != i.reported_by) {
            return false;
        }
        if self.service_id.is_some_and(|s| Some(s) != i.service_id) {
            return false;
        }
        if self.group_key.is_some() && self.group_key != i.group_key {
            return false;
        }
        if self.created_from.is_some_and(|t| i.created_at < t)
            || self.created_to.is_some_and(|t| i.created_at > t)
        {
            return false;
        }
        if self
            .escalated
            .is_some_and(|e| e != (i.escalation_level > 0))
        {
            return false;
        }
        if self.sla_breached.is_some_and(|b| b != i.sla_breached) {
            return false;
        }
        if let Some(now) = self.violated_at {
            let violating = !i.status.is_done()
                && (i.sla_breached || (i.status != Status::OnHold && i.sla_deadline <= now));
            if !violating {
                return false;
            }
        }
        if let Some(q) = &self.q {
            let wanted = search_terms(q);
            if !wanted.is_empty() {
                let have = incident_terms(i);
                if !wanted.iter().all(|w| have.binary_search(w).is_ok()) {
                    return false;
                }
            }
        }
        true
    }
}

impl IncidentFilter {
    /// Checks what a caller can set: dates within the years
    /// [`MIN_YEAR`](super::MIN_YEAR)..=[`MAX_YEAR`](super::MAX_YEAR) and a query within the term limits (see
    /// [`query_terms`]). Errors name the API's parameters (`startDate`, `endDate`,
    /// `q`).
    pub fn validate(&self) -> Result<()> {
        for (field, t) in [
            ("startDate", self.created_from),
            ("endDate", self.created_to),
            ("violatedAt", self.violated_at),
        ] {
            if let Some(t) = t {
                check_instant(field, t)?;
            }
        }
        if let Some(q) = &self.q {
            query_terms(q)?;
        }
        Ok(())
    }
}

/// Filters for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// This action.
    pub action: Option<AuditAction>,
    /// By this actor.
    pub actor: Option<Actor>,
    /// About this target.
    pub target: Option<String>,
    /// At or after.
    pub from: Option<Timestamp>,
    /// At or before.
    pub to: Option<Timestamp>,
}

impl AuditFilter {
    /// Checks what a caller can set: dates within the years
    /// [`MIN_YEAR`](super::MIN_YEAR)..=[`MAX_YEAR`](super::MAX_YEAR) (fields `from`, `to`) and a `target` that is
    /// text a store can hold (no NUL character).
    pub fn validate(&self) -> Result<()> {
        for (field, t) in [("from", self.from), ("to", self.to)] {
            if let Some(t) = t {
                check_instant(field, t)?;
            }
        }
        if self.target.as_ref().is_some_and(|t| t.contains('\0')) {
            return Err(Error::validation(
                "target",
                "expected text without NUL characters",
            ));
        }
        Ok(())
    }

    /// Reference semantics for stores.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.action.is_none_or(|a| a == e.action)
            && self.actor.is_none_or(|a| a == e.actor)
            && self
                .target
                .as_ref()
                .is_none_or(|t| e.target.as_ref() == Some(t))
            && self.from.is_none_or(|t| e.created_at >= t)
            && self.to.is_none_or(|t| e.created_at <= t)
    }
}
