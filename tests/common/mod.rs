//! A reference server for the tests that talk to it over a real socket, started
//! the way `cargo run --example server` starts it: `ServerConfig::from_vars`,
//! then `imas::server::engine` (the store the configuration names, its
//! migrations, the queue, the channels, the bootstrap admin) and
//! `imas::server::serve`, on SQLite, PostgreSQL (`DATABASE_URL`) or MongoDB
//! (`MONGODB_URL`). Only [`TestServer::start_on`], for a store the
//! configuration cannot name (a fault-injecting one), builds its own engine.

#![allow(dead_code)]

pub mod ingest;
#[cfg(feature = "server-bin")]
pub mod node;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imas::Engine;
use imas::ports::Store;
use imas::server::{ServerConfig, serve};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
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

/// A fresh, empty database on a backend, as the environment variables that
/// name it to the server; start servers on it again to restart on the same
/// data.
#[derive(Clone, Debug)]
pub struct Database {
    pub backend: Backend,
    vars: Vec<(&'static str, String)>,
}

impl Database {
    /// A new database (file, schema or MongoDB database); `None` (after
    /// saying so) when the backend's URL is not set outside CI.
    pub fn fresh(backend: Backend) -> Option<Database> {
        let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
        let vars = match backend {
            Backend::Sqlite => {
                let path =
                    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.db"));
                vec![("DATABASE_URL", format!("sqlite://{}", path.display()))]
            }
            Backend::Postgres => {
                let url = imas_core::testkit::service_url("DATABASE_URL")?;
                vec![("DATABASE_URL", url), ("IMAS_DB_SCHEMA", name)]
            }
            Backend::Mongo => {
                let url = imas_core::testkit::service_url("MONGODB_URL")?;
                vec![("MONGODB_URL", mongodb_url_with_database(&url, &name))]
            }
        };
        Some(Database { backend, vars })
    }
}

/// `url` (`mongodb://host[:port][/[db]][?options]`) naming the database `name`.
pub fn mongodb_url_with_database(url: &str, name: &str) -> String {
    let (head, options) = match url.split_once('?') {
        Some((h, o)) => (h, Some(o)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let hosts = match head[scheme_end..].find('/') {
        Some(slash) => &head[..scheme_end + slash],
        None => head,
    };
    match options {
        Some(o) => format!("{hosts}/{name}?{o}"),
        None => format!("{hosts}/{name}"),
    }
}

/// A running reference server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    /// The engine the server runs (the one `imas::server::engine` built).
    pub engine: Engine,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The configuration of a test server: a JWT secret, the bootstrap admin
/// `admin`, a private Redis prefix, then `vars`; background loops polling
/// often (those two are not environment settings).
fn config(vars: &[(&str, &str)]) -> ServerConfig {
    let mut env: HashMap<String, String> = HashMap::from([
        ("JWT_SECRET".into(), SECRET.into()),
        ("IMAS_ADMIN_USERNAME".into(), "admin".into()),
        ("IMAS_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
        (
            "IMAS_QUEUE_PREFIX".into(),
            format!("imas-test:{}", uuid::Uuid::new_v4().simple()),
        ),
    ]);
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut config = ServerConfig::from_vars(|k| env.get(k).cloned()).expect("config");
    config.monitor_poll = Duration::from_millis(200);
    config.notifier_poll = Duration::from_millis(50);
    config
}

impl TestServer {
    /// The server on a fresh database of `backend` with the environment `vars`
    /// (on top of those of [`config`]); `None` when the backend is not
    /// available outside CI.
    pub async fn start(backend: Backend, vars: &[(&str, &str)]) -> Option<TestServer> {
        let db = Database::fresh(backend)?;
        Some(Self::start_in(&db, vars).await)
    }

    /// The server on `db` (a restart when a server ran on it before), built by
    /// `imas::server::engine` as the reference server is.
    pub async fn start_in(db: &Database, vars: &[(&str, &str)]) -> TestServer {
        let mut all: Vec<(&str, &str)> = db.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(vars);
        let config = config(&all);
        let engine = imas::server::engine(&config).await.expect("engine");
        Self::serve(engine, config).await
    }

    /// The server on `store`, which the configuration cannot name (a
    /// fault-injecting wrapper): the engine is built here as
    /// `imas::server::engine` builds it, minus the store, the queue and the
    /// channels (in-process queue, no webhook or email).
    pub async fn start_on(store: Arc<dyn Store>, vars: &[(&str, &str)]) -> TestServer {
        let config = config(vars);
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
        Self::serve(engine, config).await
    }

    async fn serve(engine: Engine, config: ServerConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
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
            base: format!("{scheme}://{addr}"),
            engine,
            http: reqwest::Client::new(),
            stop: Some(tx),
            task,
        }
    }

    /// The same server called through `http` (a client that trusts the test
    /// CA of a server on TLS, say).
    pub fn with_client(mut self, http: reqwest::Client) -> TestServer {
        self.http = http;
        self
    }

    /// The store the server runs on, for inspection.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
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

    /// One request; the answer's status and body (JSON, or the text as a JSON
    /// string, or `null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, text) = self.call_text(method, path, token, body).await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// One request; the answer's status and body as text.
    pub async fn call_text(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, res.text().await.expect("body"))
    }

    /// A token for `username`, signing in over HTTP.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login {username}: {v}");
        v["token"].as_str().expect("token").to_string()
    }

    /// Registers a user (password `password 123`) and gives it a role (as the
    /// admin); returns (id, token).
    pub async fn user(&self, admin: &str, name: &str, role: &str) -> (String, String) {
        let body = json!({"name": name, "username": name, "password": "password 123", "email": format!("{name}@example.com")});
        let (s, v) = self
            .call(Method::POST, "/auth/register", None, Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_str().expect("id").to_string();
        if role != "user" {
            let (s, v) = self
                .call(
                    Method::PATCH,
                    &format!("/users/{id}/role"),
                    Some(admin),
                    Some(json!({"role": role})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        (id.clone(), self.token(name, "password 123").await)
    }

    /// Shuts the server down gracefully and waits for it to return: its
    /// result, or the server task's panic, resumed here so that it fails the
    /// test.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(served) => served,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("the server task did not finish: {e}"),
        }
    }
}
