//! The domain model: users, incidents, audit entries, notifications and the
//! queries over them. Plain data with serde names matching the HTTP API; the rules
//! that change it live in [`crate::engine`], [`crate::sla`] and [`crate::escalation`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random, time-ordered id (UUID v7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| {
                    Error::validation($what, "expected an id (a UUID such as 0190f3c2-7b1e-7c3a-9d4e-1f2a3b4c5d6e)")
                })
            }
        }
    };
}

id_type!(
    /// Identifies a [`User`].
    UserId,
    "userId"
);
id_type!(
    /// Identifies an [`Incident`].
    IncidentId,
    "incidentId"
);
id_type!(
    /// Identifies a [`Notification`].
    NotificationId,
    "notificationId"
);
id_type!(
    /// Identifies an [`AuditEntry`].
    AuditId,
    "auditId"
);

/// Implements `as_str`, `Display`, `FromStr` (with a validation error naming
/// `$field`) and an `ALL` list for a fieldless enum with fixed spellings.
macro_rules! string_enum {
    ($name:ident, $field:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in JSON and in stores.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::validation(
                        $field,
                        concat!("expected one of: ", $crate::model::join_literals!($($text),+)),
                    )),
                }
            }
        }
    };
}

macro_rules! join_literals {
    ($first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}
pub(crate) use join_literals;

/// A user's role. Permissions per role are in [`crate::rbac`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the system: every permission.
    Admin,
    /// Works incidents.
    Engineer,
    /// Reports incidents.
    User,
}
string_enum!(Role, "role", { Admin => "admin", Engineer => "engineer", User => "user" });

/// An incident's priority; it selects the SLA targets.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Low.
    Low,
    /// Medium (the default).
    #[default]
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}
string_enum!(Priority, "priority", { Low => "low", Medium => "medium", High => "high", Critical => "critical" });

impl Priority {
    /// Position in [`Priority::ALL`], for per-priority tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// What kind of work an incident is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IncidentType {
    /// A defect.
    Bug,
    /// A feature request.
    Feature,
    /// A task (the default).
    #[default]
    Task,
}
string_enum!(IncidentType, "type", { Bug => "bug", Feature => "feature", Task => "task" });

/// An incident's lifecycle status. See [`Status::can_transition_to`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub enum Status {
    /// New, nobody has responded yet.
    #[default]
    #[serde(rename = "open")]
    Open,
    /// Somebody has seen it.
    #[serde(rename = "acknowledged")]
    Acknowledged,
    /// Being worked on.
    #[serde(rename = "in-progress")]
    InProgress,
    /// Waiting on something outside; the SLA clock is paused.
    #[serde(rename = "on-hold")]
    OnHold,
    /// Fixed; may be reopened.
    #[serde(rename = "resolved")]
    Resolved,
    /// Final.
    #[serde(rename = "closed")]
    Closed,
}
string_enum!(Status, "status", {
    Open => "open",
    Acknowledged => "acknowledged",
    InProgress => "in-progress",
    OnHold => "on-hold",
    Resolved => "resolved",
    Closed => "closed",
});

impl Status {
    /// Whether the lifecycle allows going from `self` to `to` (SPEC §1). Staying in
    /// the same status is not a transition and is refused too.
    pub const fn can_transition_to(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Open, Acknowledged | InProgress | OnHold | Resolved | Closed)
                | (Acknowledged, InProgress | OnHold | Resolved | Closed)
                | (InProgress, OnHold | Resolved | Closed)
                | (OnHold, InProgress | Resolved | Closed)
                | (Resolved, Closed | InProgress)
        )
    }

    /// Resolved and closed incidents have no running SLA.
    pub const fn is_done(self) -> bool {
        matches!(self, Status::Resolved | Status::Closed)
    }
}

