//! One description of each table's columns, and the codec between the model and
//! those columns: [`Table::values`] turns a record into neutral bound [`Value`]s
//! (in column order), the `decode_*` functions turn a row of either dialect back.
//!
//! Adding a column to `incidents`: the two migrations, one [`Column`] line in
//! [`INCIDENTS`] and one field in [`decode_incident`]. The SQL of both dialects
//! (insert, update, select lists, PostgreSQL's `UNNEST` bulk insert, SQLite's
//! JSON pages) is built from this description.

use imas_core::error::Result;
use imas_core::model::{
    Actor, Alert, AlertId, AuditEntry, AuditId, Cursor, EscalationPolicy, EscalationPolicyId,
    Incident, IncidentId, Integration, IntegrationId, Notification, NotificationId, OutboxEntry,
    Rotation, RotationId, Schedule, ScheduleId, Service, ServiceId, Timestamp, User, UserId,
};
use uuid::Uuid;

use crate::error::SqlError;

/// A value to bind, independent of the dialect (each dialect maps it: a
/// timestamp is milliseconds on SQLite and `timestamptz` on PostgreSQL).
#[derive(Debug, Clone)]
pub enum Value {
    Id(Option<Uuid>),
    Text(Option<String>),
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    Ts(Option<Timestamp>),
    Bool(bool),
    /// Search terms: a `text[]` on PostgreSQL, space-separated text on SQLite.
    Terms(Vec<String>),
}

impl Value {
    pub(crate) fn text(s: impl Into<String>) -> Self {
        Value::Text(Some(s.into()))
    }
}

/// What a column holds (its SQL type in each dialect follows from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Id,
    Text,
    Int,
    Ts,
    Bool,
    /// A JSON document: text on SQLite, `jsonb` on PostgreSQL (bound as text
    /// and cast, read back as text).
    Json,
}

/// How to read one column's value out of a `T`.
#[derive(Debug)]
pub enum Get<T> {
    Id(fn(&T) -> Option<Uuid>),
    Text(fn(&T) -> Option<String>),
    Int(fn(&T) -> i64),
    OptInt(fn(&T) -> Option<i64>),
    Ts(fn(&T) -> Option<Timestamp>),
    Bool(fn(&T) -> bool),
    Json(fn(&T) -> String),
}

/// One column of a table: its name and how a `T` fills it.
#[derive(Debug)]
pub struct Column<T> {
    pub name: &'static str,
    pub get: Get<T>,
}

impl<T> Column<T> {
    const fn id(name: &'static str, f: fn(&T) -> Option<Uuid>) -> Self {
        Self {
            name,
            get: Get::Id(f),
        }
    }
    const fn text(name: &'static str, f: fn(&T) -> Option<String>) -> Self {
        Self {
            name,
            get: Get::Text(f),
        }
    }
    const fn int(name: &'static str, f: fn(&T) -> i64) -> Self {
        Self {
            name,
            get: Get::Int(f),
        }
    }
    const fn opt_int(name: &'static str, f: fn(&T) -> Option<i64>) -> Self {
        Self {
            name,
            get: Get::OptInt(f),
        }
    }
    const fn ts(name: &'static str, f: fn(&T) -> Option<Timestamp>) -> Self {
        Self {
            name,
            get: Get::Ts(f),
        }
    }
    const fn flag(name: &'static str, f: fn(&T) -> bool) -> Self {
        Self {
            name,
            get: Get::Bool(f),
        }
    }

    const fn json(name: &'static str, f: fn(&T) -> String) -> Self {
        Self {
            name,
            get: Get::Json(f),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self.get {
            Get::Id(_) => Kind::Id,
            Get::Text(_) => Kind::Text,
            Get::Int(_) | Get::OptInt(_) => Kind::Int,
            Get::Ts(_) => Kind::Ts,
            Get::Bool(_) => Kind::Bool,
            Get::Json(_) => Kind::Json,
        }
    }

    pub(crate) fn value(&self, t: &T) -> Value {
        match self.get {
            Get::Id(f) => Value::Id(f(t)),
            Get::Text(f) => Value::Text(f(t)),
            Get::Int(f) => Value::Int(f(t)),
            Get::OptInt(f) => Value::OptInt(f(t)),
            Get::Ts(f) => Value::Ts(f(t)),
            Get::Bool(f) => Value::Bool(f(t)),
            Get::Json(f) => Value::Text(Some(f(t))),
        }
    }
}

/// A table the store writes whole rows of.
#[derive(Debug)]
pub struct Table<T: 'static> {
    pub name: &'static str,
    pub columns: &'static [Column<T>],
    /// The instant lists are ordered by, newest first, with `id` breaking ties
    /// (the keyset of its pages).
    pub order: &'static str,
}

