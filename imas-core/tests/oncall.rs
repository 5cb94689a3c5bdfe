//! On-call math (issue 18 part 1): rotations' handoffs in their zone's wall
//! clock (DST gaps and folds, months of different lengths), the shifts of a
//! range, and schedules' rules and overrides; all on fixed instants, with
//! property tests that `on_call_at` and `shifts` agree.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use imas_core::model::{
    ClockTime, Override, OverrideId, Rotation, RotationId, RotationType, RuleTarget, Schedule,
    ScheduleId, ScheduleRule, Shift, UserId, Weekday, Weekdays,
};
use proptest::prelude::*;
use uuid::Uuid;

// ---------------------------------------------------------------- helpers

fn tz(name: &str) -> Tz {
    name.parse().expect("a valid fixture")
}

fn user(i: usize) -> UserId {
    UserId(Uuid::from_u128(i as u128 + 1))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a valid fixture")
        .with_timezone(&Utc)
}

fn naive(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("a valid fixture")
}

/// The instant of a wall-clock time that exists once in `zone`.
fn at_local(zone: Tz, s: &str) -> DateTime<Utc> {
    match zone.from_local_datetime(&naive(s)) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        other => panic!("{s} in {zone} is not single: {other:?}"),
    }
}

fn wall(t: DateTime<Utc>, zone: Tz) -> NaiveDateTime {
    t.with_timezone(&zone).naive_local()
}

fn rotation(
    kind: RotationType,
    shift_length: u32,
    start: DateTime<Utc>,
    zone: Tz,
    people: usize,
) -> Rotation {
    Rotation {
        id: RotationId(Uuid::from_u128(0xA0 + people as u128)),
        name: "r".into(),
        description: String::new(),
        kind,
        shift_length,
        start,
        time_zone: zone,
        participants: (0..people).map(user).collect(),
        created_at: start,
        updated_at: start,
        version: 1,
    }
}

fn hm(h: u32, m: u32) -> ClockTime {
    ClockTime::new(h, m).expect("a valid fixture")
}

fn rule(target: RuleTarget, start: ClockTime, end: ClockTime, days: &[Weekday]) -> ScheduleRule {
    ScheduleRule {
        target,
        start,
        end,
        weekdays: if days.is_empty() {
            Weekdays::ALL
        } else {
            Weekdays::of(days)
        },
    }
}

fn u(i: usize) -> RuleTarget {
    RuleTarget::User { id: user(i) }
}

fn schedule(zone: Tz, rules: Vec<ScheduleRule>, overrides: Vec<Override>) -> Schedule {
    let t = utc("2026-01-01T00:00:00Z");
    Schedule {
        id: ScheduleId(Uuid::from_u128(7)),
        name: "s".into(),
        description: String::new(),
        time_zone: zone,
        rules,
        overrides,
        created_at: t,
        updated_at: t,
        version: 1,
    }
}

fn ovr(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    add: Option<usize>,
    remove: Option<usize>,
) -> Override {
    Override {
        id: OverrideId::new(),
        start,
        end,
        add_user_id: add.map(user),
        remove_user_id: remove.map(user),
        created_by: user(99),
        created_at: start,
    }
}

/// Checks a rotation's shifts over `[a, b)`: in order, abutting, non-empty,
/// covering the range exactly, each its participant's and each
/// `shift_index_at`'s; returns them.
fn check_rotation_shifts(r: &Rotation, a: DateTime<Utc>, b: DateTime<Utc>) -> Vec<Shift> {
    let shifts = r.shifts(a, b);
    assert!(!shifts.is_empty(), "no shifts for {a}..{b}");
    assert_eq!(
        shifts[0].start, a,
        "first shift starts at the range's start"
    );
    assert_eq!(
        shifts.last().expect("a valid fixture").end,
        b,
        "last shift ends at its end"
    );
    for w in shifts.windows(2) {
        assert_eq!(w[0].end, w[1].start, "shifts abut: {w:?}");
    }
    for s in &shifts {
        assert!(s.start < s.end, "zero-length shift {s:?}");
        let (k, from, until) = r.shift_index_at(s.start);
        assert!(from <= s.start && s.start < until);
        assert_eq!(s.end, until.min(b), "{s:?}");
        assert_eq!(s.truncated, from < a || until > b, "{s:?}");
        assert_eq!(from, r.handoff(k));
        assert_eq!(until, r.handoff(k + 1));
        let n = r.participants.len() as i64;
        assert_eq!(s.user_id, r.participants[k.rem_euclid(n) as usize]);
        assert_eq!(r.on_call_at(s.start), Some(s.user_id));
        assert_eq!(
            r.on_call_at(s.end - Duration::milliseconds(1)),
            Some(s.user_id)
        );
    }
    shifts
}

// ------------------------------------------------------------ rotations

const DST_ZONES: [&str; 3] = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"];

