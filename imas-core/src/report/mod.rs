//! Incident reports. [`Engine::export_incidents`](crate::Engine::export_incidents)
//! streams the matching incidents in pages; the writers here turn pages into
//! report bytes as they arrive, so memory does not grow with the row count.
//! The [`IncidentSummary`] (counts, breaches, mean times) is shared by every
//! report that summarises; CSV (feature `csv`) is in `csv`, PDF (feature `pdf`)
//! in [`pdf`].

use std::time::Duration;

use crate::model::{Incident, Priority, Status};

#[cfg(feature = "csv")]
mod csv;
#[cfg(feature = "pdf")]
pub mod pdf;

#[cfg(feature = "csv")]
pub use self::csv::*;
#[cfg(feature = "pdf")]
pub use self::pdf::{PdfMeta, PdfReport};

/// What a set of incidents amounts to: how many, by status and by priority, how
/// many breached their SLA, and the mean times to acknowledge and to resolve.
/// Fed one incident at a time ([`IncidentSummary::add`]), so it summarises a
/// stream of pages in constant memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentSummary {
    /// Incidents counted.
    pub total: u64,
    /// Counts by status, in [`Status::ALL`] order.
    pub by_status: [u64; Status::ALL.len()],
    /// Counts by priority, in [`Priority::ALL`] order.
    pub by_priority: [u64; Priority::ALL.len()],
    /// Incidents whose SLA was breached.
    pub breached: u64,
    /// Incidents acknowledged.
    pub acknowledged: u64,
    /// Incidents resolved (and not reopened since).
    pub resolved: u64,
    ack_ms: i128,
    resolve_ms: i128,
}

impl IncidentSummary {
    /// The summary of `incidents`.
    pub fn of<'a>(incidents: impl IntoIterator<Item = &'a Incident>) -> Self {
        let mut s = Self::default();
        incidents.into_iter().for_each(|i| s.add(i));
        s
    }

    /// Counts one more incident.
    pub fn add(&mut self, i: &Incident) {
        self.total += 1;
        if let Some(n) = Status::ALL.iter().position(|s| *s == i.status) {
            self.by_status[n] += 1;
        }
        if let Some(n) = Priority::ALL.iter().position(|p| *p == i.priority) {
            self.by_priority[n] += 1;
        }
        self.breached += u64::from(i.sla_breached);
        if let Some(at) = i.acknowledged_at {
            self.ack_ms += i128::from((at - i.created_at).num_milliseconds());
            self.acknowledged += 1;
        }
        if let Some(at) = i.resolved_at {
            self.resolve_ms += i128::from((at - i.created_at).num_milliseconds());
            self.resolved += 1;
        }
    }

    /// The count of each status, in [`Status::ALL`] order.
    pub fn statuses(&self) -> impl Iterator<Item = (Status, u64)> + '_ {
        Status::ALL.iter().copied().zip(self.by_status)
    }

    /// The count of each priority, in [`Priority::ALL`] order.
    pub fn priorities(&self) -> impl Iterator<Item = (Priority, u64)> + '_ {
        Priority::ALL.iter().copied().zip(self.by_priority)
    }

    /// Mean time from creation to acknowledgement, to the millisecond; `None`
    /// when none was acknowledged.
    pub fn mean_time_to_acknowledge(&self) -> Option<Duration> {
        mean(self.ack_ms, self.acknowledged)
    }

    /// Mean time from creation to resolution, to the millisecond; `None` when
    /// none was resolved.
    pub fn mean_time_to_resolve(&self) -> Option<Duration> {
        mean(self.resolve_ms, self.resolved)
    }
}

/// `sum / n` milliseconds (none below zero), or `None` for no values.
fn mean(sum_ms: i128, n: u64) -> Option<Duration> {
    let ms = sum_ms.checked_div(i128::from(n))?;
    Some(Duration::from_millis(
        u64::try_from(ms.max(0)).unwrap_or(u64::MAX),
    ))
}

