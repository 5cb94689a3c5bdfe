//! Rotations (SPEC §5): an ordered list of participants handing over every
//! `shiftLength` hours, days, weeks or months, at the wall-clock time of `start`
//! in the rotation's time zone. Who is on call is computed, not stored: the
//! handoffs are `start`, `start + 1 shift`, ... (and before `start`, going back
//! the same way), participant `k mod n` holding shift `k`.
//!
//! DST (as GoAlert): hourly, daily and weekly shifts are wall-clock lengths, so a
//! 09:00 handoff stays at 09:00 local in winter and summer; monthly shifts add
//! calendar months. A handoff at a local time that does not exist that day
//! (spring forward) happens at the next valid instant; at a time that exists
//! twice (fall back), at the first.

use chrono::{
    DateTime, Datelike, LocalResult, Months, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{RotationId, Timestamp, UserId};

/// The unit of a rotation's shift length.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotationType {
    /// Shifts of `shiftLength` hours.
    Hourly,
    /// Shifts of `shiftLength` days.
    Daily,
    /// Shifts of `shiftLength` weeks.
    Weekly,
    /// Shifts of `shiftLength` calendar months.
    Monthly,
}
string_enum!(RotationType, "type", {
    Hourly => "hourly",
    Daily => "daily",
    Weekly => "weekly",
    Monthly => "monthly",
});

/// Longest shift, in units of the rotation's type.
pub const MAX_SHIFT_LENGTH: u32 = 9000;
/// Most participants a rotation has (a user may appear more than once).
pub const MAX_PARTICIPANTS: usize = 100;

/// A rotation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Id.
    pub id: RotationId,
    /// Name, 1..=100 characters (not unique).
    pub name: String,
    /// Description, at most 10,000 characters.
    pub description: String,
    /// The unit of the shift length.
    #[serde(rename = "type")]
    pub kind: RotationType,
    /// Shift length, 1..=9000 units of `type`.
    pub shift_length: u32,
    /// The first handoff (to `participants[0]`), whole minutes.
    pub start: DateTime<Utc>,
    /// The zone whose wall clock the handoffs keep (IANA name).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Berlin"))]
    pub time_zone: Tz,
    /// Ordered participants, at most 100; a user may appear twice. Empty: nobody
    /// is ever on call.
    pub participants: Vec<UserId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, incremented by every write.
    pub version: i64,
}

/// One stretch of time a user is on call, as `GET /rotations/{id}/shifts` and
/// `GET /schedules/{id}/shifts` return them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shift {
    /// Who.
    pub user_id: UserId,
    /// From (inclusive).
    pub start: DateTime<Utc>,
    /// Until (exclusive).
    pub end: DateTime<Utc>,
    /// Whether the shift was cut to the asked range (it starts before the
    /// range's start or ends after its end).
    pub truncated: bool,
}

impl Rotation {
    /// The instant of handoff `k` (`k = 0` is `start`; negative `k` go back).
    /// Saturates at the representable range for absurd `k`.
    pub fn handoff(&self, k: i64) -> Timestamp {
        let s = local_of(self.start, self.time_zone);
        self.instant(s, k).unwrap_or(if k < 0 {
            Timestamp::MIN_UTC
        } else {
            Timestamp::MAX_UTC
        })
    }

    /// The shift holding `t`: its index `k` (participant `k mod n`), start and
    /// end. Defined for every `t`, before `start` too. Never a shift of zero
    /// length: `start <= t < end` (`end` is `Timestamp::MAX_UTC` past the
    /// representable range).
    pub fn shift_index_at(&self, t: Timestamp) -> (i64, Timestamp, Timestamp) {
        let (mut k, mut end, s) = self.index_at(t);
        // A handoff whose wall-clock time is at or before t's is at or before
        // t (the earlier instant of a fold, a gap's end, are never later), so
        // this does not step; it keeps `begin <= t` whatever the zone data.
        let mut begin = self.instant(s, k).unwrap_or(Timestamp::MIN_UTC);
        while begin > t {
            k -= 1;
            end = begin;
            begin = self.instant(s, k).unwrap_or(Timestamp::MIN_UTC);
        }
        (k, begin, end)
    }