#[test]
fn daily_nine_oclock_stays_nine_local_every_day_of_a_year() {
    for name in DST_ZONES {
        let zone = tz(name);
        let start = at_local(zone, "2026-01-01 09:00");
        let r = rotation(RotationType::Daily, 1, start, zone, 3);
        let mut offsets = std::collections::BTreeSet::new();
        for k in -366..=366 {
            let h = r.handoff(k);
            let want = naive("2026-01-01 09:00") + Duration::days(k);
            assert_eq!(wall(h, zone), want, "{name} handoff {k}");
            offsets.insert(h.with_timezone(&zone).offset().to_string());
            // The shift holding the handoff is k, from it to the next one.
            assert_eq!(r.shift_index_at(h), (k, h, r.handoff(k + 1)), "{name} {k}");
            assert_eq!(r.on_call_at(h), Some(user(k.rem_euclid(3) as usize)));
        }
        assert_eq!(offsets.len(), 2, "{name}: both offsets of the year seen");
    }
    // Lord Howe's shifts are 24 h but for the two 23.5 h and 24.5 h days.
    let zone = tz("Australia/Lord_Howe");
    let r = rotation(
        RotationType::Daily,
        1,
        at_local(zone, "2026-01-01 09:00"),
        zone,
        1,
    );
    let mut lengths: Vec<i64> = (0..365)
        .map(|k| (r.handoff(k + 1) - r.handoff(k)).num_minutes())
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    assert_eq!(lengths, vec![23 * 60 + 30, 24 * 60, 24 * 60 + 30]);
}

#[test]
fn a_handoff_at_a_time_that_does_not_exist_is_at_the_gaps_end() {
    // (zone, daily start, the day of the gap at the same wall time, the
    // instant it maps to: the first valid instant after the gap)
    let cases = [
        (
            "Europe/Berlin",
            "2026-03-27 02:30",
            2,
            "2026-03-29T01:00:00Z",
        ), // 03:00 CEST
        (
            "America/New_York",
            "2026-03-06 02:30",
            2,
            "2026-03-08T07:00:00Z",
        ), // 03:00 EDT
        (
            "Australia/Lord_Howe",
            "2026-10-01 02:10",
            3,
            "2026-10-03T15:30:00Z",
        ), // 02:30 +11
    ];
    for (name, start, k, want) in cases {
        let zone = tz(name);
        let r = rotation(RotationType::Daily, 1, at_local(zone, start), zone, 2);
        assert_eq!(r.handoff(k), utc(want), "{name}");
        // The day after is at the wall time again.
        let next = wall(r.handoff(k + 1), zone);
        assert_eq!(next.time(), naive(start).time(), "{name}");
        // The shift before the gap ends at its end, the next begins there.
        let (i, from, until) = r.shift_index_at(utc(want) - Duration::seconds(1));
        assert_eq!((i, until), (k - 1, utc(want)), "{name}");
        assert_eq!(from, r.handoff(k - 1));
        assert_eq!(r.shift_index_at(utc(want)).0, k, "{name}");
    }
    // A start itself in the gap (not truncated by the engine) is its end too.
    let berlin = tz("Europe/Berlin");
    let r = rotation(
        RotationType::Weekly,
        1,
        utc("2026-03-22T01:30:00Z"), // 02:30 CET a week before the gap
        berlin,
        2,
    );
    assert_eq!(r.handoff(1), utc("2026-03-29T01:00:00Z"));
    assert_eq!(wall(r.handoff(2), berlin), naive("2026-04-05 02:30"));
}

#[test]
fn a_handoff_at_a_time_that_exists_twice_is_the_earlier() {
    let cases = [
        (
            "Europe/Berlin",
            "2026-10-23 02:30",
            2,
            "2026-10-25T00:30:00Z",
        ), // CEST
        (
            "America/New_York",
            "2026-10-30 01:30",
            2,
            "2026-11-01T05:30:00Z",
        ), // EDT
        (
            "Australia/Lord_Howe",
            "2026-04-03 01:45",
            2,
            "2026-04-04T14:45:00Z",
        ), // +11
    ];
    for (name, start, k, want) in cases {
        let zone = tz(name);
        let r = rotation(RotationType::Daily, 1, at_local(zone, start), zone, 2);
        assert_eq!(r.handoff(k), utc(want), "{name}");
        // In the repeated hour, after the second pass of the wall time, the
        // shift is still the one from the first pass: it is 24 h + the
        // change long.
        let (i, from, until) = r.shift_index_at(utc(want) + Duration::minutes(59));
        assert_eq!((i, from), (k, utc(want)), "{name}");
        assert_eq!(
            wall(until, zone),
            naive(start) + Duration::days(k + 1),
            "{name}"
        );
    }
}

#[test]
fn weekly_handoffs_keep_the_weekday_and_wall_time_across_dst() {
    for name in DST_ZONES {
        let zone = tz(name);
        let start = at_local(zone, "2026-01-05 09:00"); // a Monday
        let r = rotation(RotationType::Weekly, 2, start, zone, 4);
        for k in -30..30 {
            let w = wall(r.handoff(k), zone);
            assert_eq!(
                w,
                naive("2026-01-05 09:00") + Duration::weeks(2 * k),
                "{name} {k}"
            );
            assert_eq!(w.weekday(), chrono::Weekday::Mon);
        }
        let a = start;
        let b = start + Duration::days(90);
        let shifts = check_rotation_shifts(&r, a, b);
        assert_eq!(shifts.len(), 7, "{name}: 90 days of 2-week shifts");
        assert!(!shifts[0].truncated && shifts[6].truncated);
    }
}

