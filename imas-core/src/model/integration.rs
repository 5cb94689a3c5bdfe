//! Integrations: a key that lets one monitoring source post to one service
//! (SPEC §4). The key is shown once, when it is created; stores keep only its
//! hash ([`key_hash`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{IntegrationId, ServiceId, Timestamp};

/// Which format a source posts in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IntegrationKind {
    /// PagerDuty Events API v2 (`POST /v2/enqueue`).
    #[serde(rename = "events-v2")]
    EventsV2,
    /// The Prometheus Alertmanager webhook (`POST /integrations/alertmanager`).
    #[serde(rename = "alertmanager")]
    Alertmanager,
}
string_enum!(IntegrationKind, "kind", { EventsV2 => "events-v2", Alertmanager => "alertmanager" });

/// An integration key of a service. Serialises without the key (it is never
/// stored) and without its hash.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    /// Id.
    pub id: IntegrationId,
    /// The service its alerts go to.
    pub service_id: ServiceId,
    /// A name for people, 1..=100 characters.
    pub name: String,
    /// The format it posts in.
    pub kind: IntegrationKind,
    /// [`key_hash`] of the key: what a request's key is looked up by.
    #[serde(skip, default)]
    pub key_hash: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key is refused at once.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Integration {
    /// A new integration of `service` whose key hashes to `key_hash`.
    pub fn new(
        service_id: ServiceId,
        name: impl Into<String>,
        kind: IntegrationKind,
        key_hash: String,
        now: Timestamp,
    ) -> Self {
        Self {
            id: IntegrationId::new(),
            service_id,
            name: name.into(),
            kind,
            key_hash,
            created_at: now,
            revoked_at: None,
        }
    }
}

/// What `POST /services/{id}/integrations` takes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewIntegration {
    /// A name for people, 1..=100 characters.
    pub name: String,
    /// `events-v2` or `alertmanager`.
    pub kind: IntegrationKind,
}

/// A new integration with its key: the only time the key is shown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedIntegration {
    /// The integration.
    #[serde(flatten)]
    pub integration: Integration,
    /// 32 random characters `[a-z0-9]`.
    pub key: String,
}

/// Debug output leaves the key out, so that no log line can carry it.
impl std::fmt::Debug for CreatedIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedIntegration")
            .field("integration", &self.integration)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Length of an integration key (PagerDuty's routing keys are 32 characters).
pub const KEY_LEN: usize = 32;

/// A new random key: [`KEY_LEN`] characters `[a-z0-9]` from the operating
/// system's random source (about 165 bits).
pub fn new_key() -> crate::error::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(KEY_LEN);
    let mut buf = [0u8; 64];
    while out.len() < KEY_LEN {
        getrandom::fill(&mut buf)
            .map_err(|e| crate::error::Error::backend("getrandom", e.to_string()))?;
        // 252 = 7 * 36: bytes at or above it are dropped so every character is
        // equally likely.
        for b in buf.iter().filter(|b| **b < 252) {
            if out.len() == KEY_LEN {
                break;
            }
            out.push(ALPHABET[usize::from(*b % 36)] as char);
        }
    }
    Ok(out)
}

/// What stores keep of a key and look it up by: the SHA-256 of the key, in
/// lower-case hex. A key has about 165 random bits, so a fast hash is enough (no
/// password stretching).
pub fn key_hash(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}
