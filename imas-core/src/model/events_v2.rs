//! PagerDuty's Events API v2 format (`POST /v2/enqueue`, SPEC §4; ANCHORS §1b):
//! an [`Event`] parsed from a request body, with every problem named the way
//! PagerDuty names them, so its client libraries and every tool that speaks
//! Events v2 work against IMAS.

use serde_json::{Map, Value};

use super::{AlertLink, Severity, Timestamp};

/// Largest body `POST /v2/enqueue` takes (PagerDuty's limit: 512 KB).
pub const MAX_EVENT_BYTES: usize = 512 * 1024;
/// Longest `dedup_key`.
pub const MAX_DEDUP_KEY_CHARS: usize = 255;
/// Longest `payload.summary`.
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// What an event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventAction {
    /// Open an alert (or count a repeat of the open one with its dedup key).
    Trigger,
    /// Acknowledge the open alert with the dedup key (a no-op when none).
    Acknowledge,
    /// Resolve the open alert with the dedup key (a no-op when none).
    Resolve,
}
string_enum!(EventAction, "event_action", {
    Trigger => "trigger",
    Acknowledge => "acknowledge",
    Resolve => "resolve",
});

/// A valid Events v2 event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The integration key.
    pub routing_key: String,
    /// What it asks for.
    pub action: EventAction,
    /// The dedup key; always set for acknowledge and resolve, `None` on a
    /// trigger that sent none (the engine generates one).
    pub dedup_key: Option<String>,
    /// The payload: always set for a trigger.
    pub payload: Option<EventPayload>,
    /// `links`.
    pub links: Vec<AlertLink>,
    /// `images`, `client`, `client_url` as sent (kept in the alert's details).
    pub extra: Map<String, Value>,
}

/// A trigger's `payload`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPayload {
    /// 1..=1024 characters.
    pub summary: String,
    /// Where it happened.
    pub source: String,
    /// How bad.
    pub severity: Severity,
    /// The source's time of the event, if it sent one.
    pub timestamp: Option<Timestamp>,
    /// `component`.
    pub component: Option<String>,
    /// `group`.
    pub group: Option<String>,
    /// `class`.
    pub class: Option<String>,
    /// `custom_details`: any JSON value (an object when it is one).
    pub custom_details: Option<Value>,
}