#[test]
fn monthly_handoffs_clamp_to_the_month_end_without_drift() {
    let zone = tz("Europe/Berlin");
    let r = rotation(
        RotationType::Monthly,
        1,
        at_local(zone, "2026-01-31 10:00"),
        zone,
        2,
    );
    let want = [
        (-13, "2024-12-31 10:00"),
        (-11, "2025-02-28 10:00"),
        (-1, "2025-12-31 10:00"),
        (0, "2026-01-31 10:00"),
        (1, "2026-02-28 10:00"),
        (2, "2026-03-31 10:00"), // not the 28th: computed from start each time
        (3, "2026-04-30 10:00"),
        (4, "2026-05-31 10:00"),
        (25, "2028-02-29 10:00"), // leap year
        (26, "2028-03-31 10:00"),
    ];
    for (k, w) in want {
        assert_eq!(wall(r.handoff(k), zone), naive(w), "handoff {k}");
    }
    // Mid-month instants land in the right shift, before start too.
    assert_eq!(r.shift_index_at(at_local(zone, "2026-03-30 12:00")).0, 1);
    assert_eq!(r.shift_index_at(at_local(zone, "2026-03-31 09:59")).0, 1);
    assert_eq!(r.shift_index_at(at_local(zone, "2026-03-31 10:00")).0, 2);
    assert_eq!(r.shift_index_at(at_local(zone, "2025-03-01 00:00")).0, -11);
    assert_eq!(
        r.on_call_at(at_local(zone, "2025-03-01 00:00")),
        Some(user(1))
    );
    // Three-month shifts.
    let q = rotation(
        RotationType::Monthly,
        3,
        at_local(zone, "2026-01-31 10:00"),
        zone,
        2,
    );
    assert_eq!(wall(q.handoff(1), zone), naive("2026-04-30 10:00"));
    assert_eq!(wall(q.handoff(4), zone), naive("2027-01-31 10:00"));
    assert_eq!(wall(q.handoff(-1), zone), naive("2025-10-31 10:00"));
    check_rotation_shifts(
        &q,
        at_local(zone, "2025-06-15 00:00"),
        at_local(zone, "2026-09-15 00:00"),
    );
}

#[test]
fn hourly_handoffs_stay_on_the_wall_clock_hour_across_dst() {
    let berlin = tz("Europe/Berlin");
    let r = rotation(
        RotationType::Hourly,
        1,
        at_local(berlin, "2026-03-28 00:00"),
        berlin,
        3,
    );
    // Spring forward: 02:00 does not exist, so handoffs 26 (02:00 -> 03:00)
    // and 27 (03:00) are one instant; shift 26 does not exist.
    assert_eq!(r.handoff(26), utc("2026-03-29T01:00:00Z"));
    assert_eq!(r.handoff(27), utc("2026-03-29T01:00:00Z"));
    assert_eq!(r.shift_index_at(utc("2026-03-29T01:00:00Z")).0, 27);
    assert_eq!(r.shift_index_at(utc("2026-03-29T00:59:59Z")).0, 25);
    let a = utc("2026-03-28T12:00:00Z");
    let b = utc("2026-03-30T12:00:00Z");
    let shifts = check_rotation_shifts(&r, a, b);
    assert_eq!(shifts.len(), 48, "49 wall-clock hours, 02:00 missing");
    for s in &shifts {
        assert_eq!(wall(s.start, berlin).minute(), 0, "{s:?}");
    }
    // Fall back: 02:00 is the first 02:00 (CEST), 03:00 an hour after the
    // second: that shift is two hours long.
    let r = rotation(
        RotationType::Hourly,
        1,
        at_local(berlin, "2026-10-25 00:00"),
        berlin,
        3,
    );
    assert_eq!(r.handoff(2), utc("2026-10-25T00:00:00Z"));
    assert_eq!(r.handoff(3), utc("2026-10-25T02:00:00Z"));
    assert_eq!(r.shift_index_at(utc("2026-10-25T01:30:00Z")).0, 2);
    let shifts =
        check_rotation_shifts(&r, utc("2026-10-24T12:00:00Z"), utc("2026-10-26T12:00:00Z"));
    assert_eq!(shifts.len(), 47);
    // Lord Howe's half hour: 02:00 -> 02:30; the shift from 02:30 to 03:00 is
    // half an hour; every other starts on the hour.
    let lh = tz("Australia/Lord_Howe");
    let r = rotation(
        RotationType::Hourly,
        1,
        at_local(lh, "2026-10-03 00:00"),
        lh,
        2,
    );
    let shifts = check_rotation_shifts(
        &r,
        at_local(lh, "2026-10-03 12:00"),
        at_local(lh, "2026-10-05 12:00"),
    );
    let odd: Vec<_> = shifts
        .iter()
        .filter(|s| wall(s.start, lh).minute() != 0)
        .map(|s| (wall(s.start, lh), (s.end - s.start).num_minutes()))
        .collect();
    assert_eq!(odd, vec![(naive("2026-10-04 02:30"), 30)]);
    // Twelve-hour shifts: 09:00 and 21:00 local all year.
    let r = rotation(
        RotationType::Hourly,
        12,
        at_local(berlin, "2026-01-01 09:00"),
        berlin,
        2,
    );
    for k in 0..730 {
        let h = wall(r.handoff(k), berlin).hour();
        assert!(h == 9 || h == 21, "handoff {k} at {h}");
    }
}

