//! The queue contract. Each function takes a fresh, empty queue that reads time
//! from `clock` and retries with [`RETRY`].

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use crate::ports::{FailOutcome, Job, ManualClock, NewJob, Queue, QueueStats, RetryPolicy};

/// The retry policy the queue under test must use.
pub const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base: Duration::from_secs(1),
    cap: Duration::from_secs(3),
};

const VISIBILITY: Duration = Duration::from_secs(30);

fn job(n: usize) -> NewJob {
    NewJob::new(
        format!("job-{n}"),
        json!({ "n": n, "text": "payload with \"quotes\" and é" }),
    )
}

async fn reserve(queue: &dyn Queue, max: usize) -> Vec<Job> {
    queue.reserve(max, VISIBILITY).await.expect("reserve")
}

/// Enqueued jobs are reserved oldest first with their payload and attempt 1;
/// reserved jobs are invisible; an ack removes a job once.
pub async fn enqueue_reserve_ack(queue: &dyn Queue, clock: &ManualClock) {
    let _ = clock;
    queue
        .enqueue(vec![job(0), job(1), job(2)])
        .await
        .expect("enqueue");
    queue.enqueue(vec![job(3)]).await.expect("enqueue");
    assert_eq!(
        queue.stats().await.expect("stats"),
        QueueStats {
            ready: 4,
            ..Default::default()
        }
    );
    let jobs = reserve(queue, 3).await;
    assert_eq!(
        jobs.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        ["job-0", "job-1", "job-2"]
    );
    assert_eq!(jobs[1].payload, job(1).payload, "payload round-trips");
    assert!(jobs.iter().all(|j| j.attempt == 1));
    let tokens: HashSet<&str> = jobs.iter().map(|j| j.token.as_str()).collect();
    assert_eq!(tokens.len(), 3, "each reservation has its own token");
    assert_eq!(
        reserve(queue, 10)
            .await
            .iter()
            .map(|j| j.key.as_str())
            .collect::<Vec<_>>(),
        ["job-3"]
    );
    assert!(
        reserve(queue, 10).await.is_empty(),
        "reserved jobs are invisible"
    );
    assert_eq!(
        queue.stats().await.expect("stats"),
        QueueStats {
            in_flight: 4,
            ..Default::default()
        }
    );
    for j in &jobs {
        assert!(queue.ack(j).await.expect("ack"));
        assert!(!queue.ack(j).await.expect("ack"), "a second ack is stale");
    }
    assert_eq!(
        queue.stats().await.expect("stats"),
        QueueStats {
            in_flight: 1,
            ..Default::default()
        }
    );
    // wait() returns at once when a job is ready.
    queue.enqueue(vec![job(4)]).await.expect("enqueue");
    tokio::time::timeout(Duration::from_secs(5), queue.wait(Duration::from_secs(60)))
        .await
        .expect("wait returns when a job is ready");
}

/// A reserved job that is neither acked nor failed within the visibility timeout
/// is handed out again (its worker died), with a new token and attempt 2; the old
/// reservation can no longer ack it.
pub async fn visibility_timeout_redelivers(queue: &dyn Queue, clock: &ManualClock) {
    queue.enqueue(vec![job(0)]).await.expect("enqueue");
    let first = reserve(queue, 1).await.pop().expect("a job");
    clock.advance(VISIBILITY - Duration::from_millis(1));
    assert!(
        reserve(queue, 1).await.is_empty(),
        "still invisible before the timeout"
    );
    clock.advance(Duration::from_millis(2));
    let second = reserve(queue, 1)
        .await
        .pop()
        .expect("handed out again after the timeout");
    assert_eq!(second.key, first.key);
    assert_eq!(second.attempt, 2);
    assert_ne!(second.token, first.token);
    assert!(
        !queue.ack(&first).await.expect("ack"),
        "the dead worker's reservation is stale"
    );
    assert!(queue.ack(&second).await.expect("ack"));
    clock.advance(VISIBILITY * 2);
    assert!(
        reserve(queue, 1).await.is_empty(),
        "an acked job never returns"
    );
}

