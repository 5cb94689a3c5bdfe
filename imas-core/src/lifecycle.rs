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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{UserId, from_millis};

    fn at(ms: i64) -> Timestamp {
        from_millis(ms)
    }

    #[test]
    fn leaving_open_acknowledges_once() {
        let mut i = Incident::open("db", UserId::new(), at(0));
        transition(&mut i, Status::InProgress, at(10)).expect("allowed");
        assert_eq!(i.status, Status::InProgress);
        assert_eq!(i.acknowledged_at, Some(at(10)));
        transition(&mut i, Status::OnHold, at(20)).expect("allowed");
        assert_eq!(i.acknowledged_at, Some(at(10)));
    }

    #[test]
    fn a_refused_transition_changes_nothing() {
        let mut i = Incident::open("db", UserId::new(), at(0));
        transition(&mut i, Status::Closed, at(5)).expect("allowed");
        let before = i.clone();
        let refused = transition(&mut i, Status::InProgress, at(6));
        assert!(matches!(
            refused,
            Err(Error::InvalidTransition {
                from: Status::Closed,
                to: Status::InProgress
            })
        ));
        assert_eq!(i, before);
    }

    #[test]
    fn time_on_hold_is_not_counted_and_reopening_clears_the_resolution() {
        let mut i = Incident::open("db", UserId::new(), at(0));
        transition(&mut i, Status::OnHold, at(1_000)).expect("allowed");
        assert_eq!(i.hold_started_at, Some(at(1_000)));
        transition(&mut i, Status::Resolved, at(4_000)).expect("allowed");
        assert_eq!((i.hold_started_at, i.held_ms), (None, 3_000));
        assert_eq!(i.resolved_at, Some(at(4_000)));
        transition(&mut i, Status::InProgress, at(5_000)).expect("allowed");
        assert_eq!(i.resolved_at, None);
        transition(&mut i, Status::Closed, at(6_000)).expect("allowed");
        assert_eq!(i.closed_at, Some(at(6_000)));
    }
}
