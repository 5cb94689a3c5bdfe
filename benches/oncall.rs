//! On-call benchmarks (issue 18 part 7): "who is on call at t" and "shifts
//! between a and b" of a realistic schedule, the pure model code the engine
//! runs for `GET /schedules/{id}/on-call`, `/shifts` and every escalation step
//! that targets a schedule.
//!
//! The schedule (Europe/Berlin): 10 rules over 3 rotations of 8 people each
//! (a weekly primary handing over Monday 09:00 Berlin, a daily secondary at
//! 09:00 Berlin, a weekly follow-the-sun rotation handing over Monday 09:00
//! New York), with business-hours weekday rules, overnight rules, weekend
//! all-day rules and four single users; 50 overrides (adds, removes and
//! replaces of rotation members, an hour to three days each) spread over the
//! year. Both zones change offset twice in the year.
//!
//! 1. `Schedule::on_call_at` at instants spread over 2027 (200,000, irregular
//!    steps), timed by criterion and as the best of 15 passes; each pass
//!    counts the users answered and checks that count.
//! 2. `Schedule::shifts` over 90 days, from four starts (one per quarter, the
//!    DST changes included); checked before timing: the shifts cover every
//!    instant of the range exactly as `on_call_at` (at every boundary and at
//!    5,000 instants), nobody's stretches overlap or abut, and the primary
//!    rotation leaves no instant uncovered.
//!
//! Targets (issue 18): at most 1 µs per `on_call_at`, 1 ms per 90-day
//! `shifts`.
//!
//! Run: `cargo bench --bench oncall`. Smoke (2,000 instants, one start, the
//! same checks): `IMAS_SMOKE=1 cargo bench --bench oncall`, or
//! `cargo bench --bench oncall -- --test` / `cargo test --benches`.

use std::hint::black_box;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{Criterion, Throughput, criterion_group};
use imas::model::{
    ClockTime, Override, OverrideId, Rotation, RotationId, RotationType, RuleTarget, Schedule,
    ScheduleId, ScheduleRule, Timestamp, UserId, Weekday, Weekdays,
};

struct Sizes {
    /// Instants `on_call_at` is timed at.
    instants: usize,
    /// 90-day ranges `shifts` is timed over.
    ranges: usize,
    /// Instants each range's shifts are checked at.
    checks: i64,
}

