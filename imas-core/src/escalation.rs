//! Escalation policies and the SLA step schedule: which automatic step (missed
//! response, at-risk warning, breach, next escalation level, the next step of
//! the incident's escalation policy, an expired acknowledgement) an incident is
//! due for, and when; and what a status change does to the policy stepping and
//! the acknowledgement timeout. Pure functions; the engine applies the steps.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::{Incident, Role, Status, Timestamp, UserId};
use crate::sla::SlaPolicy;

/// Who a level notifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The incident's assignee; every engineer when it is unassigned.
    Assignee,
    /// Every user with this role.
    Role(Role),
    /// These users.
    Users(Vec<UserId>),
}

/// One escalation level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationLevel {
    /// Delay after the breach (level 1) or after the previous level.
    pub delay: Duration,
    /// Who is notified when the level is reached.
    pub targets: Vec<Target>,
}

/// An ordered list of levels; the last may repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaEscalation {
    levels: Vec<EscalationLevel>,
    repeat_last: u32,
    delays_ms: Vec<i64>,
}

/// "No such instant": the due time of a step that will not happen.
pub const NEVER: i64 = i64::MAX;

impl Default for SlaEscalation {
    /// Level 1 at breach notifies the assignee (all engineers when unassigned);
    /// level 2 thirty minutes later notifies all admins.
    fn default() -> Self {
        Self::from_delays(&[Duration::ZERO, Duration::from_secs(30 * 60)])
            .unwrap_or_else(|_| unreachable!("the default delays are valid"))
    }
}

impl SlaEscalation {
    /// A policy from its levels; the last level repeats `repeat_last` more times.
    pub fn new(levels: Vec<EscalationLevel>, repeat_last: u32) -> Result<Self> {
        if levels.is_empty() {
            return Err(Error::config(
                "escalation policy",
                "expected at least one level",
            ));
        }
        let mut delays_ms = Vec::new();
        for (i, l) in levels.iter().enumerate() {
            if l.targets.is_empty() {
                return Err(Error::config(
                    "escalation policy",
                    format!("level {} has no targets", i + 1),
                ));
            }
            delays_ms.push(
                i64::try_from(l.delay.as_millis())
                    .unwrap_or(NEVER - 1)
                    .min(NEVER - 1),
            );
        }
        let last = *delays_ms.last().unwrap_or(&0);
        delays_ms.extend(std::iter::repeat_n(last, repeat_last as usize));
        Ok(Self {
            levels,
            repeat_last,
            delays_ms,
        })
    }

    /// The default targets (level 1: assignee; later levels: admins) with these
    /// delays, as `IMAS_ESCALATION_DELAYS` sets them.
    pub fn from_delays(delays: &[Duration]) -> Result<Self> {
        let levels = delays
            .iter()
            .enumerate()
            .map(|(i, &delay)| EscalationLevel {
                delay,
                targets: vec![if i == 0 {
                    Target::Assignee
                } else {
                    Target::Role(Role::Admin)
                }],
            })
            .collect();
        Self::new(levels, 0)
    }

