//! Browser tests of the web console (SPEC §6, issue 19): a real `imas-server`
//! process on SQLite, seeded through the JSON API with users of each role, a
//! service, a rotation, a schedule, an escalation policy and incidents; then
//! the node tests in `tests/console/` (Debian's Chromium driven by
//! `playwright-core`, axe-core on every page) run against it, with the server's
//! URL, the credentials and the seeded ids in environment variables. This test
//! passes when they all pass; on failure it shows what node printed.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium`; `IMAS_CHROMIUM` names
//! another), `node` on `PATH` and `npm ci` run in `tests/console` (no browser
//! download). Without them it skips, saying so, when run by hand, and fails
//! under `CI=true` (`.ci/run` installs them). Screenshots of every page go to
//! `target/console-screenshots/`.

#![cfg(all(feature = "http", feature = "sqlite", feature = "server-bin"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DurationRound, Utc};
use common::node::{self, Node};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("admin", "admin password of the console test");
const ENGINEER: (&str, &str) = ("grace", "debugging is fun");
const SECOND_ENGINEER: (&str, &str) = ("alan", "turing complete");
const USER: (&str, &str) = ("ursula", "reporting words 7");
/// The critical resolution target the server runs with, so that a breach
/// happens during the test.
const CRITICAL_SLA_SECONDS: u64 = 4;
/// How long the node tests may take in all.
const NODE_DEADLINE: Duration = Duration::from_secs(600);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// What the browser tests need and is missing here, if anything.
fn missing() -> Option<String> {
    let chromium = std::env::var("IMAS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} is not installed (Debian's package: apt-get install chromium)"
        ));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("node is not on PATH".into());
    }
    for module in ["playwright-core", "axe-core"] {
        if !console_dir().join("node_modules").join(module).exists() {
            return Some(format!(
                "tests/console/node_modules/{module} is missing (run `npm ci` in tests/console)"
            ));
        }
    }
    None
}

async fn start() -> Node {
    let db = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("console-browser-{}.db", uuid::Uuid::new_v4()));
    node::start_alone(&[
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        (
            "JWT_SECRET",
            "a console browser test secret, 32+ bytes".to_string(),
        ),
        ("IMAS_ADMIN_USERNAME", ADMIN.0.to_string()),
        ("IMAS_ADMIN_PASSWORD", ADMIN.1.to_string()),
        (
            "IMAS_SLA_POLICY",
            format!("critical={CRITICAL_SLA_SECONDS}s"),
        ),
    ])
    .await
}

/// The JSON API, as a script would call it.
struct Api {
    http: Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A POST that must answer `expected`; its body.
    async fn post(&self, path: &str, token: Option<&str>, body: Value, expected: u16) -> Value {
        let (s, v) = self.call(Method::POST, path, token, Some(body)).await;
        assert_eq!(s.as_u16(), expected, "POST {path}: {v}");
        v
    }

    async fn token(&self, (username, password): (&str, &str)) -> String {
        let v = self
            .post(
                "/auth/login",
                None,
                json!({"username": username, "password": password}),
                200,
            )
            .await;
        v["token"].as_str().expect("token").to_string()
    }

    /// Registers a user and gives it `role` (as the admin); its id.
    async fn user(&self, admin: &str, (username, password): (&str, &str), role: &str) -> String {
        let v = self
            .post(
                "/auth/register",
                None,
                json!({
                    "name": format!("{}{}", username[..1].to_uppercase(), &username[1..]),
                    "username": username,
                    "password": password,
                    "email": format!("{username}@example.com"),
                }),
                201,
            )
            .await;
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
        id
    }
}

