//! Redis-specific promises: acked jobs leave nothing behind (memory stays flat),
//! and two queue handles (two nodes) share the work without duplicates.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use imas_core::ports::{ManualClock, NewJob, Queue};
use imas_core::testkit::queue::RETRY;
use imas_core::testkit::service_url;
use imas_core::testkit::store::t0;
use imas_queue_redis::RedisQueue;

async fn pair() -> Option<(RedisQueue, RedisQueue, String, String)> {
    let url = service_url("REDIS_URL")?;
    let prefix = format!("imas-test:{}", uuid::Uuid::new_v4().simple());
    let clock = Arc::new(ManualClock::new(t0()));
    let a = RedisQueue::connect_with_prefix(&url, &prefix, clock.clone(), RETRY)
        .await
        .expect("a");
    let b = RedisQueue::connect_with_prefix(&url, &prefix, clock, RETRY)
        .await
        .expect("b");
    Some((a, b, url, prefix))
}

async fn work(q: &dyn Queue) -> Vec<String> {
    let mut mine = Vec::new();
    loop {
        let batch = q
            .reserve(25, Duration::from_secs(30))
            .await
            .expect("reserve");
        if batch.is_empty() {
            return mine;
        }
        for j in batch {
            assert!(q.ack(&j).await.expect("ack"));
            mine.push(j.key);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_jobs_leave_nothing_behind_and_nodes_share_work() {
    let Some((a, b, url, prefix)) = pair().await else {
        return;
    };
    let jobs: Vec<NewJob> = (0..1_000)
        .map(|n| NewJob::new(format!("k{n}"), serde_json::json!({ "n": n })))
        .collect();
    a.enqueue(jobs).await.expect("enqueue");
    let (ka, kb) = tokio::join!(work(&a), work(&b));
    let mut seen = HashSet::new();
    for k in ka.iter().chain(kb.iter()) {
        assert!(seen.insert(k.clone()), "{k} handed out twice");
    }
    assert_eq!(seen.len(), 1_000);
    assert!(!ka.is_empty() && !kb.is_empty(), "both nodes took work");

    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    for (key, kind) in [
        ("sched", "ZCARD"),
        ("jobs", "HLEN"),
        ("attempts", "HLEN"),
        ("tokens", "HLEN"),
    ] {
        let n: i64 = redis::cmd(kind)
            .arg(format!("{prefix}:{key}"))
            .query_async(&mut conn)
            .await
            .expect("len");
        assert_eq!(n, 0, "{key} is empty after every job was acked");
    }
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:seq"))
        .query_async(&mut conn)
        .await
        .expect("del");
}
