//! Document <-> model: how each entity is written as a BSON document and read
//! back, with typed field reads that name the field of an unreadable document.
//! Instants are BSON dates (milliseconds), ids UUID strings.

use imas_core::error::{Error, Result};
use imas_core::model::{
    Actor, AuditAction, AuditEntry, AuditId, Incident, IncidentId, IncidentType, Notification,
    NotificationId, NotificationIntent, NotificationType, OutboxEntry, Priority, Role, Status,
    Timestamp, User, UserId, from_millis, incident_terms,
};
use mongodb::bson::{Bson, DateTime as BsonDate, Document, doc};
use uuid::Uuid;

use crate::error::{MongoError, unreadable};

pub(crate) fn date(t: Timestamp) -> BsonDate {
    BsonDate::from_millis(t.timestamp_millis())
}

pub(crate) fn opt_date(t: Option<Timestamp>) -> Bson {
    t.map_or(Bson::Null, |t| Bson::DateTime(date(t)))
}

/// Typed reads from a document, with an error naming the field.
pub(crate) trait DocExt {
    fn text(&self, k: &str) -> Result<&str>;
    fn ts(&self, k: &str) -> Result<Timestamp>;
    fn opt_ts(&self, k: &str) -> Result<Option<Timestamp>>;
    fn uuid(&self, k: &str) -> Result<Uuid>;
    fn opt_uuid(&self, k: &str) -> Result<Option<Uuid>>;
    fn int(&self, k: &str) -> Result<i64>;
    fn parsed<T: std::str::FromStr>(&self, k: &str) -> Result<T>;
}

impl DocExt for Document {
    fn text(&self, k: &str) -> Result<&str> {
        self.get_str(k)
            .map_err(|e| unreadable(format_args!("{k}: {e}")))
    }
    fn ts(&self, k: &str) -> Result<Timestamp> {
        self.get_datetime(k)
            .map(|d| from_millis(d.timestamp_millis()))
            .map_err(|e| unreadable(format_args!("{k}: {e}")))
    }
    fn opt_ts(&self, k: &str) -> Result<Option<Timestamp>> {
        match self.get(k) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::DateTime(d)) => Ok(Some(from_millis(d.timestamp_millis()))),
            Some(other) => Err(unreadable(format_args!("{k}: not a date: {other}"))),
        }
    }
    fn uuid(&self, k: &str) -> Result<Uuid> {
        Uuid::parse_str(self.text(k)?).map_err(|e| unreadable(format_args!("{k}: {e}")))
    }
    fn opt_uuid(&self, k: &str) -> Result<Option<Uuid>> {
        match self.get(k) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => self.uuid(k).map(Some),
        }
    }
    fn int(&self, k: &str) -> Result<i64> {
        match self.get(k) {
            Some(Bson::Int64(n)) => Ok(*n),
            Some(Bson::Int32(n)) => Ok(i64::from(*n)),
            Some(Bson::Double(n)) if n.fract() == 0.0 => Ok(*n as i64),
            other => Err(unreadable(format_args!("{k}: not an integer: {other:?}"))),
        }
    }
    fn parsed<T: std::str::FromStr>(&self, k: &str) -> Result<T> {
        self.text(k)?
            .parse()
            .map_err(|_| unreadable(format_args!("{k}: unknown value")))
    }
}

pub(crate) fn user_doc(u: &User) -> Document {
    doc! {
        "_id": u.id.to_string(),
        "name": &u.name,
        "username": &u.username,
        "email": &u.email,
        "password_hash": &u.password_hash,
        "role": u.role.as_str(),
        "created_at": date(u.created_at),
    }
}

pub(crate) fn decode_user(d: &Document) -> Result<User> {
    Ok(User {
        id: UserId(d.uuid("_id")?),
        name: d.text("name")?.to_string(),
        username: d.text("username")?.to_string(),
        email: d.text("email")?.to_string(),
        password_hash: d.text("password_hash")?.to_string(),
        role: d.parsed::<Role>("role")?,
        created_at: d.ts("created_at")?,
    })
}

pub(crate) fn incident_doc(i: &Incident) -> Document {
    doc! {
        "_id": i.id.to_string(),
        "title": &i.title,
        "description": &i.description,
        "kind": i.kind.as_str(),
        "priority": i.priority.as_str(),
        "status": i.status.as_str(),
        "done": i.status.is_done(),
        "assigned_to": i.assigned_to.map_or(Bson::Null, |u| Bson::String(u.to_string())),
        "reported_by": i.reported_by.to_string(),
        "created_at": date(i.created_at),
        "updated_at": date(i.updated_at),
        "sla_target_ms": i.sla_target_ms,
        "sla_deadline": date(i.sla_deadline),
        "response_target_ms": i.response_target_ms,
        "response_deadline": date(i.response_deadline),
        "response_breached_at": opt_date(i.response_breached_at),
        "at_risk_at": opt_date(i.at_risk_at),
        "sla_breached": i.sla_breached,
        "breached_at": opt_date(i.breached_at),
        "escalation_level": i64::from(i.escalation_level),
        "escalated_at": opt_date(i.escalated_at),
        "acknowledged_at": opt_date(i.acknowledged_at),
        "resolved_at": opt_date(i.resolved_at),
        "closed_at": opt_date(i.closed_at),
        "held_ms": i.held_ms,
        "hold_started_at": opt_date(i.hold_started_at),
        "next_due_at": opt_date(i.next_due_at),
        "version": i.version,
        "search": incident_terms(i),
    }
}

