//! Live notification streams (`GET /notifications/stream`) over a real socket
//! against the reference server: a user holds at most three at once (the
//! fourth is a 429 with Retry-After, another user is not affected), a stream
//! whose client went away gives its place back, and a stream ends when the
//! token that opened it expires.

#![cfg(all(feature = "http", feature = "sqlite"))]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use imas::auth::JwtKeys;
use imas::server::{ServerConfig, engine, serve};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &[u8] = b"a stream test secret of 32+ bytes!";

struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(token_ttl: Duration) -> Server {
        let db = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("streams-{}.db", uuid::Uuid::new_v4()));
        let vars = HashMap::from([
            ("DATABASE_URL", format!("sqlite://{}", db.display())),
            ("IMAS_ADMIN_USERNAME", "admin".to_string()),
            ("IMAS_ADMIN_PASSWORD", "admin password".to_string()),
        ]);
        let mut config = ServerConfig::from_vars(|k| vars.get(k).cloned()).expect("config");
        config.jwt = Some(JwtKeys::new(SECRET, token_ttl).expect("keys"));
        config.notifier_poll = Duration::from_millis(20);
        let engine = engine(&config).await.expect("engine");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(engine, &config, listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        Server {
            base,
            stop: Some(stop),
            task,
        }
    }

    async fn login(&self, http: &reqwest::Client, username: &str, password: &str) -> String {
        let res = http
            .post(format!("{}/auth/login", self.base))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.expect("json");
        body["token"].as_str().expect("token").to_string()
    }

    async fn register(&self, http: &reqwest::Client, username: &str) -> String {
        let res = http
            .post(format!("{}/auth/register", self.base))
            .json(&json!({
                "name": username,
                "username": username,
                "password": "a long password",
                "email": format!("{username}@example.com"),
            }))
            .send()
            .await
            .expect("register");
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.expect("json");
        body["token"].as_str().expect("token").to_string()
    }

    async fn stream(&self, http: &reqwest::Client, token: &str) -> reqwest::Response {
        http.get(format!("{}/notifications/stream", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("stream")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .expect("the server task ended cleanly (serve returned Ok)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_stream_is_refused_until_one_ends() {
    let server = Server::start(Duration::from_secs(3600)).await;
    let http = reqwest::Client::new();
    let admin = server.login(&http, "admin", "admin password").await;
    let mut open = Vec::new();
    for n in 0..3 {
        let res = server.stream(&http, &admin).await;
        assert_eq!(res.status(), StatusCode::OK, "stream {n}");
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        open.push(res);
    }
    let fourth = server.stream(&http, &admin).await;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = fourth
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    drop(fourth);

    // The limit is per user: somebody else still gets one.
    let other = server.register(&http, "other").await;
    let theirs = server.stream(&http, &other).await;
    assert_eq!(theirs.status(), StatusCode::OK);

    // One client goes away: its place is given back once the server notices
    // the closed connection.
    drop(open.pop());
    let since = Instant::now();
    let deadline = since + Duration::from_secs(30);
    let again = loop {
        let res = server.stream(&http, &admin).await;
        if res.status() == StatusCode::OK {
            break res;
        }
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            Instant::now() < deadline,
            "a dropped stream never gave its place back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "a dropped stream's place came back after {:?}",
        since.elapsed()
    );
    open.push(again);
    let fourth = server.stream(&http, &admin).await;
    assert_eq!(
        fourth.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "still at most three"
    );
    drop(open);
    drop(theirs);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_token_expires() {
    let server = Server::start(Duration::from_secs(2)).await;
    let http = reqwest::Client::new();
    let admin = server.login(&http, "admin", "admin password").await;
    let opened = Instant::now();
    let mut res = server.stream(&http, &admin).await;
    assert_eq!(res.status(), StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(_chunk) = res.chunk().await.expect("a clean end, not a reset") {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its token by far");
    let lasted = opened.elapsed();
    eprintln!("a stream on a 2-second token lasted {lasted:?}");
    assert!(
        lasted <= Duration::from_secs(3),
        "ended at the token's expiry, not later: {lasted:?}"
    );
    // The token is dead now: no new stream with it, and its place was given back.
    let res = server.stream(&http, &admin).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    server.stop().await;
}