/// A person who can sign in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Unique login name.
    pub username: String,
    /// Unique email address.
    pub email: String,
    /// Argon2id PHC string. Never serialised.
    #[serde(skip_serializing, default)]
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// An incident with its SLA and escalation state.
///
/// Serialises to the API's JSON (camelCase, `type`, `slaHours`); bookkeeping the
/// engine needs but clients do not (`heldMs`, `holdStartedAt`, `nextDueAt`) is
/// kept out of the JSON.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Id.
    pub id: IncidentId,
    /// Title, 1..=200 characters.
    pub title: String,
    /// Description, at most 10,000 characters.
    pub description: String,
    /// Kind of work.
    #[serde(rename = "type")]
    pub kind: IncidentType,
    /// Priority.
    pub priority: Priority,
    /// Status.
    pub status: Status,
    /// Assignee.
    pub assigned_to: Option<UserId>,
    /// Who reported it (set by the server).
    pub reported_by: UserId,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Resolution target, in milliseconds (JSON: `slaHours`, fractional).
    #[serde(rename = "slaHours", with = "hours")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub sla_target_ms: i64,
    /// Resolution deadline: created + target + time spent on hold (while on hold,
    /// the value at the start of the hold; it moves on resume).
    pub sla_deadline: DateTime<Utc>,
    /// Response target in milliseconds (JSON: `responseHours`).
    #[serde(rename = "responseHours", with = "hours")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub response_target_ms: i64,
    /// Leave `open` before this instant.
    pub response_deadline: DateTime<Utc>,
    /// When the missed response target was recorded.
    pub response_breached_at: Option<DateTime<Utc>>,
    /// When the at-risk warning was recorded.
    pub at_risk_at: Option<DateTime<Utc>>,
    /// Whether the resolution SLA was breached (never reset).
    pub sla_breached: bool,
    /// When the breach was recorded.
    pub breached_at: Option<DateTime<Utc>>,
    /// 0 = not escalated.
    pub escalation_level: u32,
    /// When the current escalation level was reached.
    pub escalated_at: Option<DateTime<Utc>>,
    /// First time the incident left `open`; stops automatic escalation.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When it was last resolved (cleared on reopen).
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Milliseconds spent on hold before the current hold (the SLA pause).
    #[serde(skip, default)]
    pub held_ms: i64,
    /// Start of the current hold.
    #[serde(skip, default)]
    pub hold_started_at: Option<DateTime<Utc>>,
    /// Next instant the SLA monitor must look at this incident (none when nothing
    /// is pending). Maintained by the engine, indexed by stores.
    #[serde(skip, default)]
    pub next_due_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version, incremented by every write.
    pub version: i64,
}

impl Incident {
    /// A new `open` incident with no SLA targets yet (see
    /// [`crate::sla::SlaPolicy::assign`]), version 1.
    pub fn open(title: impl Into<String>, reported_by: UserId, now: Timestamp) -> Self {
        Self {
            id: IncidentId::new(),
            title: title.into(),
            description: String::new(),
            kind: IncidentType::default(),
            priority: Priority::default(),
            status: Status::Open,
            assigned_to: None,
            reported_by,
            created_at: now,
            updated_at: now,
            sla_target_ms: 0,
            sla_deadline: now,
            response_target_ms: 0,
            response_deadline: now,
            response_breached_at: None,
            at_risk_at: None,
            sla_breached: false,
            breached_at: None,
            escalation_level: 0,
            escalated_at: None,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            held_ms: 0,
            hold_started_at: None,
            next_due_at: None,
            version: 1,
        }
    }
}

mod hours {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(*ms as f64 / 3_600_000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let hours = f64::deserialize(d)?;
        Ok((hours * 3_600_000.0).round() as i64)
    }
}

/// Known audit actions. Stores keep the string from [`AuditAction::as_str`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum AuditAction {
    /// A user registered (or was bootstrapped).
    UserRegistered,
    /// A sign-in failed.
    LoginFailed,
    /// A user signed in.
    Login,
    /// An admin changed a user's role.
    RoleChanged,
    /// An incident was created.
    IncidentCreated,
    /// An incident's fields changed.
    IncidentUpdated,
    /// An incident was deleted.
    IncidentDeleted,
    /// An incident's status changed.
    StatusChanged,
    /// An SLA was (re)assigned.
    SlaAssigned,
    /// The at-risk fraction of the SLA elapsed.
    SlaAtRisk,
    /// The resolution SLA was breached.
    SlaBreach,
    /// The response target was missed.
    SlaResponseBreach,
    /// The escalation level rose.
    Escalation,
    /// An admin redrove a dead-lettered notification.
    DeadLetterRedriven,
}
string_enum!(AuditAction, "action", {
    UserRegistered => "USER_REGISTERED",
    LoginFailed => "LOGIN_FAILED",
    Login => "LOGIN",
    RoleChanged => "ROLE_CHANGED",
    IncidentCreated => "INCIDENT_CREATED",
    IncidentUpdated => "INCIDENT_UPDATED",
    IncidentDeleted => "INCIDENT_DELETED",
    StatusChanged => "STATUS_CHANGED",
    SlaAssigned => "SLA_ASSIGNED",
    SlaAtRisk => "SLA_AT_RISK",
    SlaBreach => "SLA_BREACH",
    SlaResponseBreach => "SLA_RESPONSE_BREACH",
    Escalation => "ESCALATION",
    DeadLetterRedriven => "DEAD_LETTER_REDRIVEN",
});

