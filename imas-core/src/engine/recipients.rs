//! Recipients: who an escalation target means for an incident (an SLA level's
//! targets, or an escalation policy step's, resolved at the instant the step
//! runs), and the notification intents, one per recipient, keyed for
//! idempotent delivery.

use std::collections::HashSet;

use super::Engine;
use crate::error::Result;
use crate::escalation::Target;
use crate::model::{
    Incident, NotificationIntent, NotificationType, PolicyTarget, Role, Rotation, Timestamp, UserId,
};

/// What a step of an incident notifies: whom, under which step key (the middle
/// of each intent's idempotency key), as which kind, with which message.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Notice {
    pub(super) targets: Vec<Target>,
    pub(super) step: String,
    pub(super) kind: NotificationType,
    pub(super) message: String,
}

impl Engine {
    /// The users a list of targets means for an incident, without duplicates.
    /// `Assignee` falls back to every engineer (then every admin) when the
    /// incident is unassigned, so no breach goes unnoticed.
    pub(super) async fn recipients(
        &self,
        incident: &Incident,
        targets: &[Target],
    ) -> Result<Vec<UserId>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for t in targets {
            let users = match t {
                Target::Assignee => match incident.assigned_to {
                    Some(a) => vec![a],
                    None => {
                        let mut ids = self.role_members(Role::Engineer).await?;
                        if ids.is_empty() {
                            ids = self.role_members(Role::Admin).await?;
                        }
                        ids
                    }
                },
                Target::Role(r) => self.role_members(*r).await?,
                Target::Users(ids) => ids.clone(),
            };
            out.extend(users.into_iter().filter(|u| seen.insert(*u)));
        }
        Ok(out)
    }

    /// The users a policy step's targets mean for an incident at `at`, without
    /// duplicates, in target order: a user is himself; a schedule or rotation,
    /// whoever is on call in it at `at` (nobody when it is gone); a role, its
    /// members; the assignee, the incident's assignee (nobody when unassigned).
    pub(super) async fn policy_recipients(
        &self,
        incident: &Incident,
        targets: &[PolicyTarget],
        at: Timestamp,
    ) -> Result<Vec<UserId>> {
        let store = &self.inner.store;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for t in targets {
            let users = match *t {
                PolicyTarget::User { id } => vec![id],
                PolicyTarget::Schedule { id } => match store.get_schedule(id).await? {
                    Some(schedule) => {
                        let mut rotations: Vec<Rotation> = Vec::new();
                        for r in schedule.rotation_ids() {
                            rotations.extend(store.get_rotation(r).await?);
                        }
                        schedule.on_call_at(at, &rotations)
                    }
                    None => Vec::new(),
                },
                PolicyTarget::Rotation { id } => store
                    .get_rotation(id)
                    .await?
                    .and_then(|r| r.on_call_at(at))
                    .into_iter()
                    .collect(),
                PolicyTarget::Role { role } => self.role_members(role).await?,
                PolicyTarget::Assignee => incident.assigned_to.into_iter().collect(),
            };
            out.extend(users.into_iter().filter(|u| seen.insert(*u)));
        }
        Ok(out)
    }

    pub(super) async fn role_members(&self, role: Role) -> Result<Vec<UserId>> {
        Ok(self
            .inner
            .store
            .users_with_role(role)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect())
    }

    /// One intent per recipient of `notice`, keyed `incident:step:user`.
    pub(super) async fn intents(
        &self,
        incident: &Incident,
        notice: &Notice,
        now: Timestamp,
    ) -> Result<Vec<NotificationIntent>> {
        let users = self.recipients(incident, &notice.targets).await?;
        Ok(Self::intents_to(incident, notice, users, now))
    }

    /// One intent of `notice` (its targets already resolved) to each of
    /// `users`, keyed `incident:step:user`.
    pub(super) fn intents_to(
        incident: &Incident,
        notice: &Notice,
        users: Vec<UserId>,
        now: Timestamp,
    ) -> Vec<NotificationIntent> {
        users
            .into_iter()
            .map(|user| NotificationIntent {
                key: format!("{}:{}:{user}", incident.id, notice.step),
                user,
                message: notice.message.clone(),
                kind: notice.kind,
                incident_id: Some(incident.id),
                created_at: now,
            })
            .collect()
    }
}