pub(crate) fn decode_incident(d: &Document) -> Result<Incident> {
    Ok(Incident {
        id: IncidentId(d.uuid("_id")?),
        title: d.text("title")?.to_string(),
        description: d.text("description")?.to_string(),
        kind: d.parsed::<IncidentType>("kind")?,
        priority: d.parsed::<Priority>("priority")?,
        status: d.parsed::<Status>("status")?,
        assigned_to: d.opt_uuid("assigned_to")?.map(UserId),
        reported_by: UserId(d.uuid("reported_by")?),
        created_at: d.ts("created_at")?,
        updated_at: d.ts("updated_at")?,
        sla_target_ms: d.int("sla_target_ms")?,
        sla_deadline: d.ts("sla_deadline")?,
        response_target_ms: d.int("response_target_ms")?,
        response_deadline: d.ts("response_deadline")?,
        response_breached_at: d.opt_ts("response_breached_at")?,
        at_risk_at: d.opt_ts("at_risk_at")?,
        sla_breached: d
            .get_bool("sla_breached")
            .map_err(|e| unreadable(format_args!("sla_breached: {e}")))?,
        breached_at: d.opt_ts("breached_at")?,
        escalation_level: u32::try_from(d.int("escalation_level")?).unwrap_or(u32::MAX),
        escalated_at: d.opt_ts("escalated_at")?,
        acknowledged_at: d.opt_ts("acknowledged_at")?,
        resolved_at: d.opt_ts("resolved_at")?,
        closed_at: d.opt_ts("closed_at")?,
        held_ms: d.int("held_ms")?,
        hold_started_at: d.opt_ts("hold_started_at")?,
        next_due_at: d.opt_ts("next_due_at")?,
        version: d.int("version")?,
    })
}

pub(crate) fn audit_doc(e: &AuditEntry) -> Document {
    doc! {
        "_id": e.id.to_string(),
        "action": e.action.as_str(),
        "actor": e.actor.to_string(),
        "target": e.target.clone().map_or(Bson::Null, Bson::String),
        "description": &e.description,
        "created_at": date(e.created_at),
    }
}

pub(crate) fn decode_audit(d: &Document) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: AuditId(d.uuid("_id")?),
        action: d.parsed::<AuditAction>("action")?,
        actor: d.parsed::<Actor>("actor")?,
        target: match d.get("target") {
            None | Some(Bson::Null) => None,
            Some(_) => Some(d.text("target")?.to_string()),
        },
        description: d.text("description")?.to_string(),
        created_at: d.ts("created_at")?,
    })
}

pub(crate) fn decode_notification(d: &Document) -> Result<Notification> {
    Ok(Notification {
        id: NotificationId(d.uuid("_id")?),
        user: UserId(d.uuid("user")?),
        message: d.text("message")?.to_string(),
        kind: d.parsed::<NotificationType>("kind")?,
        incident_id: d.opt_uuid("incident_id")?.map(IncidentId),
        read: d
            .get_bool("read")
            .map_err(|e| unreadable(format_args!("read: {e}")))?,
        created_at: d.ts("created_at")?,
        key: d.text("key")?.to_string(),
    })
}

pub(crate) fn decode_outbox(d: &Document) -> Result<OutboxEntry> {
    let intent: NotificationIntent = serde_json::from_str(d.text("intent")?)
        .map_err(|e| unreadable(format_args!("outbox intent: {e}")))?;
    Ok(OutboxEntry {
        intent,
        attempts: u32::try_from(d.int("attempts")?).unwrap_or(u32::MAX),
        available_at: d.ts("available_at")?,
    })
}

pub(crate) fn notification_doc(n: &Notification) -> Document {
    doc! {
        "_id": n.id.to_string(),
        "key": &n.key,
        "user": n.user.to_string(),
        "message": &n.message,
        "kind": n.kind.as_str(),
        "incident_id": n.incident_id.map_or(Bson::Null, |i| Bson::String(i.to_string())),
        "read": n.read,
        "created_at": date(n.created_at),
    }
}

/// Outbox rows for intents, keyed by the intent's key.
pub(crate) fn outbox_docs(intents: &[NotificationIntent]) -> Result<Vec<Document>> {
    intents
        .iter()
        .map(|intent| {
            let json =
                serde_json::to_string(intent).map_err(|e| Error::from(MongoError::Encode(e)))?;
            Ok(doc! {
                "_id": &intent.key,
                "intent": json,
                "available_at": date(intent.created_at),
                "created_at": date(intent.created_at),
                "attempts": 0_i64,
                "delivered": false,
            })
        })
        .collect()
}