impl<T> Table<T> {
    /// A record's values, in column order.
    pub(crate) fn values(&self, t: &T) -> Vec<Value> {
        self.columns.iter().map(|c| c.value(t)).collect()
    }

    /// The column names, comma-separated.
    pub(crate) fn list(&self) -> String {
        self.list_with(|c| c.name.to_string())
    }

    /// The select list: the column names, with JSON columns read as text
    /// where `json_as_text` (PostgreSQL's `jsonb`).
    pub(crate) fn select(&self, json_as_text: bool) -> String {
        self.list_with(|c| match c.kind() {
            Kind::Json if json_as_text => format!("{n}::text AS {n}", n = c.name),
            _ => c.name.to_string(),
        })
    }

    /// Each column through `f`, comma-separated.
    pub(crate) fn list_with(&self, f: impl FnMut(&Column<T>) -> String) -> String {
        self.columns.iter().map(f).collect::<Vec<_>>().join(", ")
    }
}

fn own(s: &str) -> Option<String> {
    Some(s.to_owned())
}

pub(crate) static USERS: Table<User> = Table {
    name: "users",
    columns: &[
        Column::id("id", |u| Some(u.id.0)),
        Column::text("name", |u| own(&u.name)),
        Column::text("username", |u| own(&u.username)),
        Column::text("email", |u| own(&u.email)),
        Column::text("password_hash", |u| own(&u.password_hash)),
        Column::text("role", |u| own(u.role.as_str())),
        Column::ts("created_at", |u| Some(u.created_at)),
        Column::text("time_zone", |u| own(u.time_zone.name())),
    ],
    order: "created_at",
};

pub(crate) static INCIDENTS: Table<Incident> = Table {
    name: "incidents",
    columns: &[
        Column::id("id", |i| Some(i.id.0)),
        Column::text("title", |i| own(&i.title)),
        Column::text("description", |i| own(&i.description)),
        Column::text("kind", |i| own(i.kind.as_str())),
        Column::text("priority", |i| own(i.priority.as_str())),
        Column::text("status", |i| own(i.status.as_str())),
        Column::id("assigned_to", |i| i.assigned_to.map(|u| u.0)),
        Column::id("reported_by", |i| i.reported_by.map(|u| u.0)),
        Column::ts("created_at", |i| Some(i.created_at)),
        Column::ts("updated_at", |i| Some(i.updated_at)),
        Column::int("sla_target_ms", |i| i.sla_target_ms),
        Column::ts("sla_deadline", |i| Some(i.sla_deadline)),
        Column::int("response_target_ms", |i| i.response_target_ms),
        Column::ts("response_deadline", |i| Some(i.response_deadline)),
        Column::ts("response_breached_at", |i| i.response_breached_at),
        Column::ts("at_risk_at", |i| i.at_risk_at),
        Column::flag("sla_breached", |i| i.sla_breached),
        Column::ts("breached_at", |i| i.breached_at),
        Column::int("escalation_level", |i| i64::from(i.escalation_level)),
        Column::ts("escalated_at", |i| i.escalated_at),
        Column::ts("acknowledged_at", |i| i.acknowledged_at),
        Column::ts("resolved_at", |i| i.resolved_at),
        Column::ts("closed_at", |i| i.closed_at),
        Column::int("held_ms", |i| i.held_ms),
        Column::ts("hold_started_at", |i| i.hold_started_at),
        Column::ts("next_due_at", |i| i.next_due_at),
        Column::int("version", |i| i.version),
        Column::id("service_id", |i| i.service_id.map(|s| s.0)),
        Column::text("source", |i| own(i.source.as_str())),
        Column::int("alert_count", |i| i64::from(i.alert_count)),
        Column::text("group_key", |i| i.group_key.clone()),
        Column::id("escalation_policy_id", |i| {
            i.escalation_policy_id.map(|p| p.0)
        }),
        Column::int("escalation_step", |i| i64::from(i.escalation_step)),
        Column::ts("next_escalation_at", |i| i.next_escalation_at),
        Column::ts("ack_expires_at", |i| i.ack_expires_at),
    ],
    order: "created_at",
};

