//! The webhook channel against real local endpoints:
//! - an endpoint that fails its first three calls gets the notification on
//!   retry, signed as Standard Webhooks prescribes (checked here by code of the
//!   test's own), exactly once; a redelivered job does not call it again;
//! - a receiver built on the Standard Webhooks reference library for Python
//!   (`pip install standardwebhooks`, which `.ci/run` does) accepts IMAS's
//!   calls and rejects a replayed one, a tampered one and an old one;
//! - over HTTP, against the reference server: an endpoint answering 410 is
//!   called once, the notification is a dead letter at once, an admin lists it
//!   and redrives it (a non-admin may not), and it is delivered once the
//!   endpoint is fixed.

#![cfg(all(feature = "webhook", feature = "http", feature = "sqlite"))]

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use imas::channels::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel};
use imas::memory::{MemoryQueue, MemoryStore};
use imas::model::{Notification, NotificationIntent, NotificationType, PageRequest, UserId};
use imas::ports::{
    Change, ChangeStore, Channel, ManualClock, NewJob, NotificationStore, Queue, QueueStats,
    RetryPolicy, SystemClock,
};
use imas::{Engine, EngineConfig};
use serde_json::{Value, json};

const SECRET: &[u8] = b"webhook test secret";

/// The test's own Standard Webhooks check (not IMAS's signing code): the
/// signature over `{id}.{timestamp}.{body}`, a timestamp within five minutes.
fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<String, &'static str> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(ts), Some(sigs)) = (
        get("webhook-id"),
        get("webhook-timestamp"),
        get("webhook-signature"),
    ) else {
        return Err("missing headers");
    };
    let ts: i64 = ts.parse().map_err(|_| "bad timestamp")?;
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return Err("timestamp out of tolerance");
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|_| "key")?;
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let ok = sigs.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| BASE64.decode(b).ok())
            .is_some_and(|got| got.as_slice() == &expected[..])
    });
    if ok {
        Ok(id.to_string())
    } else {
        Err("no matching signature")
    }
}

#[derive(Default)]
struct Receiver {
    calls: usize,
    accepted: Vec<(String, serde_json::Value)>,
    seen: HashSet<String>,
    bad_signatures: usize,
}