#[test]
fn rotations_are_defined_before_start_and_without_participants_nobody() {
    let zone = tz("America/New_York");
    let start = at_local(zone, "2026-06-01 09:00");
    let r = rotation(RotationType::Daily, 1, start, zone, 3);
    let t = start - Duration::hours(1); // 2026-05-31 08:00: shift -1
    assert_eq!(r.shift_index_at(t), (-1, r.handoff(-1), start));
    assert_eq!(r.on_call_at(t), Some(user(2)));
    assert_eq!(r.on_call_at(start - Duration::days(3)), Some(user(0)));
    assert_eq!(r.on_call_at(start), Some(user(0)));
    let empty = rotation(RotationType::Daily, 1, start, zone, 0);
    assert_eq!(empty.on_call_at(start), None);
    assert!(empty.shifts(start, start + Duration::days(1)).is_empty());
    assert!(r.shifts(start, start).is_empty());
    // Absurd indexes saturate instead of panicking.
    assert_eq!(r.handoff(i64::MAX), DateTime::<Utc>::MAX_UTC);
    assert_eq!(r.handoff(i64::MIN), DateTime::<Utc>::MIN_UTC);
    let _ = r.shift_index_at(DateTime::<Utc>::MAX_UTC);
    let _ = r.shift_index_at(DateTime::<Utc>::MIN_UTC);
}

#[test]
fn one_person_shifts_cover_the_range_exactly() {
    let zone = tz("Australia/Lord_Howe");
    for kind in [
        RotationType::Hourly,
        RotationType::Daily,
        RotationType::Weekly,
        RotationType::Monthly,
    ] {
        let r = rotation(kind, 1, at_local(zone, "2026-02-10 02:15"), zone, 1);
        let a = utc("2026-01-01T00:00:00Z");
        let b = a + Duration::days(90);
        let shifts = check_rotation_shifts(&r, a, b);
        assert!(shifts.iter().all(|s| s.user_id == user(0)));
        assert!(shifts[0].truncated);
    }
}

// ------------------------------------------------------------ schedules

#[test]
fn rules_all_day_ranges_overnight_and_weekdays() {
    use Weekday::*;
    let zone = tz("Europe/Berlin");
    let s = schedule(
        zone,
        vec![
            rule(u(0), hm(9, 0), hm(17, 0), &[Mon, Tue, Wed, Thu, Fri]),
            rule(u(1), hm(22, 0), hm(6, 0), &[Fri]),
            rule(u(2), hm(0, 0), hm(0, 0), &[Sat, Sun]),
            rule(u(3), hm(12, 0), hm(12, 0), &[Wed]),
        ],
        vec![],
    );
    let on = |w: &str| s.on_call_at(at_local(zone, w), &[]);
    // 2026-03-06 is a Friday.
    assert_eq!(on("2026-03-06 08:59"), vec![]);
    assert_eq!(on("2026-03-06 09:00"), vec![user(0)]);
    assert_eq!(on("2026-03-06 16:59"), vec![user(0)]);
    assert_eq!(on("2026-03-06 17:00"), vec![]);
    assert_eq!(on("2026-03-06 21:59"), vec![]);
    assert_eq!(on("2026-03-06 22:00"), vec![user(1)]);
    // Saturday: the overnight rule until 06:00 (Friday is its day), the
    // weekend all-day rule from midnight.
    assert_eq!(on("2026-03-07 00:00"), vec![user(1), user(2)]);
    assert_eq!(on("2026-03-07 05:59"), vec![user(1), user(2)]);
    assert_eq!(on("2026-03-07 06:00"), vec![user(2)]);
    assert_eq!(on("2026-03-07 23:00"), vec![user(2)]); // not Saturday's overnight
    assert_eq!(on("2026-03-08 23:59"), vec![user(2)]);
    assert_eq!(on("2026-03-09 00:00"), vec![]); // Monday
    // Thursday 03:00: the overnight rule's yesterday (Wednesday) is not Friday.
    assert_eq!(on("2026-03-05 03:00"), vec![]);
    // Wednesday: the all-day rule whatever its clock times.
    assert_eq!(on("2026-03-04 00:00"), vec![user(3)]);
    assert_eq!(on("2026-03-04 10:00"), vec![user(0), user(3)]);
    assert_eq!(on("2026-03-04 23:59"), vec![user(3)]);
}