pub(crate) static SERVICES: Table<Service> = Table {
    name: "services",
    columns: &[
        Column::id("id", |s| Some(s.id.0)),
        Column::text("name", |s| own(&s.name)),
        Column::text("description", |s| own(&s.description)),
        Column::flag("auto_resolve", |s| s.auto_resolve),
        Column::ts("created_at", |s| Some(s.created_at)),
        Column::ts("updated_at", |s| Some(s.updated_at)),
        Column::int("version", |s| s.version),
        Column::id("escalation_policy_id", |s| {
            s.escalation_policy_id.map(|p| p.0)
        }),
        Column::opt_int("ack_timeout_seconds", |s| {
            s.ack_timeout_seconds.map(i64::from)
        }),
    ],
    order: "created_at",
};

pub(crate) static ROTATIONS: Table<Rotation> = Table {
    name: "rotations",
    columns: &[
        Column::id("id", |r| Some(r.id.0)),
        Column::text("name", |r| own(&r.name)),
        Column::text("description", |r| own(&r.description)),
        Column::text("kind", |r| own(r.kind.as_str())),
        Column::int("shift_length", |r| i64::from(r.shift_length)),
        Column::ts("start", |r| Some(r.start)),
        Column::text("time_zone", |r| own(r.time_zone.name())),
        Column::json("participants", |r| json(&r.participants)),
        Column::ts("created_at", |r| Some(r.created_at)),
        Column::ts("updated_at", |r| Some(r.updated_at)),
        Column::int("version", |r| r.version),
    ],
    order: "created_at",
};

pub(crate) static SCHEDULES: Table<Schedule> = Table {
    name: "schedules",
    columns: &[
        Column::id("id", |s| Some(s.id.0)),
        Column::text("name", |s| own(&s.name)),
        Column::text("description", |s| own(&s.description)),
        Column::text("time_zone", |s| own(s.time_zone.name())),
        Column::json("rules", |s| json(&s.rules)),
        Column::json("overrides", |s| json(&s.overrides)),
        Column::ts("created_at", |s| Some(s.created_at)),
        Column::ts("updated_at", |s| Some(s.updated_at)),
        Column::int("version", |s| s.version),
    ],
    order: "created_at",
};

pub(crate) static ESCALATION_POLICIES: Table<EscalationPolicy> = Table {
    name: "escalation_policies",
    columns: &[
        Column::id("id", |p| Some(p.id.0)),
        Column::text("name", |p| own(&p.name)),
        Column::text("description", |p| own(&p.description)),
        Column::int("repeat", |p| i64::from(p.repeat)),
        Column::json("steps", |p| json(&p.steps)),
        Column::ts("created_at", |p| Some(p.created_at)),
        Column::ts("updated_at", |p| Some(p.updated_at)),
        Column::int("version", |p| p.version),
    ],
    order: "created_at",
};

pub(crate) static INTEGRATIONS: Table<Integration> = Table {
    name: "integrations",
    columns: &[
        Column::id("id", |i| Some(i.id.0)),
        Column::id("service_id", |i| Some(i.service_id.0)),
        Column::text("name", |i| own(&i.name)),
        Column::text("kind", |i| own(i.kind.as_str())),
        Column::text("key_hash", |i| own(&i.key_hash)),
        Column::ts("created_at", |i| Some(i.created_at)),
        Column::ts("revoked_at", |i| i.revoked_at),
    ],
    order: "created_at",
};