/// A failed job comes back after exponential backoff (capped); after the last
/// attempt it is dead-lettered with its error, the others keep flowing, and a
/// redrive makes it ready again with fresh attempts.
pub async fn retry_backoff_and_dead_letter(queue: &dyn Queue, clock: &ManualClock) {
    assert_eq!(RETRY.backoff(1), Duration::from_secs(1));
    assert_eq!(RETRY.backoff(2), Duration::from_secs(2));
    assert_eq!(RETRY.backoff(3), Duration::from_secs(3), "capped");
    queue.enqueue(vec![job(0), job(1)]).await.expect("enqueue");
    // The healthy job, each time it was handed out while the poison job waited
    // out its backoff, and whether its ack took.
    let mut healthy: Vec<(u32, bool)> = Vec::new();
    let mut delay = Duration::ZERO;
    for attempt in 1..=RETRY.max_attempts {
        clock.advance(delay);
        let jobs = reserve(queue, 1).await;
        let poison = jobs.first().expect("the poison job is ready");
        assert_eq!((poison.key.as_str(), poison.attempt), ("job-0", attempt));
        let outcome = queue
            .fail(poison, &format!("boom {attempt}"))
            .await
            .expect("fail");
        if attempt < RETRY.max_attempts {
            delay = RETRY.backoff(attempt);
            let FailOutcome::Retry { at } = outcome else {
                panic!("attempt {attempt} must retry, got {outcome:?}")
            };
            assert_eq!(
                at,
                crate::model::plus(crate::ports::Clock::now(clock), delay)
            );
            clock.advance(delay - Duration::from_millis(1));
            let early = reserve(queue, 10).await;
            assert!(
                early.iter().all(|j| j.key != "job-0"),
                "not before its backoff"
            );
            for j in early {
                assert_eq!(j.key, "job-1", "only the healthy job is there: {j:?}");
                healthy.push((j.attempt, queue.ack(&j).await.expect("ack")));
            }
            delay = Duration::from_millis(1);
        } else {
            assert_eq!(outcome, FailOutcome::DeadLettered);
        }
    }
    assert_eq!(
        healthy,
        [(1, true)],
        "the others keep flowing: the healthy job was handed out during the \
         poison job's first backoff, once, and acked"
    );
    let dead = queue.dead_letters(10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].key.as_str(),
            dead[0].attempts,
            dead[0].error.as_str()
        ),
        ("job-0", RETRY.max_attempts, "boom 3")
    );
    assert_eq!(dead[0].payload, job(0).payload);
    clock.advance(Duration::from_secs(60));
    assert!(
        reserve(queue, 10).await.is_empty(),
        "a dead job is not handed out; the healthy one was acked"
    );
    assert_eq!(queue.stats().await.expect("stats").dead, 1);

    assert!(queue.redrive("job-0").await.expect("redrive"));
    assert!(
        !queue.redrive("job-0").await.expect("redrive"),
        "already redriven"
    );
    assert!(!queue.redrive("nope").await.expect("redrive"));
    let again = reserve(queue, 10).await;
    assert_eq!(
        again
            .iter()
            .map(|j| (j.key.as_str(), j.attempt))
            .collect::<Vec<_>>(),
        [("job-0", 1)]
    );
    assert!(queue.dead_letters(10).await.expect("dead").is_empty());
}

/// A delayed job is not handed out before its time.
pub async fn delayed_jobs(queue: &dyn Queue, clock: &ManualClock) {
    let mut later = job(1);
    later.delay = Duration::from_secs(10);
    queue.enqueue(vec![later, job(0)]).await.expect("enqueue");
    assert_eq!(
        queue.stats().await.expect("stats"),
        QueueStats {
            ready: 1,
            delayed: 1,
            ..Default::default()
        }
    );
    let now = reserve(queue, 10).await;
    assert_eq!(
        now.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        ["job-0"]
    );
    clock.advance(Duration::from_millis(9_999));
    assert!(reserve(queue, 10).await.is_empty());
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        reserve(queue, 10)
            .await
            .iter()
            .map(|j| j.key.as_str())
            .collect::<Vec<_>>(),
        ["job-1"]
    );
}

