//! `GET /metrics` (SPEC §8) on the reference server over a real socket: the
//! Prometheus text format and the metrics token, then a real Prometheus (the
//! Debian package `prometheus`, started here with its own configuration and
//! storage) scraping two servers every second, read back through its HTTP API.
//! Without the `prometheus` binary the Prometheus test skips with a message;
//! under CI=true it fails instead (`.ci/run` installs it).

#![cfg(all(feature = "http", feature = "sqlite"))]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imas::server::{ServerConfig, engine, serve};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const TOKEN: &str = "scrape-token-of-the-test";

struct Server {
    base: String,
    port: u16,
    http: Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The reference server on an in-memory SQLite store and the in-process
    /// queue, with the bootstrap admin, plus `vars`.
    async fn start(vars: &[(&str, &str)]) -> Server {
        let mut env: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), "sqlite::memory:".into()),
            (
                "JWT_SECRET".into(),
                "a metrics test secret of 32+ bytes".into(),
            ),
            ("IMAS_ADMIN_USERNAME".into(), "admin".into()),
            ("IMAS_ADMIN_PASSWORD".into(), "admin password".into()),
        ]);
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut config = ServerConfig::from_vars(|k| env.get(k).cloned()).expect("config");
        config.notifier_poll = Duration::from_millis(50);
        let engine = engine(&config).await.expect("engine");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(engine, &config, listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        Server {
            base: format!("http://127.0.0.1:{port}"),
            port,
            http: Client::new(),
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task)
            .await
            .expect("the server task ended cleanly (serve returned Ok)");
    }

    async fn admin_token(&self) -> String {
        let r = self
            .http
            .post(format!("{}/auth/login", self.base))
            .json(&json!({"username": "admin", "password": "admin password"}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.expect("json");
        body["token"].as_str().expect("token").to_string()
    }

    /// Creates an incident; its id.
    async fn create(&self, token: &str, title: &str, priority: &str) -> String {
        let r = self
            .http
            .post(format!("{}/incidents", self.base))
            .bearer_auth(token)
            .json(&json!({"title": title, "priority": priority}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.expect("json");
        body["id"].as_str().expect("id").to_string()
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }
}

/// The value of the sample whose name and labels are exactly `series`
/// (e.g. `imas_incidents_open{priority="high",status="open"}`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_behind_the_token() {
    let server = Server::start(&[("IMAS_METRICS_TOKEN", TOKEN)]).await;
    let admin = server.admin_token().await;

    // Without the token, with a wrong one, or with a user's JWT: 401.
    for bearer in [None, Some("wrong"), Some(admin.as_str())] {
        let r = server.get("/metrics", bearer).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "bearer {bearer:?}");
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }

    let id = server.create(&admin, "Disk full", "high").await;
    server.create(&admin, "Printer jam", "low").await;
    assert_eq!(
        server
            .get(&format!("/incidents/{id}"), Some(&admin))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        server.get("/no/such/route", None).await.status(),
        StatusCode::NOT_FOUND
    );

    let r = server.get("/metrics", Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text().await.expect("body");
    let open = |p: &str| {
        sample(
            &text,
            &format!("imas_incidents_open{{priority=\"{p}\",status=\"open\"}}"),
        )
    };
    assert_eq!(open("high"), Some(1.0), "{text}");
    assert_eq!(open("low"), Some(1.0));
    assert_eq!(open("critical"), Some(0.0), "every pair is reported");
    assert_eq!(
        sample(
            &text,
            "imas_http_requests_total{method=\"POST\",route=\"/incidents\",status=\"201\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "imas_http_requests_total{method=\"GET\",route=\"/incidents/{id}\",status=\"200\"}"
        ),
        Some(1.0),
        "the route template, never the raw path"
    );
    assert!(!text.contains(&id), "no incident id in any label");
    assert_eq!(
        sample(
            &text,
            "imas_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "imas_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"401\"}"
        ),
        Some(3.0)
    );
    assert!(
        sample(
            &text,
            "imas_http_request_duration_seconds_count{method=\"POST\",route=\"/incidents\",status=\"201\"}"
        ) == Some(2.0),
        "latency histogram"
    );
    assert!(text.contains(
        "imas_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"POST\",route=\"/incidents\",status=\"201\"} 2"
    ) || text.contains("imas_http_request_duration_seconds_bucket{method=\"POST\",route=\"/incidents\",status=\"201\",le=\"+Inf\"} 2"), "{text}");
    for family in [
        "# TYPE imas_http_requests_total counter",
        "# TYPE imas_http_request_duration_seconds histogram",
        "# TYPE imas_incidents_open gauge",
        "# TYPE imas_sla_breaches_total counter",
        "# TYPE imas_sla_monitor_lag_seconds gauge",
        "# TYPE imas_outbox_pending gauge",
        "# TYPE imas_outbox_oldest_pending_age_seconds gauge",
        "# TYPE imas_queue_jobs gauge",
        "# TYPE imas_queue_dead_letters gauge",
        "# TYPE imas_deliveries_total counter",
        "# TYPE imas_alerts_received_total counter",
        "# TYPE imas_retention_pruned_total counter",
    ] {
        assert!(text.contains(family), "missing {family}:\n{text}");
    }
    assert_eq!(
        sample(&text, "imas_queue_jobs{state=\"ready\"}").map(|_| ()),
        Some(())
    );
    assert_eq!(sample(&text, "imas_queue_dead_letters"), Some(0.0));
    assert_eq!(sample(&text, "imas_sla_monitor_lag_seconds"), Some(0.0));
    assert_eq!(
        sample(&text, "imas_sla_breaches_total{target=\"resolution\"}"),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            "imas_deliveries_total{channel=\"in-app\",outcome=\"delivered\"}"
        )
        .is_some()
    );
    server.stop().await;

    // Without a token, /metrics is open.
    let open_server = Server::start(&[]).await;
    assert_eq!(
        open_server.get("/metrics", None).await.status(),
        StatusCode::OK
    );
    open_server.stop().await;
}

#[test]
fn a_bad_retention_names_its_variable() {
    for bad in ["soon", "0s", "30m", "-1d"] {
        let e = ServerConfig::from_vars(|k| (k == "IMAS_RETENTION").then(|| bad.to_string()))
            .expect_err(bad);
        assert!(e.to_string().contains("IMAS_RETENTION"), "{bad}: {e}");
    }
    let ok = ServerConfig::from_vars(|k| (k == "IMAS_RETENTION").then(|| "36h".to_string()))
        .expect("36h");
    assert_eq!(ok.retention, Duration::from_secs(36 * 3600));
    let default = ServerConfig::from_vars(|_| None).expect("defaults");
    assert_eq!(default.retention, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(default.metrics_token, None);
}

// ----- a real Prometheus ------------------------------------------------------------

/// A `prometheus` process started by the test, killed (by its own id) and its
/// files removed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
    http: Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Whether the `prometheus` binary runs; `false` after saying so, and a
/// failure under CI=true.
fn prometheus_available() -> bool {
    match Command::new("prometheus").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "prometheus is not available but CI=true (apt-get install prometheus): {other:?}"
            );
            eprintln!("skipping: install the `prometheus` package to run this test");
            false
        }
    }
}

