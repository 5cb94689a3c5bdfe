//! The Prometheus Alertmanager webhook format (payload `version` "4", SPEC §4;
//! ANCHORS §1a): a [`Notification`](AlertmanagerMessage) of one alert group,
//! and what IMAS makes of it (the incident's title and priority, each alert's
//! dedup key).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Priority, Severity};
use crate::error::{Error, Result};

/// One webhook notification: the alerts of one group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerMessage {
    /// Always "4".
    pub version: String,
    /// Identifies the group (route key + group labels): one open incident per
    /// (service, group key).
    pub group_key: String,
    /// Alerts cut off by the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// The receiver's name.
    #[serde(default)]
    pub receiver: String,
    /// `firing` while any alert of the group fires, else `resolved`.
    #[serde(default)]
    pub status: String,
    /// The alerts.
    #[serde(default)]
    pub alerts: Vec<AlertmanagerAlert>,
    /// The labels the group is made by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert has.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert has.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// The Alertmanager's own address.
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
}

/// One alert of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(default)]
    pub starts_at: String,
    /// RFC 3339 (`0001-01-01T00:00:00Z` while firing).
    #[serde(default)]
    pub ends_at: String,
    /// The alert's source (a Prometheus expression browser link).
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    /// The hash of its label set: one alert per fingerprint.
    pub fingerprint: String,
}

/// Longest group key or fingerprint taken.
pub const MAX_GROUP_KEY_CHARS: usize = 1000;

impl AlertmanagerMessage {
    /// Parses and checks a request body; errors name the field (`version`,
    /// `groupKey`, `alerts[N].status`...).
    pub fn parse(body: &[u8]) -> Result<Self> {
        let message: AlertmanagerMessage = serde_json::from_slice(body).map_err(|e| {
            Error::validation(
                "body",
                format!("expected an Alertmanager webhook payload (version 4): {e}"),
            )
        })?;
        if message.version != "4" {
            return Err(Error::validation(
                "version",
                "expected \"4\" (the Alertmanager webhook payload version)",
            ));
        }
        if message.group_key.trim().is_empty()
            || message.group_key.chars().count() > MAX_GROUP_KEY_CHARS
        {
            return Err(Error::validation(
                "groupKey",
                format!("expected 1 to {MAX_GROUP_KEY_CHARS} characters"),
            ));
        }
        for (n, a) in message.alerts.iter().enumerate() {
            if !matches!(a.status.as_str(), "firing" | "resolved") {
                return Err(Error::validation(
                    format!("alerts[{n}].status"),
                    "expected firing or resolved",
                ));
            }
            if a.fingerprint.trim().is_empty()
                || a.fingerprint.chars().count() > MAX_GROUP_KEY_CHARS
            {
                return Err(Error::validation(
                    format!("alerts[{n}].fingerprint"),
                    format!("expected 1 to {MAX_GROUP_KEY_CHARS} characters"),
                ));
            }
        }
        Ok(message)
    }

    /// The title of the incident the group opens: `commonAnnotations.summary`,
    /// else `[alertname] ` and the other group labels as `name=value`, at most
    /// 200 characters.
    pub fn title(&self) -> String {
        let title = match self
            .common_annotations
            .get("summary")
            .filter(|s| !s.trim().is_empty())
        {
            Some(summary) => summary.replace(['\r', '\n'], " "),
            None => {
                let alertname = self
                    .group_labels
                    .get("alertname")
                    .or_else(|| self.common_labels.get("alertname"));
                let rest: Vec<String> = self
                    .group_labels
                    .iter()
                    .filter(|(k, _)| k.as_str() != "alertname")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let mut title = alertname.map(|a| format!("[{a}]")).unwrap_or_default();
                if !rest.is_empty() {
                    if !title.is_empty() {
                        title.push(' ');
                    }
                    title.push_str(&rest.join(", "));
                }
                if title.trim().is_empty() {
                    title = format!("Alertmanager group {}", self.group_key);
                }
                title
            }
        };
        title.chars().take(200).collect()
    }

    /// The incident's description: `commonAnnotations.description`, at most
    /// 10,000 characters.
    pub fn description(&self) -> String {
        self.common_annotations
            .get("description")
            .map(|d| d.chars().take(10_000).collect())
            .unwrap_or_default()
    }