impl Event {
    /// Parses and checks a request body. `Err` lists every problem found, in
    /// PagerDuty's words (the `errors` of its 400 answer).
    pub fn parse(body: &[u8]) -> Result<Event, Vec<String>> {
        if body.len() > MAX_EVENT_BYTES {
            return Err(vec![format!(
                "Event object is too large (at most {MAX_EVENT_BYTES} bytes)"
            )]);
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| vec![format!("Event object is not valid JSON: {e}")])?;
        let Value::Object(mut obj) = value else {
            return Err(vec!["Event object must be a JSON object".to_string()]);
        };
        let mut errors = Vec::new();

        let routing_key = match obj.remove("routing_key") {
            Some(Value::String(k)) if k.trim().is_empty() => {
                errors.push("'routing_key' is missing or blank".to_string());
                String::new()
            }
            Some(Value::String(k)) => {
                if k.chars().count() != super::KEY_LEN {
                    errors.push(format!(
                        "Length of 'routing_key' is incorrect (should be {} characters)",
                        super::KEY_LEN
                    ));
                }
                k
            }
            None | Some(Value::Null) => {
                errors.push("'routing_key' is missing or blank".to_string());
                String::new()
            }
            Some(_) => {
                errors.push("'routing_key' must be a string".to_string());
                String::new()
            }
        };

        let action = match obj.remove("event_action") {
            Some(Value::String(a)) => match a.parse::<EventAction>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(
                        "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
                            .to_string(),
                    );
                    None
                }
            },
            None | Some(Value::Null) => {
                errors.push("'event_action' is missing or blank".to_string());
                None
            }
            Some(_) => {
                errors.push("'event_action' must be a string".to_string());
                None
            }
        };

        let dedup_key = match obj.remove("dedup_key") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) if k.is_empty() => None,
            Some(Value::String(k)) => {
                if k.chars().count() > MAX_DEDUP_KEY_CHARS {
                    errors.push(format!(
                        "Length of 'dedup_key' exceeds {MAX_DEDUP_KEY_CHARS} characters"
                    ));
                }
                Some(k)
            }
            Some(_) => {
                errors.push("'dedup_key' must be a string".to_string());
                None
            }
        };
        if dedup_key.is_none()
            && matches!(
                action,
                Some(EventAction::Acknowledge | EventAction::Resolve)
            )
        {
            errors.push("'dedup_key' is required for acknowledge and resolve events".to_string());
        }

        let payload = match (action, obj.remove("payload")) {
            (Some(EventAction::Trigger), None | Some(Value::Null)) => {
                errors.push("'payload' is missing".to_string());
                None
            }
            (Some(EventAction::Trigger), Some(Value::Object(p))) => parse_payload(p, &mut errors),
            (_, Some(Value::Object(_)) | None | Some(Value::Null)) => None,
            (_, Some(_)) => {
                errors.push("'payload' must be a JSON object".to_string());
                None
            }
        };

        let links = match obj.remove("links") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut links = Vec::new();
                for (n, item) in items.into_iter().enumerate() {
                    match item {
                        Value::Object(mut l) => match l.remove("href") {
                            Some(Value::String(href)) if !href.is_empty() => {
                                let text = match l.remove("text") {
                                    Some(Value::String(t)) => Some(t),
                                    _ => None,
                                };
                                links.push(AlertLink { href, text });
                            }
                            _ => errors.push(format!("'links[{n}].href' is missing or blank")),
                        },
                        _ => errors.push(format!("'links[{n}]' must be a JSON object")),
                    }
                }
                links
            }
            Some(_) => {
                errors.push("'links' must be an array".to_string());
                Vec::new()
            }
        };

        let mut extra = Map::new();
        match obj.remove("images") {
            None | Some(Value::Null) => {}
            Some(Value::Array(images)) => {
                for (n, image) in images.iter().enumerate() {
                    let src_ok = image
                        .get("src")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty());
                    if !src_ok {
                        errors.push(format!("'images[{n}].src' is missing or blank"));
                    }
                }
                extra.insert("images".to_string(), Value::Array(images));
            }
            Some(_) => errors.push("'images' must be an array".to_string()),
        }
        for field in ["client", "client_url"] {
            match obj.remove(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => {
                    extra.insert(field.to_string(), Value::String(s));
                }
                Some(_) => errors.push(format!("'{field}' must be a string")),
            }
        }

        match (errors.is_empty(), action) {
            (true, Some(action)) => Ok(Event {
                routing_key,
                action,
                dedup_key,
                payload,
                links,
                extra,
            }),
            _ => Err(errors),
        }
    }
}

fn optional_string(
    p: &mut Map<String, Value>,
    field: &str,
    errors: &mut Vec<String>,
) -> Option<String> {
    match p.remove(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(format!("'payload.{field}' must be a string"));
            None
        }
    }
}

