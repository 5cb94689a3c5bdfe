//! Shared set-up for the engine tests: an engine on the memory backends and a
//! manual clock.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use imas_core::auth::JwtKeys;
use imas_core::engine::NewUser;
use imas_core::memory::{MemoryQueue, MemoryStore};
use imas_core::model::{
    AuditAction, AuditFilter, Notification, NotificationType, PageRequest, Role, UserId,
};
use imas_core::ports::{Channel, ManualClock, Store};
use imas_core::testkit::store::t0;
use imas_core::{Engine, EngineConfig, Principal};

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// An engine on `store` (the memory store, or a wrapper of it such as the
/// testkit's `FaultyStore`) and a manual clock.
pub struct World<S = MemoryStore> {
    pub engine: Engine,
    pub clock: ManualClock,
    pub store: Arc<S>,
}

pub fn world_with(config: EngineConfig) -> World {
    let clock = ManualClock::new(t0());
    let store = Arc::new(MemoryStore::new());
    world_on(store, clock, config)
}

pub fn world_on<S: Store>(store: Arc<S>, clock: ManualClock, config: EngineConfig) -> World<S> {
    assemble(store, clock, config, None)
}

/// The default world with one delivery channel beyond the in-app store.
pub fn world_with_channel(channel: Arc<dyn Channel>) -> World {
    let clock = ManualClock::new(t0());
    let store = Arc::new(MemoryStore::new());
    assemble(store, clock, EngineConfig::default(), Some(channel))
}

fn assemble<S: Store>(
    store: Arc<S>,
    clock: ManualClock,
    config: EngineConfig,
    channel: Option<Arc<dyn Channel>>,
) -> World<S> {
    let mut builder = Engine::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .queue(Arc::new(MemoryQueue::new(
            Arc::new(clock.clone()),
            Default::default(),
        )))
        .jwt_keys(JwtKeys::new(SECRET, Duration::from_secs(3600)).expect("keys"))
        .config(config);
    if let Some(channel) = channel {
        builder = builder.channel(channel);
    }
    let engine = builder.build().expect("engine");
    World {
        engine,
        clock,
        store,
    }
}

pub fn world() -> World {
    world_with(EngineConfig::default())
}

impl<S: Store> World<S> {
    /// A user with a role (registered, then promoted by a bootstrap admin).
    pub async fn user(&self, name: &str, role: Role) -> Principal {
        let root = match role {
            Role::User => None,
            _ => Some(self.root().await),
        };
        self.registered(name, role, root.as_ref()).await.0
    }

    /// A user with a role, promoted by `root`, and the user's token.
    pub async fn user_by(&self, root: &Principal, name: &str, role: Role) -> (Principal, String) {
        self.registered(name, role, Some(root)).await
    }

    /// Registers `name`; a role other than `user` is given by `root`.
    async fn registered(
        &self,
        name: &str,
        role: Role,
        root: Option<&Principal>,
    ) -> (Principal, String) {
        let (user, token) = self
            .engine
            .register(NewUser {
                name: name.into(),
                username: name.into(),
                email: format!("{name}@example.com"),
                password: "correct horse battery".into(),
            })
            .await
            .expect("register");
        if let Some(root) = root.filter(|_| role != Role::User) {
            self.engine
                .change_role(root, user.id, role)
                .await
                .expect("role");
        }
        (Principal { id: user.id, role }, token)
    }

    /// The bootstrap admin.
    pub async fn root(&self) -> Principal {
        self.root_with_token().await.0
    }

    /// The bootstrap admin and a token of it.
    pub async fn root_with_token(&self) -> (Principal, String) {
        self.engine
            .ensure_admin("root", "root password 123", "root@example.com")
            .await
            .expect("bootstrap");
        let token = self
            .engine
            .login("root", "root password 123")
            .await
            .expect("login");
        (self.engine.authenticate(&token).await.expect("auth"), token)
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// Sweeps and delivers everything due now.
    pub async fn tick(&self) {
        self.engine.sweep_all().await.expect("sweep");
        self.engine.flush_notifications().await.expect("flush");
    }

    pub async fn notes(&self, user: UserId) -> Vec<Notification> {
        self.store
            .list_notifications(user, PageRequest::first(500))
            .await
            .expect("notes")
            .items
    }

    pub async fn notes_of(&self, user: UserId, kind: NotificationType) -> Vec<Notification> {
        self.notes(user)
            .await
            .into_iter()
            .filter(|n| n.kind == kind)
            .collect()
    }

    pub async fn audit_count(&self, action: AuditAction, target: &str) -> usize {
        let f = AuditFilter {
            action: Some(action),
            target: Some(target.to_string()),
            ..Default::default()
        };
        self.store
            .list_audit(&f, PageRequest::first(500))
            .await
            .expect("audit")
            .items
            .len()
    }
}

pub fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}