/// What the node tests get to start from: users of each role, on-call data,
/// a service and incidents. Returns the seeded ids as JSON.
async fn seed(api: &Api) -> Value {
    let admin = api.token(ADMIN).await;
    let grace = api.user(&admin, ENGINEER, "engineer").await;
    let alan = api.user(&admin, SECOND_ENGINEER, "engineer").await;
    let ursula = api.user(&admin, USER, "user").await;
    let grace_token = api.token(ENGINEER).await;
    let ursula_token = api.token(USER).await;

    let now = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("minute");
    let rotation = api
        .post(
            "/rotations",
            Some(&admin),
            json!({"name": "checkout primary", "type": "weekly", "start": now.to_rfc3339(),
                   "timeZone": "Europe/Berlin", "participants": [grace, alan]}),
            201,
        )
        .await;
    let schedule = api
        .post(
            "/schedules",
            Some(&admin),
            json!({"name": "checkout on call", "timeZone": "Europe/Berlin",
                   "rules": [{"target": {"type": "rotation", "id": rotation["id"]},
                              "start": "00:00", "end": "00:00"}]}),
            201,
        )
        .await;
    let policy = api
        .post(
            "/escalation-policies",
            Some(&admin),
            json!({"name": "checkout escalation", "repeat": 0, "steps": [
                {"delayMinutes": 5, "targets": [{"type": "schedule", "id": schedule["id"]}]},
                {"delayMinutes": 10, "targets": [{"type": "role", "role": "admin"}]}]}),
            201,
        )
        .await;
    let service = api
        .post(
            "/services",
            Some(&admin),
            json!({"name": "checkout", "description": "the shop checkout",
                   "escalationPolicyId": policy["id"]}),
            201,
        )
        .await;
    // An alert through an Events v2 key: an incident with an alert and labels.
    let key = api
        .post(
            &format!(
                "/services/{}/integrations",
                service["id"].as_str().expect("id")
            ),
            Some(&admin),
            json!({"name": "monitoring", "kind": "events-v2"}),
            201,
        )
        .await;
    api.post(
        "/v2/enqueue",
        None,
        json!({"routing_key": key["key"], "event_action": "trigger", "dedup_key": "checkout/502",
               "payload": {"summary": "Checkout returns 502", "source": "lb-1", "severity": "error",
                           "custom_details": {"region": "eu-west-1", "upstream": "payments"}}}),
        202,
    )
    .await;
    let engineer_incident = api
        .post(
            "/incidents",
            Some(&grace_token),
            json!({"title": "Search latency above 2 s", "description": "p99 of /search", "priority": "medium"}),
            201,
        )
        .await;
    // Assigned to Grace by the admin: a notification for her.
    api.post(
        "/incidents",
        Some(&admin),
        json!({"title": "Certificate of api.example.com expires in 3 days", "priority": "low",
               "assignedTo": grace}),
        201,
    )
    .await;
    let user_incident = api
        .post(
            "/incidents",
            Some(&ursula_token),
            json!({"title": "I cannot download my invoice", "priority": "low"}),
            201,
        )
        .await;
    json!({
        "users": {"engineer": grace, "secondEngineer": alan, "user": ursula},
        "serviceId": service["id"],
        "scheduleId": schedule["id"],
        "policyId": policy["id"],
        "policyName": "checkout escalation",
        "engineerIncident": engineer_incident["id"],
        "userIncident": user_incident["id"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    if let Some(why) = missing() {
        assert!(
            !ci(),
            "the browser tests must run under CI=true, but {why}; .ci/run installs them"
        );
        eprintln!("skipping the console browser tests: {why}");
        return;
    }
    let server = start().await;
    let api = Api {
        http: Client::new(),
        base: server.base.clone(),
    };
    let seeded = seed(&api).await;
    let credentials = json!({
        "admin": {"username": ADMIN.0, "password": ADMIN.1},
        "engineer": {"username": ENGINEER.0, "password": ENGINEER.1},
        "secondEngineer": {"username": SECOND_ENGINEER.0, "password": SECOND_ENGINEER.1},
        "user": {"username": USER.0, "password": USER.1},
    });
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let screenshots = target.join("console-screenshots");
    std::fs::create_dir_all(&screenshots).expect("screenshot folder");
    let log = target.join("tmp").join(format!(
        "console-browser-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let out = std::fs::File::create(&log).expect("log file");
    let mut node = Command::new("node")
        .args([
            "--test",
            "--test-concurrency=1",
            "--test-reporter=spec",
            "console.test.mjs",
        ])
        .current_dir(console_dir())
        .env("IMAS_URL", &server.base)
        .env("IMAS_CONSOLE_USERS", credentials.to_string())
        .env("IMAS_CONSOLE_SEED", seeded.to_string())
        .env("IMAS_SCREENSHOTS", &screenshots)
        .env(
            "IMAS_CRITICAL_SLA_SECONDS",
            CRITICAL_SLA_SECONDS.to_string(),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("spawn node");
    let deadline = Instant::now() + NODE_DEADLINE;
    let status = loop {
        if let Some(status) = node.try_wait().expect("node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = node.kill();
            let _ = node.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    match status {
        Some(s) if s.success() => {
            eprintln!("{output}");
            eprintln!("screenshots in {}", screenshots.display());
        }
        Some(s) => panic!("the browser tests failed ({s}):\n{output}"),
        None => panic!("the browser tests took longer than {NODE_DEADLINE:?}:\n{output}"),
    }
    drop(server);
}