impl Prometheus {
    /// Starts Prometheus scraping every second: `imas` (the token server, with
    /// its token), `imas_denied` (the same server without it) and `imas_open`
    /// (a server without a token).
    async fn start(with_token: u16, open: u16) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("imas-prom-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("data")).expect("temp dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: imas\n\
             \x20   authorization:\n\
             \x20     type: Bearer\n\
             \x20     credentials: {TOKEN}\n\
             \x20   static_configs:\n\
             \x20     - targets: ['127.0.0.1:{with_token}']\n\
             \x20 - job_name: imas_denied\n\
             \x20   static_configs:\n\
             \x20     - targets: ['127.0.0.1:{with_token}']\n\
             \x20 - job_name: imas_open\n\
             \x20   static_configs:\n\
             \x20     - targets: ['127.0.0.1:{open}']\n"
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
            http: Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = p.http.get(format!("{}/-/ready", p.base)).send().await
                && r.status() == StatusCode::OK
            {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never became ready: {}",
                p.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The value of the instant query `q` once Prometheus has a sample for it
    /// that satisfies `ok` (polled; at most 30 s).
    async fn value_when(&self, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .http
                .get(format!("{}/api/v1/query", self.base))
                .query(&[("query", q)])
                .send()
                .await
                .expect("query");
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["status"], "success", "{q}: {body}");
            let value = body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(v) = value
                && ok(v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no acceptable sample for {q} within 30 s; last answer {body}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_and_reads_back_the_metrics() {
    if !prometheus_available() {
        return;
    }
    let guarded = Server::start(&[("IMAS_METRICS_TOKEN", TOKEN)]).await;
    let open = Server::start(&[]).await;
    let admin = guarded.admin_token().await;
    guarded.create(&admin, "API down", "critical").await;
    guarded.create(&admin, "DB down", "critical").await;
    guarded.create(&admin, "Typo on a page", "low").await;
    let prom = Prometheus::start(guarded.port, open.port).await;

    // The guarded server is scraped with the token, and refuses the job without it.
    assert_eq!(prom.value_when("up{job=\"imas\"}", |v| v == 1.0).await, 1.0);
    assert_eq!(
        prom.value_when("up{job=\"imas_denied\"}", |v| v == 0.0)
            .await,
        0.0
    );
    assert_eq!(
        prom.value_when("up{job=\"imas_open\"}", |v| v == 1.0).await,
        1.0
    );

    let critical = prom
        .value_when(
            "imas_incidents_open{job=\"imas\",priority=\"critical\",status=\"open\"}",
            |_| true,
        )
        .await;
    assert_eq!(critical, 2.0, "open critical incidents = those created");
    let low = prom
        .value_when(
            "imas_incidents_open{job=\"imas\",priority=\"low\",status=\"open\"}",
            |_| true,
        )
        .await;
    assert_eq!(low, 1.0);
    let created = prom
        .value_when(
            "sum(imas_http_requests_total{job=\"imas\",route=\"/incidents\",method=\"POST\",status=\"201\"})",
            |_| true,
        )
        .await;
    assert_eq!(created, 3.0);
    // A change after the first scrapes shows in a later one.
    let second = open.admin_token().await;
    open.create(&second, "Late one", "medium").await;
    assert_eq!(
        prom.value_when(
            "imas_incidents_open{job=\"imas_open\",priority=\"medium\",status=\"open\"}",
            |v| v == 1.0,
        )
        .await,
        1.0
    );
    // The token server's 401s to the job without the token are counted too.
    assert!(
        prom.value_when(
            "sum(imas_http_requests_total{job=\"imas\",route=\"/metrics\",status=\"401\"})",
            |v| v >= 1.0,
        )
        .await
            >= 1.0
    );
    let buckets = prom
        .value_when(
            "count(imas_http_request_duration_seconds_bucket{job=\"imas\",route=\"/metrics\",status=\"200\"})",
            |_| true,
        )
        .await;
    assert_eq!(buckets, 15.0, "14 latency buckets and +Inf");
    let took = prom
        .value_when(
            "max_over_time(scrape_duration_seconds{job=\"imas\"}[1m])",
            |_| true,
        )
        .await;
    eprintln!(
        "slowest scrape of the token server: {:.1} ms",
        took * 1000.0
    );
    assert!(took < 1.0, "a scrape stays well inside its 1 s timeout");
    drop(prom);
    guarded.stop().await;
    open.stop().await;
}
