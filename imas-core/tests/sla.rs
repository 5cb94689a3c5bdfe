//! SLA arithmetic: targets per priority, deadlines, pauses, boundaries, and the
//! escalation schedule.

use std::time::Duration;

use imas_core::escalation::{
    EscalationLevel, SlaEscalation, Step, Target, next_escalation, next_step,
};
use imas_core::model::plus_ms;
use imas_core::model::{Priority, Role, Status, UserId};
use imas_core::sla::{self, SlaPolicy, parse_duration};
use imas_core::testkit::store::{at, incident, t0};
use proptest::prelude::*;

const H: i64 = 3_600_000;
const M: i64 = 60_000;

#[test]
fn default_targets_per_priority() {
    let p = SlaPolicy::default();
    let table = [
        (Priority::Low, 48 * H, 8 * H),
        (Priority::Medium, 24 * H, 4 * H),
        (Priority::High, 4 * H, H),
        (Priority::Critical, H, 15 * M),
    ];
    for (prio, resolution, response) in table {
        assert_eq!(p.resolution_ms(prio), resolution, "{prio} resolution");
        assert_eq!(p.response_ms(prio), response, "{prio} response");
        let mut i = incident(UserId::new(), "t", at(5_000));
        p.assign(&mut i, prio);
        assert_eq!(i.sla_deadline, at(5_000 + resolution), "{prio} deadline");
        assert_eq!(
            i.response_deadline,
            at(5_000 + response),
            "{prio} response deadline"
        );
        assert_eq!(
            p.at_risk_instant(&i),
            at(5_000 + resolution * 8 / 10),
            "{prio} at risk at 80%"
        );
    }
    assert_eq!(p.at_risk_fraction(), 0.8);
}

/// The instants the sweep acts at (it applies a step once `at <= now`): the
/// at-risk warning at exactly 80% of the target, the breach at exactly the
/// deadline (the deadline instant itself is a breach; the engine tests check the
/// sweep one millisecond before and at it).
#[test]
fn breach_and_at_risk_instants() {
    let (sla, esc) = (SlaPolicy::default(), SlaEscalation::default());
    let mut i = incident(UserId::new(), "t", t0());
    sla.assign(&mut i, Priority::Critical);
    i.response_breached_at = Some(at(15 * M)); // only the resolution SLA speaks
    let risk = 48 * M; // 80% of one hour
    assert_eq!(next_step(&i, &sla, &esc), Some((Step::AtRisk, at(risk))));
    i.at_risk_at = Some(at(risk));
    assert_eq!(next_step(&i, &sla, &esc), Some((Step::Breach, at(H))));
    assert_eq!(i.sla_deadline, at(H), "the breach is due at the deadline");
    // A warning recorded late does not move the breach.
    i.at_risk_at = Some(at(H - 1));
    assert_eq!(next_step(&i, &sla, &esc), Some((Step::Breach, at(H))));
    // With the at-risk instant already past and nothing recorded, the earlier
    // step (the warning) comes first, so a catch-up sweep applies both in order.
    i.at_risk_at = None;
    assert_eq!(next_step(&i, &sla, &esc), Some((Step::AtRisk, at(risk))));
}

#[test]
fn done_and_held_incidents_have_no_running_sla() {
    let (sla, esc) = (SlaPolicy::default(), SlaEscalation::default());
    for status in [Status::Resolved, Status::Closed, Status::OnHold] {
        let mut i = incident(UserId::new(), "t", t0());
        sla.assign(&mut i, Priority::Critical);
        i.status = status;
        assert_eq!(next_step(&i, &sla, &esc), None, "{status}");
    }
    // On hold after a breach, only the next escalation level can be pending, and
    // acknowledging (the engine does it when an incident first leaves `open`)
    // stops it; done incidents have nothing pending at all.
    let mut i = incident(UserId::new(), "t", t0());
    sla.assign(&mut i, Priority::Critical);
    (i.sla_breached, i.breached_at) = (true, Some(at(H)));
    (i.escalation_level, i.escalated_at) = (1, Some(at(H)));
    i.status = Status::OnHold;
    assert_eq!(
        next_step(&i, &sla, &esc),
        Some((Step::Escalate(2), at(H + 30 * M)))
    );
    i.acknowledged_at = Some(at(H + M));
    assert_eq!(next_step(&i, &sla, &esc), None, "acknowledged");
    // An acknowledgement that expired (the engine made it open again)
    // resumes the escalation.
    i.status = Status::Open;
    assert_eq!(
        next_step(&i, &sla, &esc),
        Some((Step::Escalate(2), at(H + 30 * M))),
        "open again after an expired acknowledgement"
    );
    i.acknowledged_at = None;
    i.status = Status::Closed;
    assert_eq!(next_step(&i, &sla, &esc), None);
}

