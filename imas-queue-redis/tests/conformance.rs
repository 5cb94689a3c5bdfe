//! The core's queue conformance suite on Redis (`REDIS_URL`), each test under a
//! key prefix of its own.

use std::sync::Arc;

use imas_core::ports::{ManualClock, Queue};
use imas_core::testkit::queue::RETRY;
use imas_core::testkit::service_url;
use imas_queue_redis::RedisQueue;

async fn queue(clock: ManualClock) -> Option<Arc<dyn Queue>> {
    let url = service_url("REDIS_URL")?;
    let prefix = format!("imas-test:{}", uuid::Uuid::new_v4().simple());
    Some(Arc::new(
        RedisQueue::connect_with_prefix(&url, &prefix, Arc::new(clock), RETRY)
            .await
            .expect("connect"),
    ))
}

imas_core::queue_conformance_tests!(queue);