fn json<T: serde::Serialize>(v: &T) -> String {
    // Maps of strings, a JSON value, links, ids, rules, overrides and steps
    // always serialise.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

pub(crate) static ALERTS: Table<Alert> = Table {
    name: "alerts",
    columns: &[
        Column::id("id", |a| Some(a.id.0)),
        Column::id("incident_id", |a| Some(a.incident_id.0)),
        Column::id("service_id", |a| Some(a.service_id.0)),
        Column::id("integration_id", |a| Some(a.integration_id.0)),
        Column::text("dedup_key", |a| own(&a.dedup_key)),
        Column::text("status", |a| own(a.status.as_str())),
        Column::text("summary", |a| own(&a.summary)),
        Column::text("severity", |a| own(a.severity.as_str())),
        Column::text("source", |a| own(&a.source)),
        Column::text("component", |a| a.component.clone()),
        Column::text("alert_group", |a| a.group.clone()),
        Column::text("class", |a| a.class.clone()),
        Column::json("labels", |a| json(&a.labels)),
        Column::json("details", |a| json(&a.details)),
        Column::json("links", |a| json(&a.links)),
        Column::ts("started_at", |a| Some(a.started_at)),
        Column::ts("last_event_at", |a| Some(a.last_event_at)),
        Column::int("event_count", |a| a.event_count),
        Column::ts("resolved_at", |a| a.resolved_at),
    ],
    order: "started_at",
};

pub(crate) static AUDIT: Table<AuditEntry> = Table {
    name: "audit_log",
    columns: &[
        Column::id("id", |e| Some(e.id.0)),
        Column::text("action", |e| own(e.action.as_str())),
        Column::text("actor", |e| Some(e.actor.to_string())),
        Column::text("target", |e| e.target.clone()),
        Column::text("description", |e| own(&e.description)),
        Column::ts("created_at", |e| Some(e.created_at)),
    ],
    order: "created_at",
};

pub(crate) static NOTIFICATIONS: Table<Notification> = Table {
    name: "notifications",
    columns: &[
        Column::id("id", |n| Some(n.id.0)),
        Column::text("key", |n| own(&n.key)),
        Column::id("user_id", |n| Some(n.user.0)),
        Column::text("message", |n| own(&n.message)),
        Column::text("kind", |n| own(n.kind.as_str())),
        Column::id("incident_id", |n| n.incident_id.map(|i| i.0)),
        Column::flag("read", |n| n.read),
        Column::ts("created_at", |n| Some(n.created_at)),
    ],
    order: "created_at",
};

/// Typed column access that every row type provides (sqlx rows of both
/// dialects, rusqlite rows, SQLite's JSON page rows), so that rows decode into
/// the model in one place.
pub trait RowExt {
    const BACKEND: &'static str;
    fn id(&self, col: &str) -> Result<Uuid>;
    fn opt_id(&self, col: &str) -> Result<Option<Uuid>>;
    fn ts(&self, col: &str) -> Result<Timestamp>;
    fn opt_ts(&self, col: &str) -> Result<Option<Timestamp>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn flag(&self, col: &str) -> Result<bool>;

    /// A JSON column (stored or read as text).
    fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        serde_json::from_str(&s)
            .map_err(|e| SqlError::corrupt(Self::BACKEND, format_args!("{col}: {e}")).into())
    }

    fn parsed<T: std::str::FromStr>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        s.parse()
            .map_err(|_| SqlError::corrupt(Self::BACKEND, format_args!("{col} = {s:?}")).into())
    }
}

/// A record decoded from a row of any dialect.
pub trait Decode: Sized + Send + 'static {
    fn decode<R: RowExt>(r: &R) -> Result<Self>;
}

impl Decode for User {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(User {
            id: UserId(r.id("id")?),
            name: r.text("name")?,
            username: r.text("username")?,
            email: r.text("email")?,
            password_hash: r.text("password_hash")?,
            role: r.parsed("role")?,
            time_zone: r.parsed("time_zone")?,
            created_at: r.ts("created_at")?,
        })
    }
}

impl Decode for Incident {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        decode_incident(r)
    }
}