/// Writes `t` as ISO 8601 UTC with milliseconds (`2026-01-31T12:00:00.000Z`)
/// into `buf` and returns it; years outside 0..=9999 are clamped to that range.
#[cfg(any(feature = "csv", feature = "pdf"))]
pub(crate) fn iso_into(t: crate::model::Timestamp, buf: &mut [u8; 24]) -> &str {
    let ms = t.timestamp_millis();
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999);
    put(buf, 0, 4, year);
    put(buf, 5, 2, month);
    put(buf, 8, 2, day);
    buf[4] = b'-';
    buf[7] = b'-';
    time_into(ms_of_day, buf);
    std::str::from_utf8(buf).unwrap_or_default()
}

/// Writes `v` as `width` decimal digits at `at`.
#[cfg(any(feature = "csv", feature = "pdf"))]
fn put(buf: &mut [u8; 24], at: usize, width: usize, mut v: i64) {
    for k in (0..width).rev() {
        buf[at + k] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The `THH:MM:SS.mmmZ` part of [`iso_into`].
#[cfg(any(feature = "csv", feature = "pdf"))]
fn time_into(ms_of_day: i64, buf: &mut [u8; 24]) {
    put(buf, 11, 2, ms_of_day / 3_600_000);
    put(buf, 14, 2, ms_of_day / 60_000 % 60);
    put(buf, 17, 2, ms_of_day / 1000 % 60);
    put(buf, 20, 3, ms_of_day % 1000);
    for (at, c) in [(10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
        buf[at] = c;
    }
}

#[cfg(all(test, any(feature = "csv", feature = "pdf")))]
mod tests {
    use chrono::{TimeZone, Utc};

    #[test]
    fn iso_matches_chrono_across_the_calendar() {
        let mut buf = [0u8; 24];
        let mut t = Utc
            .with_ymd_and_hms(1970, 1, 1, 0, 0, 0)
            .single()
            .expect("date");
        let end = Utc
            .with_ymd_and_hms(2400, 3, 1, 0, 0, 0)
            .single()
            .expect("date");
        while t < end {
            let want = t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(super::iso_into(t, &mut buf), want);
            t += chrono::Duration::milliseconds(86_400_000 * 3 + 3_723_456);
        }
    }
}

#[cfg(test)]
mod summary_tests {
    use std::time::Duration;

    use super::IncidentSummary;
    use crate::model::{Incident, Priority, Status, UserId, from_millis};

    #[test]
    fn counts_and_mean_times_of_a_set_of_incidents() {
        let mut a = Incident::open("a", UserId::new(), from_millis(0));
        a.acknowledged_at = Some(from_millis(60_000));
        a.resolved_at = Some(from_millis(600_000));
        a.status = Status::Resolved;
        a.priority = Priority::High;
        a.sla_breached = true;
        let mut b = Incident::open("b", UserId::new(), from_millis(0));
        b.acknowledged_at = Some(from_millis(180_000));
        let s = IncidentSummary::of([&a, &b]);
        assert_eq!(
            (s.total, s.breached, s.acknowledged, s.resolved),
            (2, 1, 2, 1)
        );
        assert_eq!(s.mean_time_to_acknowledge(), Some(Duration::from_secs(120)));
        assert_eq!(s.mean_time_to_resolve(), Some(Duration::from_secs(600)));
        let statuses: Vec<_> = s.statuses().filter(|(_, n)| *n > 0).collect();
        assert_eq!(statuses, [(Status::Open, 1), (Status::Resolved, 1)]);
        let high = s.priorities().find(|(p, _)| *p == Priority::High);
        assert_eq!(high, Some((Priority::High, 1)));
    }

    #[test]
    fn no_incidents_have_no_mean_times() {
        let s = IncidentSummary::default();
        assert_eq!(s.total, 0);
        assert_eq!(s.mean_time_to_acknowledge(), None);
        assert_eq!(s.mean_time_to_resolve(), None);
    }
}
