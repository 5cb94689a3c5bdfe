//! A background loop of the reference server that dies (here the notification
//! worker, through a channel that panics) does not leave a server answering
//! requests with nobody delivering notifications: `imas::server::serve` shuts
//! down and returns the failure, so a supervisor restarts the process.

#![cfg(all(feature = "http", feature = "sqlite"))]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use imas::memory::MemoryStore;
use imas::model::{Notification, NotificationIntent, NotificationType, UserId};
use imas::ports::{Change, ChangeStore, Channel, Store};
use imas::server::{ServerConfig, serve};
use imas::{Engine, Result};

#[derive(Debug)]
struct Panicking;

#[async_trait]
impl Channel for Panicking {
    fn name(&self) -> &'static str {
        "panicking"
    }

    async fn deliver(&self, _: &Notification, _: Option<&imas::ports::Recipient>) -> Result<()> {
        panic!("a channel bug");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_notification_worker_stops_the_server_with_its_failure() {
    let mut config = ServerConfig::from_vars(|k| {
        (k == "JWT_SECRET").then(|| "a test secret of 32 bytes or more!!".to_string())
    })
    .expect("config");
    config.notifier_poll = Duration::from_millis(20);
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder(store.clone() as Arc<dyn Store>)
        .channel(Arc::new(Panicking))
        .config(config.engine.clone())
        .build()
        .expect("engine");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server =
        tokio::spawn(async move { serve(engine, &config, listener, std::future::pending()).await });
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("up");
    assert!(health.status().is_success(), "serving before the failure");

    store
        .commit(Change {
            outbox: vec![NotificationIntent {
                key: "k".into(),
                user: UserId::new(),
                message: "m".into(),
                kind: NotificationType::Info,
                incident_id: None,
                created_at: chrono::Utc::now(),
            }],
            ..Change::default()
        })
        .await
        .expect("commit");
    let ended = tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("the server stopped by itself (it was never told to)")
        .expect("serve returned rather than panicked");
    let error = ended.expect_err("a failure, not a clean stop");
    assert!(
        error.to_string().contains("panicked"),
        "names the failure: {error}"
    );
    assert!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_err(),
        "no longer accepting"
    );
}