#[test]
fn hold_extends_the_deadline_by_the_time_on_hold() {
    let p = SlaPolicy::default();
    let mut i = incident(UserId::new(), "t", t0());
    p.assign(&mut i, Priority::High);
    assert_eq!(i.sla_deadline, at(4 * H));
    sla::pause(&mut i, at(H));
    sla::pause(&mut i, at(H + 5)); // a second pause does not restart the hold
    sla::resume(&mut i, at(3 * H));
    assert_eq!(i.sla_deadline, at(6 * H), "two hours on hold");
    sla::pause(&mut i, at(4 * H));
    sla::resume(&mut i, at(4 * H + 30 * M));
    assert_eq!(i.sla_deadline, at(6 * H + 30 * M), "holds accumulate");
    sla::resume(&mut i, at(10 * H));
    assert_eq!(
        i.sla_deadline,
        at(6 * H + 30 * M),
        "resume without a hold changes nothing"
    );
    // A priority change keeps the time already held.
    p.assign(&mut i, Priority::Critical);
    assert_eq!(i.sla_deadline, at(H + 2 * H + 30 * M));
    assert_eq!(
        i.response_deadline,
        at(15 * M),
        "the response clock does not pause"
    );
}

#[test]
fn priority_change_recomputes_from_creation() {
    let p = SlaPolicy::default();
    let mut i = incident(UserId::new(), "t", at(10 * M));
    p.assign(&mut i, Priority::Low);
    assert_eq!(i.sla_deadline, at(10 * M + 48 * H));
    p.assign(&mut i, Priority::Critical);
    assert_eq!(
        (i.priority, i.sla_target_ms, i.sla_deadline),
        (Priority::Critical, H, at(10 * M + H))
    );
}

#[test]
fn policy_specs_parse_and_refuse_bad_values() {
    let p = SlaPolicy::default()
        .with_resolution_spec("IMAS_SLA_POLICY", "critical=2s, low=1h30m")
        .expect("spec");
    assert_eq!(p.resolution_ms(Priority::Critical), 2_000);
    assert_eq!(p.resolution_ms(Priority::Low), 90 * M);
    assert_eq!(
        p.resolution_ms(Priority::Medium),
        24 * H,
        "left out keeps its default"
    );
    for bad in [
        "",
        "critical",
        "urgent=1h",
        "critical=",
        "critical=1x",
        "critical=0s",
        "critical=-1s",
    ] {
        let e = SlaPolicy::default()
            .with_resolution_spec("IMAS_SLA_POLICY", bad)
            .expect_err(bad);
        assert!(e.to_string().contains("IMAS_SLA_POLICY"), "{bad}: {e}");
    }
    assert!(SlaPolicy::default().with_at_risk_fraction(0.0).is_err());
    assert!(SlaPolicy::default().with_at_risk_fraction(1.5).is_err());
    assert!(
        SlaPolicy::default()
            .with_at_risk_fraction(f64::NAN)
            .is_err()
    );
    assert_eq!(
        SlaPolicy::default()
            .with_at_risk_fraction(0.5)
            .expect("ok")
            .at_risk_fraction(),
        0.5
    );
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2d"), Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(parse_duration("1h1m1s"), Some(Duration::from_secs(3661)));
    assert_eq!(parse_duration("5"), None, "a unit is required");
    assert_eq!(parse_duration("h"), None);
    assert_eq!(parse_duration("99999999999999999999999h"), None);
}

