//! The incident lifecycle: which status may follow which
//! ([`Status::can_transition_to`]), and what a transition does to the SLA clocks
//! and lifecycle timestamps.

use crate::error::{Error, Result};
use crate::model::{Incident, Status, Timestamp};
use crate::sla;

/// Applies a status change's side effects: response and resolution clocks,
/// hold pauses, lifecycle timestamps.
pub fn transition(incident: &mut Incident, to: Status, now: Timestamp) -> Result<()> {
    let from = incident.status;
    if !from.can_transition_to(to) {
        return Err(Error::InvalidTransition { from, to });
    }
    if from == Status::OnHold {
        sla::resume(incident, now);
    }
    if to == Status::OnHold {
        sla::pause(incident, now);
    }
    if from == Status::Open && incident.acknowledged_at.is_none() {
        incident.acknowledged_at = Some(now);
    }
    match to {
        Status::Resolved => incident.resolved_at = Some(now),
        Status::Closed => incident.closed_at = Some(now),
        Status::InProgress if from == Status::Resolved => incident.resolved_at = None,
        _ => {}
    }
    incident.status = to;
    Ok(())
}
