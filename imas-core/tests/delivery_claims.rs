//! A worker keeps its jobs while it delivers them, and one that has lost a job
//! stops sending it. Tokio's clock is paused (timers fire in order, at once, when
//! the runtime is idle), the queue reads a manual clock: no real waiting.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use imas_core::memory::{MemoryQueue, MemoryStore};
use imas_core::model::{Notification, NotificationIntent, NotificationType, UserId};
use imas_core::ports::{
    Change, ChangeStore, Channel, Clock, Job, ManualClock, Queue, RetryPolicy, Store,
};
use imas_core::testkit::store::t0;
use imas_core::{Engine, EngineConfig, Result};

const VISIBILITY: Duration = Duration::from_secs(30);

/// What the first channel does while it "sends".
#[derive(Debug)]
enum Stall {
    /// Takes ten visibilities (a slow endpoint), the engine's clock moving on.
    Slowly,
    /// Stalls past the visibility, during which another worker takes the job.
    LosingTheJob,
}

#[derive(Debug)]
struct SlowChannel {
    stall: Stall,
    clock: ManualClock,
    queue: Arc<MemoryQueue>,
    /// The job another worker reserved meanwhile.
    stolen: Mutex<Option<Job>>,
    calls: AtomicU32,
}

#[async_trait]
impl Channel for SlowChannel {
    fn name(&self) -> &'static str {
        "slow"
    }

    async fn deliver(
        &self,
        _: &Notification,
        _: Option<&imas_core::ports::Recipient>,
    ) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.stall {
            Stall::Slowly => {
                for _ in 0..10 {
                    self.clock.advance(VISIBILITY);
                    // Paused tokio time: the worker's heartbeat runs meanwhile.
                    tokio::time::sleep(VISIBILITY).await;
                    assert!(
                        self.queue.reserve(1, VISIBILITY).await?.is_empty(),
                        "no other worker is handed the job while it is delivered"
                    );
                }
            }
            Stall::LosingTheJob => {
                // The process stalls (no heartbeat) past the visibility...
                self.clock.advance(VISIBILITY + Duration::from_secs(1));
                let job = self.queue.reserve(1, VISIBILITY).await?.pop();
                assert!(job.is_some(), "after the visibility another worker has it");
                *self.stolen.lock().expect("lock") = job;
                // ...then comes back, and its next heartbeat finds the job gone.
                tokio::time::sleep(VISIBILITY).await;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Counting(AtomicU32);

#[async_trait]
impl Channel for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }

    async fn deliver(
        &self,
        _: &Notification,
        _: Option<&imas_core::ports::Recipient>,
    ) -> Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct World {
    engine: Engine,
    queue: Arc<MemoryQueue>,
    slow: Arc<SlowChannel>,
    after: Arc<Counting>,
}

async fn world(stall: Stall) -> World {
    let clock = ManualClock::new(t0());
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new(
        Arc::new(clock.clone()),
        RetryPolicy::default(),
    ));
    let slow = Arc::new(SlowChannel {
        stall,
        clock: clock.clone(),
        queue: queue.clone(),
        stolen: Mutex::new(None),
        calls: AtomicU32::new(0),
    });
    let after = Arc::new(Counting::default());
    let engine = Engine::builder(store.clone() as Arc<dyn Store>)
        .clock(Arc::new(clock.clone()))
        .queue(queue.clone())
        .channel(slow.clone())
        .channel(after.clone())
        .config(EngineConfig {
            job_visibility: VISIBILITY,
            ..EngineConfig::default()
        })
        .build()
        .expect("engine");
    store
        .commit(Change {
            outbox: vec![NotificationIntent {
                key: "k-1".into(),
                user: UserId::new(),
                message: "m".into(),
                kind: NotificationType::Info,
                incident_id: None,
                created_at: clock.now(),
            }],
            ..Change::default()
        })
        .await
        .expect("commit");
    assert_eq!(engine.relay_step().await.expect("relay"), 1);
    World {
        engine,
        queue,
        slow,
        after,
    }
}

#[tokio::test(start_paused = true)]
async fn a_delivery_ten_visibilities_long_keeps_its_job() {
    let w = world(Stall::Slowly).await;
    let r = w.engine.work_step().await.expect("work");
    assert_eq!((r.jobs, r.delivered, r.failed), (1, 1, 0));
    assert_eq!(w.slow.calls.load(Ordering::SeqCst), 1);
    assert_eq!(w.after.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        w.queue.stats().await.expect("stats"),
        Default::default(),
        "acked at the end"
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_lost_its_job_stops_sending_it() {
    let w = world(Stall::LosingTheJob).await;
    let r = w.engine.work_step().await.expect("work");
    assert_eq!(r.jobs, 1);
    assert_eq!(
        (r.delivered, r.failed),
        (0, 0),
        "neither delivered nor failed: it is the other worker's now"
    );
    assert_eq!(w.slow.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        w.after.0.load(Ordering::SeqCst),
        0,
        "the channel after the stall is left to the job's new holder"
    );
    let stolen = w.slow.stolen.lock().expect("lock").take().expect("stolen");
    assert!(
        w.queue.ack(&stolen).await.expect("ack"),
        "the new holder's reservation is intact (the first worker neither acked nor failed it)"
    );
}