#[test]
fn escalation_schedule() {
    let p = SlaEscalation::default();
    assert_eq!(p.max_level(), 2);
    assert!(p.breach_is_level_one());
    assert_eq!(next_escalation(&p, 0, 1000, false), Some((1, 1000)));
    assert_eq!(
        next_escalation(&p, 1, 1000, false),
        Some((2, 1000 + 30 * M))
    );
    assert_eq!(
        next_escalation(&p, 2, 1000, false),
        None,
        "past the last level"
    );
    assert_eq!(next_escalation(&p, 1, 1000, true), None, "stopped");
    assert_eq!(p.level(2).targets, vec![Target::Role(Role::Admin)]);
    assert_eq!(
        p.level(7).targets,
        vec![Target::Role(Role::Admin)],
        "beyond the policy: the last level"
    );

    let repeating = SlaEscalation::new(
        vec![
            EscalationLevel {
                delay: Duration::from_secs(60),
                targets: vec![Target::Assignee],
            },
            EscalationLevel {
                delay: Duration::from_secs(600),
                targets: vec![Target::Role(Role::Admin)],
            },
        ],
        2,
    )
    .expect("policy");
    assert_eq!(repeating.max_level(), 4);
    assert!(!repeating.breach_is_level_one());
    assert_eq!(next_escalation(&repeating, 3, 0, false), Some((4, 600_000)));
    assert_eq!(next_escalation(&repeating, 4, 0, false), None);
    assert!(SlaEscalation::new(vec![], 0).is_err());
    assert!(
        SlaEscalation::new(
            vec![EscalationLevel {
                delay: Duration::ZERO,
                targets: vec![]
            }],
            0
        )
        .is_err()
    );
    let parsed = SlaEscalation::parse_delays("IMAS_ESCALATION_DELAYS", "0s,5m,1h").expect("delays");
    assert_eq!((parsed.max_level(), parsed.delay_ms(3)), (3, Some(H)));
    let e = SlaEscalation::parse_delays("IMAS_ESCALATION_DELAYS", "0s,soon").expect_err("bad");
    assert!(e.to_string().contains("IMAS_ESCALATION_DELAYS"));
}

#[test]
fn next_step_order() {
    let (sla, esc) = (SlaPolicy::default(), SlaEscalation::default());
    let mut i = incident(UserId::new(), "t", t0());
    sla.assign(&mut i, Priority::Critical);
    assert_eq!(
        next_step(&i, &sla, &esc),
        Some((Step::ResponseBreach, at(15 * M)))
    );
    i.response_breached_at = Some(at(15 * M));
    assert_eq!(next_step(&i, &sla, &esc), Some((Step::AtRisk, at(48 * M))));
    i.at_risk_at = Some(at(48 * M));
    assert_eq!(next_step(&i, &sla, &esc), Some((Step::Breach, at(H))));
    i.sla_breached = true;
    i.breached_at = Some(at(H));
    i.escalation_level = 1;
    i.escalated_at = Some(at(H));
    assert_eq!(
        next_step(&i, &sla, &esc),
        Some((Step::Escalate(2), at(H + 30 * M)))
    );
    i.acknowledged_at = Some(at(H + M));
    i.status = Status::Acknowledged;
    assert_eq!(
        next_step(&i, &sla, &esc),
        None,
        "acknowledging stops escalation"
    );
    i.status = Status::Resolved;
    assert_eq!(next_step(&i, &sla, &esc), None);
}

proptest! {
    /// However the holds fall, the deadline equals creation + target + the total
    /// time on hold, and no hold ever moves it earlier.
    #[test]
    fn holds_never_move_the_deadline_earlier(gaps in proptest::collection::vec((0i64..10 * H, 0i64..10 * H), 0..12)) {
        let p = SlaPolicy::default();
        let mut i = incident(UserId::new(), "t", t0());
        let mut now = 0;
        let mut held = 0;
        let mut last = i.sla_deadline;
        for (run, hold) in gaps {
            now += run;
            sla::pause(&mut i, at(now));
            now += hold;
            sla::resume(&mut i, at(now));
            held += hold;
            prop_assert!(i.sla_deadline >= last);
            last = i.sla_deadline;
        }
        prop_assert_eq!(i.sla_deadline, at(p.resolution_ms(Priority::Medium) + held));
    }

    /// The at-risk instant is never after the deadline, for any fraction.
    #[test]
    fn at_risk_never_follows_the_deadline(fraction in 0.01f64..=1.0, target_s in 1u64..1_000_000) {
        let p = SlaPolicy::default()
            .with_at_risk_fraction(fraction).expect("fraction")
            .with_resolution(Priority::Low, Duration::from_secs(target_s)).expect("target");
        let mut i = incident(UserId::new(), "t", t0());
        p.assign(&mut i, Priority::Low);
        prop_assert!(p.at_risk_instant(&i) <= i.sla_deadline);
        prop_assert_eq!(i.sla_deadline, plus_ms(t0(), target_s as i64 * 1000));
    }
}
