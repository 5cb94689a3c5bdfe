//! [`RedisQueue`]: the `imas-core` queue port on Redis, for several IMAS nodes
//! sharing one queue. At-least-once delivery: a reserved job that is neither
//! acked nor failed within its visibility timeout is handed out again; failures
//! retry with capped exponential backoff, then go to a dead-letter list that can
//! be listed and re-driven; delayed jobs wait in the same schedule. Acked jobs
//! are deleted at once, so Redis memory stays flat over a long run.
//!
//! Every operation is one Lua script, atomic on the server. Time comes from the
//! engine's [`Clock`], so tests drive visibility and backoff with a manual clock.
//! `ack` and `fail` are safe to retry (a stale or repeated token changes
//! nothing); `enqueue` retried after a dropped connection may enqueue twice, which
//! idempotent delivery absorbs.
//!
//! Keys, under a prefix (default `imas:queue`): `sched` (sorted set: job id by the
//! instant it can be reserved), `jobs` (id → job), `attempts`, `tokens` (current
//! reservation), `seq`, `signal` (a short list an enqueue pushes to, so idle
//! workers blocked in `BLPOP` wake at once), and for dead letters `dead:jobs`,
//! `dead:errors`, `dead:index` (sorted by failure time).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use imas_core::model::from_millis;
use imas_core::ports::{
    Clock, DeadLetter, FailOutcome, Job, NewJob, Queue, QueueStats, RetryPolicy,
};
use imas_core::{Error, Result};
use redis::Script;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

const BACKEND: &str = "redis";

fn err(e: redis::RedisError) -> Error {
    Error::backend(BACKEND, e)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What is stored per job (the payload untouched by the scripts).
#[derive(Serialize, Deserialize)]
struct StoredJob {
    key: String,
    payload: serde_json::Value,
}

const ENQUEUE: &str = r"
local now = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local id = redis.call('INCR', KEYS[5])
  redis.call('HSET', KEYS[2], id, ARGV[i])
  redis.call('HSET', KEYS[3], id, 0)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[i + 1]), id)
end
redis.call('LPUSH', KEYS[9], 1)
redis.call('LTRIM', KEYS[9], 0, 63)
return 1
";

/// ARGV: now, max, visibility, max attempts. Returns job, attempt, token triples.
const RESERVE_ARGS: &str = "local now, max, vis, max_attempts = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n";

