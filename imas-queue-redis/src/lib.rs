//! [`RedisQueue`]: the `imas-core` queue port on Redis, for several IMAS nodes
//! sharing one queue. At-least-once delivery: a reserved job that is neither
//! acked nor failed within its visibility timeout is handed out again; failures
//! retry with capped exponential backoff, then go to a dead-letter list that can
//! be listed and re-driven; delayed jobs wait in the same schedule. Acked jobs
//! are deleted at once, so Redis memory stays flat over a long run.
//!
//! Every operation is one Lua script (`src/scripts/*.lua`), atomic on the
//! server, with a fixed number of Redis commands per call however many jobs it
//! carries. Time comes from the
//! engine's [`Clock`], so tests drive visibility and backoff with a manual clock.
//! `ack`, `fail` and `enqueue` are safe to retry (a stale or repeated token
//! changes nothing, and a key already live is not enqueued again).
//!
//! Keys, under a prefix (default `imas:queue`): `sched` (sorted set: job id by the
//! instant it can be reserved), `jobs` (id → job), `state` (id → attempts and
//! the current reservation's token), `keys` (idempotency key → the id of its
//! live job: one live job per key), `wake` (a sorted set of at most one
//! member that an enqueue adds, so an idle worker blocked in `BZPOPMIN` wakes
//! at once), and for dead letters
//! `dead:jobs`, `dead:errors`, `dead:index` (sorted by failure time).
//!
//! The Lua scripts are files under `src/scripts/` (each starts with what it does
//! and its KEYS and ARGV), loaded by `scripts`; `queue` holds the port's
//! implementation, `error` the queue's errors.

mod error;
mod queue;
mod scripts;

use std::sync::Arc;

use imas_core::ports::{Clock, Job, RetryPolicy};
use imas_core::{Error, Result};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::error::{RedisQueueError, err};
use crate::scripts::Scripts;

const BACKEND: &str = "redis";

/// The most jobs one script call reserves or acks: Lua's `unpack` takes a few
/// thousand values at most, so bigger requests are split (acks) or capped
/// (reservations; the port hands out "up to" `max`).
const MAX_BATCH: usize = 1_000;

/// The Redis queue.
pub struct RedisQueue {
    conn: ConnectionManager,
    client: redis::Client,
    /// A connection of its own for the blocking wait (BZPOPMIN), made on first use.
    waiter: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    keys: [String; 8],
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.keys[0])
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "imas:queue";

impl RedisQueue {
    /// Connects to `redis://...` with the default prefix. The connection
    /// reconnects by itself after a drop.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>, retry: RetryPolicy) -> Result<Self> {
        Self::connect_with_prefix(url, DEFAULT_PREFIX, clock, retry).await
    }

    /// Like [`RedisQueue::connect`], with every key under `prefix`.
    pub async fn connect_with_prefix(
        url: &str,
        prefix: &str,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
    ) -> Result<Self> {
        if retry.max_attempts == 0 {
            return Err(Error::config(
                "retry policy",
                "expected at least one attempt",
            ));
        }
        let client = redis::Client::open(url).map_err(RedisQueueError::Url)?;
        let conn = ConnectionManager::new(client.clone()).await.map_err(err)?;
        let key = |k: &str| format!("{prefix}:{k}");
        let keys = [
            key("sched"),
            key("jobs"),
            key("state"),
            key("dead:jobs"),
            key("dead:errors"),
            key("dead:index"),
            key("wake"),
            key("keys"),
        ];
        let scripts = Arc::new(Scripts::load());
        Ok(Self {
            conn,
            client,
            waiter: tokio::sync::Mutex::new(None),
            clock,
            retry,
            keys,
            scripts,
        })
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    pub(crate) fn invocation<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        inv
    }

    pub(crate) fn token_id(job: &Job) -> Option<&str> {
        job.token.split_once(':').map(|(id, _)| id)
    }
}
