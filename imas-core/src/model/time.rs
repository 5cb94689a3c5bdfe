//! Time: the one set of helpers for instants and durations. Every instant is a
//! UTC [`Timestamp`] at millisecond precision, read from the clock port; every
//! duration a store keeps is whole milliseconds.

use chrono::{DateTime, TimeZone, Utc};

use crate::error::{Error, Result};

/// An instant in UTC. IMAS keeps instants at millisecond precision everywhere (see
/// [`truncate_millis`]) so that every backend stores and returns them unchanged.
pub type Timestamp = DateTime<Utc>;

/// Drops sub-millisecond precision, the precision every store keeps.
pub fn truncate_millis(t: Timestamp) -> Timestamp {
    from_millis(t.timestamp_millis())
}

/// The instant `ms` milliseconds after the Unix epoch (saturating at the
/// representable range).
pub fn from_millis(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Whole milliseconds in `d`, saturating at `i64::MAX` (the unit every store and
/// policy keeps durations in).
pub fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `t + ms` milliseconds, saturating at the representable range.
pub fn plus_ms(t: Timestamp, ms: i64) -> Timestamp {
    t.checked_add_signed(chrono::TimeDelta::milliseconds(ms))
        .unwrap_or(if ms < 0 {
            Timestamp::MIN_UTC
        } else {
            Timestamp::MAX_UTC
        })
}

/// `t + d`, saturating at the representable range.
pub fn plus(t: Timestamp, d: std::time::Duration) -> Timestamp {
    plus_ms(t, millis(d))
}

/// Earliest year of a date IMAS accepts (every backend stores years 1..=9999).
pub const MIN_YEAR: i32 = 1;
/// Latest year of a date IMAS accepts.
pub const MAX_YEAR: i32 = 9999;

/// `t` when its year is within [`MIN_YEAR`]..=[`MAX_YEAR`], else a validation
/// error naming `field`.
pub fn check_instant(field: &str, t: Timestamp) -> Result<Timestamp> {
    use chrono::Datelike;
    if (MIN_YEAR..=MAX_YEAR).contains(&t.year()) {
        Ok(t)
    } else {
        Err(Error::validation(
            field,
            format!("expected a date in the years {MIN_YEAR} to {MAX_YEAR}"),
        ))
    }
}

/// An IANA time zone name (`Europe/Berlin`, `UTC`) as a zone of the tz
/// database compiled into IMAS (chrono-tz), else a validation error naming
/// `field`.
pub fn parse_time_zone(field: &str, name: &str) -> Result<chrono_tz::Tz> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        Error::validation(
            field,
            format!(
                "unknown time zone {:?}; expected an IANA name such as Europe/Berlin or UTC",
                name.chars().take(64).collect::<String>()
            ),
        )
    })
}
