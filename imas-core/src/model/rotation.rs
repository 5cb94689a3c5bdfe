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

use chrono::{DateTime, Utc};
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
    pub fn handoff(&self, k: i64) -> Timestamp {
        let _ = k;
        todo!("handoff math (issue 18 part 1)")
    }

    /// The shift holding `t`: its index `k` (participant `k mod n`), start and
    /// end. Defined for every `t`, before `start` too.
    pub fn shift_index_at(&self, t: Timestamp) -> (i64, Timestamp, Timestamp) {
        let _ = t;
        todo!("handoff math (issue 18 part 1)")
    }

    /// Who is on call at `t`; `None` when there are no participants.
    pub fn on_call_at(&self, t: Timestamp) -> Option<UserId> {
        let _ = t;
        todo!("handoff math (issue 18 part 1)")
    }

    /// The shifts overlapping `[start, end)`, in order, cut to the range (with
    /// `truncated` set where cut); consecutive shifts of the same user are not
    /// merged. Empty when there are no participants or `end <= start`.
    pub fn shifts(&self, start: Timestamp, end: Timestamp) -> Vec<Shift> {
        let _ = (start, end);
        todo!("handoff math (issue 18 part 1)")
    }
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
