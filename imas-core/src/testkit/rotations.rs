//! The rotations contract. Each function takes a fresh, empty store.

use chrono::TimeZone;

use crate::model::{MAX_PARTICIPANTS, Rotation, RotationId, RotationType, Timestamp, UserId};
use crate::ports::Store;

use super::store::at;
use super::versioned;

/// A weekly rotation of two users (the first twice), in Berlin, created at
/// `created_at`, version 1.
pub fn rotation(name: &str, created_at: Timestamp) -> Rotation {
    let (a, b) = (UserId::new(), UserId::new());
    Rotation {
        id: RotationId::new(),
        name: name.to_string(),
        description: format!("{name}, described: «Bereitschaft» ✓"),
        kind: RotationType::Weekly,
        shift_length: 2,
        start: chrono::Utc
            .with_ymd_and_hms(2026, 3, 2, 8, 30, 0)
            .single()
            .expect("valid date"),
        time_zone: chrono_tz::Europe::Berlin,
        participants: vec![a, b, a],
        created_at,
        updated_at: created_at,
        version: 1,
    }
}

/// Insert, read back, replace whole, stale versions, unknown ids, deletes.
pub async fn rotations_crud(store: &dyn Store) {
    versioned::crud(store, rotation("primary", at(0)), |r| Rotation {
        name: "secondary".into(),
        description: String::new(),
        kind: RotationType::Monthly,
        shift_length: 9000,
        start: chrono::Utc
            .with_ymd_and_hms(1999, 12, 31, 23, 59, 0)
            .single()
            .expect("valid date"),
        time_zone: chrono_tz::America::Argentina::Buenos_Aires,
        participants: Vec::new(),
        updated_at: at(60_000),
        ..r.clone()
    })
    .await;
}

/// Every field of a rotation reads back as written: every type, shift lengths
/// at both bounds, time zones of every shape (half-hour and 45-minute offsets,
/// `Etc/` zones with their inverted signs, deep names, UTC), a hundred
/// participants with repeats, none, long unicode text, instants far apart.
pub async fn rotations_round_trip(store: &dyn Store) {
    let zones = [
        chrono_tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::America::Argentina::Buenos_Aires,
        chrono_tz::Asia::Kathmandu,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Etc::GMTPlus5,
        chrono_tz::Pacific::Chatham,
        chrono_tz::America::Indiana::Knox,
    ];
    let starts = [
        chrono::Utc
            .with_ymd_and_hms(1, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date"),
        chrono::Utc
            .with_ymd_and_hms(2026, 10, 25, 1, 30, 0)
            .single()
            .expect("valid date"),
        chrono::Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 59, 0)
            .single()
            .expect("valid date"),
    ];
    let people: Vec<UserId> = (0..7).map(|_| UserId::new()).collect();
    let mut n = 0;
    for (i, kind) in RotationType::ALL.iter().enumerate() {
        for (j, tz) in zones.iter().enumerate() {
            let mut r = rotation(&format!("r-{i}-{j}"), at(n * 7));
            r.kind = *kind;
            r.time_zone = *tz;
            r.shift_length = [1, 2, 24, 9000][(i + j) % 4];
            r.start = starts[(i + j) % starts.len()];
            r.participants = match (i + j) % 3 {
                0 => Vec::new(),
                1 => vec![people[j % people.len()]],
                _ => (0..MAX_PARTICIPANTS)
                    .map(|k| people[(k * (j + 1)) % people.len()])
                    .collect(),
            };
            r.updated_at = at(n * 7 + 3);
            versioned::round_trip(store, &r, &format!("{kind} in {tz}")).await;
            n += 1;
        }
    }
    let mut long = rotation(&"Ä".repeat(100), at(-1));
    long.description = "Rufbereitschaft – 夜勤 – \"quoted\" \\ '; DROP TABLE rotations;--\n"
        .repeat(150)
        .chars()
        .take(10_000)
        .collect();
    versioned::round_trip(store, &long, "100-character name, 10,000-character text").await;
}

/// Rotations list newest first by `(created_at, id)` in keyset pages.
pub async fn rotations_paging(store: &dyn Store) {
    versioned::paging(store, |n, created_at| {
        rotation(&format!("rotation-{n:02}"), created_at)
    })
    .await;
}
