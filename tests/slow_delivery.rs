//! Exactly-once delivery through a channel slower than the job's visibility and
//! the outbox lease: a real webhook endpoint that takes longer to answer than
//! either, two workers (engines) sharing one store and one queue, on the
//! in-process queue and on Redis (`REDIS_URL`). The worker that holds a job keeps
//! it reserved while it delivers, and the relay's re-publication of the still
//! pending outbox entry does not enqueue a second job of the same key, so every
//! notification reaches the endpoint once.

#![cfg(all(feature = "webhook", feature = "redis"))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use imas::channels::WebhookChannel;
use imas::memory::{MemoryQueue, MemoryStore};
use imas::model::{NotificationIntent, NotificationType, UserId};
use imas::ports::{
    Change, ChangeStore, OutboxStore, Queue, QueueStats, RetryPolicy, Store, SystemClock,
};
use imas::queue_redis::RedisQueue;
use imas::testkit::service_url;
use imas::{Engine, EngineConfig};

const SECRET: &[u8] = b"slow webhook test secret";
/// How long the endpoint takes to answer: more than twice the visibility.
const ANSWER_AFTER: Duration = Duration::from_millis(2_500);

/// Calls per `webhook-id`, counted when they arrive (so two overlapping calls
/// count twice even before either is answered).
type Calls = Arc<Mutex<HashMap<String, u32>>>;

async fn slow_endpoint() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_string();
                *seen.lock().expect("lock").entry(id).or_default() += 1;
                tokio::time::sleep(ANSWER_AFTER).await;
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (url, calls)
}

fn config() -> EngineConfig {
    EngineConfig {
        // Both far below the endpoint's answer time.
        job_visibility: Duration::from_millis(900),
        outbox_lease: Duration::from_millis(900),
        ..EngineConfig::default()
    }
}

fn intent(n: usize, user: UserId) -> NotificationIntent {
    NotificationIntent {
        key: format!("slow-{n}"),
        user,
        message: format!("notification {n}"),
        kind: NotificationType::Info,
        incident_id: None,
        created_at: imas::model::truncate_millis(chrono::Utc::now()),
    }
}

/// Two workers over `queues` (one per worker, sharing the jobs) deliver two
/// intents through the slow endpoint; each arrives once.
async fn each_notification_is_sent_once(queues: [Arc<dyn Queue>; 2]) {
    let (url, calls) = slow_endpoint().await;
    let store = Arc::new(MemoryStore::new());
    let user = UserId::new();
    store
        .commit(Change {
            outbox: vec![intent(1, user), intent(2, user)],
            ..Change::default()
        })
        .await
        .expect("commit");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for queue in &queues {
        let webhook = WebhookChannel::new(&url, SECRET, Duration::from_secs(10)).expect("webhook");
        let engine = Engine::builder(store.clone() as Arc<dyn Store>)
            .queue(queue.clone())
            .channel(Arc::new(webhook))
            .config(config())
            .build()
            .expect("engine");
        let stop = stop_rx.clone();
        workers.push(tokio::spawn(async move {
            engine.run_notifier(Duration::from_millis(20), stop).await
        }));
    }
    // Done when the outbox has nothing pending and the queue nothing at all:
    // no delivery is in flight any more, so none can come after.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = store.pending_outbox().await.expect("pending");
        let stats = queues[0].stats().await.expect("stats");
        if pending == 0 && stats == QueueStats::default() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered in 60 s: {pending} pending, {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    for w in workers {
        w.await.expect("worker ran to its end");
    }
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(
        calls,
        HashMap::from([("slow-1".to_string(), 1), ("slow-2".to_string(), 1)]),
        "each notification reached the endpoint exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_slower_than_the_lease_is_called_once_in_process() {
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(
        Arc::new(SystemClock),
        RetryPolicy::default(),
    ));
    each_notification_is_sent_once([queue.clone(), queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_slower_than_the_lease_is_called_once_on_redis() {
    let Some(url) = service_url("REDIS_URL") else {
        return;
    };
    let prefix = format!("imas-test:{}", uuid::Uuid::new_v4().simple());
    let mut queues = Vec::new();
    for _ in 0..2 {
        let q = RedisQueue::connect_with_prefix(
            &url,
            &prefix,
            Arc::new(SystemClock),
            RetryPolicy::default(),
        )
        .await
        .expect("connect");
        queues.push(Arc::new(q) as Arc<dyn Queue>);
    }
    let [a, b] = <[Arc<dyn Queue>; 2]>::try_from(queues).expect("two queues");
    each_notification_is_sent_once([a, b]).await;
}
