//! Recipients: who an escalation target means for an incident, and the
//! notification intents, one per recipient, keyed for idempotent delivery.

use std::collections::HashSet;

use super::Engine;
use crate::error::Result;
use crate::escalation::Target;
use crate::model::{Incident, NotificationIntent, NotificationType, Role, Timestamp, UserId};

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
        Ok(self
            .recipients(incident, &notice.targets)
            .await?
            .into_iter()
            .map(|user| NotificationIntent {
                key: format!("{}:{}:{user}", incident.id, notice.step),
                user,
                message: notice.message.clone(),
                kind: notice.kind,
                incident_id: Some(incident.id),
                created_at: now,
            })
            .collect())
    }
}
