//! Document <-> model: how each entity is written as a BSON document and read
//! back, with typed field reads that name the field of an unreadable document.
//! Instants are BSON dates (milliseconds), ids UUID strings.

use chrono_tz::Tz;
use imas_core::error::{Error, Result};
use imas_core::model::{
    Actor, Alert, AlertId, AlertLink, AlertStatus, AuditAction, AuditEntry, AuditId, ClockTime,
    EscalationPolicy, EscalationPolicyId, EscalationStep, Incident, IncidentId, IncidentSource,
    IncidentType, Integration, IntegrationId, IntegrationKind, Notification, NotificationId,
    NotificationIntent, NotificationType, OutboxEntry, Override, OverrideId, PolicyTarget,
    Priority, Role, Rotation, RotationId, RotationType, RuleTarget, Schedule, ScheduleId,
    ScheduleRule, Service, ServiceId, Severity, Status, Timestamp, User, UserId, Weekday, Weekdays,
    from_millis, incident_terms, search_terms,
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
    fn u32(&self, k: &str) -> Result<u32>;
    fn tz(&self, k: &str) -> Result<Tz>;
    fn docs(&self, k: &str) -> Result<Vec<&Document>>;
    fn texts(&self, k: &str) -> Result<Vec<&str>>;
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
    fn u32(&self, k: &str) -> Result<u32> {
        let n = self.int(k)?;
        u32::try_from(n).map_err(|_| unreadable(format_args!("{k}: {n} is out of range")))
    }
    fn tz(&self, k: &str) -> Result<Tz> {
        let name = self.text(k)?;
        name.parse::<Tz>()
            .map_err(|_| unreadable(format_args!("{k}: unknown time zone {name:?}")))
    }
    fn docs(&self, k: &str) -> Result<Vec<&Document>> {
        let a = self
            .get_array(k)
            .map_err(|e| unreadable(format_args!("{k}: {e}")))?;
        a.iter()
            .map(|b| {
                b.as_document()
                    .ok_or_else(|| unreadable(format_args!("{k}: not a document: {b}")))
            })
            .collect()
    }
    fn texts(&self, k: &str) -> Result<Vec<&str>> {
        let a = self
            .get_array(k)
            .map_err(|e| unreadable(format_args!("{k}: {e}")))?;
        a.iter()
            .map(|b| {
                b.as_str()
                    .ok_or_else(|| unreadable(format_args!("{k}: not a string: {b}")))
            })
            .collect()
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
        "time_zone": u.time_zone.name(),
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
        // Documents written before time zones existed have none: UTC.
        time_zone: match d.get("time_zone") {
            None | Some(Bson::Null) => chrono_tz::UTC,
            Some(_) => d.tz("time_zone")?,
        },
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
        "escalation_policy_id": opt_id(i.escalation_policy_id.map(|p| p.0)),
        "escalation_step": i64::from(i.escalation_step),
        "next_escalation_at": opt_date(i.next_escalation_at),
        "ack_expires_at": opt_date(i.ack_expires_at),
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
        // Documents written before escalation policies existed have none of
        // these (no policy, step 0).
        escalation_policy_id: d.opt_uuid("escalation_policy_id")?.map(EscalationPolicyId),
        escalation_step: match d.get("escalation_step") {
            None | Some(Bson::Null) => 0,
            Some(_) => d.u32("escalation_step")?,
        },
        next_escalation_at: d.opt_ts("next_escalation_at")?,
        ack_expires_at: d.opt_ts("ack_expires_at")?,
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
        "escalation_policy_id": opt_id(s.escalation_policy_id.map(|p| p.0)),
        "ack_timeout_seconds": s.ack_timeout_seconds.map_or(Bson::Null, |t| Bson::Int64(i64::from(t))),
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
        // Documents written before escalation policies existed have neither.
        escalation_policy_id: d.opt_uuid("escalation_policy_id")?.map(EscalationPolicyId),
        ack_timeout_seconds: match d.get("ack_timeout_seconds") {
            None | Some(Bson::Null) => None,
            Some(_) => Some(d.u32("ack_timeout_seconds")?),
        },
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

pub(crate) fn rotation_doc(r: &Rotation) -> Document {
    doc! {
        "_id": r.id.to_string(),
        "name": &r.name,
        "description": &r.description,
        "kind": r.kind.as_str(),
        "shift_length": i64::from(r.shift_length),
        "start": date(r.start),
        "time_zone": r.time_zone.name(),
        "participants": r.participants.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "created_at": date(r.created_at),
        "updated_at": date(r.updated_at),
        "version": r.version,
    }
}

pub(crate) fn decode_rotation(d: &Document) -> Result<Rotation> {
    let participants = d
        .texts("participants")?
        .into_iter()
        .map(|p| {
            Uuid::parse_str(p)
                .map(UserId)
                .map_err(|e| unreadable(format_args!("participants: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Rotation {
        id: RotationId(d.uuid("_id")?),
        name: d.text("name")?.to_string(),
        description: d.text("description")?.to_string(),
        kind: d.parsed::<RotationType>("kind")?,
        shift_length: d.u32("shift_length")?,
        start: d.ts("start")?,
        time_zone: d.tz("time_zone")?,
        participants,
        created_at: d.ts("created_at")?,
        updated_at: d.ts("updated_at")?,
        version: d.int("version")?,
    })
}

/// A schedule with its rules and overrides embedded (rules in their order,
/// overrides in stored order: by start, then creation).
pub(crate) fn schedule_doc(s: &Schedule) -> Document {
    let rules: Vec<Document> = s
        .rules
        .iter()
        .map(|r| {
            let target = match r.target {
                RuleTarget::User { id } => doc! { "type": "user", "id": id.to_string() },
                RuleTarget::Rotation { id } => doc! { "type": "rotation", "id": id.to_string() },
            };
            doc! {
                "target": target,
                "start": r.start.to_string(),
                "end": r.end.to_string(),
                "weekdays": Weekday::ALL
                    .iter()
                    .filter(|w| r.weekdays.contains(**w))
                    .map(|w| w.as_str())
                    .collect::<Vec<_>>(),
            }
        })
        .collect();
    let overrides: Vec<Document> = s
        .overrides
        .iter()
        .map(|o| {
            doc! {
                "id": o.id.to_string(),
                "start": date(o.start),
                "end": date(o.end),
                "add_user_id": opt_id(o.add_user_id.map(|u| u.0)),
                "remove_user_id": opt_id(o.remove_user_id.map(|u| u.0)),
                "created_by": o.created_by.to_string(),
                "created_at": date(o.created_at),
            }
        })
        .collect();
    doc! {
        "_id": s.id.to_string(),
        "name": &s.name,
        "description": &s.description,
        "time_zone": s.time_zone.name(),
        "rules": rules,
        "overrides": overrides,
        "created_at": date(s.created_at),
        "updated_at": date(s.updated_at),
        "version": s.version,
    }
}

pub(crate) fn decode_schedule(d: &Document) -> Result<Schedule> {
    let mut rules = Vec::new();
    for r in d.docs("rules")? {
        let t = r
            .get_document("target")
            .map_err(|e| unreadable(format_args!("rules.target: {e}")))?;
        let target = match t.text("type")? {
            "user" => RuleTarget::User {
                id: UserId(t.uuid("id")?),
            },
            "rotation" => RuleTarget::Rotation {
                id: RotationId(t.uuid("id")?),
            },
            other => {
                return Err(unreadable(format_args!(
                    "rules.target.type: unknown value {other:?}"
                )));
            }
        };
        let days = r
            .texts("weekdays")?
            .into_iter()
            .map(|w| {
                w.parse::<Weekday>()
                    .map_err(|_| unreadable(format_args!("rules.weekdays: unknown value {w:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        rules.push(ScheduleRule {
            target,
            start: r.parsed::<ClockTime>("start")?,
            end: r.parsed::<ClockTime>("end")?,
            weekdays: Weekdays::of(&days),
        });
    }
    let mut overrides = Vec::new();
    for o in d.docs("overrides")? {
        overrides.push(Override {
            id: OverrideId(o.uuid("id")?),
            start: o.ts("start")?,
            end: o.ts("end")?,
            add_user_id: o.opt_uuid("add_user_id")?.map(UserId),
            remove_user_id: o.opt_uuid("remove_user_id")?.map(UserId),
            created_by: UserId(o.uuid("created_by")?),
            created_at: o.ts("created_at")?,
        });
    }
    Ok(Schedule {
        id: ScheduleId(d.uuid("_id")?),
        name: d.text("name")?.to_string(),
        description: d.text("description")?.to_string(),
        time_zone: d.tz("time_zone")?,
        rules,
        overrides,
        created_at: d.ts("created_at")?,
        updated_at: d.ts("updated_at")?,
        version: d.int("version")?,
    })
}

/// A policy with its steps (and their targets) embedded, in order.
pub(crate) fn escalation_policy_doc(p: &EscalationPolicy) -> Document {
    let steps: Vec<Document> = p
        .steps
        .iter()
        .map(|s| {
            let targets: Vec<Document> = s
                .targets
                .iter()
                .map(|t| match t {
                    PolicyTarget::User { id } => doc! { "type": "user", "id": id.to_string() },
                    PolicyTarget::Schedule { id } => {
                        doc! { "type": "schedule", "id": id.to_string() }
                    }
                    PolicyTarget::Rotation { id } => {
                        doc! { "type": "rotation", "id": id.to_string() }
                    }
                    PolicyTarget::Role { role } => doc! { "type": "role", "role": role.as_str() },
                    PolicyTarget::Assignee => doc! { "type": "assignee" },
                })
                .collect();
            doc! { "delay_minutes": i64::from(s.delay_minutes), "targets": targets }
        })
        .collect();
    doc! {
        "_id": p.id.to_string(),
        "name": &p.name,
        "description": &p.description,
        "repeat": i64::from(p.repeat),
        "steps": steps,
        "created_at": date(p.created_at),
        "updated_at": date(p.updated_at),
        "version": p.version,
    }
}

pub(crate) fn decode_escalation_policy(d: &Document) -> Result<EscalationPolicy> {
    let mut steps = Vec::new();
    for s in d.docs("steps")? {
        let mut targets = Vec::new();
        for t in s.docs("targets")? {
            targets.push(match t.text("type")? {
                "user" => PolicyTarget::User {
                    id: UserId(t.uuid("id")?),
                },
                "schedule" => PolicyTarget::Schedule {
                    id: ScheduleId(t.uuid("id")?),
                },
                "rotation" => PolicyTarget::Rotation {
                    id: RotationId(t.uuid("id")?),
                },
                "role" => PolicyTarget::Role {
                    role: t.parsed::<Role>("role")?,
                },
                "assignee" => PolicyTarget::Assignee,
                other => {
                    return Err(unreadable(format_args!(
                        "steps.targets.type: unknown value {other:?}"
                    )));
                }
            });
        }
        steps.push(EscalationStep {
            delay_minutes: s.u32("delay_minutes")?,
            targets,
        });
    }
    Ok(EscalationPolicy {
        id: EscalationPolicyId(d.uuid("_id")?),
        name: d.text("name")?.to_string(),
        description: d.text("description")?.to_string(),
        repeat: d.u32("repeat")?,
        steps,
        created_at: d.ts("created_at")?,
        updated_at: d.ts("updated_at")?,
        version: d.int("version")?,
    })
}