fn sizes() -> Sizes {
    let args: Vec<String> = std::env::args().collect();
    let smoke = std::env::var("IMAS_SMOKE").is_ok_and(|v| v == "1")
        || args.iter().any(|a| a == "--test")
        || !args.iter().any(|a| a == "--bench");
    if smoke {
        Sizes {
            instants: 2_000,
            ranges: 1,
            checks: 500,
        }
    } else {
        Sizes {
            instants: 200_000,
            ranges: 4,
            checks: 5_000,
        }
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

fn hm(h: u32, m: u32) -> ClockTime {
    ClockTime::new(h, m).expect("clock time")
}

fn local(zone: Tz, y: i32, mo: u32, d: u32, h: u32) -> Timestamp {
    zone.with_ymd_and_hms(y, mo, d, h, 0, 0)
        .single()
        .expect("a single local time")
        .with_timezone(&Utc)
}

/// The schedule and its rotations.
fn fixture() -> (Schedule, Vec<Rotation>) {
    let berlin: Tz = "Europe/Berlin".parse().expect("zone");
    let new_york: Tz = "America/New_York".parse().expect("zone");
    let people = |r: u128| -> Vec<UserId> { (0..8).map(|i| UserId(id(r * 100 + i))).collect() };
    let created = local(berlin, 2026, 1, 1, 0);
    let rotation = |n: u128, kind, start, zone| Rotation {
        id: RotationId(id(n)),
        name: format!("rotation {n}"),
        description: String::new(),
        kind,
        shift_length: 1,
        start,
        time_zone: zone,
        participants: people(n),
        created_at: created,
        updated_at: created,
        version: 1,
    };
    let rotations = vec![
        // Primary: weekly, Monday 09:00 Berlin.
        rotation(
            1,
            RotationType::Weekly,
            local(berlin, 2026, 1, 5, 9),
            berlin,
        ),
        // Secondary: daily, 09:00 Berlin.
        rotation(2, RotationType::Daily, local(berlin, 2026, 1, 1, 9), berlin),
        // Follow the sun: weekly, Monday 09:00 New York.
        rotation(
            3,
            RotationType::Weekly,
            local(new_york, 2026, 1, 5, 9),
            new_york,
        ),
    ];
    use Weekday::*;
    let weekdays = Weekdays::of(&[Mon, Tue, Wed, Thu, Fri]);
    let rot = |n| RuleTarget::Rotation {
        id: RotationId(id(n)),
    };
    let user = |n: u128| RuleTarget::User {
        id: UserId(id(900 + n)),
    };
    let r = |target, start, end, weekdays| ScheduleRule {
        target,
        start,
        end,
        weekdays,
    };
    let rules = vec![
        // The primary around the clock.
        r(rot(1), hm(0, 0), hm(0, 0), Weekdays::ALL),
        // The secondary in business hours.
        r(rot(2), hm(9, 0), hm(17, 0), weekdays),
        // Follow the sun overnight on weekdays and all weekend.
        r(rot(3), hm(17, 0), hm(9, 0), weekdays),
        r(rot(3), hm(0, 0), hm(0, 0), Weekdays::of(&[Sat, Sun])),
        // The secondary on Saturday mornings.
        r(rot(2), hm(10, 0), hm(14, 0), Weekdays::of(&[Sat])),
        // Four named people.
        r(user(1), hm(8, 0), hm(12, 0), weekdays),
        r(user(2), hm(12, 0), hm(18, 0), weekdays),
        r(user(3), hm(10, 0), hm(16, 0), Weekdays::of(&[Tue, Thu])),
        r(user(4), hm(22, 0), hm(6, 0), Weekdays::of(&[Fri])),
        r(user(4), hm(0, 0), hm(0, 0), Weekdays::of(&[Sun])),
    ];
    // 50 overrides over 2027: a third adds, a third removes, a third
    // replaces a rotation member.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let year = local(berlin, 2027, 1, 1, 0);
    let mut overrides: Vec<Override> = (0..50)
        .map(|i| {
            let start = year + Duration::hours(rng.below(364 * 24) as i64);
            let end = start + Duration::hours(1 + rng.below(72) as i64);
            let mut member = || UserId(id((1 + rng.below(3) as u128) * 100 + rng.below(8) as u128));
            let (gone, comes) = (member(), member());
            let extra = UserId(id(950 + rng.below(5) as u128));
            let (add, remove) = match i % 3 {
                0 => (Some(extra), None),
                1 => (None, Some(gone)),
                _ => (Some(comes), Some(gone)),
            };
            Override {
                id: OverrideId(id(5_000 + i)),
                start,
                end,
                add_user_id: add,
                remove_user_id: remove,
                created_by: UserId(id(999)),
                created_at: created,
            }
        })
        .collect();
    overrides.sort_by_key(|o| (o.start, o.created_at));
    let schedule = Schedule {
        id: ScheduleId(id(77)),
        name: "operations".into(),
        description: String::new(),
        time_zone: berlin,
        rules,
        overrides,
        created_at: created,
        updated_at: created,
        version: 1,
    };
    (schedule, rotations)
}

/// Users answered by `on_call_at` over `instants`, summed.
fn answer_count(s: &Schedule, rotations: &[Rotation], instants: &[Timestamp]) -> usize {
    instants
        .iter()
        .map(|t| s.on_call_at(black_box(*t), rotations).len())
        .sum()
}

/// Best of 15 passes of `f`, in ns per unit (`units` per pass).
fn ns_per(units: usize, mut f: impl FnMut()) -> f64 {
    (0..15)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e9 / units as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Checks `shifts(a, b)` against `on_call_at`; returns the number of shifts.
fn check_shifts(
    s: &Schedule,
    rotations: &[Rotation],
    a: Timestamp,
    b: Timestamp,
    samples: i64,
) -> usize {
    let shifts = s.shifts(a, b, rotations);
    let mut probes: Vec<Timestamp> = Vec::new();
    for x in &shifts {
        assert!(a <= x.start && x.start < x.end && x.end <= b, "{x:?}");
        probes.push(x.start);
        probes.push(x.end - Duration::milliseconds(1));
    }
    let span = (b - a).num_milliseconds();
    probes.extend((0..samples).map(|i| a + Duration::milliseconds(span * i / samples)));
    for t in probes {
        let mut held: Vec<UserId> = shifts
            .iter()
            .filter(|x| x.start <= t && t < x.end)
            .map(|x| x.user_id)
            .collect();
        let mut want = s.on_call_at(t, rotations);
        held.sort();
        want.sort();
        assert_eq!(held, want, "shifts hold exactly the on-call users at {t}");
    }
    let mut by_user = shifts.clone();
    by_user.sort_by_key(|x| (x.user_id, x.start));
    for w in by_user.windows(2) {
        if w[0].user_id == w[1].user_id {
            assert!(w[0].end < w[1].start, "merged stretches: {w:?}");
        }
    }
    // Somebody at every instant: the primary around the clock, and whenever
    // an override removes its member, another rule's user is on call.
    let mut covered: Vec<(Timestamp, Timestamp)> =
        shifts.iter().map(|x| (x.start, x.end)).collect();
    covered.sort();
    let mut reach = a;
    for (s0, e0) in covered {
        assert!(s0 <= reach, "nobody on call from {reach} to {s0}");
        reach = reach.max(e0);
    }
    assert_eq!(reach, b, "somebody on call until the range's end");
    shifts.len()
}

fn bench(c: &mut Criterion) {
    let sizes = sizes();
    let (schedule, rotations) = fixture();
    let berlin = schedule.time_zone;
    let year = local(berlin, 2027, 1, 1, 0);
    let year_ms = (local(berlin, 2028, 1, 1, 0) - year).num_milliseconds();

    // (1) on_call_at over the year: irregular steps of about year / n.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let step = year_ms / sizes.instants as i64;
    let instants: Vec<Timestamp> = (0..sizes.instants as i64)
        .map(|i| year + Duration::milliseconds(i * step + rng.below(step as u64) as i64))
        .collect();
    let want = answer_count(&schedule, &rotations, &instants);
    let active_overrides = instants
        .iter()
        .filter(|t| {
            schedule
                .overrides
                .iter()
                .any(|o| o.start <= **t && **t < o.end)
        })
        .count();
    assert!(
        want >= instants.len(),
        "somebody on call at every instant ({want} users over {} instants)",
        instants.len()
    );
    let mut g = c.benchmark_group("oncall");
    g.throughput(Throughput::Elements(instants.len() as u64));
    g.bench_function(
        format!("on_call_at, {} instants of 2027", instants.len()),
        |b| b.iter(|| answer_count(&schedule, &rotations, black_box(&instants))),
    );

    // (2) shifts over 90 days from a start per quarter.
    let starts: Vec<Timestamp> = (0..sizes.ranges)
        .map(|q| local(berlin, 2027, 1 + 3 * q as u32, 1, 0))
        .collect();
    let mut counts = Vec::new();
    for &a in &starts {
        let b = a + Duration::days(90);
        counts.push(check_shifts(&schedule, &rotations, a, b, sizes.checks));
    }
    g.throughput(Throughput::Elements(1));
    for (&a, &n) in starts.iter().zip(&counts) {
        let b = a + Duration::days(90);
        g.bench_function(
            format!(
                "shifts, 90 days from {}",
                a.with_timezone(&berlin).date_naive()
            ),
            |bch| {
                bch.iter(|| {
                    let s = schedule.shifts(black_box(a), black_box(b), &rotations);
                    assert_eq!(s.len(), n);
                    s
                })
            },
        );
    }
    g.finish();

    println!(
        "\nschedule: {} rules over {} rotations of {} people, {} overrides, zone {}",
        schedule.rules.len(),
        rotations.len(),
        rotations[0].participants.len(),
        schedule.overrides.len(),
        berlin
    );
    let mut counted = Vec::new();
    let ns = ns_per(instants.len(), || {
        counted.push(answer_count(&schedule, &rotations, black_box(&instants)));
    });
    assert!(counted.iter().all(|&c| c == want), "{counted:?} != {want}");
    println!(
        "  on_call_at: {} instants of 2027 ({active_overrides} under an override), {want} users answered: {ns:.0} ns per evaluation (best of 15 passes)",
        instants.len()
    );
    for (&a, &n) in starts.iter().zip(&counts) {
        let b = a + Duration::days(90);
        let us = ns_per(1, || {
            black_box(schedule.shifts(black_box(a), black_box(b), &rotations));
        }) / 1e3;
        println!(
            "  shifts: 90 days from {}: {n} shifts (checked against on_call_at at {} instants and every boundary): {us:.0} µs (best of 15)",
            a.with_timezone(&berlin).date_naive(),
            sizes.checks
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