async fn endpoint() -> (String, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let shared = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = shared.clone();
            async move {
                let mut r = state.lock().expect("lock");
                r.calls += 1;
                let Ok(id) = verify(SECRET, &headers, &body) else {
                    r.bad_signatures += 1;
                    return StatusCode::UNAUTHORIZED;
                };
                if r.calls <= 3 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                if !r.seen.insert(id.clone()) {
                    return StatusCode::OK;
                }
                r.accepted
                    .push((id, serde_json::from_slice(&body).unwrap_or_default()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, state)
}

fn intent(key: &str, user: UserId) -> NotificationIntent {
    NotificationIntent {
        key: key.into(),
        user,
        message: "SLA violated for \"API\"".into(),
        kind: NotificationType::Escalation,
        incident_id: None,
        created_at: imas::model::truncate_millis(chrono::Utc::now()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_gets_the_notification_on_retry_once() {
    let (url, receiver) = endpoint().await;
    let store = Arc::new(MemoryStore::new());
    let retry = RetryPolicy {
        max_attempts: 8,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
    };
    let queue = Arc::new(MemoryQueue::new(Arc::new(SystemClock), retry));
    let webhook = WebhookChannel::new(&url, SECRET, Duration::from_secs(5)).expect("webhook");
    let engine = Engine::builder(store.clone())
        .queue(queue.clone())
        .channel(Arc::new(webhook))
        .config(EngineConfig::default())
        .build()
        .expect("engine");
    let user = UserId::new();
    let intent = intent("hook-1", user);
    store
        .commit(Change {
            outbox: vec![intent.clone()],
            ..Change::default()
        })
        .await
        .expect("commit");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run_notifier(Duration::from_millis(10), stop_rx)
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.lock().expect("lock").accepted.is_empty() {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The same intent again, as a redelivered job would bring it.
    let payload = serde_json::to_value(&intent).expect("json");
    queue
        .enqueue(vec![NewJob::new("hook-1", payload)])
        .await
        .expect("enqueue");
    // Wait until the worker has consumed it: nothing ready, delayed or in
    // flight (an acked job leaves the queue; a failed one would be delayed).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = queue.stats().await.expect("stats");
        if stats == QueueStats::default() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the redelivered job was never consumed: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    worker.await.expect("the worker task");

    let r = std::mem::take(&mut *receiver.lock().expect("lock"));
    assert_eq!(r.bad_signatures, 0, "every call was signed correctly");
    assert_eq!(
        r.calls, 4,
        "three failures, then one success, then nothing for the redelivery"
    );
    assert_eq!(r.accepted.len(), 1);
    assert_eq!(
        r.accepted[0].0, "hook-1",
        "webhook-id is the idempotency key"
    );
    assert_eq!(r.accepted[0].1["message"], "SLA violated for \"API\"");
    assert_eq!(r.accepted[0].1["type"], "escalation");
    let in_app = store
        .list_notifications(user, PageRequest::first(10))
        .await
        .expect("list");
    assert_eq!(in_app.items.len(), 1, "one in-app notification too");
    assert!(queue.dead_letters(10).await.expect("dead").is_empty());
}

#[test]
fn bad_webhook_settings_are_refused() {
    assert!(WebhookChannel::new("ftp://x", SECRET, Duration::from_secs(1)).is_err());
    assert!(
        WebhookChannel::new("https://example.com/hook", b"short", Duration::from_secs(1)).is_err()
    );
    assert!(
        WebhookChannel::new(
            "https://example.com/hook",
            b"whsec_%%%not base64%%%",
            Duration::from_secs(1)
        )
        .is_err()
    );
}

#[test]
fn the_signature_is_the_standard_webhooks_one() {
    // Computed with Python's standardwebhooks 1.1.0:
    // Webhook("whsec_" + b64encode(b"0123456789abcdef0123456789abcdef"))
    //   .sign("msg_1", datetime.fromtimestamp(1700000000, tz=timezone.utc), '{"a":1}')
    let key = WebhookChannel::signing_key(
        format!(
            "whsec_{}",
            BASE64.encode(b"0123456789abcdef0123456789abcdef")
        )
        .as_bytes(),
    )
    .expect("key");
    assert_eq!(
        WebhookChannel::signature(&key, "msg_1", 1_700_000_000, br#"{"a":1}"#),
        PYTHON_VECTOR
    );
}

const PYTHON_VECTOR: &str = "v1,rkwp5YuvdrMkcu0ZhuMsXoTg44mHAr1Q0+FFgFpXsjY=";

// ----- against the Standard Webhooks reference library ------------------------------

struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_reference_receiver(secret: &str) -> Option<(Python, String)> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let available = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            !ci,
            "python3 with standardwebhooks is needed under CI=true (pip install standardwebhooks)"
        );
        eprintln!("skipping: python3 -c 'import standardwebhooks' failed");
        return None;
    }
    let port = free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/standard_webhooks_receiver.py"
    );
    let child = Command::new("python3")
        .args([script, &port.to_string(), secret])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3");
    let python = Python(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the receiver did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((python, format!("http://127.0.0.1:{port}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_library_verifies_imas_and_rejects_replays() {
    let secret = format!("whsec_{}", BASE64.encode([0x5au8; 32]));
    let Some((_python, base)) = start_reference_receiver(&secret) else {
        return;
    };
    let url = format!("{base}/hook");
    let http = reqwest::Client::new();
    let state = || async {
        http.get(format!("{base}/state"))
            .send()
            .await
            .expect("state")
            .json::<Value>()
            .await
            .expect("json")
    };

    let store = Arc::new(MemoryStore::new());
    let webhook =
        WebhookChannel::new(&url, secret.as_bytes(), Duration::from_secs(5)).expect("webhook");
    let engine = Engine::builder(store.clone())
        .channel(Arc::new(webhook))
        .build()
        .expect("engine");
    let user = UserId::new();
    store
        .commit(Change {
            outbox: vec![intent("swh-1", user)],
            ..Change::default()
        })
        .await
        .expect("commit");
    let r = engine.flush_notifications().await.expect("flush");
    assert_eq!((r.delivered, r.failed), (1, 0), "the library accepted it");
    let s = state().await;
    assert_eq!(s["processed"].as_array().map(Vec::len), Some(1), "{s}");
    let first = s["processed"][0].clone();
    assert_eq!(first["id"], "swh-1");
    let body: Value = serde_json::from_str(first["body"].as_str().expect("body")).expect("json");
    assert_eq!(body["message"], "SLA violated for \"API\"");

    // A captured call sent again as it was: verified, but a repeated id, so
    // not processed again.
    let replay = |body: String, timestamp: String, signature: String| {
        http.post(&url)
            .header("content-type", "application/json")
            .header(ID_HEADER, "swh-1")
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
    };
    let (b, ts, sig) = (
        first["body"].as_str().expect("body").to_string(),
        first["timestamp"].as_str().expect("ts").to_string(),
        first["signature"].as_str().expect("sig").to_string(),
    );
    let again = replay(b.clone(), ts.clone(), sig.clone())
        .await
        .expect("replay");
    assert_eq!(again.status(), reqwest::StatusCode::OK);
    // Tampered with: the signature no longer matches.
    let tampered = replay(b.replace("API", "APJ"), ts.clone(), sig.clone())
        .await
        .expect("tampered");
    assert_eq!(tampered.status(), reqwest::StatusCode::UNAUTHORIZED);
    // The same call under a later timestamp (to get past the id check): the
    // signature covers the timestamp, so it fails too.
    let restamped = replay(b, (ts.parse::<i64>().expect("ts") + 1).to_string(), sig)
        .await
        .expect("restamped");
    assert_eq!(restamped.status(), reqwest::StatusCode::UNAUTHORIZED);

    // A call signed ten minutes ago (a replay held back that long) is too old:
    // the receiver refuses it and the channel reports a permanent failure.
    let clock = ManualClock::new(chrono::Utc::now() - chrono::Duration::minutes(10));
    let late = WebhookChannel::new(&url, secret.as_bytes(), Duration::from_secs(5))
        .expect("webhook")
        .with_clock(Arc::new(clock));
    let n = Notification::from_intent(&intent("swh-2", user), chrono::Utc::now());
    let to = imas::ports::Recipient {
        id: user,
        name: "Ada".into(),
        username: "ada".into(),
        email: "ada@example.com".into(),
    };
    let e = late.deliver(&n, Some(&to)).await.expect_err("too old");
    assert!(e.is_permanent(), "401 is for good: {e}");

    let s = state().await;
    assert_eq!(
        s["processed"].as_array().map(Vec::len),
        Some(1),
        "only the first call was processed: {s}"
    );
    assert_eq!(s["duplicates"], 1, "{s}");
    let rejected: Vec<&str> = s["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rejected.len(), 3, "{s}");
    assert!(rejected[2].contains("too old"), "{s}");
}

// ----- dead letters over HTTP ---------------------------------------------------------

/// An endpoint answering what `status` holds, counting calls and keeping the
/// bodies it took (2xx).
async fn switchable_endpoint() -> (String, Arc<AtomicU16>, Arc<Mutex<Vec<Value>>>) {
    let status = Arc::new(AtomicU16::new(410));
    let taken = Arc::new(Mutex::new(Vec::new()));
    let (s, t) = (status.clone(), taken.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (s, t) = (s.clone(), t.clone());
            async move {
                if verify(SECRET, &headers, &body).is_err() {
                    return StatusCode::UNAUTHORIZED;
                }
                let code = StatusCode::from_u16(s.load(Ordering::SeqCst))
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                t.lock().expect("lock").push(json!({
                    "status": code.as_u16(),
                    "body": serde_json::from_slice::<Value>(&body).unwrap_or_default(),
                }));
                code
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, status, taken)
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (reqwest::StatusCode, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_endpoint_is_dead_lettered_at_once_and_redriven_by_an_admin() {
    use reqwest::Method;
    let (hook, status, taken) = switchable_endpoint().await;
    let db = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("dead-letters-{}.db", uuid::Uuid::new_v4()));
    let vars = std::collections::HashMap::from([
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        ("JWT_SECRET", "a dead-letter test secret, 32+ bytes".into()),
        ("IMAS_ADMIN_USERNAME", "admin".into()),
        ("IMAS_ADMIN_PASSWORD", "admin password".into()),
        ("IMAS_WEBHOOK_URL", hook),
        (
            "IMAS_WEBHOOK_SECRET",
            String::from_utf8(SECRET.to_vec()).expect("utf-8"),
        ),
    ]);
    let mut config =
        imas::server::ServerConfig::from_vars(|k| vars.get(k).cloned()).expect("config");
    config.notifier_poll = Duration::from_millis(20);
    // A short relay lease: were the outbox entry left pending, the relay
    // would publish it again (and call the endpoint again) within the test.
    config.engine.outbox_lease = Duration::from_millis(200);
    let engine = imas::server::engine(&config).await.expect("engine");
    let store = engine.store().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        imas::server::serve(engine, &config, listener, async move {
            let _ = stopped.await;
        })
        .await
        .expect("serve")
    });
    let http = reqwest::Client::new();
    let (_, login) = call(
        &http,
        Method::POST,
        &format!("{base}/auth/login"),
        None,
        Some(json!({"username": "admin", "password": "admin password"})),
    )
    .await;
    let admin = login["token"].as_str().expect("admin token").to_string();
    let (code, registered) = call(
        &http,
        Method::POST,
        &format!("{base}/auth/register"),
        None,
        Some(json!({"name": "Uma", "username": "uma", "password": "uma's password", "email": "uma@example.com"})),
    )
    .await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{registered}");
    let user = registered["token"].as_str().expect("token").to_string();
    let uma = registered["id"].as_str().expect("id").to_string();

    // An incident assigned to Uma: one notification, which the endpoint refuses
    // for good.
    let (code, incident) = call(
        &http,
        Method::POST,
        &format!("{base}/incidents"),
        Some(&admin),
        Some(json!({"title": "disk full", "assignedTo": uma})),
    )
    .await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{incident}");
    let dead_letters = format!("{base}/admin/dead-letters");
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let (code, body) = call(&http, Method::GET, &dead_letters, Some(&admin), None).await;
        assert_eq!(code, reqwest::StatusCode::OK, "{body}");
        if body.as_array().is_some_and(|a| !a.is_empty()) {
            break body;
        }
        assert!(Instant::now() < deadline, "no dead letter came");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let dead = &listed[0];
    let key = dead["key"].as_str().expect("key").to_string();
    assert!(key.contains(":assigned:"), "{dead}");
    assert_eq!(
        dead["attempts"], 1,
        "dead-lettered on the first attempt: {dead}"
    );
    assert!(
        dead["error"].as_str().expect("error").contains("410"),
        "{dead}"
    );
    assert!(dead["deadAt"].is_string(), "{dead}");
    assert_eq!(dead["payload"]["user"], uma.as_str(), "{dead}");
    assert_eq!(
        store.pending_outbox().await.expect("pending"),
        0,
        "the relay will not publish it again"
    );
    // Several relay leases later the endpoint has still been called once.
    let mut leases = tokio::time::interval(Duration::from_millis(250));
    for _ in 0..4 {
        leases.tick().await;
    }
    assert_eq!(taken.lock().expect("lock").len(), 1, "one call, no retries");
    let (_, again) = call(&http, Method::GET, &dead_letters, Some(&admin), None).await;
    assert_eq!(again.as_array().map(Vec::len), Some(1), "{again}");

    // Only an admin lists or redrives; bad input is a 400; unknown keys 404.
    let redrive = format!("{base}/admin/dead-letters/{key}/redrive");
    let (code, _) = call(&http, Method::GET, &dead_letters, Some(&user), None).await;
    assert_eq!(code, reqwest::StatusCode::FORBIDDEN);
    let (code, _) = call(&http, Method::POST, &redrive, Some(&user), None).await;
    assert_eq!(code, reqwest::StatusCode::FORBIDDEN);
    let (code, _) = call(&http, Method::GET, &dead_letters, None, None).await;
    assert_eq!(code, reqwest::StatusCode::UNAUTHORIZED);
    let (code, body) = call(
        &http,
        Method::GET,
        &format!("{dead_letters}?limit=0"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "limit", "{body}");
    let (code, _) = call(
        &http,
        Method::POST,
        &format!("{dead_letters}/no-such-key/redrive"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, reqwest::StatusCode::NOT_FOUND);

    // Fixed endpoint, redrive: delivered once, no dead letter left, audited.
    status.store(204, Ordering::SeqCst);
    let (code, body) = call(&http, Method::POST, &redrive, Some(&admin), None).await;
    assert_eq!(code, reqwest::StatusCode::ACCEPTED, "{body}");
    until("the redriven delivery", || async {
        taken.lock().expect("lock").len() >= 2
    })
    .await;
    let calls = taken.lock().expect("lock").clone();
    assert_eq!(calls[1]["status"], 204);
    assert_eq!(calls[1]["body"]["incidentId"], incident["id"]);
    assert_eq!(calls[1]["body"]["user"], uma.as_str());
    let (_, after) = call(&http, Method::GET, &dead_letters, Some(&admin), None).await;
    assert_eq!(after, json!([]));
    let (code, _) = call(&http, Method::POST, &redrive, Some(&admin), None).await;
    assert_eq!(code, reqwest::StatusCode::NOT_FOUND, "redriven already");
    let (_, audit) = call(
        &http,
        Method::GET,
        &format!("{base}/audit?action=DEAD_LETTER_REDRIVEN"),
        Some(&admin),
        None,
    )
    .await;
    let entries = audit.as_array().expect("audit");
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["target"], key.as_str());
    let (_, notes) = call(
        &http,
        Method::GET,
        &format!("{base}/notifications"),
        Some(&user),
        None,
    )
    .await;
    assert_eq!(
        notes.as_array().map(Vec::len),
        Some(1),
        "one in-app notification: {notes}"
    );
    let mut settle = tokio::time::interval(Duration::from_millis(250));
    for _ in 0..3 {
        settle.tick().await;
    }
    assert_eq!(taken.lock().expect("lock").len(), 2, "and nothing more");

    let _ = stop.send(());
    server.await.expect("the server task");
}
