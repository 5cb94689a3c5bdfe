//! Integration keys (SPEC §4): create (the key is shown once), list, revoke;
//! admins only. Creating and revoking are audited. Also how an ingestion
//! request's key is authenticated and rate-limited.

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, CreatedIntegration, Integration, IntegrationId,
    IntegrationKind, NewIntegration, Service, ServiceId, key_hash, new_key,
};
use crate::ports::{Change, IntegrationWrite};
use crate::rbac::{self, Permission};
use crate::validation::validate_name;

impl Engine {
    /// Creates an integration key for a service (admin): a new random key
    /// ([`crate::model::new_key`]) of which the store keeps only the hash.
    /// The answer is the only place the key is shown. `NotFound` for an
    /// unknown service; audited `INTEGRATION_CREATED`.
    pub async fn create_integration(
        &self,
        by: &Principal,
        service: ServiceId,
        new: NewIntegration,
    ) -> Result<CreatedIntegration> {
        rbac::require(by.role, Permission::ManageIntegrations)?;
        let name = validate_name("name", &new.name)?;
        let svc = self.load_service(service).await?;
        let key = new_key()?;
        let now = self.now();
        let integration = Integration::new(service, name, new.kind, key_hash(&key), now);
        let audit = AuditEntry::new(
            AuditAction::IntegrationCreated,
            Actor::User(by.id),
            Some(integration.id.to_string()),
            messages::integration_created(&integration.name, integration.kind, &svc.name),
            now,
        );
        self.commit(Change {
            integrations: vec![IntegrationWrite::Insert(integration.clone())],
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        Ok(CreatedIntegration { integration, key })
    }

    /// A service's integrations that are not revoked, without keys (admin);
    /// `NotFound` for an unknown service.
    pub async fn list_integrations(
        &self,
        by: &Principal,
        service: ServiceId,
    ) -> Result<Vec<Integration>> {
        rbac::require(by.role, Permission::ManageIntegrations)?;
        self.load_service(service).await?;
        self.inner.store.list_integrations(service).await
    }

    /// Revokes an integration key at once (admin); audited
    /// `INTEGRATION_REVOKED`. Revoking a revoked key is `NotFound`.
    pub async fn revoke_integration(&self, by: &Principal, id: IntegrationId) -> Result<()> {
        rbac::require(by.role, Permission::ManageIntegrations)?;
        let integration = self
            .inner
            .store
            .get_integration(id)
            .await?
            .filter(|i| i.revoked_at.is_none())
            .ok_or(Error::NotFound {
                entity: "integration",
            })?;
        let now = self.now();
        let audit = AuditEntry::new(
            AuditAction::IntegrationRevoked,
            Actor::User(by.id),
            Some(id.to_string()),
            messages::integration_revoked(&integration.name, integration.kind),
            now,
        );
        self.commit(Change {
            integrations: vec![IntegrationWrite::Revoke { id, at: now }],
            audit: vec![audit],
            ..Change::default()
        })
        .await
    }

    /// The live integration of `kind` whose key is `key`; `None` when the key
    /// is unknown, revoked or of the other kind. Served from [`KeyCache`]
    /// while the store's integrations generation holds (it moves with every
    /// integration created or revoked on any node, so a revoked key is refused
    /// at once); read from the store when it has moved or the store cannot
    /// vouch for it.
    pub(super) async fn integration_for_key(
        &self,
        key: &str,
        kind: IntegrationKind,
    ) -> Result<Option<Integration>> {
        if key.is_empty() {
            return Ok(None);
        }
        let hash = key_hash(key);
        // The generation is read before the store, so an entry never claims a
        // generation newer than what it was read at.
        let generation = self.inner.store.generation().map(|g| g.integrations);
        let cached = generation.and_then(|g| self.inner.integration_keys.get(&hash, g));
        let found = match cached {
            Some(found) => found,
            None => {
                let found = self.inner.store.integration_by_key_hash(&hash).await?;
                if let Some(g) = generation {
                    self.inner.integration_keys.put(hash, g, found.clone());
                }
                found
            }
        };
        Ok(found.filter(|i| i.revoked_at.is_none() && i.kind == kind))
    }

    /// The service an event's integration belongs to, for the events that
    /// open an incident (its SLA and escalation policy) or resolve one (its
    /// auto-resolve), through [`ServiceCache`] like the keys: no store read
    /// per event while no integration or service changes anywhere.
    pub(super) async fn service_for_events(&self, id: ServiceId) -> Result<Option<Service>> {
        let generation = self.inner.store.generation().map(|g| g.integrations);
        if let Some(found) = generation.and_then(|g| self.inner.services.get(&id, g)) {
            return Ok(found);
        }
        let found = self.inner.store.get_service(id).await?;
        if let Some(g) = generation {
            self.inner.services.put(id, g, found.clone());
        }
        Ok(found)
    }

    /// Counts one event against the key's [ingest
    /// limit](super::EngineConfig::ingest_limit), or refuses it with
    /// `RateLimited` and when to try again.
    pub(super) fn admit_event(&self, integration: &Integration) -> Result<()> {
        let Some(limiter) = &self.inner.ingest else {
            return Ok(());
        };
        limiter
            .hit(&integration.id, self.now())
            .map_err(|retry_after| {
                let (max, window) = self
                    .inner
                    .config
                    .ingest_limit
                    .map(|l| (l.max, l.window))
                    .unwrap_or_default();
                Error::rate_limited(messages::ingest_limit(max, window), retry_after)
            })
    }
}

/// Most entries a [`GenerationCache`] holds; when full it starts again empty
/// (keys and services are few: one per monitoring source).
const KEY_CACHE_CAPACITY: usize = 10_000;

/// Values (or their absence) by key, each with the integrations generation it
/// was read at; an entry serves only at that generation. Absences are cached
/// too, so a sender with a wrong key costs no store read per request either.
/// Integrations by key hash ([`KeyCache`]) and services by id
/// ([`ServiceCache`]): what every event reads, and what changes rarely (the
/// integrations generation moves with integration and service writes).
#[derive(Debug)]
pub(super) struct GenerationCache<K, V> {
    entries: std::sync::Mutex<std::collections::HashMap<K, (u64, Option<V>)>>,
}

impl<K, V> Default for GenerationCache<K, V> {
    fn default() -> Self {
        Self {
            entries: std::sync::Mutex::default(),
        }
    }
}

/// Integrations by key hash.
pub(super) type KeyCache = GenerationCache<String, Integration>;

/// Services by id (for the events that open incidents and resolve alerts).
pub(super) type ServiceCache = GenerationCache<ServiceId, Service>;

impl<K: Eq + std::hash::Hash, V: Clone> GenerationCache<K, V> {
    pub(super) fn get(&self, key: &K, generation: u64) -> Option<Option<V>> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.get(key) {
            Some((g, found)) if *g == generation => Some(found.clone()),
            _ => None,
        }
    }

    pub(super) fn put(&self, key: K, generation: u64, found: Option<V>) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= KEY_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(key, (generation, found));
    }
}
