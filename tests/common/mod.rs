//! A reference server for the tests that talk to it over a real socket: the real
//! `imas::server::serve` on SQLite, PostgreSQL (`DATABASE_URL`) or MongoDB
//! (`MONGODB_URL`), configured by `ServerConfig::from_vars`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imas::Engine;
use imas::ports::Store;
use imas::server::{ServerConfig, serve};
use imas::store_sqlx::{PostgresStore, SqliteStore};
use tokio::sync::oneshot;

pub const SECRET: &str = "a test secret of 32 bytes or more!!";
pub const ADMIN_PASSWORD: &str = "admin password";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mongo,
}

/// Every store the server runs on.
pub fn backends() -> [Backend; 3] {
    [Backend::Sqlite, Backend::Postgres, Backend::Mongo]
}

/// A fresh, empty store on `backend`; `None` (after saying so) when the backend's
/// URL is not set outside CI.
pub async fn fresh_store(backend: Backend) -> Option<Arc<dyn Store>> {
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    Some(match backend {
        Backend::Sqlite => {
            let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.db"));
            let url = format!("sqlite://{}", path.display());
            Arc::new(SqliteStore::connect(&url).await.expect("sqlite"))
        }
        Backend::Postgres => {
            let url = imas_core::testkit::service_url("DATABASE_URL")?;
            Arc::new(
                PostgresStore::connect_in_schema(&url, &name)
                    .await
                    .expect("postgres"),
            )
        }
        Backend::Mongo => {
            let url = imas_core::testkit::service_url("MONGODB_URL")?;
            Arc::new(
                imas::store_mongo::MongoStore::connect_to(&url, &name)
                    .await
                    .expect("mongodb"),
            )
        }
    })
}

/// A running reference server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub engine: Engine,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// The server on `backend` with the environment `vars` (on top of a JWT
    /// secret and the bootstrap admin `admin`); `None` when the backend is
    /// not available outside CI.
    pub async fn start(backend: Backend, vars: &[(&str, &str)]) -> Option<TestServer> {
        let store = fresh_store(backend).await?;
        Some(Self::start_on(store, vars).await)
    }

    /// The server on `store` with the environment `vars`.
    pub async fn start_on(store: Arc<dyn Store>, vars: &[(&str, &str)]) -> TestServer {
        let mut env: HashMap<String, String> = HashMap::from([
            ("JWT_SECRET".into(), SECRET.into()),
            ("IMAS_ADMIN_USERNAME".into(), "admin".into()),
            ("IMAS_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ]);
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut config = ServerConfig::from_vars(|k| env.get(k).cloned()).expect("config");
        config.monitor_poll = Duration::from_millis(200);
        config.notifier_poll = Duration::from_millis(50);
        let mut builder = Engine::builder(store).config(config.engine.clone());
        if let Some(keys) = &config.jwt {
            builder = builder.jwt_keys(keys.clone());
        }
        let engine = builder.build().expect("engine");
        if let Some(a) = &config.admin {
            engine
                .ensure_admin(&a.username, &a.password, &a.email)
                .await
                .expect("admin");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = {
            let engine = engine.clone();
            tokio::spawn(async move {
                serve(engine, &config, listener, async move {
                    let _ = rx.await;
                })
                .await
            })
        };
        TestServer {
            addr,
            base: format!("http://{addr}"),
            engine,
            stop: Some(tx),
            task,
        }
    }

    /// The bootstrap admin as a principal of the engine, for seeding data.
    pub async fn admin(&self) -> imas_core::Principal {
        let token = self.admin_token().await;
        self.engine.authenticate(&token).await.expect("principal")
    }

    /// A token of the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        self.engine
            .login("admin", ADMIN_PASSWORD)
            .await
            .expect("admin login")
    }

    /// Shuts the server down gracefully and waits for it to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.expect("server task")
    }
}