/// Who did something: a user, or the system (the SLA monitor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// IMAS itself (JSON: `"SYSTEM"`).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(id) => fmt::Display::fmt(id, f),
            Actor::System => f.write_str("SYSTEM"),
        }
    }
}

impl FromStr for Actor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "SYSTEM" {
            Ok(Actor::System)
        } else {
            s.parse::<UserId>()
                .map(Actor::User)
                .map_err(|_| Error::validation("actor", "expected a user id or SYSTEM"))
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One append-only audit record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Id.
    pub id: AuditId,
    /// What happened.
    pub action: AuditAction,
    /// Who did it: a user id, or `SYSTEM`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub actor: Actor,
    /// What it happened to (an incident or user id, or a username for failed
    /// logins).
    pub target: Option<String>,
    /// Human-readable detail.
    pub description: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl AuditEntry {
    /// A new entry with a fresh id.
    pub fn new(
        action: AuditAction,
        actor: Actor,
        target: Option<String>,
        description: impl Into<String>,
        at: Timestamp,
    ) -> Self {
        Self {
            id: AuditId::new(),
            action,
            actor,
            target,
            description: description.into(),
            created_at: at,
        }
    }
}

/// Kind of notification.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationType {
    /// Informational (e.g. an assignment).
    Info,
    /// A warning (at-risk, missed response).
    Warning,
    /// A breach or an escalation.
    Escalation,
}
string_enum!(NotificationType, "type", { Info => "info", Warning => "warning", Escalation => "escalation" });

/// A notification the engine wants delivered: written to the outbox in the same
/// atomic change as the domain change that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationIntent {
    /// Idempotency key: one notification per key, however often it is delivered.
    pub key: String,
    /// Recipient.
    pub user: UserId,
    /// Text.
    pub message: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// The incident it is about.
    pub incident_id: Option<IncidentId>,
    /// When the intent was created.
    pub created_at: Timestamp,
}

/// An outbox row: an intent and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The intent (its `key` identifies the entry).
    pub intent: NotificationIntent,
    /// Publications so far.
    pub attempts: u32,
    /// When the relay may publish it (again).
    pub available_at: Timestamp,
}

/// A delivered in-app notification.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Id.
    pub id: NotificationId,
    /// Recipient.
    pub user: UserId,
    /// Text.
    pub message: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// The incident it is about.
    pub incident_id: Option<IncidentId>,
    /// Whether the recipient marked it read.
    pub read: bool,
    /// When it was delivered.
    pub created_at: DateTime<Utc>,
    /// The intent's idempotency key.
    #[serde(skip_serializing, default)]
    pub key: String,
}

impl Notification {
    /// The in-app notification for an intent, delivered at `at`.
    pub fn from_intent(intent: &NotificationIntent, at: Timestamp) -> Self {
        Self {
            id: NotificationId::new(),
            user: intent.user,
            message: intent.message.clone(),
            kind: intent.kind,
            incident_id: intent.incident_id,
            read: false,
            created_at: at,
            key: intent.key.clone(),
        }
    }
}

/// An opaque keyset-pagination position: the `(created_at, id)` of the last item
/// of the previous page, in descending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// `created_at` of the last item seen.
    pub created_at: Timestamp,
    /// Its id, which breaks ties.
    pub id: Uuid,
}

