//! [`RedisQueue`]: the `imas-core` queue port on Redis, for several IMAS nodes
//! sharing one queue. At-least-once delivery: a reserved job that is neither
//! acked nor failed within its visibility timeout is handed out again; failures
//! retry with capped exponential backoff, then go to a dead-letter list that can
//! be listed and re-driven; delayed jobs wait in the same schedule. Acked jobs
//! are deleted at once, so Redis memory stays flat over a long run.
//!
//! Every operation is one Lua script or one MULTI, atomic on the server, with a
//! fixed number of Redis commands per call however many jobs it carries. Time comes from the
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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use imas_core::model::{from_millis, millis};
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

/// What is stored per job (the payload untouched by the scripts).
#[derive(Serialize, Deserialize)]
struct StoredJob {
    key: String,
    payload: serde_json::Value,
}

/// The most jobs one script call reserves or acks: Lua's `unpack` takes a few
/// thousand values at most, so bigger requests are split (acks) or capped
/// (reservations; the port hands out "up to" `max`).
const MAX_BATCH: usize = 1_000;

// KEYS, in every script: 1 sched, 2 jobs, 3 state, 4 dead:jobs, 5 dead:errors,
// 6 dead:index, 7 wake, 8 keys. A key's job is live while `keys` maps the key
// to an id that `jobs` holds (dead letters leave `jobs`). A job's state is "attempt" between attempts and
// "attempt token" while reserved; a job never reserved has none (attempt 0).
// Each `redis.call` costs a few microseconds of the script's time whatever
// it does, so the scripts make as few as they can: one command per structure
// per call, over all the jobs the call carries.

/// `state(v)`: a state value as attempt, token (nil when not reserved).
const STATE_FN: &str = r"
local function state(v)
  if not v then return 0, nil end
  local sp = string.find(v, ' ', 1, true)
  if not sp then return tonumber(v), nil end
  return tonumber(string.sub(v, 1, sp - 1)), string.sub(v, sp + 1)
end
";

/// ARGV: now, max, visibility (≥ 1 ms), max attempts, a nonce unique to the
/// call. Returns job, attempt, token triples.
const RESERVE_ARGS: &str = "local now, max, vis, max_attempts, nonce = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]\n";