/// Concurrent reservers together receive every job exactly once.
pub async fn concurrent_reservers_share_nothing(queue: &dyn Queue, clock: &ManualClock) {
    let _ = clock;
    queue
        .enqueue((0..200).map(job).collect())
        .await
        .expect("enqueue");
    let got = join_all((0..5).map(|_| async move {
        let mut mine = Vec::new();
        loop {
            let batch = queue.reserve(9, VISIBILITY).await.expect("reserve");
            if batch.is_empty() {
                return mine;
            }
            for j in batch {
                queue.ack(&j).await.expect("ack");
                mine.push(j.key);
            }
        }
    }))
    .await;
    let mut seen = HashSet::new();
    for key in got.into_iter().flatten() {
        assert!(
            seen.insert(key.clone()),
            "{key} was handed to two reservers"
        );
    }
    assert_eq!(seen.len(), 200, "every job was delivered");
}

/// A stale reservation can neither ack nor fail the job: the live reservation
/// keeps it.
pub async fn stale_reservations_change_nothing(queue: &dyn Queue, clock: &ManualClock) {
    queue.enqueue(vec![job(0)]).await.expect("enqueue");
    let stale = reserve(queue, 1).await.pop().expect("job");
    clock.advance(VISIBILITY + Duration::from_secs(1));
    let live = reserve(queue, 1).await.pop().expect("job again");
    assert_eq!(
        queue.fail(&stale, "late failure").await.expect("fail"),
        FailOutcome::Stale
    );
    assert!(!queue.ack(&stale).await.expect("ack"));
    assert!(
        reserve(queue, 1).await.is_empty(),
        "the live reservation still holds it"
    );
    assert!(queue.ack(&live).await.expect("ack"));
    let forged = Job {
        token: "not-a-token".into(),
        ..live
    };
    assert_eq!(
        queue.fail(&forged, "x").await.expect("fail"),
        FailOutcome::Stale
    );
}

/// `ack_and_reserve` acks the finished jobs (each once: a stale token or a
/// job handed back twice acks nothing, the others still are) and hands out the next ones, oldest first,
/// each reserved like `reserve` would; with nothing left it answers an empty
/// list.
pub async fn ack_and_reserve(queue: &dyn Queue, clock: &ManualClock) {
    let _ = clock;
    queue
        .enqueue((0..6).map(job).collect())
        .await
        .expect("enqueue");
    let keys = |jobs: &[Job]| jobs.iter().map(|j| j.key.clone()).collect::<Vec<_>>();
    let first = reserve(queue, 1).await;
    assert_eq!(keys(&first), ["job-0"]);
    let (acked, next) = queue
        .ack_and_reserve(&first, 2, VISIBILITY)
        .await
        .expect("ack and reserve");
    assert_eq!(acked, [true]);
    assert_eq!(keys(&next), ["job-1", "job-2"]);
    assert!(next.iter().all(|j| j.attempt == 1));
    // Two finished jobs, one acked before and one handed back twice, together.
    let mut done = next.clone();
    done.insert(1, first[0].clone());
    done.push(next[0].clone());
    let (acked, more) = queue
        .ack_and_reserve(&done, 2, VISIBILITY)
        .await
        .expect("ack and reserve");
    assert_eq!(
        acked,
        [true, false, true, false],
        "job-0 was acked before, job-1 is acked once"
    );
    assert_eq!(keys(&more), ["job-3", "job-4"]);
    let (acked, last) = queue
        .ack_and_reserve(&more, 5, VISIBILITY)
        .await
        .expect("ack and reserve");
    assert_eq!(acked, [true, true]);
    assert_eq!(keys(&last), ["job-5"]);
    let (acked, none) = queue
        .ack_and_reserve(&last, 1, VISIBILITY)
        .await
        .expect("ack and reserve");
    assert_eq!(acked, [true]);
    assert!(none.is_empty(), "nothing is left to reserve");
    let (acked, none) = queue
        .ack_and_reserve(&[], 1, VISIBILITY)
        .await
        .expect("reserve only");
    assert!(acked.is_empty() && none.is_empty());
    assert_eq!(
        queue.stats().await.expect("stats"),
        QueueStats::default(),
        "every job is gone"
    );
}