impl Cursor {
    /// The cursor that continues after an item.
    pub fn after(created_at: Timestamp, id: Uuid) -> Self {
        Self { created_at, id }
    }

    /// Text form for URLs: `<millis>.<uuid in hex>`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.created_at.timestamp_millis(),
            self.id.simple()
        )
    }

    /// Parses [`Cursor::encode`]'s output. A position outside the years
    /// [`MIN_YEAR`]..=[`MAX_YEAR`] is no cursor IMAS made: a validation error.
    pub fn decode(s: &str) -> Result<Self> {
        let bad = || {
            Error::validation(
                "cursor",
                "expected a cursor from a previous page's next link",
            )
        };
        let (ms, id) = s.split_once('.').ok_or_else(bad)?;
        let ms: i64 = ms.parse().map_err(|_| bad())?;
        let created_at = Utc.timestamp_millis_opt(ms).single().ok_or_else(bad)?;
        check_instant("cursor", created_at).map_err(|_| bad())?;
        let id = Uuid::try_parse(id).map_err(|_| bad())?;
        Ok(Self { created_at, id })
    }

    /// Checks that the position is one [`Cursor::decode`] accepts.
    pub fn validate(&self) -> Result<()> {
        check_instant("cursor", self.created_at).map(drop)
    }

    /// Whether an item at `(created_at, id)` comes after this cursor in
    /// newest-first order.
    pub fn precedes(&self, created_at: Timestamp, id: Uuid) -> bool {
        (created_at, id) < (self.created_at, self.id)
    }
}

/// One page of a newest-first list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 500;

/// Page size and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    /// 1..=[`MAX_LIMIT`].
    pub limit: u32,
    /// Continue after this position.
    pub cursor: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// A first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            cursor: None,
        }
    }

    /// Checks the limit bounds and the cursor's position.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(Error::validation(
                "limit",
                format!("expected a number from 1 to {MAX_LIMIT}"),
            ));
        }
        self.cursor.as_ref().map_or(Ok(()), Cursor::validate)
    }
}

/// Filters for listing incidents. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct IncidentFilter {
    /// Any of these statuses (empty: any).
    pub status: Vec<Status>,
    /// Any of these priorities (empty: any).
    pub priority: Vec<Priority>,
    /// Assigned to this user.
    pub assigned_to: Option<UserId>,
    /// Reported by this user.
    pub reported_by: Option<UserId>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created at or before.
    pub created_to: Option<Timestamp>,
    /// Escalated (`escalationLevel > 0`) or not.
    pub escalated: Option<bool>,
    /// `slaBreached` is this.
    pub sla_breached: Option<bool>,
    /// Violating its SLA at this instant: breached, or past its deadline and not on
    /// hold; in both cases not resolved or closed.
    pub violated_at: Option<Timestamp>,
    /// Full-text search: every word of it must appear in the title or description
    /// (whole words, case-insensitive; see [`search_terms`]).
    pub q: Option<String>,
}

impl IncidentFilter {
    /// Whether an incident passes the filter; the reference semantics every store
    /// must reproduce.
    pub fn matches(&self, i: &Incident) -> bool {
        if !self.status.is_empty() && !self.status.contains(&i.status) {
            return false;
        }
        if !self.priority.is_empty() && !self.priority.contains(&i.priority) {
            return false;
        }
        if self.assigned_to.is_some() && self.assigned_to != i.assigned_to {
            return false;
        }
        if self.reported_by.is_some_and(|r| r != i.reported_by) {
            return false;
        }
        if self.created_from.is_some_and(|t| i.created_at < t)
            || self.created_to.is_some_and(|t| i.created_at > t)
        {
            return false;
        }
        if self
            .escalated
            .is_some_and(|e| e != (i.escalation_level > 0))
        {
            return false;
        }
        if self.sla_breached.is_some_and(|b| b != i.sla_breached) {
            return false;
        }
        if let Some(now) = self.violated_at {
            let violating = !i.status.is_done()
                && (i.sla_breached || (i.status != Status::OnHold && i.sla_deadline <= now));
            if !violating {
                return false;
            }
        }
        if let Some(q) = &self.q {
            let wanted = search_terms(q);
            if !wanted.is_empty() {
                let have = incident_terms(i);
                if !wanted.iter().all(|w| have.binary_search(w).is_ok()) {
                    return false;
                }
            }
        }
        true
    }
}