/// An incident from a row holding [`INCIDENTS`]' columns.
pub(crate) fn decode_incident<R: RowExt>(r: &R) -> Result<Incident> {
    Ok(Incident {
        id: IncidentId(r.id("id")?),
        title: r.text("title")?,
        description: r.text("description")?,
        kind: r.parsed("kind")?,
        priority: r.parsed("priority")?,
        status: r.parsed("status")?,
        assigned_to: r.opt_id("assigned_to")?.map(UserId),
        reported_by: r.opt_id("reported_by")?.map(UserId),
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        sla_target_ms: r.int("sla_target_ms")?,
        sla_deadline: r.ts("sla_deadline")?,
        response_target_ms: r.int("response_target_ms")?,
        response_deadline: r.ts("response_deadline")?,
        response_breached_at: r.opt_ts("response_breached_at")?,
        at_risk_at: r.opt_ts("at_risk_at")?,
        sla_breached: r.flag("sla_breached")?,
        breached_at: r.opt_ts("breached_at")?,
        escalation_level: u32::try_from(r.int("escalation_level")?)
            .map_err(|_| SqlError::corrupt(R::BACKEND, "escalation_level"))?,
        escalated_at: r.opt_ts("escalated_at")?,
        acknowledged_at: r.opt_ts("acknowledged_at")?,
        resolved_at: r.opt_ts("resolved_at")?,
        closed_at: r.opt_ts("closed_at")?,
        held_ms: r.int("held_ms")?,
        hold_started_at: r.opt_ts("hold_started_at")?,
        next_due_at: r.opt_ts("next_due_at")?,
        version: r.int("version")?,
        service_id: r.opt_id("service_id")?.map(ServiceId),
        source: r.parsed("source")?,
        alert_count: u32::try_from(r.int("alert_count")?)
            .map_err(|_| SqlError::corrupt(R::BACKEND, "alert_count"))?,
        group_key: r.opt_text("group_key")?,
        escalation_policy_id: r.opt_id("escalation_policy_id")?.map(EscalationPolicyId),
        escalation_step: u32::try_from(r.int("escalation_step")?)
            .map_err(|_| SqlError::corrupt(R::BACKEND, "escalation_step"))?,
        next_escalation_at: r.opt_ts("next_escalation_at")?,
        ack_expires_at: r.opt_ts("ack_expires_at")?,
    })
}

impl Decode for Service {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(Service {
            id: ServiceId(r.id("id")?),
            name: r.text("name")?,
            description: r.text("description")?,
            auto_resolve: r.flag("auto_resolve")?,
            escalation_policy_id: r.opt_id("escalation_policy_id")?.map(EscalationPolicyId),
            ack_timeout_seconds: r
                .opt_int("ack_timeout_seconds")?
                .map(|n| {
                    u32::try_from(n)
                        .map_err(|_| SqlError::corrupt(R::BACKEND, "ack_timeout_seconds"))
                })
                .transpose()?,
            created_at: r.ts("created_at")?,
            updated_at: r.ts("updated_at")?,
            version: r.int("version")?,
        })
    }
}

/// A stored count that must fit a `u32`.
fn count<R: RowExt>(r: &R, col: &str) -> Result<u32> {
    u32::try_from(r.int(col)?).map_err(|_| SqlError::corrupt(R::BACKEND, col).into())
}

impl Decode for Rotation {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(Rotation {
            id: RotationId(r.id("id")?),
            name: r.text("name")?,
            description: r.text("description")?,
            kind: r.parsed("kind")?,
            shift_length: count(r, "shift_length")?,
            start: r.ts("start")?,
            time_zone: r.parsed("time_zone")?,
            participants: r.json("participants")?,
            created_at: r.ts("created_at")?,
            updated_at: r.ts("updated_at")?,
            version: r.int("version")?,
        })
    }
}

impl Decode for Schedule {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(Schedule {
            id: ScheduleId(r.id("id")?),
            name: r.text("name")?,
            description: r.text("description")?,
            time_zone: r.parsed("time_zone")?,
            rules: r.json("rules")?,
            overrides: r.json("overrides")?,
            created_at: r.ts("created_at")?,
            updated_at: r.ts("updated_at")?,
            version: r.int("version")?,
        })
    }
}

impl Decode for EscalationPolicy {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(EscalationPolicy {
            id: EscalationPolicyId(r.id("id")?),
            name: r.text("name")?,
            description: r.text("description")?,
            repeat: count(r, "repeat")?,
            steps: r.json("steps")?,
            created_at: r.ts("created_at")?,
            updated_at: r.ts("updated_at")?,
            version: r.int("version")?,
        })
    }
}

impl Decode for Integration {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(Integration {
            id: IntegrationId(r.id("id")?),
            service_id: ServiceId(r.id("service_id")?),
            name: r.text("name")?,
            kind: r.parsed("kind")?,
            key_hash: r.text("key_hash")?,
            created_at: r.ts("created_at")?,
            revoked_at: r.opt_ts("revoked_at")?,
        })
    }
}

impl Decode for Alert {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(Alert {
            id: AlertId(r.id("id")?),
            incident_id: IncidentId(r.id("incident_id")?),
            service_id: ServiceId(r.id("service_id")?),
            integration_id: IntegrationId(r.id("integration_id")?),
            dedup_key: r.text("dedup_key")?,
            status: r.parsed("status")?,
            summary: r.text("summary")?,
            severity: r.parsed("severity")?,
            source: r.text("source")?,
            component: r.opt_text("component")?,
            group: r.opt_text("alert_group")?,
            class: r.opt_text("class")?,
            labels: r.json("labels")?,
            details: r.json("details")?,
            links: r.json("links")?,
            started_at: r.ts("started_at")?,
            last_event_at: r.ts("last_event_at")?,
            event_count: r.int("event_count")?,
            resolved_at: r.opt_ts("resolved_at")?,
        })
    }
}

