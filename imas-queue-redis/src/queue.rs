//! The [`Queue`] port on Redis: each operation is one script call (or a few,
//! for calls carrying more than [`MAX_BATCH`] jobs), with the jobs encoded as
//! the scripts store them and their answers decoded.

use std::time::Duration;

use async_trait::async_trait;
use imas_core::model::{from_millis, millis};
use imas_core::ports::{DeadLetter, FailOutcome, Job, NewJob, Queue, QueueStats};
use imas_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::error::{RedisQueueError, err, reply};
use crate::{MAX_BATCH, RedisQueue};

/// What is stored per job (the payload untouched by the scripts).
#[derive(Serialize, Deserialize)]
struct StoredJob {
    key: String,
    payload: serde_json::Value,
}

/// Job, attempt, token triples (a reservation's answer) as jobs.
fn decode_jobs(flat: &[redis::Value]) -> Result<Vec<Job>> {
    let mut out = Vec::with_capacity(flat.len() / 3);
    for triple in flat.chunks(3) {
        let [job, attempt, token] = triple else { break };
        let job: String =
            redis::from_redis_value_ref(job).map_err(|e| Error::from(RedisQueueError::Value(e)))?;
        let attempt: u32 = redis::from_redis_value_ref(attempt)
            .map_err(|e| Error::from(RedisQueueError::Value(e)))?;
        let token: String = redis::from_redis_value_ref(token)
            .map_err(|e| Error::from(RedisQueueError::Value(e)))?;
        let stored: StoredJob =
            serde_json::from_str(&job).map_err(|e| reply(format!("unreadable job: {e}")))?;
        out.push(Job {
            key: stored.key,
            payload: stored.payload,
            attempt,
            token,
        });
    }
    Ok(out)
}

impl RedisQueue {
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
            redis::from_redis_value_ref(v).map_err(|e| Error::from(RedisQueueError::Value(e)))
        };
        let count = match flat.last() {
            Some(v) => usize::try_from(int(v)?).unwrap_or(usize::MAX),
            None => return Err(reply("ack-and-reserve answered nothing")),
        };
        let Some(jobs_end) = flat.len().checked_sub(count + 1) else {
            return Err(reply("ack-and-reserve answered too little"));
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
                .map_err(|e| Error::from(RedisQueueError::Encode(e)))?;
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
                return Err(reply("extend did not answer one flag per job"));
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
                .map_err(|e| reply(format!("unreadable dead job: {e}")))?;
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