/// The reservation, after `now, max, vis, max_attempts` are set; leaves the
/// triples in `out`.
const RESERVE_BODY: &str = r"
local out, taken = {}, 0
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max + 16)
for _, id in ipairs(ids) do
  if taken >= max then break end
  local job = redis.call('HGET', KEYS[2], id)
  if not job then
    redis.call('ZREM', KEYS[1], id)
  else
    local attempt = tonumber(redis.call('HGET', KEYS[3], id) or '0')
    if redis.call('HEXISTS', KEYS[4], id) == 1 and attempt >= max_attempts then
      redis.call('HSET', KEYS[6], id, job)
      redis.call('HSET', KEYS[7], id, 'reservation expired on the last attempt')
      redis.call('ZADD', KEYS[8], now, id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('HDEL', KEYS[4], id)
      redis.call('ZREM', KEYS[1], id)
    else
      attempt = attempt + 1
      local token = id .. ':' .. redis.call('INCR', KEYS[5])
      redis.call('HSET', KEYS[3], id, attempt)
      redis.call('HSET', KEYS[4], id, token)
      redis.call('ZADD', KEYS[1], now + vis, id)
      out[#out + 1] = job
      out[#out + 1] = attempt
      out[#out + 1] = token
      taken = taken + 1
    end
  end
end
";

/// `ack(id, token)`: removes the job if the reservation is current; 1 if it
/// was, else 0.
const ACK_FN: &str = r"
local function ack(id, token)
  if redis.call('HGET', KEYS[4], id) ~= token then return 0 end
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZREM', KEYS[1], id)
  return 1
end
";

/// After [`RESERVE_ARGS`]: acks the (id, token) pairs from ARGV[5] on into
/// `acks`.
const ACK_MANY: &str = r"
local acks = {}
for i = 5, #ARGV, 2 do
  acks[#acks + 1] = ack(ARGV[i], ARGV[i + 1])
end
";

/// After the reservation: appends the ack flags and their count to `out`.
const ACK_RESERVE_ANSWER: &str = r"
for _, a in ipairs(acks) do out[#out + 1] = a end
out[#out + 1] = #acks
return out
";

/// ARGV: id, token, now, dead (1/0), retry-at, error. Returns 0 stale, 1 retry,
/// 2 dead-lettered.
const FAIL: &str = r"
local id = ARGV[1]
if redis.call('HGET', KEYS[4], id) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[4], id)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[6], id, redis.call('HGET', KEYS[2], id))
  redis.call('HSET', KEYS[7], id, ARGV[6])
  redis.call('ZADD', KEYS[8], tonumber(ARGV[3]), id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  return 2
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[5]), id)
return 1
";

const DEAD_LIST: &str = r"
local out = {}
local ids = redis.call('ZRANGE', KEYS[8], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local id = ids[i]
  out[#out + 1] = redis.call('HGET', KEYS[6], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[7], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
  out[#out + 1] = ids[i + 1]
end
return out
";

const REDRIVE: &str = r"
local ids = redis.call('ZRANGE', KEYS[8], 0, -1)
for _, id in ipairs(ids) do
  local job = redis.call('HGET', KEYS[6], id)
  if job and cjson.decode(job).key == ARGV[1] then
    redis.call('HSET', KEYS[2], id, job)
    redis.call('HSET', KEYS[3], id, 0)
    redis.call('HDEL', KEYS[6], id)
    redis.call('HDEL', KEYS[7], id)
    redis.call('ZREM', KEYS[8], id)
    redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), id)
    redis.call('LPUSH', KEYS[9], 1)
    redis.call('LTRIM', KEYS[9], 0, 63)
    return 1
  end
end
return 0
";

const STATS: &str = r"
local now = tonumber(ARGV[1])
local ready = redis.call('ZCOUNT', KEYS[1], '-inf', now)
local live = 0
for _, id in ipairs(redis.call('HKEYS', KEYS[4])) do
  local at = redis.call('ZSCORE', KEYS[1], id)
  if at and tonumber(at) > now then live = live + 1 end
end
local total = redis.call('ZCARD', KEYS[1])
return { ready, total - ready - live, live, redis.call('ZCARD', KEYS[8]) }
";

struct Scripts {
    enqueue: Script,
    reserve: Script,
    ack: Script,
    ack_reserve: Script,
    fail: Script,
    dead_list: Script,
    redrive: Script,
    stats: Script,
}

/// Job, attempt, token triples (a reservation's answer) as jobs.
fn decode_jobs(flat: &[redis::Value]) -> Result<Vec<Job>> {
    let mut out = Vec::with_capacity(flat.len() / 3);
    for triple in flat.chunks(3) {
        let [job, attempt, token] = triple else { break };
        let job: String =
            redis::from_redis_value_ref(job).map_err(|e| Error::backend(BACKEND, e))?;
        let attempt: u32 =
            redis::from_redis_value_ref(attempt).map_err(|e| Error::backend(BACKEND, e))?;
        let token: String =
            redis::from_redis_value_ref(token).map_err(|e| Error::backend(BACKEND, e))?;
        let stored: StoredJob = serde_json::from_str(&job)
            .map_err(|e| Error::backend(BACKEND, format!("unreadable job: {e}")))?;
        out.push(Job {
            key: stored.key,
            payload: stored.payload,
            attempt,
            token,
        });
    }
    Ok(out)
}

/// The Redis queue.
pub struct RedisQueue {
    conn: ConnectionManager,
    client: redis::Client,
    /// A connection of its own for the blocking wait (BLPOP), made on first use.
    waiter: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    keys: [String; 9],
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
        let client = redis::Client::open(url)
            .map_err(|e| Error::config("REDIS_URL", format!("not a Redis URL ({e})")))?;
        let conn = ConnectionManager::new(client.clone()).await.map_err(err)?;
        let key = |k: &str| format!("{prefix}:{k}");
        let keys = [
            key("sched"),
            key("jobs"),
            key("attempts"),
            key("tokens"),
            key("seq"),
            key("dead:jobs"),
            key("dead:errors"),
            key("dead:index"),
            key("signal"),
        ];
        let scripts = Arc::new(Scripts {
            enqueue: Script::new(ENQUEUE),
            reserve: Script::new(&format!("{RESERVE_ARGS}{RESERVE_BODY}return out")),
            ack: Script::new(&format!("{ACK_FN}return ack(ARGV[1], ARGV[2])")),
            ack_reserve: Script::new(&format!(
                "{ACK_FN}{RESERVE_ARGS}{ACK_MANY}{RESERVE_BODY}{ACK_RESERVE_ANSWER}"
            )),
            fail: Script::new(FAIL),
            dead_list: Script::new(DEAD_LIST),
            redrive: Script::new(REDRIVE),
            stats: Script::new(STATS),
        });
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

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn invocation<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        inv
    }

    fn token_id(job: &Job) -> Option<&str> {
        job.token.split_once(':').map(|(id, _)| id)
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut inv = self.invocation(&self.scripts.enqueue);
        inv.arg(self.now_ms());
        for j in jobs {
            let stored = serde_json::to_string(&StoredJob {
                key: j.key,
                payload: j.payload,
            })
            .map_err(|e| Error::backend("serde_json", e))?;
            inv.arg(stored).arg(ms(j.delay));
        }
        let _: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn reserve(&self, max: usize, visibility: Duration) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut inv = self.invocation(&self.scripts.reserve);
        inv.arg(self.now_ms())
            .arg(max)
            .arg(ms(visibility))
            .arg(self.retry.max_attempts);
        let flat: Vec<redis::Value> = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        decode_jobs(&flat)
    }

    async fn ack_and_reserve(
        &self,
        done: &[Job],
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<bool>, Vec<Job>)> {
        let mut inv = self.invocation(&self.scripts.ack_reserve);
        inv.arg(self.now_ms())
            .arg(max)
            .arg(ms(visibility))
            .arg(self.retry.max_attempts);
        for job in done {
            // A token this queue did not hand out matches no job.
            inv.arg(Self::token_id(job).unwrap_or_default())
                .arg(&job.token);
        }
        let flat: Vec<redis::Value> = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        let int = |v: &redis::Value| -> Result<i64> {
            redis::from_redis_value_ref(v).map_err(|e| Error::backend(BACKEND, e))
        };
        let count = match flat.last() {
            Some(v) => usize::try_from(int(v)?).unwrap_or(usize::MAX),
            None => return Err(Error::backend(BACKEND, "ack-and-reserve answered nothing")),
        };
        let Some(jobs_end) = flat.len().checked_sub(count + 1) else {
            return Err(Error::backend(
                BACKEND,
                "ack-and-reserve answered too little",
            ));
        };
        let acked = flat[jobs_end..flat.len() - 1]
            .iter()
            .map(|v| Ok(int(v)? == 1))
            .collect::<Result<Vec<_>>>()?;
        Ok((acked, decode_jobs(&flat[..jobs_end])?))
    }

    async fn wait(&self, timeout: Duration) {
        // Ready now, or due before the timeout: wait only that long.
        let next: redis::RedisResult<Vec<(String, f64)>> = redis::cmd("ZRANGE")
            .arg(&self.keys[0])
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await;
        let now = self.now_ms();
        let timeout = match next {
            Ok(v) => match v.first() {
                Some((_, at)) if *at as i64 <= now => return,
                Some((_, at)) => timeout.min(Duration::from_millis((*at as i64 - now) as u64)),
                None => timeout,
            },
            Err(_) => timeout.min(Duration::from_millis(100)),
        };
        // Otherwise block until an enqueue signals, on a connection of our own.
        let mut waiter = self.waiter.lock().await;
        if waiter.is_none() {
            let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
            *waiter = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .ok();
        }
        let Some(conn) = waiter.as_mut() else {
            tokio::time::sleep(timeout.min(Duration::from_millis(100))).await;
            return;
        };
        let seconds = timeout.as_secs_f64().max(0.001);
        let popped: redis::RedisResult<Option<(String, String)>> = redis::cmd("BLPOP")
            .arg(&self.keys[8])
            .arg(seconds)
            .query_async(conn)
            .await;
        if popped.is_err() {
            *waiter = None;
        }
    }

    async fn ack(&self, job: &Job) -> Result<bool> {
        let Some(id) = Self::token_id(job) else {
            return Ok(false);
        };
        let mut inv = self.invocation(&self.scripts.ack);
        inv.arg(id).arg(&job.token);
        let done: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(done == 1)
    }

    async fn fail(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        let Some(id) = Self::token_id(job) else {
            return Ok(FailOutcome::Stale);
        };
        let now = self.now_ms();
        let dead = job.attempt >= self.retry.max_attempts;
        let at = now.saturating_add(ms(self.retry.backoff(job.attempt)));
        let mut inv = self.invocation(&self.scripts.fail);
        inv.arg(id)
            .arg(&job.token)
            .arg(now)
            .arg(if dead { "1" } else { "0" })
            .arg(at)
            .arg(error);
        let outcome: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(match outcome {
            1 => FailOutcome::Retry {
                at: from_millis(at),
            },
            2 => FailOutcome::DeadLettered,
            _ => FailOutcome::Stale,
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut inv = self.invocation(&self.scripts.dead_list);
        inv.arg(limit);
        let flat: Vec<String> = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        let mut out = Vec::new();
        for quad in flat.chunks(4) {
            let [job, error, attempts, failed_at] = quad else {
                break;
            };
            let stored: StoredJob = serde_json::from_str(job)
                .map_err(|e| Error::backend(BACKEND, format!("unreadable dead job: {e}")))?;
            out.push(DeadLetter {
                key: stored.key,
                payload: stored.payload,
                attempts: attempts.parse().unwrap_or_default(),
                error: error.clone(),
                failed_at: from_millis(failed_at.parse::<f64>().unwrap_or_default() as i64),
            });
        }
        Ok(out)
    }

    async fn redrive(&self, key: &str) -> Result<bool> {
        let mut inv = self.invocation(&self.scripts.redrive);
        inv.arg(key).arg(self.now_ms());
        let found: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(found == 1)
    }

    async fn stats(&self) -> Result<QueueStats> {
        let mut inv = self.invocation(&self.scripts.stats);
        inv.arg(self.now_ms());
        let v: Vec<i64> = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        let get = |i: usize| v.get(i).copied().unwrap_or_default().max(0) as u64;
        Ok(QueueStats {
            ready: get(0),
            delayed: get(1),
            in_flight: get(2),
            dead: get(3),
        })
    }
}