    /// The index of the shift holding `t` and its end (and `start`'s wall
    /// clock), without computing its start.
    fn index_at(&self, t: Timestamp) -> (i64, Timestamp, NaiveDateTime) {
        let s = local_of(self.start, self.time_zone);
        let tl = local_of(t, self.time_zone);
        // The naive estimate: the last handoff whose wall-clock time is at or
        // before t's (exact for hours, days and weeks; months corrected below).
        let mut k = self.estimate(s, tl);
        while self.naive(s, k).is_some_and(|n| n > tl) {
            k -= 1;
        }
        while self.naive(s, k + 1).is_some_and(|n| n <= tl) {
            k += 1;
        }
        // Instants: the wall-clock order is the instant order except in a
        // fold (t in the repeated hour, later handoffs mapped to the first
        // pass) and a gap (handoffs inside it collapse on its end): a step or
        // two, rarely more, fix it. `None` is past the representable range.
        let after = |k| self.instant(s, k).unwrap_or(Timestamp::MAX_UTC);
        let mut end = after(k + 1);
        while end <= t && end != Timestamp::MAX_UTC {
            k += 1;
            end = after(k + 1);
        }
        (k, end, s)
    }

    /// Who is on call at `t`; `None` when there are no participants.
    pub fn on_call_at(&self, t: Timestamp) -> Option<UserId> {
        if self.participants.is_empty() {
            return None;
        }
        let (k, _, _) = self.index_at(t);
        Some(self.participant(k))
    }

    /// The shifts overlapping `[start, end)`, in order, cut to the range (with
    /// `truncated` set where cut); consecutive shifts of the same user are not
    /// merged. Empty when there are no participants or `end <= start`.
    pub fn shifts(&self, start: Timestamp, end: Timestamp) -> Vec<Shift> {
        let mut out = Vec::new();
        if self.participants.is_empty() || end <= start {
            return out;
        }
        let s = local_of(self.start, self.time_zone);
        let (mut k, mut from, mut until) = self.shift_index_at(start);
        loop {
            out.push(Shift {
                user_id: self.participant(k),
                start: from.max(start),
                end: until.min(end),
                truncated: from < start || until > end,
            });
            if until >= end {
                return out;
            }
            // The next shift of non-zero length.
            from = until;
            loop {
                k += 1;
                until = self.instant(s, k + 1).unwrap_or(Timestamp::MAX_UTC);
                if until > from {
                    break;
                }
            }
        }
    }

    /// The participant of shift `k` (participants not empty).
    fn participant(&self, k: i64) -> UserId {
        let n = self.participants.len() as i64;
        self.participants[k.rem_euclid(n) as usize]
    }

    /// The shift length in seconds for hourly, daily and weekly rotations;
    /// `None` for monthly ones.
    fn fixed_len_secs(&self) -> Option<i64> {
        let len = i64::from(self.shift_length.max(1));
        match self.kind {
            RotationType::Hourly => Some(len * 3_600),
            RotationType::Daily => Some(len * 86_400),
            RotationType::Weekly => Some(len * 7 * 86_400),
            RotationType::Monthly => None,
        }
    }

    /// A guess at the index of the shift whose wall-clock start is the last at
    /// or before `tl` (`s` is `start`'s wall clock), off by at most one or two.
    fn estimate(&self, s: NaiveDateTime, tl: NaiveDateTime) -> i64 {
        match self.fixed_len_secs() {
            Some(len) => tl.signed_duration_since(s).num_seconds().div_euclid(len),
            None => {
                let months = (i64::from(tl.year()) - i64::from(s.year())) * 12
                    + i64::from(tl.month())
                    - i64::from(s.month());
                months.div_euclid(i64::from(self.shift_length.max(1)))
            }
        }
    }

    /// The wall-clock time of handoff `k` (`s` is `start`'s wall clock);
    /// `None` past the representable range.
    fn naive(&self, s: NaiveDateTime, k: i64) -> Option<NaiveDateTime> {
        match self.fixed_len_secs() {
            Some(len) => {
                let secs = k.checked_mul(len)?;
                s.checked_add_signed(TimeDelta::try_seconds(secs)?)
            }
            None => {
                let months = k.checked_mul(i64::from(self.shift_length.max(1)))?;
                add_months(s, months)
            }
        }
    }

    /// The instant of handoff `k`; `None` past the representable range.
    fn instant(&self, s: NaiveDateTime, k: i64) -> Option<Timestamp> {
        resolve_local(self.time_zone, self.naive(s, k)?)
    }
}