    /// The priority of the group's incident: from the highest `severity` label
    /// of its firing alerts ([`Severity::from_label`]); medium when none fires.
    pub fn priority(&self) -> Priority {
        self.alerts
            .iter()
            .filter(|a| a.is_firing())
            .map(|a| a.severity())
            .max()
            .unwrap_or_default()
            .priority()
    }
}

impl AlertmanagerAlert {
    /// Whether it still fires.
    pub fn is_firing(&self) -> bool {
        self.status == "firing"
    }

    /// Its severity, from its `severity` label.
    pub fn severity(&self) -> Severity {
        Severity::from_label(self.labels.get("severity").map(String::as_str))
    }

    /// Its dedup key within a group: `groupKey/fingerprint`.
    pub fn dedup_key(&self, group_key: &str) -> String {
        format!("{group_key}/{}", self.fingerprint)
    }

    /// Its summary: the `summary` annotation, else the `alertname` label, else
    /// the fingerprint; one line, at most 1,024 characters.
    pub fn summary(&self) -> String {
        let s = self
            .annotations
            .get("summary")
            .or_else(|| self.labels.get("alertname"))
            .cloned()
            .unwrap_or_else(|| format!("alert {}", self.fingerprint));
        s.replace(['\r', '\n'], " ").chars().take(1024).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> &'static str {
        r#"{"version":"4","groupKey":"{}:{alertname=\"HighLatency\"}","truncatedAlerts":0,
        "status":"firing","receiver":"imas","groupLabels":{"alertname":"HighLatency","job":"api"},
        "commonLabels":{"alertname":"HighLatency"},"commonAnnotations":{},
        "externalURL":"http://am:9093","alerts":[
          {"status":"firing","labels":{"alertname":"HighLatency","severity":"page"},"annotations":{},
           "startsAt":"2026-12-01T12:00:00Z","endsAt":"0001-01-01T00:00:00Z",
           "generatorURL":"http://prom/graph","fingerprint":"791cec13fcba0368"},
          {"status":"resolved","labels":{"alertname":"HighLatency","severity":"critical"},"annotations":{},
           "startsAt":"2026-12-01T12:00:00Z","endsAt":"2026-12-01T12:05:00Z",
           "generatorURL":"","fingerprint":"891cec13fcba0368"}]}"#
    }

    #[test]
    fn a_notification_parses_and_reads_as_spec_says() {
        let m = AlertmanagerMessage::parse(sample().as_bytes()).expect("valid");
        assert_eq!(m.title(), "[HighLatency] job=api");
        // Only firing alerts count: page → high, the resolved critical one not.
        assert_eq!(m.priority(), Priority::High);
        assert_eq!(
            m.alerts[0].dedup_key(&m.group_key),
            "{}:{alertname=\"HighLatency\"}/791cec13fcba0368"
        );
        assert_eq!(m.alerts[0].summary(), "HighLatency");
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let e = AlertmanagerMessage::parse(sample().replace("\"4\"", "\"3\"").as_bytes())
            .expect_err("invalid");
        assert!(e.to_string().contains("version"), "{e}");
        let e = AlertmanagerMessage::parse(
            sample()
                .replace("\"resolved\",\"labels\"", "\"gone\",\"labels\"")
                .as_bytes(),
        )
        .expect_err("invalid");
        assert!(e.to_string().contains("alerts[1].status"), "{e}");
        assert!(AlertmanagerMessage::parse(b"{}").is_err());
    }

    #[test]
    fn severity_labels_map_as_spec_says() {
        assert_eq!(
            Severity::from_label(Some("critical")).priority(),
            Priority::Critical
        );
        assert_eq!(
            Severity::from_label(Some("High")).priority(),
            Priority::High
        );
        assert_eq!(
            Severity::from_label(Some("page")).priority(),
            Priority::High
        );
        assert_eq!(
            Severity::from_label(Some("warning")).priority(),
            Priority::Medium
        );
        assert_eq!(Severity::from_label(Some("info")).priority(), Priority::Low);
        assert_eq!(
            Severity::from_label(Some("whatever")).priority(),
            Priority::Medium
        );
        assert_eq!(Severity::from_label(None).priority(), Priority::Medium);
    }
}