fn parse_payload(mut p: Map<String, Value>, errors: &mut Vec<String>) -> Option<EventPayload> {
    let summary = match p.remove("summary") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            if s.chars().count() > MAX_SUMMARY_CHARS {
                errors.push(format!(
                    "Length of 'payload.summary' exceeds {MAX_SUMMARY_CHARS} characters"
                ));
            }
            // GoAlert's rule: a summary is one line.
            Some(s.replace(['\r', '\n'], " "))
        }
        _ => {
            errors.push("'payload.summary' is missing or blank".to_string());
            None
        }
    };
    let source = match p.remove("source") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        _ => {
            errors.push("'payload.source' is missing or blank".to_string());
            None
        }
    };
    let severity = match p.remove("severity") {
        Some(Value::String(s)) => match s.parse::<Severity>() {
            Ok(s) => Some(s),
            Err(_) => {
                errors.push(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                        .to_string(),
                );
                None
            }
        },
        _ => {
            errors.push("'payload.severity' is missing or blank".to_string());
            None
        }
    };
    let timestamp = match p.remove("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => match chrono::DateTime::parse_from_rfc3339(&t) {
            Ok(t) if super::check_instant("timestamp", t.to_utc()).is_ok() => {
                Some(super::truncate_millis(t.to_utc()))
            }
            _ => {
                errors.push(
                    "'payload.timestamp' is invalid (expected an ISO 8601 date and time, e.g. 2026-12-01T12:00:00Z)"
                        .to_string(),
                );
                None
            }
        },
        Some(_) => {
            errors.push("'payload.timestamp' must be a string".to_string());
            None
        }
    };
    let component = optional_string(&mut p, "component", errors);
    let group = optional_string(&mut p, "group", errors);
    let class = optional_string(&mut p, "class", errors);
    let custom_details = p.remove("custom_details").filter(|v| !v.is_null());
    Some(EventPayload {
        summary: summary?,
        source: source?,
        severity: severity?,
        timestamp,
        component,
        group,
        class,
        custom_details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz012345";

    #[test]
    fn a_trigger_parses() {
        let body = format!(
            r#"{{"routing_key":"{KEY}","event_action":"trigger","dedup_key":"srv01/HTTP",
            "payload":{{"summary":"down\nhard","source":"srv01","severity":"error",
            "timestamp":"2026-12-01T12:00:00.123456Z","custom_details":{{"a":1}}}},
            "links":[{{"href":"https://x","text":"x"}}],"client":"Nagios"}}"#
        );
        let e = Event::parse(body.as_bytes()).expect("valid");
        assert_eq!(e.action, EventAction::Trigger);
        assert_eq!(e.dedup_key.as_deref(), Some("srv01/HTTP"));
        let p = e.payload.expect("valid");
        assert_eq!(p.summary, "down hard");
        assert_eq!(p.severity, Severity::Error);
        assert_eq!(p.timestamp.expect("valid").timestamp_subsec_millis(), 123);
        assert_eq!(e.links.len(), 1);
        assert_eq!(e.extra["client"], "Nagios");
    }

    #[test]
    fn every_problem_is_named() {
        let body = br#"{"routing_key":"short","event_action":"trigger",
            "payload":{"severity":"bad","timestamp":"yesterday"}}"#;
        let errors = Event::parse(body).expect_err("invalid");
        assert!(
            errors.iter().any(|e| e.contains("'routing_key'")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("'payload.summary'")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("'payload.source'")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("'payload.severity'")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("'payload.timestamp'")),
            "{errors:?}"
        );
    }

    #[test]
    fn resolve_needs_a_dedup_key_and_no_payload() {
        let body = format!(r#"{{"routing_key":"{KEY}","event_action":"resolve"}}"#);
        let errors = Event::parse(body.as_bytes()).expect_err("invalid");
        assert_eq!(
            errors,
            vec!["'dedup_key' is required for acknowledge and resolve events"]
        );
        let body = format!(r#"{{"routing_key":"{KEY}","event_action":"resolve","dedup_key":"k"}}"#);
        assert!(
            Event::parse(body.as_bytes())
                .expect("valid")
                .payload
                .is_none()
        );
    }

    #[test]
    fn not_json_and_too_long_keys_are_refused() {
        assert!(Event::parse(b"[1]").is_err());
        assert!(Event::parse(b"\xff").is_err());
        let body = format!(
            r#"{{"routing_key":"{KEY}","event_action":"acknowledge","dedup_key":"{}"}}"#,
            "k".repeat(256)
        );
        let errors = Event::parse(body.as_bytes()).expect_err("invalid");
        assert!(errors[0].contains("255"), "{errors:?}");
    }
}
