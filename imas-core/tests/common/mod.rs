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
use imas_core::ports::{AuditStore, ManualClock, NotificationStore};
use imas_core::testkit::store::t0;
use imas_core::{Engine, EngineConfig, Principal};

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

pub struct World {
    pub engine: Engine,
    pub clock: ManualClock,
    pub store: Arc<MemoryStore>,
}

pub fn world_with(config: EngineConfig) -> World {
    let clock = ManualClock::new(t0());
    let store = Arc::new(MemoryStore::new());
    world_on(store, clock, config)
}

pub fn world_on(store: Arc<MemoryStore>, clock: ManualClock, config: EngineConfig) -> World {
    let engine = Engine::builder(store.clone())
        .clock(Arc::new(clock.clone()))
        .queue(Arc::new(MemoryQueue::new(
            Arc::new(clock.clone()),
            Default::default(),
        )))
        .jwt_keys(JwtKeys::new(SECRET, Duration::from_secs(3600)).expect("keys"))
        .config(config)
        .build()
        .expect("engine");
    World {
        engine,
        clock,
        store,
    }
}

pub fn world() -> World {
    world_with(EngineConfig::default())
}

impl World {
    /// A user with a role (registered, then promoted by a bootstrap admin).
    pub async fn user(&self, name: &str, role: Role) -> Principal {
        let (user, _) = self
            .engine
            .register(NewUser {
                name: name.into(),
                username: name.into(),
                email: format!("{name}@example.com"),
                password: "correct horse battery".into(),
            })
            .await
            .expect("register");
        if role != Role::User {
            let root = self.root().await;
            self.engine
                .change_role(&root, user.id, role)
                .await
                .expect("role");
        }
        Principal { id: user.id, role }
    }

    /// The bootstrap admin.
    pub async fn root(&self) -> Principal {
        self.engine
            .ensure_admin("root", "root password 123", "root@example.com")
            .await
            .expect("bootstrap");
        let token = self
            .engine
            .login("root", "root password 123")
            .await
            .expect("login");
        self.engine.authenticate(&token).await.expect("auth")
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