/// `n` plus `months` calendar months, the day clamped to the month's last
/// (31 January + 1 month = 28 or 29 February); the time of day kept.
fn add_months(n: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let m0 = i64::from(n.year())
        .checked_mul(12)?
        .checked_add(i64::from(n.month0()))?
        .checked_add(months)?;
    let year = i32::try_from(m0.div_euclid(12)).ok()?;
    let month = m0.rem_euclid(12) as u32 + 1;
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last = days_in_month(first)?;
    let date = first.with_day(n.day().min(last))?;
    Some(date.and_time(n.time()))
}

/// The number of days of the month `first` (its first day) is in.
fn days_in_month(first: NaiveDate) -> Option<u32> {
    let next = first.checked_add_months(Months::new(1))?;
    Some(next.signed_duration_since(first).num_days() as u32)
}

/// The wall-clock date-time of `t` in `tz` (saturating at the representable
/// range).
pub(crate) fn local_of(t: Timestamp, tz: Tz) -> NaiveDateTime {
    let utc = t.naive_utc();
    let off = tz.offset_from_utc_datetime(&utc).fix();
    utc.checked_add_offset(off)
        .unwrap_or(if off.local_minus_utc() < 0 {
            NaiveDateTime::MIN
        } else {
            NaiveDateTime::MAX
        })
}

/// The offset of `tz` at `t`, in seconds east of UTC.
pub(crate) fn offset_secs(t: Timestamp, tz: Tz) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The instant a wall-clock date-time `n` of `tz` names: the earlier of two in
/// a fold (fall back), the first valid instant after the gap for one that does
/// not exist (spring forward). `None` past the representable range.
pub(crate) fn resolve_local(tz: Tz, n: NaiveDateTime) -> Option<Timestamp> {
    let utc = |n: NaiveDateTime, o: &<Tz as TimeZone>::Offset| {
        n.checked_sub_offset(o.fix()).map(|u| u.and_utc())
    };
    match tz.offset_from_local_datetime(&n) {
        LocalResult::Single(o) => utc(n, &o),
        LocalResult::Ambiguous(a, b) => match (utc(n, &a), utc(n, &b)) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
        LocalResult::None => gap_end(tz, n),
    }
}

/// The first valid instant after the gap holding the wall-clock time `n`:
/// where the offset changes (chrono-tz's `GapInfo`); when that is not single
/// (a gap ending in a fold, or the table's edge), the first wall-clock second
/// after `n` that exists, by doubling steps then halving (gaps are at most a
/// day or so; the search gives up after about 64 days).
fn gap_end(tz: Tz, n: NaiveDateTime) -> Option<Timestamp> {
    if let Some(end) = chrono_tz::GapInfo::new(&n, &tz).and_then(|g| g.end) {
        return Some(end.with_timezone(&Utc));
    }
    let exists = |d: i64| -> Option<bool> {
        let m = n.checked_add_signed(TimeDelta::try_seconds(d)?)?;
        Some(!matches!(
            tz.offset_from_local_datetime(&m),
            LocalResult::None
        ))
    };
    let (mut lo, mut hi) = (0i64, 1i64);
    while !exists(hi)? {
        lo = hi;
        hi *= 2;
        if hi > 64 * 86_400 {
            return None;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exists(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let m = n
        .checked_add_signed(TimeDelta::try_seconds(hi)?)?
        .with_nanosecond(0)?;
    if matches!(tz.offset_from_local_datetime(&m), LocalResult::None) {
        return None;
    }
    resolve_local(tz, m)
}

/// What `POST /rotations` takes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRotation {
    /// Name, 1..=100 characters.
    pub name: String,
    /// Description (default empty).
    #[serde(default)]
    pub description: String,
    /// The unit of the shift length.
    #[serde(rename = "type")]
    pub kind: RotationType,
    /// Shift length (default 1).
    #[serde(default)]
    pub shift_length: Option<u32>,
    /// The first handoff (RFC 3339; seconds are dropped).
    pub start: DateTime<Utc>,
    /// IANA time zone name (default `UTC`).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Ordered participants (user ids).
    #[serde(default)]
    pub participants: Vec<UserId>,
}

/// What `PATCH /rotations/{id}` takes: any subset of the editable fields.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotationPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New unit.
    #[serde(default, rename = "type")]
    pub kind: Option<RotationType>,
    /// New shift length.
    #[serde(default)]
    pub shift_length: Option<u32>,
    /// New first handoff.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    /// New time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// New participants (the whole list).
    #[serde(default)]
    pub participants: Option<Vec<UserId>>,
}