#[test]
fn rule_targets_rotations_users_and_missing_rotations() {
    let zone = tz("America/New_York");
    let r = rotation(
        RotationType::Daily,
        1,
        at_local(zone, "2026-03-01 09:00"),
        zone,
        3,
    );
    let missing = RotationId(Uuid::from_u128(0xDEAD));
    let s = schedule(
        zone,
        vec![
            rule(RuleTarget::Rotation { id: r.id }, hm(0, 0), hm(0, 0), &[]),
            rule(u(5), hm(8, 0), hm(18, 0), &[]),
            rule(
                RuleTarget::Rotation { id: missing },
                hm(0, 0),
                hm(0, 0),
                &[],
            ),
            // The rotation again: no duplicate.
            rule(RuleTarget::Rotation { id: r.id }, hm(10, 0), hm(11, 0), &[]),
            // A user already on call by the rotation: no duplicate.
            rule(u(1), hm(0, 0), hm(0, 0), &[]),
        ],
        vec![],
    );
    assert_eq!(s.rotation_ids(), vec![r.id, missing]);
    let rots = std::slice::from_ref(&r);
    let t = at_local(zone, "2026-03-02 10:30"); // shift 1: user 1
    assert_eq!(s.on_call_at(t, rots), vec![user(1), user(5)]);
    let t = at_local(zone, "2026-03-03 07:00"); // shift 1 still (before 09:00)
    assert_eq!(s.on_call_at(t, rots), vec![user(1)]);
    let t = at_local(zone, "2026-03-03 09:00"); // shift 2: user 2
    assert_eq!(s.on_call_at(t, rots), vec![user(2), user(5), user(1)]);
    // Without the rotation loaded, its rules put nobody on call.
    assert_eq!(s.on_call_at(t, &[]), vec![user(5), user(1)]);
}

#[test]
fn overrides_add_remove_replace_only_while_on_call_without_duplicates() {
    let zone = tz("UTC");
    let t = |h: u32| utc(&format!("2026-03-02T{h:02}:00:00Z"));
    let rules = vec![
        rule(u(0), hm(0, 0), hm(12, 0), &[]),
        rule(u(1), hm(6, 0), hm(18, 0), &[]),
    ];
    let base = schedule(zone, rules.clone(), vec![]);
    assert_eq!(base.on_call_at(t(7), &[]), vec![user(0), user(1)]);
    let with = |o: Vec<Override>| schedule(zone, rules.clone(), o);
    // add: appended, active in [start, end) only.
    let s = with(vec![ovr(t(5), t(8), Some(7), None)]);
    assert_eq!(s.on_call_at(t(4), &[]), vec![user(0)]);
    assert_eq!(s.on_call_at(t(5), &[]), vec![user(0), user(7)]);
    assert_eq!(s.on_call_at(t(7), &[]), vec![user(0), user(1), user(7)]);
    assert_eq!(s.on_call_at(t(8), &[]), vec![user(0), user(1)]);
    // add of someone on call: no duplicate.
    let s = with(vec![ovr(t(0), t(23), Some(1), None)]);
    assert_eq!(s.on_call_at(t(7), &[]), vec![user(0), user(1)]);
    assert_eq!(s.on_call_at(t(13), &[]), vec![user(1)]);
    assert_eq!(s.on_call_at(t(20), &[]), vec![user(1)]);
    // remove: only while the removed user is on call.
    let s = with(vec![ovr(t(0), t(23), None, Some(1))]);
    assert_eq!(s.on_call_at(t(7), &[]), vec![user(0)]);
    assert_eq!(s.on_call_at(t(20), &[]), vec![]);
    // replace: in the removed user's place, only while he is on call.
    let s = with(vec![ovr(t(0), t(23), Some(7), Some(0))]);
    assert_eq!(s.on_call_at(t(3), &[]), vec![user(7)]);
    assert_eq!(s.on_call_at(t(7), &[]), vec![user(7), user(1)]);
    assert_eq!(s.on_call_at(t(13), &[]), vec![user(1)]); // user 0 off: no 7
    assert_eq!(s.on_call_at(t(20), &[]), vec![]);
    // replace by someone already on call: the removed one just goes.
    let s = with(vec![ovr(t(0), t(23), Some(1), Some(0))]);
    assert_eq!(s.on_call_at(t(7), &[]), vec![user(1)]);
    assert_eq!(s.on_call_at(t(3), &[]), vec![user(1)]);
    // Order matters: stored order applies.
    let s = with(vec![
        ovr(t(0), t(23), Some(7), None),
        ovr(t(1), t(23), None, Some(7)),
    ]);
    assert_eq!(s.on_call_at(t(0), &[]), vec![user(0), user(7)]);
    assert_eq!(s.on_call_at(t(7), &[]), vec![user(0), user(1)]);
    let s = with(vec![
        ovr(t(0), t(23), None, Some(7)),
        ovr(t(1), t(23), Some(7), None),
    ]);
    assert_eq!(s.on_call_at(t(7), &[]), vec![user(0), user(1), user(7)]);
    // A chain of replaces: 0 -> 7, then 7 -> 8.
    let s = with(vec![
        ovr(t(0), t(23), Some(7), Some(0)),
        ovr(t(0), t(23), Some(8), Some(7)),
    ]);
    assert_eq!(s.on_call_at(t(7), &[]), vec![user(8), user(1)]);
    // An override of a rotation's user: only during his shifts.
    let r = rotation(RotationType::Hourly, 1, t(0), zone, 2);
    let s = schedule(
        zone,
        vec![rule(
            RuleTarget::Rotation { id: r.id },
            hm(0, 0),
            hm(0, 0),
            &[],
        )],
        vec![ovr(t(0), t(23), Some(9), Some(1))],
    );
    let rots = std::slice::from_ref(&r);
    assert_eq!(s.on_call_at(t(2), rots), vec![user(0)]);
    assert_eq!(s.on_call_at(t(3), rots), vec![user(9)]);
}

