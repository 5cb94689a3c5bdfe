//! Redis-specific promises: acked jobs leave nothing behind (memory stays flat),
//! two queue handles (two nodes) share the work without duplicates, and calls
//! carrying more jobs than one script takes are split or capped, not refused.

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
        ("state", "HLEN"),
        ("keys", "HLEN"),
    ] {
        let n: i64 = redis::cmd(kind)
            .arg(format!("{prefix}:{key}"))
            .query_async(&mut conn)
            .await
            .expect("len");
        assert_eq!(n, 0, "{key} is empty after every job was acked");
    }
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:wake"))
        .query_async(&mut conn)
        .await
        .expect("del");
}

#[tokio::test]
async fn big_batches_are_split_or_capped() {
    let Some((a, _b, url, prefix)) = pair().await else {
        return;
    };
    let n = 2_500;
    a.enqueue(
        (0..n)
            .map(|i| NewJob::new(format!("k{i}"), serde_json::json!({ "i": i })))
            .collect(),
    )
    .await
    .expect("enqueue 2,500 in one call");
    let mut taken = Vec::new();
    loop {
        let batch = a
            .reserve(n, Duration::from_secs(30))
            .await
            .expect("reserve");
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 1_000, "a reservation is capped");
        taken.extend(batch);
    }
    let keys: Vec<String> = taken.iter().map(|j| j.key.clone()).collect();
    let expected: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    assert_eq!(keys, expected, "all handed out once, in enqueue order");
    // One stale copy in the middle of a 2,501-job hand-back.
    let mut done = taken.clone();
    done.insert(1_700, taken[3].clone());
    let (acked, more) = a
        .ack_and_reserve(&done, 10, Duration::from_secs(30))
        .await
        .expect("ack 2,501");
    assert_eq!(acked.len(), n + 1);
    assert_eq!(acked.iter().filter(|a| !**a).count(), 1);
    assert!(!acked[1_700], "the repeat acks nothing");
    assert!(more.is_empty());

    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let left: i64 = redis::cmd("HLEN")
        .arg(format!("{prefix}:jobs"))
        .query_async(&mut conn)
        .await
        .expect("len");
    assert_eq!(left, 0);
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:wake"))
        .query_async(&mut conn)
        .await
        .expect("del");
}
