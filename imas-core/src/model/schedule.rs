//! Schedules (SPEC §5): rules that put users or rotations on call at wall-clock
//! times on chosen weekdays, in the schedule's time zone, and overrides that
//! add, remove or replace a user for a while. Who is on call at `t` is the union
//! of the users of the rules active at `t`, then the overrides active at `t`
//! (a remove or replace only while the removed user is on call; an add always).
//! Several users may be on call at once; nobody may be.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::rotation::{local_of, offset_secs};
use super::{OverrideId, Rotation, RotationId, ScheduleId, Shift, Timestamp, UserId};
use crate::error::{Error, Result};

/// Most rules a schedule has.
pub const MAX_RULES: usize = 100;
/// Most overrides a schedule keeps (ended ones more than
/// [`OVERRIDE_RETENTION_DAYS`] ago are dropped when one is added).
pub const MAX_OVERRIDES: usize = 1000;
/// How long an ended override is kept (for shifts of the past), in days.
pub const OVERRIDE_RETENTION_DAYS: i64 = 90;
/// The longest range `shifts` answers for, in days.
pub const MAX_SHIFT_RANGE_DAYS: i64 = 90;

/// A wall-clock time of day, minute precision; JSON `"HH:MM"` (00:00..=23:59).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClockTime(u16);

impl ClockTime {
    /// `hour:minute`, `None` when out of range.
    pub const fn new(hour: u32, minute: u32) -> Option<Self> {
        if hour < 24 && minute < 60 {
            Some(Self((hour * 60 + minute) as u16))
        } else {
            None
        }
    }

    /// Minutes since midnight (0..1440).
    pub const fn minutes(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for ClockTime {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::validation("time", "expected a wall-clock time HH:MM, 00:00 to 23:59");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        Self::new(h, m).ok_or_else(bad)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| {
            serde::de::Error::custom("expected a wall-clock time HH:MM, 00:00 to 23:59")
        })
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ClockTime {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^([01][0-9]|2[0-3]):[0-5][0-9]$"))
            .examples(["09:00"])
            .into()
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ClockTime {}

/// A day of the week.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}
string_enum!(Weekday, "weekday", {
    Mon => "mon", Tue => "tue", Wed => "wed", Thu => "thu", Fri => "fri", Sat => "sat", Sun => "sun",
});

impl From<chrono::Weekday> for Weekday {
    fn from(d: chrono::Weekday) -> Self {
        Weekday::ALL[d.num_days_from_monday() as usize]
    }
}

/// A set of weekdays (bit `i` = [`Weekday::ALL`]`[i]`); JSON a list such as
/// `["mon","tue"]`, in week order; absent means every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

impl Weekdays {
    /// Every day.
    pub const ALL: Weekdays = Weekdays(0x7f);

    /// These days.
    pub fn of(days: &[Weekday]) -> Self {
        Self(days.iter().fold(0, |m, d| m | 1 << (*d as u8)))
    }

    /// Whether `d` is in the set.
    pub const fn contains(self, d: Weekday) -> bool {
        self.0 & (1 << d as u8) != 0
    }

    /// The bit mask (bit 0 Monday .. bit 6 Sunday), as stores keep it.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// From a stored bit mask (bits above 6 ignored).
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 0x7f)
    }

    /// Whether no day is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Default for Weekdays {
    fn default() -> Self {
        Self::ALL
    }
}

impl Serialize for Weekdays {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(Weekday::ALL.iter().filter(|d| self.contains(**d)))
    }
}

impl<'de> Deserialize<'de> for Weekdays {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Self::of(&Vec::<Weekday>::deserialize(d)?))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Weekdays {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(<Weekday as utoipa::PartialSchema>::schema())
            .into()
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Weekdays {}

/// Whom a schedule rule puts on call.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum RuleTarget {
    /// This user.
    User {
        /// The user.
        id: UserId,
    },
    /// Whoever is on call in this rotation.
    Rotation {
        /// The rotation.
        id: RotationId,
    },
}

/// A rule: `target` is on call from `start` to `end` (wall clock, the
/// schedule's zone) on `weekdays`. `start == end`: all day; `start > end`:
/// crosses midnight, active past midnight when the day before is one of
/// `weekdays`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleRule {
    /// Who.
    pub target: RuleTarget,
    /// From (`HH:MM`).
    pub start: ClockTime,
    /// Until (`HH:MM`).
    pub end: ClockTime,
    /// On which days (default every day).
    #[serde(default)]
    pub weekdays: Weekdays,
}

