//! The schedules contract (rules and overrides are stored inside their
//! schedule). Each function takes a fresh, empty store.

use crate::model::{
    ClockTime, MAX_OVERRIDES, MAX_RULES, Override, OverrideId, RotationId, RuleTarget, Schedule,
    ScheduleId, ScheduleRule, Timestamp, UserId, Weekday, Weekdays, plus_ms,
};
use crate::ports::Store;

use super::store::{at, commit};
use super::versioned::{self, Kept};

const MINUTE: i64 = 60_000;

fn clock(h: u32, m: u32) -> ClockTime {
    ClockTime::new(h, m).expect("valid clock time")
}

/// An override from `start` lasting `minutes`, made at `created_at`.
pub fn override_of(
    start: Timestamp,
    minutes: i64,
    add: Option<UserId>,
    remove: Option<UserId>,
    created_at: Timestamp,
) -> Override {
    Override {
        id: OverrideId::new(),
        start,
        end: plus_ms(start, minutes * MINUTE),
        add_user_id: add,
        remove_user_id: remove,
        created_by: UserId::new(),
        created_at,
    }
}

/// A schedule in New York with a rule of each target and an override of each
/// kind (add, remove, replace), created at `created_at`, version 1.
pub fn schedule(name: &str, created_at: Timestamp) -> Schedule {
    let (ada, bob, eve) = (UserId::new(), UserId::new(), UserId::new());
    Schedule {
        id: ScheduleId::new(),
        name: name.to_string(),
        description: format!("{name}, described"),
        time_zone: chrono_tz::America::New_York,
        rules: vec![
            ScheduleRule {
                target: RuleTarget::User { id: ada },
                start: clock(9, 0),
                end: clock(17, 30),
                weekdays: Weekdays::of(&[
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ]),
            },
            ScheduleRule {
                target: RuleTarget::Rotation {
                    id: RotationId::new(),
                },
                start: clock(22, 0),
                end: clock(6, 0),
                weekdays: Weekdays::ALL,
            },
        ],
        overrides: vec![
            override_of(at(0), 60, Some(eve), None, at(0)),
            override_of(at(0), 30, None, Some(ada), at(1)),
            override_of(at(MINUTE), 90, Some(eve), Some(bob), at(0)),
        ],
        created_at,
        updated_at: created_at,
        version: 1,
    }
}

/// Insert, read back, replace whole (rules and overrides replaced, not
/// merged), stale versions, unknown ids, deletes.
pub async fn schedules_crud(store: &dyn Store) {
    versioned::crud(store, schedule("primary", at(0)), |s| {
        let mut rules = s.rules.clone();
        rules.reverse();
        rules.pop();
        let mut overrides = s.overrides.clone();
        overrides.remove(1);
        overrides.push(override_of(
            at(10 * MINUTE),
            5,
            Some(UserId::new()),
            None,
            at(7),
        ));
        Schedule {
            name: "after-hours".into(),
            description: "changed".into(),
            time_zone: chrono_tz::Australia::Lord_Howe,
            rules,
            overrides,
            updated_at: at(99),
            ..s.clone()
        }
    })
    .await;
}