#[test]
fn schedule_shifts_merge_stretches_and_mark_truncation() {
    use Weekday::*;
    let zone = tz("Europe/Berlin");
    let r = rotation(
        RotationType::Weekly,
        1,
        at_local(zone, "2026-03-02 09:00"),
        zone,
        2,
    );
    let s = schedule(
        zone,
        vec![
            rule(RuleTarget::Rotation { id: r.id }, hm(0, 0), hm(0, 0), &[]),
            // Business hours on weekdays for user 5, overnight Fri for 6.
            rule(u(5), hm(9, 0), hm(17, 0), &[Mon, Tue, Wed, Thu, Fri]),
            rule(u(6), hm(22, 0), hm(6, 0), &[Fri]),
            // Two rules back to back for 7: one stretch.
            rule(u(7), hm(8, 0), hm(12, 0), &[Sat]),
            rule(u(7), hm(12, 0), hm(14, 0), &[Sat]),
        ],
        vec![ovr(
            at_local(zone, "2026-03-25 12:00"),
            at_local(zone, "2026-03-27 12:00"),
            Some(8),
            Some(1),
        )],
    );
    let rots = std::slice::from_ref(&r);
    let a = at_local(zone, "2026-03-20 10:00");
    let b = at_local(zone, "2026-04-03 10:00");
    let shifts = check_schedule_shifts(&s, rots, a, b, 400);
    let of = |i: usize| -> Vec<(NaiveDateTime, NaiveDateTime, bool)> {
        shifts
            .iter()
            .filter(|x| x.user_id == user(i))
            .map(|x| (wall(x.start, zone), wall(x.end, zone), x.truncated))
            .collect()
    };
    // The rotation: user 0 holds 16-23 and 30 March-6 April, user 1 23-30
    // March, and the override hands 25-27 March of his to user 8.
    assert_eq!(
        of(0),
        vec![
            (naive("2026-03-20 10:00"), naive("2026-03-23 09:00"), true),
            (naive("2026-03-30 09:00"), naive("2026-04-03 10:00"), true),
        ]
    );
    assert_eq!(
        of(1),
        vec![
            (naive("2026-03-23 09:00"), naive("2026-03-25 12:00"), false),
            (naive("2026-03-27 12:00"), naive("2026-03-30 09:00"), false),
        ]
    );
    assert_eq!(
        of(8),
        vec![(naive("2026-03-25 12:00"), naive("2026-03-27 12:00"), false)]
    );
    assert_eq!(
        of(7),
        vec![
            (naive("2026-03-21 08:00"), naive("2026-03-21 14:00"), false),
            (naive("2026-03-28 08:00"), naive("2026-03-28 14:00"), false),
        ]
    );
    // The overnight rule over the spring-forward night (28/29 March is
    // Saturday/Sunday; Friday 27th 22:00 to Saturday 06:00).
    assert_eq!(
        of(6),
        vec![
            (naive("2026-03-20 22:00"), naive("2026-03-21 06:00"), false),
            (naive("2026-03-27 22:00"), naive("2026-03-28 06:00"), false),
        ]
    );
    let five = of(5);
    assert_eq!(five.len(), 11);
    assert_eq!(
        five[0],
        (naive("2026-03-20 10:00"), naive("2026-03-20 17:00"), true)
    );
    assert_eq!(
        five[9],
        (naive("2026-04-02 09:00"), naive("2026-04-02 17:00"), false)
    );
    assert_eq!(
        five[10],
        (naive("2026-04-03 09:00"), naive("2026-04-03 10:00"), true)
    );
    // Ordered by start, then user.
    for w in shifts.windows(2) {
        assert!((w[0].start, w[0].user_id) <= (w[1].start, w[1].user_id));
    }
    assert!(s.shifts(b, a, rots).is_empty());
}