impl Decode for AuditEntry {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(AuditEntry {
            id: AuditId(r.id("id")?),
            action: r.parsed("action")?,
            actor: r.parsed::<Actor>("actor")?,
            target: r.opt_text("target")?,
            description: r.text("description")?,
            created_at: r.ts("created_at")?,
        })
    }
}

impl Decode for Notification {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(Notification {
            id: NotificationId(r.id("id")?),
            user: UserId(r.id("user_id")?),
            message: r.text("message")?,
            kind: r.parsed("kind")?,
            incident_id: r.opt_id("incident_id")?.map(IncidentId),
            read: r.flag("read")?,
            created_at: r.ts("created_at")?,
            key: r.text("key")?,
        })
    }
}

/// An outbox entry a claim returned, with its `seq` (the order it was written).
pub struct Claimed {
    pub seq: i64,
    pub entry: OutboxEntry,
}

impl Decode for Claimed {
    fn decode<R: RowExt>(r: &R) -> Result<Self> {
        Ok(Claimed {
            seq: r.int("seq")?,
            entry: OutboxEntry {
                intent: crate::intent_of(R::BACKEND, &r.text("intent")?)?,
                attempts: u32::try_from(r.int("attempts")?).unwrap_or(u32::MAX),
                available_at: r.ts("available_at")?,
            },
        })
    }
}

/// Something listed newest first by `(created_at, id)`.
pub trait Positioned {
    /// The cursor that continues after it.
    fn position(&self) -> Cursor;
}

impl Positioned for User {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for Rotation {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for Schedule {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for EscalationPolicy {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for Incident {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for Service {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for Alert {
    fn position(&self) -> Cursor {
        Cursor::after(self.started_at, self.id.0)
    }
}

impl Positioned for AuditEntry {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

impl Positioned for Notification {
    fn position(&self) -> Cursor {
        Cursor::after(self.created_at, self.id.0)
    }
}

/// An incident's search terms, as both dialects index them.
pub(crate) fn terms_of(i: &Incident) -> Vec<String> {
    imas_core::model::incident_terms(i)
}

/// Implements [`RowExt`] for a sqlx row type whose instants are stored as `$ts`
/// and read through `$from` (one text for both dialects' rows).
macro_rules! sqlx_row_ext {
    ($row:ty, $backend:expr, $ts:ty, $from:expr) => {
        impl $crate::table::RowExt for $row {
            const BACKEND: &'static str = $backend;
            fn id(&self, col: &str) -> imas_core::Result<uuid::Uuid> {
                sqlx::Row::try_get(self, col)
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
            fn opt_id(&self, col: &str) -> imas_core::Result<Option<uuid::Uuid>> {
                sqlx::Row::try_get(self, col)
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
            fn ts(&self, col: &str) -> imas_core::Result<imas_core::model::Timestamp> {
                sqlx::Row::try_get::<$ts, _>(self, col)
                    .map($from)
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
            fn opt_ts(&self, col: &str) -> imas_core::Result<Option<imas_core::model::Timestamp>> {
                sqlx::Row::try_get::<Option<$ts>, _>(self, col)
                    .map(|v| v.map($from))
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
            fn text(&self, col: &str) -> imas_core::Result<String> {
                sqlx::Row::try_get(self, col)
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
            fn opt_text(&self, col: &str) -> imas_core::Result<Option<String>> {
                sqlx::Row::try_get(self, col)
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
            fn int(&self, col: &str) -> imas_core::Result<i64> {
                sqlx::Row::try_get(self, col)
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
            fn opt_int(&self, col: &str) -> imas_core::Result<Option<i64>> {
                sqlx::Row::try_get(self, col)
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
            fn flag(&self, col: &str) -> imas_core::Result<bool> {
                sqlx::Row::try_get(self, col)
                    .map_err(|e| $crate::error::SqlError::sqlx($backend, e).into())
            }
        }
    };
}
pub(crate) use sqlx_row_ext;