impl IncidentFilter {
    /// Checks what a caller can set: dates within the years
    /// [`MIN_YEAR`]..=[`MAX_YEAR`] and a query within the term limits (see
    /// [`query_terms`]). Errors name the API's parameters (`startDate`, `endDate`,
    /// `q`).
    pub fn validate(&self) -> Result<()> {
        for (field, t) in [
            ("startDate", self.created_from),
            ("endDate", self.created_to),
            ("violatedAt", self.violated_at),
        ] {
            if let Some(t) = t {
                check_instant(field, t)?;
            }
        }
        if let Some(q) = &self.q {
            query_terms(q)?;
        }
        Ok(())
    }
}

/// Filters for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// This action.
    pub action: Option<AuditAction>,
    /// By this actor.
    pub actor: Option<Actor>,
    /// About this target.
    pub target: Option<String>,
    /// At or after.
    pub from: Option<Timestamp>,
    /// At or before.
    pub to: Option<Timestamp>,
}

impl AuditFilter {
    /// Checks what a caller can set: dates within the years
    /// [`MIN_YEAR`]..=[`MAX_YEAR`] (fields `from`, `to`) and a `target` that is
    /// text a store can hold (no NUL character).
    pub fn validate(&self) -> Result<()> {
        for (field, t) in [("from", self.from), ("to", self.to)] {
            if let Some(t) = t {
                check_instant(field, t)?;
            }
        }
        if self.target.as_ref().is_some_and(|t| t.contains('\0')) {
            return Err(Error::validation(
                "target",
                "expected text without NUL characters",
            ));
        }
        Ok(())
    }

    /// Reference semantics for stores.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.action.is_none_or(|a| a == e.action)
            && self.actor.is_none_or(|a| a == e.actor)
            && self
                .target
                .as_ref()
                .is_none_or(|t| e.target.as_ref() == Some(t))
            && self.from.is_none_or(|t| e.created_at >= t)
            && self.to.is_none_or(|t| e.created_at <= t)
    }
}

/// Splits text into search terms: maximal runs of alphanumeric characters,
/// lower-cased, deduplicated and sorted. Full-text search matches whole terms, so
/// every backend (FTS5, `tsvector`, a term array) can index the same thing.
///
/// A word longer than [`MAX_TERM_CHARS`] becomes its first [`MAX_TERM_CHARS`]
/// characters: a long word is stored whole and found by that prefix, and no
/// backend meets a term longer than its index allows.
pub fn search_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| {
            let lower = t.to_lowercase();
            match lower.char_indices().nth(MAX_TERM_CHARS) {
                Some((cut, _)) => lower[..cut].to_string(),
                None => lower,
            }
        })
        .collect();
    terms.sort_unstable();
    terms.dedup();
    terms
}

/// Longest search term, in characters (after lower-casing): longer words in
/// titles and descriptions are indexed by this prefix; a longer term in a query
/// is refused.
pub const MAX_TERM_CHARS: usize = 64;

/// Most distinct terms in one search query.
pub const MAX_QUERY_TERMS: usize = 32;

/// The terms of a search query ([`search_terms`]), refused (naming `q`) when one
/// is longer than [`MAX_TERM_CHARS`] or there are more than [`MAX_QUERY_TERMS`].
pub fn query_terms(q: &str) -> Result<Vec<String>> {
    let long = q
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| word.chars().flat_map(char::to_lowercase).count() > MAX_TERM_CHARS);
    if long {
        return Err(Error::validation(
            "q",
            format!("expected search words of at most {MAX_TERM_CHARS} characters"),
        ));
    }
    let terms = search_terms(q);
    if terms.len() > MAX_QUERY_TERMS {
        return Err(Error::validation(
            "q",
            format!("expected at most {MAX_QUERY_TERMS} search words"),
        ));
    }
    Ok(terms)
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

/// The search terms of an incident's title and description.
pub fn incident_terms(i: &Incident) -> Vec<String> {
    let mut terms = search_terms(&i.title);
    terms.extend(search_terms(&i.description));
    terms.sort_unstable();
    terms.dedup();
    terms
}