/// The reservation, after [`RESERVE_ARGS`]; leaves the triples in `out`. The
/// candidates' jobs and states are read with one `HMGET` each and the
/// reservations written with one `HSET` and one `ZADD`; only when some
/// candidates turn out gone (or go to the dead letters) does another round
/// fill `max`. Tokens are `id:nonce`, so no two reservations share one.
const RESERVE_BODY: &str = r"
local out, taken = {}, 0
while taken < max do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max - taken)
  if #ids == 0 then break end
  local jobs = redis.call('HMGET', KEYS[2], unpack(ids))
  local states = redis.call('HMGET', KEYS[3], unpack(ids))
  local gone, reserved, sched = {}, {}, {}
  for i, id in ipairs(ids) do
    local job = jobs[i]
    local attempt, token = state(states[i])
    if not job then
      gone[#gone + 1] = id
    elseif token and attempt >= max_attempts then
      redis.call('HSET', KEYS[4], id, job)
      redis.call('HSET', KEYS[5], id, 'reservation expired on the last attempt')
      redis.call('ZADD', KEYS[6], now, id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('HSET', KEYS[3], id, attempt)
      redis.call('HDEL', KEYS[8], cjson.decode(job).key)
      gone[#gone + 1] = id
    else
      attempt = attempt + 1
      token = id .. ':' .. nonce
      reserved[#reserved + 1] = id
      reserved[#reserved + 1] = attempt .. ' ' .. token
      sched[#sched + 1] = now + vis
      sched[#sched + 1] = id
      out[#out + 1] = job
      out[#out + 1] = attempt
      out[#out + 1] = token
      taken = taken + 1
    end
  end
  if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
  if #reserved > 0 then
    redis.call('HSET', KEYS[3], unpack(reserved))
    redis.call('ZADD', KEYS[1], unpack(sched))
  end
end
";

/// `ack_from(first)`: acks the (id, token, key) triples in ARGV from `first`
/// on and returns a flag per triple: 1 if the reservation was current (the job
/// is then removed), else 0. One `HMGET` reads the states, one command per
/// structure removes all acked jobs.
const ACK_FN: &str = r"
local function ack_from(first)
  local ids, acks = {}, {}
  for i = first, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
  if #ids == 0 then return acks end
  local states = redis.call('HMGET', KEYS[3], unpack(ids))
  local gone, keys, seen = {}, {}, {}
  for i, id in ipairs(ids) do
    local _, token = state(states[i])
    if token and token == ARGV[first + 3 * i - 2] and not seen[id] then
      seen[id] = true
      gone[#gone + 1] = id
      keys[#keys + 1] = ARGV[first + 3 * i - 1]
      acks[i] = 1
    else
      acks[i] = 0
    end
  end
  if #gone > 0 then
    redis.call('HDEL', KEYS[2], unpack(gone))
    redis.call('HDEL', KEYS[3], unpack(gone))
    redis.call('ZREM', KEYS[1], unpack(gone))
    redis.call('HDEL', KEYS[8], unpack(keys))
  end
  return acks
end
";

/// ARGV: now, then (key, id, job, due) quadruples. Enqueues the jobs whose key
/// has no live job (nor came earlier in the call); returns how many. Fixed
/// commands per call: `HMGET` of the keys, `HMGET` of the jobs they map to
/// (only those that map), then one `HSET`/`HSET`/`ZADD`/`ZADD` for all.
const ENQUEUE: &str = r"
local n = (#ARGV - 1) / 4
local ks = {}
for i = 1, n do ks[i] = ARGV[4 * i - 2] end
local mapped = redis.call('HMGET', KEYS[8], unpack(ks))
local ids, at = {}, {}
for i = 1, n do
  if mapped[i] then ids[#ids + 1] = mapped[i]; at[#ids] = ks[i] end
end
local live = {}
if #ids > 0 then
  local held = redis.call('HMGET', KEYS[2], unpack(ids))
  for j = 1, #ids do if held[j] then live[at[j]] = true end end
end
local keys, jobs, sched = {}, {}, {}
local added = 0
for i = 1, n do
  local k = ks[i]
  if not live[k] then
    live[k] = true
    local id = ARGV[4 * i - 1]
    keys[#keys + 1] = k
    keys[#keys + 1] = id
    jobs[#jobs + 1] = id
    jobs[#jobs + 1] = ARGV[4 * i]
    sched[#sched + 1] = ARGV[4 * i + 1]
    sched[#sched + 1] = id
    added = added + 1
  end
end
if added > 0 then
  redis.call('HSET', KEYS[8], unpack(keys))
  redis.call('HSET', KEYS[2], unpack(jobs))
  redis.call('ZADD', KEYS[1], unpack(sched))
  redis.call('ZADD', KEYS[7], 1, 0)
end
return added
";

/// ARGV: the instant the reservations last until, then (id, token) pairs.
/// Moves each current reservation's expiry there; returns a flag per pair.
const EXTEND: &str = r"
local expiry = ARGV[1]
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
local flags = {}
if #ids == 0 then return flags end
local states = redis.call('HMGET', KEYS[3], unpack(ids))
local sched = {}
for i, id in ipairs(ids) do
  local _, token = state(states[i])
  if token and token == ARGV[2 * i + 1] then
    sched[#sched + 1] = expiry
    sched[#sched + 1] = id
    flags[i] = 1
  else
    flags[i] = 0
  end
end
if #sched > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(sched)) end
return flags
";

/// After [`RESERVE_ARGS`]: acks the (id, token) pairs from ARGV[6] on into
/// `acks`.
const ACK_MANY: &str = "local acks = ack_from(6)\n";

/// After the reservation: appends the ack flags and their count to `out`.
const ACK_RESERVE_ANSWER: &str = r"
for _, a in ipairs(acks) do out[#out + 1] = a end
out[#out + 1] = #acks
return out
";

/// ARGV: id, token, now, dead (1/0), retry-at, error, key. Returns 0 stale, 1
/// retry, 2 dead-lettered. The attempt count stays in the state either way.
const FAIL: &str = r"
local id = ARGV[1]
local attempt, token = state(redis.call('HGET', KEYS[3], id))
if token ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], id, attempt)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[4], id, redis.call('HGET', KEYS[2], id))
  redis.call('HSET', KEYS[5], id, ARGV[6])
  redis.call('ZADD', KEYS[6], tonumber(ARGV[3]), id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[8], ARGV[7])
  return 2
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[5]), id)
return 1
";

const DEAD_LIST: &str = r"
local out = {}
local ids = redis.call('ZRANGE', KEYS[6], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
for i = 1, #ids, 2 do
  local id = ids[i]
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[5], id) or ''
  out[#out + 1] = tostring(state(redis.call('HGET', KEYS[3], id)))
  out[#out + 1] = ids[i + 1]
end
return out
";

/// ARGV: key, now. A live job of the same key delivers it already: then the
/// dead letter is only removed.
const REDRIVE: &str = r"
local ids = redis.call('ZRANGE', KEYS[6], 0, -1)
for _, id in ipairs(ids) do
  local job = redis.call('HGET', KEYS[4], id)
  if job and cjson.decode(job).key == ARGV[1] then
    redis.call('HDEL', KEYS[4], id)
    redis.call('HDEL', KEYS[5], id)
    redis.call('ZREM', KEYS[6], id)
    local other = redis.call('HGET', KEYS[8], ARGV[1])
    if other and redis.call('HEXISTS', KEYS[2], other) == 1 then
      redis.call('HDEL', KEYS[3], id)
      return 1
    end
    redis.call('HSET', KEYS[2], id, job)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HSET', KEYS[8], ARGV[1], id)
    redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), id)
    redis.call('ZADD', KEYS[7], 0, 1)
    return 1
  end
end
return 0
";

/// Ready, delayed, in flight (reserved, lease not over), dead. Walks the
/// states, i.e. the jobs reserved, retrying or dead — not the whole backlog.
const STATS: &str = r"
local now = tonumber(ARGV[1])
local ready = redis.call('ZCOUNT', KEYS[1], '-inf', now)
local live = 0
local states = redis.call('HGETALL', KEYS[3])
for i = 1, #states, 2 do
  local _, token = state(states[i + 1])
  if token then
    local at = redis.call('ZSCORE', KEYS[1], states[i])
    if at and tonumber(at) > now then live = live + 1 end
  end
end
local total = redis.call('ZCARD', KEYS[1])
return { ready, total - ready - live, live, redis.call('ZCARD', KEYS[6]) }
";

struct Scripts {
    enqueue: Script,
    extend: Script,
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
        let client = redis::Client::open(url)
            .map_err(|e| Error::config("REDIS_URL", format!("not a Redis URL ({e})")))?;
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
        let scripts = Arc::new(Scripts {
            enqueue: Script::new(ENQUEUE),
            extend: Script::new(&format!("{STATE_FN}{EXTEND}")),
            ack_reserve: Script::new(&format!(
                "{STATE_FN}{ACK_FN}{RESERVE_ARGS}{ACK_MANY}{RESERVE_BODY}{ACK_RESERVE_ANSWER}"
            )),
            fail: Script::new(&format!("{STATE_FN}{FAIL}")),
            dead_list: Script::new(&format!("{STATE_FN}{DEAD_LIST}")),
            redrive: Script::new(REDRIVE),
            stats: Script::new(&format!("{STATE_FN}{STATS}")),
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

    /// One script call: acks at most [`MAX_BATCH`] jobs, reserves up to
    /// `max` (at most [`MAX_BATCH`]).
    async fn ack_and_reserve_once(
        &self,
        done: &[Job],
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<bool>, Vec<Job>)> {
        if done.is_empty() && max == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut inv = self.invocation(&self.scripts.ack_reserve);
        inv.arg(self.now_ms())
            .arg(max.min(MAX_BATCH))
            .arg(millis(visibility).max(1))
            .arg(self.retry.max_attempts)
            .arg(uuid::Uuid::new_v4().simple().to_string());
        for job in done {
            // A token this queue did not hand out matches no job.
            inv.arg(Self::token_id(job).unwrap_or_default())
                .arg(&job.token)
                .arg(&job.key);
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

    /// One FAIL script call: the job retries after backoff, or goes to the
    /// dead letters when `dead`.
    async fn fail_once(&self, job: &Job, error: &str, dead: bool) -> Result<FailOutcome> {
        let Some(id) = Self::token_id(job) else {
            return Ok(FailOutcome::Stale);
        };
        let now = self.now_ms();
        let at = now.saturating_add(millis(self.retry.backoff(job.attempt)));
        let mut inv = self.invocation(&self.scripts.fail);
        inv.arg(id)
            .arg(&job.token)
            .arg(now)
            .arg(if dead { "1" } else { "0" })
            .arg(at)
            .arg(error)
            .arg(&job.key);
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

    fn token_id(job: &Job) -> Option<&str> {
        job.token.split_once(':').map(|(id, _)| id)
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<usize> {
        // Ids are made here (time-ordered, so jobs due at the same instant go
        // out in the order they came); one script per MAX_BATCH jobs, each
        // atomic, with a fixed number of commands whatever the number of jobs.
        let now = self.now_ms();
        let mut added = 0;
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let mut inv = self.invocation(&self.scripts.enqueue);
            inv.arg(now);
            for j in jobs.by_ref().take(MAX_BATCH) {
                let json = serde_json::to_string(&StoredJob {
                    key: j.key.clone(),
                    payload: j.payload,
                })
                .map_err(|e| Error::backend("serde_json", e))?;
                inv.arg(j.key)
                    .arg(uuid::Uuid::now_v7().simple().to_string())
                    .arg(json)
                    .arg(now.saturating_add(millis(j.delay)));
            }
            let n: usize = inv
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(err)?;
            added += n;
        }
        Ok(added)
    }

    async fn reserve(&self, max: usize, visibility: Duration) -> Result<Vec<Job>> {
        Ok(self.ack_and_reserve_once(&[], max, visibility).await?.1)
    }

    async fn ack_and_reserve(
        &self,
        done: &[Job],
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<bool>, Vec<Job>)> {
        // All but the last slice of a long hand-back are only acked.
        let mut acked = Vec::with_capacity(done.len());
        let mut slices = done.chunks(MAX_BATCH).peekable();
        while let Some(slice) = slices.next() {
            if slices.peek().is_some() {
                acked.extend(self.ack_and_reserve_once(slice, 0, visibility).await?.0);
            } else {
                let (last, jobs) = self.ack_and_reserve_once(slice, max, visibility).await?;
                acked.extend(last);
                return Ok((acked, jobs));
            }
        }
        let (_, jobs) = self.ack_and_reserve_once(&[], max, visibility).await?;
        Ok((acked, jobs))
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
        let popped: redis::RedisResult<redis::Value> = redis::cmd("BZPOPMIN")
            .arg(&self.keys[6])
            .arg(seconds)
            .query_async(conn)
            .await;
        if popped.is_err() {
            *waiter = None;
        }
    }

    async fn ack(&self, job: &Job) -> Result<bool> {
        let (acked, _) = self
            .ack_and_reserve_once(std::slice::from_ref(job), 0, Duration::ZERO)
            .await?;
        Ok(acked.first().copied().unwrap_or(false))
    }

    async fn extend(&self, jobs: &[Job], visibility: Duration) -> Result<Vec<bool>> {
        let until = self.now_ms().saturating_add(millis(visibility).max(1));
        let mut flags = Vec::with_capacity(jobs.len());
        for slice in jobs.chunks(MAX_BATCH) {
            let mut inv = self.invocation(&self.scripts.extend);
            inv.arg(until);
            for job in slice {
                inv.arg(Self::token_id(job).unwrap_or_default())
                    .arg(&job.token);
            }
            let got: Vec<i64> = inv
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(err)?;
            if got.len() != slice.len() {
                return Err(Error::backend(
                    BACKEND,
                    "extend did not answer one flag per job",
                ));
            }
            flags.extend(got.into_iter().map(|f| f == 1));
        }
        Ok(flags)
    }

    async fn fail(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        self.fail_once(job, error, job.attempt >= self.retry.max_attempts)
            .await
    }

    async fn dead_letter(&self, job: &Job, error: &str) -> Result<FailOutcome> {
        self.fail_once(job, error, true).await
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