/// An override: from `start` to `end`, `add_user_id` is on call as well (add),
/// `remove_user_id` is not (remove), or both: the one instead of the other
/// (replace). A remove or replace applies only while the removed user is on
/// call by the rules.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    /// Id (unique within its schedule).
    pub id: OverrideId,
    /// From (inclusive), whole minutes.
    pub start: DateTime<Utc>,
    /// Until (exclusive), after `start`.
    pub end: DateTime<Utc>,
    /// Who is added (or comes in for the removed user).
    pub add_user_id: Option<UserId>,
    /// Who is taken off call.
    pub remove_user_id: Option<UserId>,
    /// Who made it.
    pub created_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A schedule.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Id.
    pub id: ScheduleId,
    /// Name, 1..=100 characters (not unique).
    pub name: String,
    /// Description, at most 10,000 characters.
    pub description: String,
    /// The zone of the rules' wall-clock times (IANA name).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Berlin"))]
    pub time_zone: Tz,
    /// Rules, at most 100.
    pub rules: Vec<ScheduleRule>,
    /// Overrides, ordered by start, at most 1,000.
    pub overrides: Vec<Override>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, incremented by every write (overrides
    /// included).
    pub version: i64,
}

impl Schedule {
    /// The rotations this schedule's rules name, without duplicates, in rule
    /// order: what a caller loads before asking who is on call.
    pub fn rotation_ids(&self) -> Vec<RotationId> {
        let mut ids = Vec::new();
        for r in &self.rules {
            if let RuleTarget::Rotation { id } = r.target
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }

    /// Who is on call at `t`, without duplicates, in the order the rules and
    /// then the adding overrides name them. `rotations` holds (at least) the
    /// rotations the rules name; a rule naming a rotation not in it puts nobody
    /// on call.
    pub fn on_call_at(&self, t: Timestamp, rotations: &[Rotation]) -> Vec<UserId> {
        let now = WallClock::of(local_of(t, self.time_zone));
        let mut users = Vec::new();
        // Each rotation once per call, however many rules name it.
        let mut memo: [Option<(RotationId, Option<UserId>)>; 4] = [None; 4];
        for rule in &self.rules {
            if !now.in_rule(rule) {
                continue;
            }
            let user = match rule.target {
                RuleTarget::User { id } => Some(id),
                RuleTarget::Rotation { id } => {
                    match memo.iter().flatten().find(|(r, _)| *r == id) {
                        Some((_, u)) => *u,
                        None => {
                            let u = rotations
                                .iter()
                                .find(|r| r.id == id)
                                .and_then(|r| r.on_call_at(t));
                            if let Some(slot) = memo.iter_mut().find(|m| m.is_none()) {
                                *slot = Some((id, u));
                            }
                            u
                        }
                    }
                }
            };
            if let Some(u) = user
                && !users.contains(&u)
            {
                users.push(u);
            }
        }
        for o in &self.overrides {
            if o.start <= t && t < o.end {
                apply_override(&mut users, o);
            }
        }
        users
    }

    /// Each user's stretches on call overlapping `[start, end)`, cut to the
    /// range (`truncated` where cut), ordered by start then user: for every
    /// instant of the range, the users whose shifts hold it are exactly
    /// [`Schedule::on_call_at`] of it. Consecutive stretches of one user are
    /// merged.
    ///
    /// How: the answer can change only at a rotation's handoff, an override's
    /// start or end, a change of the zone's offset, or a wall-clock time where
    /// a rule starts or ends or a day begins; the set is evaluated once at
    /// each such instant of the range (with the rotations' shifts over the
    /// range computed once, and the zone's offset known per stretch between
    /// offset changes), and stretches are opened and closed between them.
    pub fn shifts(&self, start: Timestamp, end: Timestamp, rotations: &[Rotation]) -> Vec<Shift> {
        let mut out = Vec::new();
        if end <= start {
            return out;
        }
        // The rotations' shifts over the range, a cursor into each.
        let timelines: Vec<(RotationId, Vec<Shift>)> = self
            .rotation_ids()
            .into_iter()
            .map(|id| {
                let shifts = rotations
                    .iter()
                    .find(|r| r.id == id)
                    .map(|r| r.shifts(start, end))
                    .unwrap_or_default();
                (id, shifts)
            })
            .collect();
        let mut cursors = vec![0usize; timelines.len()];
        // The overrides that matter in the range.
        let overrides: Vec<&Override> = self
            .overrides
            .iter()
            .filter(|o| o.start < end && o.end > start)
            .collect();
        // The zone's offset changes in the range: (from, offset seconds).
        let segments = offset_segments(self.time_zone, start, end);
        // The instants where the answer may change.
        let mut points: Vec<Timestamp> = Vec::with_capacity(256);
        points.push(start);
        for (_, shifts) in &timelines {
            points.extend(shifts.iter().skip(1).map(|s| s.start));
        }
        for o in &overrides {
            points.push(o.start);
            points.push(o.end);
        }
        let mut minutes: Vec<u32> = vec![0];
        for r in &self.rules {
            minutes.push(r.start.minutes());
            minutes.push(r.end.minutes());
        }
        minutes.sort_unstable();
        minutes.dedup();
        for (i, &(from, off)) in segments.iter().enumerate() {
            let until = segments.get(i + 1).map_or(end, |s| s.0);
            points.push(from);
            wall_clock_points(from, until, off, &minutes, &mut points);
        }
        points.retain(|p| start <= *p && *p < end);
        points.sort_unstable();
        points.dedup();

        // Sweep: `open` holds (user, since, truncated at the start).
        let before: Vec<UserId> = match start.checked_sub_signed(TimeDelta::nanoseconds(1)) {
            Some(b) => self.on_call_at(b, rotations),
            None => Vec::new(),
        };
        let mut open: Vec<(UserId, Timestamp, bool)> = Vec::new();
        let mut now: Vec<UserId> = Vec::new();
        let mut seg = 0usize;
        for &p in &points {
            while seg + 1 < segments.len() && segments[seg + 1].0 <= p {
                seg += 1;
            }
            let wall = WallClock::of(shift_naive(p, segments[seg].1));
            now.clear();
            for rule in &self.rules {
                if !wall.in_rule(rule) {
                    continue;
                }
                let user = match rule.target {
                    RuleTarget::User { id } => Some(id),
                    RuleTarget::Rotation { id } => {
                        let i = timelines.iter().position(|(r, _)| *r == id);
                        i.and_then(|i| {
                            let shifts = &timelines[i].1;
                            let c = &mut cursors[i];
                            while *c < shifts.len() && shifts[*c].end <= p {
                                *c += 1;
                            }
                            shifts.get(*c).filter(|s| s.start <= p).map(|s| s.user_id)
                        })
                    }
                };
                if let Some(u) = user
                    && !now.contains(&u)
                {
                    now.push(u);
                }
            }
            for o in &overrides {
                if o.start <= p && p < o.end {
                    apply_override(&mut now, o);
                }
            }
            // Close the stretches of those no longer on call, open the new.
            open.retain(|&(u, since, truncated)| {
                if now.contains(&u) {
                    return true;
                }
                out.push(Shift {
                    user_id: u,
                    start: since,
                    end: p,
                    truncated,
                });
                false
            });
            for &u in &now {
                if !open.iter().any(|(o, _, _)| *o == u) {
                    open.push((u, p, p == start && before.contains(&u)));
                }
            }
        }
        if !open.is_empty() {
            let after = self.on_call_at(end, rotations);
            for (u, since, truncated) in open {
                out.push(Shift {
                    user_id: u,
                    start: since,
                    end,
                    truncated: truncated || after.contains(&u),
                });
            }
        }
        out.sort_unstable_by_key(|s| (s.start, s.user_id));
        out
    }
}

/// Applies an override active at the instant to the users on call then:
/// remove drops the removed user; replace puts the added user in the removed
/// one's place (dropping him only, when the added user is on call already);
/// add appends the added user. A remove or replace whose user is not on call
/// does nothing; nobody appears twice.
fn apply_override(users: &mut Vec<UserId>, o: &Override) {
    match (o.remove_user_id, o.add_user_id) {
        (Some(gone), added) => {
            let Some(i) = users.iter().position(|u| *u == gone) else {
                return;
            };
            match added {
                Some(a) if a != gone && !users.contains(&a) => users[i] = a,
                Some(a) if a == gone => {}
                _ => {
                    users.remove(i);
                }
            }
        }
        (None, Some(a)) => {
            if !users.contains(&a) {
                users.push(a);
            }
        }
        (None, None) => {}
    }
}

/// A wall-clock instant as the rules read it: the weekday, the day before's
/// and the minute of the day.
#[derive(Clone, Copy)]
struct WallClock {
    today: Weekday,
    yesterday: Weekday,
    minute: u32,
}

impl WallClock {
    fn of(n: NaiveDateTime) -> Self {
        let d = n.weekday();
        Self {
            today: d.into(),
            yesterday: d.pred().into(),
            minute: n.hour() * 60 + n.minute(),
        }
    }