#[test]
fn schedule_shifts_across_a_fold_and_a_gap() {
    let zone = tz("Europe/Berlin");
    // 02:00-03:00 exists twice on 25 October and not on 29 March.
    let s = schedule(
        zone,
        vec![
            rule(u(0), hm(2, 0), hm(3, 0), &[]),
            rule(u(1), hm(2, 30), hm(2, 30), &[Weekday::Sun]),
        ],
        vec![],
    );
    let shifts = check_schedule_shifts(
        &s,
        &[],
        utc("2026-10-24T12:00:00Z"),
        utc("2026-10-25T12:00:00Z"),
        200,
    );
    let zero: Vec<_> = shifts
        .iter()
        .filter(|x| x.user_id == user(0))
        .map(|x| (x.start, x.end))
        .collect();
    // 02:00 CEST to 03:00 CEST (which is 02:00 CET), and 02:00 CET to 03:00 CET:
    // one stretch of two hours.
    assert_eq!(
        zero,
        vec![(utc("2026-10-25T00:00:00Z"), utc("2026-10-25T02:00:00Z"))]
    );
    let shifts = check_schedule_shifts(
        &s,
        &[],
        utc("2026-03-28T12:00:00Z"),
        utc("2026-03-29T12:00:00Z"),
        200,
    );
    assert!(
        shifts.iter().all(|x| x.user_id != user(0)),
        "no 02:00 that night"
    );
    // A rule ending inside the fold's first pass and on again in its second.
    let s = schedule(zone, vec![rule(u(0), hm(1, 0), hm(2, 30), &[])], vec![]);
    let shifts = check_schedule_shifts(
        &s,
        &[],
        utc("2026-10-24T12:00:00Z"),
        utc("2026-10-25T12:00:00Z"),
        200,
    );
    let got: Vec<_> = shifts.iter().map(|x| (x.start, x.end)).collect();
    assert_eq!(
        got,
        vec![
            (utc("2026-10-24T23:00:00Z"), utc("2026-10-25T00:30:00Z")),
            (utc("2026-10-25T01:00:00Z"), utc("2026-10-25T01:30:00Z")),
        ]
    );
}

/// Checks a schedule's shifts over `[a, b)` against `on_call_at`: at every
/// shift boundary (and just before it), at `samples` instants spread over the
/// range, the users whose shifts hold the instant are exactly `on_call_at`'s;
/// a user's stretches neither overlap nor abut (merged); truncation is set
/// exactly where the user is on call just before `a` or at `b`.
fn check_schedule_shifts(
    s: &Schedule,
    rots: &[Rotation],
    a: DateTime<Utc>,
    b: DateTime<Utc>,
    samples: i64,
) -> Vec<Shift> {
    let shifts = s.shifts(a, b, rots);
    let holding = |t: DateTime<Utc>| {
        let mut v: Vec<UserId> = shifts
            .iter()
            .filter(|x| x.start <= t && t < x.end)
            .map(|x| x.user_id)
            .collect();
        v.sort();
        v
    };
    let expect = |t: DateTime<Utc>| {
        let mut v = s.on_call_at(t, rots);
        let n = v.len();
        v.sort();
        v.dedup();
        assert_eq!(v.len(), n, "duplicates at {t}");
        v
    };
    let mut probes = vec![a];
    for x in &shifts {
        assert!(
            a <= x.start && x.start < x.end && x.end <= b,
            "{x:?} in {a}..{b}"
        );
        probes.push(x.start);
        probes.push(x.end - Duration::milliseconds(1));
        if x.start > a {
            probes.push(x.start - Duration::milliseconds(1));
        }
        if x.end < b {
            probes.push(x.end);
        }
        let before = s
            .on_call_at(a - Duration::milliseconds(1), rots)
            .contains(&x.user_id);
        let after = s.on_call_at(b, rots).contains(&x.user_id);
        let want = (x.start == a && before) || (x.end == b && after);
        assert_eq!(x.truncated, want, "{x:?}");
    }
    let span = (b - a).num_milliseconds();
    for i in 0..samples {
        probes.push(a + Duration::milliseconds(span * i / samples));
    }
    for t in probes {
        if a <= t && t < b {
            assert_eq!(holding(t), expect(t), "at {t} ({})", wall(t, s.time_zone));
        }
    }
    let mut by_user = shifts.clone();
    by_user.sort_by_key(|x| (x.user_id, x.start));
    for w in by_user.windows(2) {
        if w[0].user_id == w[1].user_id {
            assert!(w[0].end < w[1].start, "not merged or overlapping: {w:?}");
        }
    }
    shifts
}

// ------------------------------------------------------------ properties

const ZONES: [&str; 16] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Europe/London",
    "Europe/Dublin", // negative DST in the data
    "America/St_Johns",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Pacific/Apia", // skipped a whole day in 2011
    "America/Santiago",
    "Africa/Casablanca",
    "Asia/Tehran",
    "Australia/Sydney",
    "America/Sao_Paulo",
];

fn kinds() -> impl Strategy<Value = RotationType> {
    prop_oneof![
        Just(RotationType::Hourly),
        Just(RotationType::Daily),
        Just(RotationType::Weekly),
        Just(RotationType::Monthly),
    ]
}

/// Minutes between 2005 and 2035 (Apia's skipped day and years of changes).
fn minute_instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_104_537_600i64 / 60..2_051_222_400i64 / 60)
        .prop_map(|m| DateTime::from_timestamp(m * 60, 0).expect("a valid fixture"))
}