    /// Parses a list such as `0s,30m` (see [`crate::sla::parse_duration`]).
    pub fn parse_delays(name: &str, spec: &str) -> Result<Self> {
        let delays = spec
            .split(',')
            .map(|d| {
                crate::sla::parse_duration(d).ok_or_else(|| {
                    Error::config(
                        name,
                        format!(
                            "bad duration {d:?}; expected delays separated by commas, e.g. 0s,30m"
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_delays(&delays).map_err(|e| Error::config(name, e.to_string()))
    }

    /// The highest level automatic escalation reaches.
    pub fn max_level(&self) -> u32 {
        self.delays_ms.len() as u32
    }

    /// Level `n` (1-based). Levels past the policy's end (reached by manual
    /// escalation or repeats) use the last level.
    pub fn level(&self, n: u32) -> &EscalationLevel {
        let i = (n.max(1) as usize - 1).min(self.levels.len() - 1);
        &self.levels[i]
    }

    /// Delay before level `n` (1-based) in ms; `None` past the last level.
    #[inline]
    pub fn delay_ms(&self, n: u32) -> Option<i64> {
        self.delays_ms.get((n as usize).wrapping_sub(1)).copied()
    }

    /// Whether the breach itself reaches level 1 (level 1's delay is zero).
    pub fn breach_is_level_one(&self) -> bool {
        self.delays_ms.first() == Some(&0)
    }
}

/// The next automatic escalation of an incident at `level` whose anchor (the
/// breach for level 0, the last escalation otherwise) is at `anchor_ms`: the level
/// and when it is due, or `None` when stopped or past the last level.
#[inline]
pub fn next_escalation(
    policy: &SlaEscalation,
    level: u32,
    anchor_ms: i64,
    stopped: bool,
) -> Option<(u32, i64)> {
    if stopped {
        return None;
    }
    let next = level + 1;
    policy
        .delay_ms(next)
        .map(|d| (next, anchor_ms.saturating_add(d)))
}

/// An automatic step the SLA monitor applies to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Still `open` at the response deadline.
    ResponseBreach,
    /// The at-risk fraction of the resolution target elapsed.
    AtRisk,
    /// The resolution deadline was reached (and level 1 when its delay is zero).
    Breach,
    /// Automatic escalation to this level (SLA-driven: incidents without an
    /// escalation policy).
    Escalate(u32),
    /// The step of the incident's escalation policy at position
    /// `escalation_step` (due at `next_escalation_at`, while `open`).
    PolicyStep,
    /// The acknowledgement expired (`ack_expires_at`, while `acknowledged` or
    /// `in-progress`): the incident is open again.
    AckExpired,
}

/// The earliest pending step of an incident and when it is due. Resolved and
/// closed incidents have none; on hold, only escalation of an already breached
/// incident could be pending, and acknowledging stops that too. An incident
/// with an escalation policy steps through it (`PolicyStep` while `open`)
/// instead of the SLA levels (`Escalate`); an acknowledged or in-progress one
/// whose acknowledgement has a timeout waits for `AckExpired`. The missed
/// response is about the first response: once acknowledged, an incident that
/// is open again (its acknowledgement expired) does not miss it.
pub fn next_step(i: &Incident, sla: &SlaPolicy, esc: &SlaEscalation) -> Option<(Step, Timestamp)> {
    if i.status.is_done() {
        return None;
    }
    let mut best: Option<(Step, Timestamp)> = None;
    let mut consider = |step: Step, at: Timestamp| {
        if best.is_none_or(|(_, b)| at < b) {
            best = Some((step, at));
        }
    };
    if i.status == Status::Open && i.response_breached_at.is_none() && i.acknowledged_at.is_none() {
        consider(Step::ResponseBreach, i.response_deadline);
    }
    let running = i.status != Status::OnHold;
    if running && !i.sla_breached {
        if i.at_risk_at.is_none() {
            consider(Step::AtRisk, sla.at_risk_instant(i));
        }
        consider(Step::Breach, i.sla_deadline);
    }
    if i.sla_breached && i.escalation_policy_id.is_none() {
        let anchor = if i.escalation_level == 0 {
            i.breached_at
        } else {
            i.escalated_at.or(i.breached_at)
        };
        if let Some(anchor) = anchor {
            // Acknowledging stops it; an acknowledgement that expired (the
            // incident is open again) resumes it.
            let stopped = i.acknowledged_at.is_some() && i.status != Status::Open;
            if let Some((level, at)) =
                next_escalation(esc, i.escalation_level, anchor.timestamp_millis(), stopped)
            {
                consider(Step::Escalate(level), crate::model::from_millis(at));
            }
        }
    }
    if i.status == Status::Open
        && let Some(at) = i.next_escalation_at
    {
        consider(Step::PolicyStep, at);
    }
    if matches!(i.status, Status::Acknowledged | Status::InProgress)
        && let Some(at) = i.ack_expires_at
    {
        consider(Step::AckExpired, at);
    }
    // Ties: the order above (response, at-risk, breach, policy step, expired
    // acknowledgement) is kept because only a strictly earlier instant
    // replaces the current best.
    best
}

/// What a status change from `from` to `incident.status` does to the policy
/// stepping and the acknowledgement timeout (SPEC §5): leaving `open` stops
/// the policy (no step pending); entering `acknowledged` or `in-progress` from
/// `open` or `on-hold` starts the acknowledgement timeout `ack_timeout` (the
/// service's, `None`: none), `acknowledged -> in-progress` keeps it; entering
/// `on-hold`, `resolved` or `closed` clears it. Call it after
/// [`crate::lifecycle::transition`].
pub fn after_transition(
    incident: &mut Incident,
    from: Status,
    ack_timeout: Option<Duration>,
    now: Timestamp,
) {
    let to = incident.status;
    if from == to {
        return;
    }
    if from == Status::Open {
        incident.next_escalation_at = None;
    }
    if starts_ack_timeout(from, to) {
        incident.ack_expires_at = ack_timeout.map(|d| crate::model::plus(now, d));
    } else if matches!(to, Status::OnHold | Status::Resolved | Status::Closed) {
        incident.ack_expires_at = None;
    }
}

/// Whether a status change from `from` to `to` starts an acknowledgement
/// timeout (so the engine needs the service's `ackTimeoutSeconds`).
pub fn starts_ack_timeout(from: Status, to: Status) -> bool {
    matches!(to, Status::Acknowledged | Status::InProgress)
        && matches!(from, Status::Open | Status::OnHold)
}

/// `next_step`'s due instant, what stores index as `next_due_at`.
pub fn next_due(i: &Incident, sla: &SlaPolicy, esc: &SlaEscalation) -> Option<Timestamp> {
    next_step(i, sla, esc).map(|(_, at)| at)
}