/// Every field of a schedule reads back as written: every weekday set shape
/// (each single day, all, weekends, none stored), clock times at both ends of
/// the day, all-day (`start == end`) and overnight (`start > end`) rules, both
/// targets, overrides of every kind in the order given (ties on start kept in
/// creation order, whatever their ids), no rules or overrides at all, and the
/// largest schedule the limits allow.
pub async fn schedules_round_trip(store: &dyn Store) {
    let user = UserId::new();
    let rotation = RotationId::new();
    let mut sets: Vec<Weekdays> = Weekday::ALL.iter().map(|d| Weekdays::of(&[*d])).collect();
    sets.push(Weekdays::ALL);
    sets.push(Weekdays::of(&[Weekday::Sat, Weekday::Sun]));
    sets.push(Weekdays::of(&[Weekday::Mon, Weekday::Wed, Weekday::Fri]));
    sets.push(Weekdays::from_bits(0));
    let times = [
        (clock(0, 0), clock(0, 0)),
        (clock(0, 0), clock(23, 59)),
        (clock(23, 59), clock(0, 0)),
        (clock(8, 15), clock(8, 15)),
        (clock(18, 45), clock(7, 5)),
    ];
    let mut s = schedule("every rule shape", at(0));
    s.rules = sets
        .iter()
        .enumerate()
        .map(|(i, w)| ScheduleRule {
            target: if i % 2 == 0 {
                RuleTarget::User { id: user }
            } else {
                RuleTarget::Rotation { id: rotation }
            },
            start: times[i % times.len()].0,
            end: times[i % times.len()].1,
            weekdays: *w,
        })
        .collect();
    // Ties on start, kept in the stored order (creation), ids in reverse.
    let mut tied = vec![
        override_of(at(5 * MINUTE), 10, None, Some(user), at(3)),
        override_of(at(5 * MINUTE), 20, Some(user), None, at(4)),
    ];
    let (first, second) = (OverrideId::new(), OverrideId::new());
    tied[0].id = second;
    tied[1].id = first;
    s.overrides.extend(tied);
    versioned::round_trip(store, &s, "every rule and override shape").await;

    let mut empty = schedule("nothing yet", at(1));
    empty.rules.clear();
    empty.overrides.clear();
    empty.time_zone = chrono_tz::UTC;
    empty.description.clear();
    versioned::round_trip(store, &empty, "no rules, no overrides").await;

    for tz in [
        chrono_tz::Asia::Kathmandu,
        chrono_tz::Etc::GMTMinus14,
        chrono_tz::America::Indiana::Indianapolis,
    ] {
        let mut z = schedule(&format!("in {tz}"), at(2));
        z.time_zone = tz;
        versioned::round_trip(store, &z, &format!("time zone {tz}")).await;
    }

    let mut big = schedule("largest", at(3));
    big.rules = (0..MAX_RULES)
        .map(|i| ScheduleRule {
            target: if i % 3 == 0 {
                RuleTarget::Rotation {
                    id: RotationId::new(),
                }
            } else {
                RuleTarget::User { id: UserId::new() }
            },
            start: clock((i % 24) as u32, (i % 60) as u32),
            end: clock(((i + 5) % 24) as u32, ((i * 7) % 60) as u32),
            weekdays: Weekdays::from_bits((i % 127 + 1) as u8),
        })
        .collect();
    big.overrides = (0..MAX_OVERRIDES as i64)
        .map(|i| {
            let (add, remove) = match i % 3 {
                0 => (Some(UserId::new()), None),
                1 => (None, Some(UserId::new())),
                _ => (Some(UserId::new()), Some(UserId::new())),
            };
            override_of(at(i / 2 * MINUTE), 1 + i % 90, add, remove, at(i))
        })
        .collect();
    versioned::round_trip(store, &big, "100 rules and 1,000 overrides").await;

    // Adding and deleting overrides is an update of the schedule.
    let mut v2 = big.clone().with_version(2);
    v2.overrides.truncate(10);
    v2.overrides.insert(
        3,
        override_of(at(MINUTE), 15, Some(user), Some(UserId::new()), at(2_000)),
    );
    commit(store, v2.clone().update(1)).await;
    assert_eq!(
        Schedule::get(store, big.id).await,
        Some(v2.clone()),
        "overrides after an update are exactly the new list"
    );
    let mut v3 = v2.clone().with_version(3);
    v3.overrides.clear();
    v3.rules.clear();
    commit(store, v3.clone().update(2)).await;
    assert_eq!(
        Schedule::get(store, big.id).await,
        Some(v3),
        "a schedule updated to no rules and no overrides has none"
    );
}

/// Schedules list newest first by `(created_at, id)` in keyset pages.
pub async fn schedules_paging(store: &dyn Store) {
    versioned::paging(store, |n, created_at| {
        schedule(&format!("schedule-{n:02}"), created_at)
    })
    .await;
}
