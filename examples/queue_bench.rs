//! Run with: cargo run --release --example queue_bench -- [redis://127.0.0.1:6379]
//!
//! The shape of the BullMQ reference measured for issue 5, on `RedisQueue`:
//! 50,000 jobs of about 200 bytes; enqueue one at a time and in batches of 1,000;
//! processing with concurrency 1 and 50 (up to that many jobs in flight; the
//! finished ones are acked and replaced in one round trip); and
//! enqueue-to-handler latency at 1,000 jobs/s (p50, p99). Keys go under a fresh prefix, deleted at the end.
//! With `IMAS_SMOKE=1`: 2,000 jobs and 500 latency samples, the same checks (for CI).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, StreamExt, stream::FuturesUnordered};
use imas::ports::{Job, NewJob, Queue, RetryPolicy, SystemClock};
use imas::queue_redis::RedisQueue;

/// Jobs per phase and latency samples: the benchmark's, or a smoke run's.
fn sizes() -> (usize, usize) {
    if std::env::var("IMAS_SMOKE").is_ok_and(|v| v == "1") {
        (2_000, 500)
    } else {
        (50_000, 5_000)
    }
}

fn job(n: usize) -> NewJob {
    // About 200 bytes stored per job.
    let payload = serde_json::json!({
        "user": "0190f3c2-7b1e-7c3a-9d4e-1f2a3b4c5d6e",
        "message": "SLA violated for \"Checkout returns 502 on the payment page\"",
        "n": n,
    });
    NewJob::new(format!("bench:{n}"), payload)
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default()
}

/// A worker with up to `concurrency` jobs in flight, handled concurrently
/// within the worker's task (here by a handler that does nothing), as a Node
/// worker's handlers share its event loop: the jobs finished meanwhile are
/// handed back, and as many new ones taken, in one round trip. Returns the
/// time taken and the number of distinct jobs handled (each acked once).
async fn drain(queue: Arc<RedisQueue>, concurrency: usize) -> (Duration, usize) {
    let start = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let visibility = Duration::from_secs(60);
    let mut handlers = FuturesUnordered::new();
    let mut finished: Vec<Job> = Vec::new();
    loop {
        let free = concurrency - handlers.len();
        let (acked, jobs) = queue
            .ack_and_reserve(&finished, free, visibility)
            .await
            .expect("ack and reserve");
        assert!(acked.iter().all(|a| *a), "every finished job is acked");
        finished.clear();
        for job in jobs {
            assert!(
                seen.insert(job.key.clone()),
                "job {} handed out twice",
                job.key
            );
            handlers.push(async move { job });
        }
        // Nothing in flight and nothing reserved: the queue is drained.
        let Some(done) = handlers.next().await else {
            break;
        };
        finished.push(done);
        while let Some(Some(done)) = handlers.next().now_or_never() {
            finished.push(done);
        }
    }
    (start.elapsed(), seen.len())
}

/// The rate of a drain, after checking it handled every job enqueued.
fn processed(expected: usize, (took, handled): (Duration, usize)) -> f64 {
    assert_eq!(handled, expected, "jobs handled by the drain");
    handled as f64 / took.as_secs_f64()
}

#[tokio::main]
async fn main() {
    // Host code calls the queue from tasks on the runtime's workers.
    tokio::spawn(run()).await.expect("benchmark");
}

async fn run() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let prefix = format!("imas-bench:{}", uuid::Uuid::new_v4().simple());
    let queue = Arc::new(
        RedisQueue::connect_with_prefix(
            &url,
            &prefix,
            Arc::new(SystemClock),
            RetryPolicy::default(),
        )
        .await
        .expect("redis"),
    );
    let (n_jobs, samples) = sizes();
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();

    let t = Instant::now();
    let mut enqueued = 0;
    for n in 0..n_jobs {
        enqueued += queue.enqueue(vec![job(n)]).await.expect("enqueue");
    }
    let one = rate(n_jobs, t.elapsed());
    assert_eq!(enqueued, n_jobs, "every job enqueued (keys are distinct)");
    let c1 = processed(n_jobs, drain(queue.clone(), 1).await);

    let t = Instant::now();
    let mut enqueued = 0;
    for chunk in (0..n_jobs).collect::<Vec<_>>().chunks(1_000) {
        enqueued += queue
            .enqueue(chunk.iter().map(|n| job(*n)).collect())
            .await
            .expect("enqueue");
    }
    let batch = rate(n_jobs, t.elapsed());
    assert_eq!(enqueued, n_jobs, "every job enqueued again once drained");
    let c50 = processed(n_jobs, drain(queue.clone(), 50).await);

    // Latency at 1,000 jobs/s: a consumer blocked in wait() and reserve.
    let consumer = {
        let q = queue.clone();
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(samples);
            while lat.len() < samples {
                let jobs = q
                    .reserve(50, Duration::from_secs(60))
                    .await
                    .expect("reserve");
                if jobs.is_empty() {
                    q.wait(Duration::from_millis(100)).await;
                    continue;
                }
                let now = micros_now();
                for j in &jobs {
                    let sent = j.payload["sent"].as_u64().unwrap_or_default() as u128;
                    lat.push(now.saturating_sub(sent) as u64);
                    q.ack(j).await.expect("ack");
                }
            }
            lat
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for n in 0..samples {
        tick.tick().await;
        let mut j = job(n);
        j.payload["sent"] = serde_json::json!(micros_now() as u64);
        queue.enqueue(vec![j]).await.expect("enqueue");
    }
    let mut lat = consumer.await.expect("consumer");
    assert_eq!(lat.len(), samples, "latency samples");
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0;

    println!(
        "| enqueue one at a time | enqueue in batches of 1,000 | process, concurrency 1 | process, concurrency 50 | latency p50 | latency p99 |"
    );
    println!(
        "| {one:.0} jobs/s | {batch:.0} jobs/s | {c1:.0} jobs/s | {c50:.0} jobs/s | {:.2} ms | {:.2} ms |",
        p(0.5),
        p(0.99)
    );

    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
    }
}
