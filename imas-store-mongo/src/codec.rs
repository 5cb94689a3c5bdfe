//! Document <-> model: how each entity is written as a BSON document and read
//! back, with typed field reads that name the field of an unreadable document.
//! Instants are BSON dates (milliseconds), ids UUID strings.

use imas_core::error::{Error, Result};
use imas_core::model::{
    Actor, Alert, AlertId, AlertLink, AlertStatus, AuditAction, AuditEntry, AuditId, Incident,
    IncidentId, IncidentSource, IncidentType, Integration, IntegrationId, IntegrationKind,
    Notification, NotificationId, NotificationIntent, NotificationType, OutboxEntry, Priority,
    Role, Service, ServiceId, Severity, Status, Timestamp, User, UserId, from_millis,
    incident_terms, search_terms,
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
    fn opt_text(&self, k: &str) -> Result<Option<String>>;
    fn flag(&self, k: &str) -> Result<bool>;
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
    fn opt_text(&self, k: &str) -> Result<Option<String>> {
        match self.get(k) {
            None | Some(Bson::Null) => Ok(None),
            Some(_) => self.text(k).map(|t| Some(t.to_string())),
        }
    }
    fn flag(&self, k: &str) -> Result<bool> {
        self.get_bool(k)
            .map_err(|e| unreadable(format_args!("{k}: {e}")))
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
        // TODO(issue 18, Mongo store): the time_zone field.
        time_zone: chrono_tz::UTC,
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
        "reported_by": opt_id(i.reported_by.map(|u| u.0)),
        "service_id": opt_id(i.service_id.map(|s| s.0)),
        "source": i.source.as_str(),
        "alert_count": i64::from(i.alert_count),
        "group_key": i.group_key.clone().map_or(Bson::Null, Bson::String),
        // Set only on an open incident with a group key: the unique index on
        // (service_id, group_key) is partial on it (a partial index cannot say
        // "not done").
        "group_open": group_open(i),
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
        reported_by: d.opt_uuid("reported_by")?.map(UserId),
        // Documents written before services existed have none of these.
        service_id: d.opt_uuid("service_id")?.map(ServiceId),
        source: match d.get("source") {
            None | Some(Bson::Null) => IncidentSource::Manual,
            Some(_) => d.parsed::<IncidentSource>("source")?,
        },
        alert_count: match d.get("alert_count") {
            None | Some(Bson::Null) => 0,
            Some(_) => u32::try_from(d.int("alert_count")?).unwrap_or(u32::MAX),
        },
        group_key: d.opt_text("group_key")?,
        // TODO(issue 18, Mongo store): the policy escalation state.
        escalation_policy_id: None,
        escalation_step: 0,
        next_escalation_at: None,
        ack_expires_at: None,
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

/// An optional id as a UUID string or null.
pub(crate) fn opt_id(id: Option<Uuid>) -> Bson {
    id.map_or(Bson::Null, |u| Bson::String(u.to_string()))
}

/// The `group_open` field of an incident: `true` while it is not done and has a
/// group key, absent (null) otherwise, so that only such incidents are in the
/// partial unique index `incidents_open_group`.
pub(crate) fn group_open(i: &Incident) -> Bson {
    if i.group_key.is_some() && !i.status.is_done() {
        Bson::Boolean(true)
    } else {
        Bson::Null
    }
}

pub(crate) fn service_doc(s: &Service) -> Document {
    doc! {
        "_id": s.id.to_string(),
        "name": &s.name,
        "description": &s.description,
        "auto_resolve": s.auto_resolve,
        "created_at": date(s.created_at),
        "updated_at": date(s.updated_at),
        "version": s.version,
    }
}

pub(crate) fn decode_service(d: &Document) -> Result<Service> {
    Ok(Service {
        id: ServiceId(d.uuid("_id")?),
        name: d.text("name")?.to_string(),
        description: d.text("description")?.to_string(),
        auto_resolve: d.flag("auto_resolve")?,
        // TODO(issue 18, Mongo store): fields.
        escalation_policy_id: None,
        ack_timeout_seconds: None,
        created_at: d.ts("created_at")?,
        updated_at: d.ts("updated_at")?,
        version: d.int("version")?,
    })
}

pub(crate) fn integration_doc(i: &Integration) -> Document {
    doc! {
        "_id": i.id.to_string(),
        "service_id": i.service_id.to_string(),
        "name": &i.name,
        "kind": i.kind.as_str(),
        "key_hash": &i.key_hash,
        "created_at": date(i.created_at),
        "revoked_at": opt_date(i.revoked_at),
    }
}

pub(crate) fn decode_integration(d: &Document) -> Result<Integration> {
    Ok(Integration {
        id: IntegrationId(d.uuid("_id")?),
        service_id: ServiceId(d.uuid("service_id")?),
        name: d.text("name")?.to_string(),
        kind: d.parsed::<IntegrationKind>("kind")?,
        key_hash: d.text("key_hash")?.to_string(),
        created_at: d.ts("created_at")?,
        revoked_at: d.opt_ts("revoked_at")?,
    })
}

/// The `open` field of an alert: `true` while it is not resolved, absent (null)
/// once resolved, so that only open alerts are in the partial unique index
/// `alerts_open_dedup`.
pub(crate) fn alert_open(status: AlertStatus) -> Bson {
    if status.is_open() {
        Bson::Boolean(true)
    } else {
        Bson::Null
    }
}

pub(crate) fn alert_doc(a: &Alert) -> Result<Document> {
    let details =
        serde_json::to_string(&a.details).map_err(|e| Error::from(MongoError::Encode(e)))?;
    let links: Vec<Document> = a
        .links
        .iter()
        .map(|l| doc! { "href": &l.href, "text": l.text.clone().map_or(Bson::Null, Bson::String) })
        .collect();
    Ok(doc! {
        "_id": a.id.to_string(),
        "incident_id": a.incident_id.to_string(),
        "service_id": a.service_id.to_string(),
        "integration_id": a.integration_id.to_string(),
        "dedup_key": &a.dedup_key,
        "status": a.status.as_str(),
        "open": alert_open(a.status),
        "summary": &a.summary,
        "severity": a.severity.as_str(),
        "source": &a.source,
        "component": a.component.clone().map_or(Bson::Null, Bson::String),
        "group": a.group.clone().map_or(Bson::Null, Bson::String),
        "class": a.class.clone().map_or(Bson::Null, Bson::String),
        // Labels as an array of pairs: label names may hold `.` or start with `$`.
        "labels": a.labels.iter().map(|(k, v)| doc! { "k": k, "v": v }).collect::<Vec<_>>(),
        "details": details,
        "links": links,
        "started_at": date(a.started_at),
        "last_event_at": date(a.last_event_at),
        "event_count": a.event_count,
        "resolved_at": opt_date(a.resolved_at),
        "search": search_terms(&a.summary),
    })
}

pub(crate) fn decode_alert(d: &Document) -> Result<Alert> {
    let pairs = |k: &str| -> Vec<&Document> {
        d.get_array(k)
            .map(|a| a.iter().filter_map(Bson::as_document).collect())
            .unwrap_or_default()
    };
    let mut labels = std::collections::BTreeMap::new();
    for p in pairs("labels") {
        labels.insert(p.text("k")?.to_string(), p.text("v")?.to_string());
    }
    let mut links = Vec::new();
    for l in pairs("links") {
        links.push(AlertLink {
            href: l.text("href")?.to_string(),
            text: l.opt_text("text")?,
        });
    }
    let details = serde_json::from_str(d.text("details")?)
        .map_err(|e| unreadable(format_args!("details: {e}")))?;
    Ok(Alert {
        id: AlertId(d.uuid("_id")?),
        incident_id: IncidentId(d.uuid("incident_id")?),
        service_id: ServiceId(d.uuid("service_id")?),
        integration_id: IntegrationId(d.uuid("integration_id")?),
        dedup_key: d.text("dedup_key")?.to_string(),
        status: d.parsed::<AlertStatus>("status")?,
        summary: d.text("summary")?.to_string(),
        severity: d.parsed::<Severity>("severity")?,
        source: d.text("source")?.to_string(),
        component: d.opt_text("component")?,
        group: d.opt_text("group")?,
        class: d.opt_text("class")?,
        labels,
        details,
        links,
        started_at: d.ts("started_at")?,
        last_event_at: d.ts("last_event_at")?,
        event_count: d.int("event_count")?,
        resolved_at: d.opt_ts("resolved_at")?,
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