/// A failure retrying cannot fix goes to the dead letters on the first attempt
/// (attempts left or not) with its error; a stale reservation changes nothing;
/// the others keep flowing; a redrive hands it out again with fresh attempts.
pub async fn permanent_failure_dead_letters_at_once(queue: &dyn Queue, clock: &ManualClock) {
    queue.enqueue(vec![job(0), job(1)]).await.expect("enqueue");
    let jobs = reserve(queue, 1).await;
    let first = jobs.first().expect("a job is ready");
    assert_eq!((first.key.as_str(), first.attempt), ("job-0", 1));
    assert_eq!(
        queue
            .dead_letter(first, "the endpoint answered 410 Gone")
            .await
            .expect("dead letter"),
        FailOutcome::DeadLettered
    );
    assert_eq!(
        queue.dead_letter(first, "again").await.expect("stale"),
        FailOutcome::Stale,
        "a reservation already dead-lettered is stale"
    );
    assert!(!queue.ack(first).await.expect("ack"), "nor can it be acked");
    let dead = queue.dead_letters(10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].key.as_str(),
            dead[0].attempts,
            dead[0].error.as_str()
        ),
        ("job-0", 1, "the endpoint answered 410 Gone")
    );
    assert_eq!(dead[0].payload, job(0).payload);
    assert_eq!(dead[0].failed_at, crate::ports::Clock::now(clock));
    let stats = queue.stats().await.expect("stats");
    assert_eq!((stats.dead, stats.ready), (1, 1));

    clock.advance(Duration::from_secs(3600));
    let rest = reserve(queue, 10).await;
    assert_eq!(
        rest.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        ["job-1"],
        "the dead job never comes back by itself"
    );
    queue.ack(&rest[0]).await.expect("ack");

    // A stale reservation (its visibility ran out, another worker has the
    // job) cannot dead-letter it.
    assert!(queue.redrive("job-0").await.expect("redrive"));
    let old = reserve(queue, 1).await;
    assert_eq!(old[0].attempt, 1, "fresh attempts after a redrive");
    clock.advance(VISIBILITY + Duration::from_secs(1));
    let new = reserve(queue, 1).await;
    assert_eq!(new.len(), 1);
    assert_eq!(
        queue.dead_letter(&old[0], "late").await.expect("stale"),
        FailOutcome::Stale
    );
    assert!(queue.dead_letters(10).await.expect("dead").is_empty());
    assert!(queue.ack(&new[0]).await.expect("ack"));
    assert_eq!(queue.stats().await.expect("stats"), QueueStats::default());
}

fn stats(ready: u64, delayed: u64, in_flight: u64, dead: u64) -> QueueStats {
    QueueStats {
        ready,
        delayed,
        in_flight,
        dead,
    }
}

