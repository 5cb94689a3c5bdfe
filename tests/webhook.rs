//! The webhook channel against a real local endpoint that fails its first three
//! calls: the notification arrives on retry, signed, exactly once; a redelivered
//! job does not call the endpoint again.

#![cfg(all(feature = "webhook", feature = "http"))]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use imas::channels::{KEY_HEADER, SIGNATURE_HEADER, WebhookChannel};
use imas::memory::{MemoryQueue, MemoryStore};
use imas::model::{NotificationIntent, NotificationType, PageRequest, UserId};
use imas::ports::{
    Change, ChangeStore, NewJob, NotificationStore, Queue, RetryPolicy, SystemClock,
};
use imas::{Engine, EngineConfig};

const SECRET: &[u8] = b"webhook test secret";

#[derive(Default)]
struct Receiver {
    calls: usize,
    accepted: Vec<(String, serde_json::Value)>,
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
                let signature = headers
                    .get(SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if signature != WebhookChannel::signature(SECRET, &body) {
                    r.bad_signatures += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                if r.calls <= 3 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let key = headers
                    .get(KEY_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                r.accepted
                    .push((key, serde_json::from_slice(&body).unwrap_or_default()));
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
    let intent = NotificationIntent {
        key: "hook-1".into(),
        user,
        message: "SLA violated for \"API\"".into(),
        kind: NotificationType::Escalation,
        incident_id: None,
        created_at: imas::model::truncate_millis(chrono::Utc::now()),
    };
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
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let _ = worker.await;

    let r = std::mem::take(&mut *receiver.lock().expect("lock"));
    assert_eq!(r.bad_signatures, 0, "every call was signed correctly");
    assert_eq!(
        r.calls, 4,
        "three failures, then one success, then nothing for the redelivery"
    );
    assert_eq!(r.accepted.len(), 1);
    assert_eq!(r.accepted[0].0, "hook-1");
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
}