fn any_rotation() -> impl Strategy<Value = Rotation> {
    (
        kinds(),
        1u32..=12,
        minute_instant(),
        0..ZONES.len(),
        1usize..=5,
    )
        .prop_map(|(kind, len, start, z, people)| rotation(kind, len, start, tz(ZONES[z]), people))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// For every day of a year from a random start, a daily handoff is at
    /// the start's wall-clock time, or (when that does not exist that day)
    /// at the gap's end; weekly ones too, on the start's weekday.
    #[test]
    fn handoffs_keep_the_wall_clock(
        day in 0i64..3650,
        minute in 0i64..1440,
        z in 0..ZONES.len(),
        weekly in any::<bool>(),
    ) {
        let zone = tz(ZONES[z]);
        let d0 = NaiveDate::from_ymd_opt(2010, 1, 1).expect("a valid fixture") + Duration::days(day);
        let w0 = d0.and_hms_opt(0, 0, 0).expect("a valid fixture") + Duration::minutes(minute);
        let Some(start) = zone.from_local_datetime(&w0).earliest() else {
            return Ok(()); // a start in a gap: the engine would not see it as such
        };
        let start = start.with_timezone(&Utc);
        let (kind, step) = if weekly { (RotationType::Weekly, 7) } else { (RotationType::Daily, 1) };
        let r = rotation(kind, 1, start, zone, 2);
        let mut prev = r.handoff(-1);
        for k in 0..(if weekly { 53 } else { 366 }) {
            let h = r.handoff(k);
            let want = w0 + Duration::days(step * k);
            match zone.from_local_datetime(&want) {
                LocalResult::Single(x) => prop_assert_eq!(h, x.with_timezone(&Utc)),
                LocalResult::Ambiguous(x, y) => {
                    prop_assert_eq!(h, x.min(y).with_timezone(&Utc))
                }
                LocalResult::None => {
                    // The first valid instant after the gap: valid, after the
                    // wall time's previous second's instant, and the second
                    // before it is in the other offset.
                    prop_assert!(wall(h, zone) > want, "{} -> {}", want, wall(h, zone));
                    let before = h - Duration::seconds(1);
                    prop_assert!(wall(before, zone) < want);
                }
            }
            prop_assert!(h > prev, "handoffs increase: {k}");
            prev = h;
        }
    }

    /// Shifts over a random range (up to 90 days) cover it exactly, abut,
    /// have no zero length, belong to `k mod n` and agree with `on_call_at`
    /// at random instants; for one person they are all his.
    #[test]
    fn rotation_shifts_cover_and_agree(
        r in any_rotation(),
        from in minute_instant(),
        len_min in 1i64..(90 * 1440),
        offs in proptest::collection::vec(0.0f64..1.0, 20),
    ) {
        let a = from;
        let b = a + Duration::minutes(len_min);
        let shifts = check_rotation_shifts(&r, a, b);
        for f in offs {
            let t = a + Duration::milliseconds(((b - a).num_milliseconds() as f64 * f) as i64);
            let holding: Vec<_> = shifts.iter().filter(|s| s.start <= t && t < s.end).collect();
            prop_assert_eq!(holding.len(), 1);
            prop_assert_eq!(Some(holding[0].user_id), r.on_call_at(t));
            let (_, s, e) = r.shift_index_at(t);
            prop_assert!(s <= t && t < e);
        }
    }

    /// A schedule's shifts agree with `on_call_at` at every boundary and at
    /// instants spread over the range: random zones, rules (user and rotation
    /// targets, overnight, all-day, weekdays), overrides and ranges.
    #[test]
    fn schedule_shifts_agree_with_on_call_at(
        z in 0..ZONES.len(),
        rots in proptest::collection::vec(any_rotation(), 0..3),
        rules in proptest::collection::vec(
            (0usize..6, 0u32..96, 0u32..96, 1u8..128),
            0..8,
        ),
        overrides in proptest::collection::vec(
            (0i64..(20 * 96), 1i64..(3 * 96), proptest::option::of(0usize..6), proptest::option::of(0usize..6)),
            0..8,
        ),
        from in minute_instant(),
        len_min in 1i64..(14 * 1440),
    ) {
        let zone = tz(ZONES[z]);
        let rots: Vec<Rotation> = rots
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.id = RotationId(Uuid::from_u128(0x100 + i as u128));
                r
            })
            .collect();
        let rules: Vec<ScheduleRule> = rules
            .into_iter()
            .map(|(who, s, e, days)| ScheduleRule {
                // 0..3: users, 3..6: rotations (some missing)
                target: if who < 3 {
                    u(who)
                } else {
                    RuleTarget::Rotation { id: RotationId(Uuid::from_u128(0x100 + (who - 3) as u128)) }
                },
                start: ClockTime::new(s / 4, (s % 4) * 15).expect("a valid fixture"),
                end: ClockTime::new(e / 4, (e % 4) * 15).expect("a valid fixture"),
                weekdays: Weekdays::from_bits(days),
            })
            .collect();
        let base = from - Duration::days(3);
        let mut ovs: Vec<Override> = overrides
            .into_iter()
            .filter(|(_, _, add, rm)| add.is_some() || rm.is_some())
            .map(|(at, len, add, rm)| {
                let s = base + Duration::minutes(15 * at);
                ovr(s, s + Duration::minutes(15 * len), add, rm)
            })
            .collect();
        ovs.sort_by_key(|o| o.start);
        let s = schedule(zone, rules, ovs);
        let a = from;
        let b = a + Duration::minutes(len_min);
        check_schedule_shifts(&s, &rots, a, b, 60);
    }
}