/// At most one live job per key: a key enqueued again while its job is ready,
/// reserved or retrying (or twice in one call) is not enqueued; once the job is
/// acked or dead-lettered the key can be enqueued anew; a redrive while a job
/// of the same key is live leaves that one job.
pub async fn one_live_job_per_key(queue: &dyn Queue, clock: &ManualClock) {
    let n = |r: crate::Result<usize>| r.expect("enqueue");
    assert_eq!(n(queue.enqueue(vec![job(0), job(0), job(1)]).await), 2);
    assert_eq!(n(queue.enqueue(vec![job(0)]).await), 0, "ready: not again");
    assert_eq!(queue.stats().await.expect("stats"), stats(2, 0, 0, 0));

    let first = reserve(queue, 1).await.pop().expect("job-0");
    assert_eq!(first.key, "job-0");
    assert_eq!(
        n(queue.enqueue(vec![job(0)]).await),
        0,
        "reserved: not again"
    );
    assert!(
        matches!(
            queue.fail(&first, "down").await.expect("fail"),
            FailOutcome::Retry { .. }
        ),
        "first failure retries"
    );
    assert_eq!(
        n(queue.enqueue(vec![job(0)]).await),
        0,
        "retrying: not again"
    );
    assert_eq!(queue.stats().await.expect("stats"), stats(1, 1, 0, 0));

    clock.advance(RETRY.cap);
    let mut both = reserve(queue, 10).await;
    both.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        both.iter()
            .map(|j| (j.key.as_str(), j.attempt))
            .collect::<Vec<_>>(),
        [("job-0", 2), ("job-1", 1)],
        "one job of each key, job-0 on its second attempt"
    );
    let (acked, _) = queue
        .ack_and_reserve(&both[..1], 0, VISIBILITY)
        .await
        .expect("ack");
    assert_eq!(acked, [true]);
    assert_eq!(
        n(queue.enqueue(vec![job(0)]).await),
        1,
        "acked: the key is free again"
    );
    let again = reserve(queue, 1).await.pop().expect("job-0 anew");
    assert_eq!((again.key.as_str(), again.attempt), ("job-0", 1));

    // Dead-lettered: free again; a redrive while that new job is live leaves one.
    assert_eq!(
        queue.dead_letter(&again, "gone").await.expect("dead"),
        FailOutcome::DeadLettered
    );
    assert_eq!(n(queue.enqueue(vec![job(0)]).await), 1, "dead: free again");
    assert!(queue.redrive("job-0").await.expect("redrive"));
    assert!(queue.dead_letters(10).await.expect("dead").is_empty());
    let live = queue.stats().await.expect("stats");
    assert_eq!(
        (live.ready, live.in_flight, live.dead),
        (1, 1, 0),
        "job-0 once (ready) beside job-1 (reserved)"
    );
}

/// A worker that extends its reservation keeps the job past the visibility it
/// reserved with; a reservation that expired and went to another worker cannot
/// be extended (nor acked), and extending it changes nothing.
pub async fn extend_keeps_a_reservation(queue: &dyn Queue, clock: &ManualClock) {
    queue.enqueue(vec![job(0), job(1)]).await.expect("enqueue");
    let mine = reserve(queue, 2).await;
    assert_eq!(mine.len(), 2);
    for _ in 0..3 {
        clock.advance(VISIBILITY - Duration::from_secs(1));
        assert_eq!(
            queue.extend(&mine[..1], VISIBILITY).await.expect("extend"),
            [true]
        );
    }
    // job-1 was not extended: it went back after its visibility; job-0 did not.
    let taken = reserve(queue, 10).await;
    assert_eq!(
        taken.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        ["job-1"],
        "only the job not extended is handed out again"
    );
    assert_eq!(
        queue.extend(&mine, VISIBILITY).await.expect("extend"),
        [true, false],
        "job-1's old reservation is stale"
    );
    assert!(!queue.ack(&mine[1]).await.expect("ack"), "stale: no ack");
    clock.advance(VISIBILITY + Duration::from_secs(1));
    let mut back = reserve(queue, 10).await;
    back.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        back.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        ["job-0", "job-1"],
        "once no longer extended, both come back"
    );
    assert_eq!(
        queue.extend(&mine[..1], VISIBILITY).await.expect("extend"),
        [false]
    );
    assert!(
        queue
            .extend(&[], VISIBILITY)
            .await
            .expect("extend")
            .is_empty()
    );
}
