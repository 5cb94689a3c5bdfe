//! Escalation policies (SPEC §5): who is paged for an incident of a service,
//! step by step. Step 1 runs when the incident opens; each next step
//! `delayMinutes` after the one before, unless the incident was acknowledged or
//! resolved; after the last step the steps run again `repeat` more times.
//! Targets are resolved when the step runs. (The SLA-driven escalation of
//! incidents without a service is [`crate::escalation::SlaEscalation`].)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EscalationPolicyId, Role, RotationId, ScheduleId, UserId};

/// Most steps a policy has.
pub const MAX_STEPS: usize = 20;
/// Most targets a step has.
pub const MAX_TARGETS: usize = 10;
/// Longest delay of a step, in minutes.
pub const MAX_DELAY_MINUTES: u32 = 9000;
/// Most repeats of a policy.
pub const MAX_REPEAT: u32 = 5;
/// A new policy's `repeat` when the request gives none (GoAlert's default).
pub const DEFAULT_REPEAT: u32 = 3;

/// Whom a step pages.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum PolicyTarget {
    /// This user.
    User {
        /// The user.
        id: UserId,
    },
    /// Whoever is on call in this schedule when the step runs.
    Schedule {
        /// The schedule.
        id: ScheduleId,
    },
    /// Whoever is on call in this rotation when the step runs.
    Rotation {
        /// The rotation.
        id: RotationId,
    },
    /// Every user with this role.
    Role {
        /// The role.
        role: Role,
    },
    /// The incident's assignee (nobody when unassigned: the step is skipped
    /// if no other target resolves to somebody).
    Assignee,
}

/// A step of a policy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EscalationStep {
    /// The wait after this step before the next, 1..=9000 minutes.
    pub delay_minutes: u32,
    /// Whom it pages, 1..=10 targets.
    pub targets: Vec<PolicyTarget>,
}

/// An escalation policy.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscalationPolicy {
    /// Id.
    pub id: EscalationPolicyId,
    /// Name, 1..=100 characters (not unique).
    pub name: String,
    /// Description, at most 10,000 characters.
    pub description: String,
    /// How many more times the steps run after the last, 0..=5.
    pub repeat: u32,
    /// Steps, 1..=20.
    pub steps: Vec<EscalationStep>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, incremented by every write.
    pub version: i64,
}

impl EscalationPolicy {
    /// How many steps run in all (the steps, `repeat + 1` times).
    pub fn total_steps(&self) -> u32 {
        (self.steps.len() as u32).saturating_mul(self.repeat.saturating_add(1))
    }

    /// The step at position `n` of the whole run (0-based, repeats counted):
    /// `steps[n mod len]`, `None` from [`EscalationPolicy::total_steps`] on.
    pub fn step_at(&self, n: u32) -> Option<&EscalationStep> {
        if n >= self.total_steps() {
            return None;
        }
        self.steps.get(n as usize % self.steps.len())
    }
}

/// What `POST /escalation-policies` takes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewEscalationPolicy {
    /// Name, 1..=100 characters.
    pub name: String,
    /// Description (default empty).
    #[serde(default)]
    pub description: String,
    /// 0..=5 (default 3).
    #[serde(default)]
    pub repeat: Option<u32>,
    /// Steps, 1..=20.
    pub steps: Vec<EscalationStep>,
}

/// What `PATCH /escalation-policies/{id}` takes: any subset of the fields.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EscalationPolicyPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New repeat.
    #[serde(default)]
    pub repeat: Option<u32>,
    /// New steps (the whole list).
    #[serde(default)]
    pub steps: Option<Vec<EscalationStep>>,
}