    /// Whether `rule` is active now: all day on its weekdays (`start ==
    /// end`), from start to end on them (`start < end`), or from start to
    /// midnight on them and from midnight to end on the day after (`start >
    /// end`).
    fn in_rule(self, rule: &ScheduleRule) -> bool {
        let (s, e) = (rule.start.minutes(), rule.end.minutes());
        let days = rule.weekdays;
        if s == e {
            days.contains(self.today)
        } else if s < e {
            days.contains(self.today) && s <= self.minute && self.minute < e
        } else {
            (days.contains(self.today) && self.minute >= s)
                || (days.contains(self.yesterday) && self.minute < e)
        }
    }
}

/// `t`'s wall clock at a fixed offset (saturating at the representable range).
fn shift_naive(t: Timestamp, off: i32) -> NaiveDateTime {
    let utc = t.naive_utc();
    chrono::FixedOffset::east_opt(off)
        .and_then(|o| utc.checked_add_offset(o))
        .unwrap_or(utc)
}

/// The stretches of `[start, end)` with one offset of `tz`: each stretch's
/// first instant and its offset (seconds east), the first at `start`. The
/// offset is probed every 6 hours and a change found to the second by halving
/// (zones change offset at whole seconds, months apart).
fn offset_segments(tz: Tz, start: Timestamp, end: Timestamp) -> Vec<(Timestamp, i32)> {
    const PROBE: i64 = 6 * 3_600;
    let off = |s: i64| chrono::DateTime::from_timestamp(s, 0).map(|t| offset_secs(t, tz));
    let mut segs = vec![(start, offset_secs(start, tz))];
    let last = end.timestamp() + 1;
    let mut at = start.timestamp();
    let mut cur = segs[0].1;
    while at < last {
        let probe = (at + PROBE).min(last);
        let Some(o) = off(probe) else { break };
        if o == cur {
            at = probe;
            continue;
        }
        // The first second in (at, probe] with another offset.
        let (mut lo, mut hi) = (at, probe);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if off(mid) == Some(cur) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let Some(t) = chrono::DateTime::from_timestamp(hi, 0) else {
            break;
        };
        cur = off(hi).unwrap_or(cur);
        if t > start && t < end {
            segs.push((t, cur));
        }
        at = hi;
    }
    segs
}

/// Pushes the instants of `[from, until)` (a stretch of offset `off`) whose
/// wall clock is one of `minutes` (minutes of the day) on some day.
fn wall_clock_points(
    from: Timestamp,
    until: Timestamp,
    off: i32,
    minutes: &[u32],
    points: &mut Vec<Timestamp>,
) {
    let delta = TimeDelta::seconds(i64::from(off));
    let (lo, hi) = (shift_naive(from, off), shift_naive(until, off));
    let mut day = lo.date();
    while day <= hi.date() {
        let midnight = day.and_time(chrono::NaiveTime::MIN);
        for &m in minutes {
            let Some(wall) = midnight.checked_add_signed(TimeDelta::minutes(i64::from(m))) else {
                continue;
            };
            if wall > lo
                && wall < hi
                && let Some(t) = wall.checked_sub_signed(delta)
            {
                points.push(t.and_utc());
            }
        }
        match day.succ_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
}

/// What `POST /schedules` takes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSchedule {
    /// Name, 1..=100 characters.
    pub name: String,
    /// Description (default empty).
    #[serde(default)]
    pub description: String,
    /// IANA time zone name (default `UTC`).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Rules (default none).
    #[serde(default)]
    pub rules: Vec<ScheduleRule>,
}

/// What `PATCH /schedules/{id}` takes: any subset of the editable fields
/// (overrides have routes of their own).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulePatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// New rules (the whole list).
    #[serde(default)]
    pub rules: Option<Vec<ScheduleRule>>,
}

/// What `POST /schedules/{id}/overrides` takes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOverride {
    /// From (RFC 3339; seconds are dropped).
    pub start: DateTime<Utc>,
    /// Until, after `start`.
    pub end: DateTime<Utc>,
    /// Who is added.
    #[serde(default)]
    pub add_user_id: Option<UserId>,
    /// Who is taken off call.
    #[serde(default)]
    pub remove_user_id: Option<UserId>,
}

/// What `GET /schedules/{id}/on-call` answers: who is on call at `at`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnCall {
    /// The instant asked about (now when not given).
    pub at: DateTime<Utc>,
    /// Who is on call then, in [`Schedule::on_call_at`]'s order.
    pub users: Vec<super::UserSummary>,
}

/// One schedule of `GET /oncall`'s answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleOnCall {
    /// The schedule.
    pub schedule_id: ScheduleId,
    /// Its name.
    pub name: String,
    /// Who is on call in it.
    pub users: Vec<super::UserSummary>,
}

/// What `GET /oncall` answers: every schedule with who is on call at `at`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnCallEverywhere {
    /// The instant asked about.
    pub at: DateTime<Utc>,
    /// Every schedule, newest first.
    pub schedules: Vec<ScheduleOnCall>,
}
