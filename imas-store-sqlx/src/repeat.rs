//! The repeated trigger's batcher, for both dialects: concurrent
//! [`repeat_trigger`](imas_core::ports::AlertStore::repeat_trigger) calls wait
//! in a queue; one task takes every call waiting, sums the increments per
//! `(service, dedup key)` (with the latest instant), has the dialect apply the
//! sums in one transaction (`run`), and only then answers each caller with its
//! alert's row after that transaction (or `None` when it has no open alert).
//! Calls are spread over `lanes` by `(service, dedup key)`, so that two lanes
//! never touch the same alert; each lane runs one batch at a time and the
//! calls that come meanwhile form its next one, so a burst costs one
//! transaction and one durable flush per lane, not one per call. (SQLite has
//! one lane: its writer is one connection anyway. PostgreSQL has a few, whose
//! transactions commit side by side on connections of their own.) A call
//! whose caller stops waiting is applied all the same.

use std::collections::HashMap;
use std::future::Future;

use imas_core::error::{Error, Result};
use imas_core::model::{Alert, ServiceId, Timestamp};
use tokio::sync::{mpsc, oneshot};

/// The most calls answered by one batch.
const MAX_BATCH: usize = 1024;

/// One `(service, dedup key)` of a batch: how many events, the latest instant.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub service: ServiceId,
    pub dedup_key: String,
    pub events: i64,
    pub at: Timestamp,
}

struct Call {
    service: ServiceId,
    dedup_key: String,
    at: Timestamp,
    reply: oneshot::Sender<Result<Option<Alert>>>,
}

/// The handle the store holds. Cheap to clone; the task ends when the last
/// handle is dropped, after answering the calls already queued.
#[derive(Debug, Clone)]
pub struct Repeats {
    lanes: Vec<mpsc::UnboundedSender<Call>>,
    backend: &'static str,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").finish_non_exhaustive()
    }
}

impl Repeats {
    /// Starts one task per lane (at least one, on the current Tokio
    /// runtime); `run` applies one batch's groups in one transaction and
    /// returns the rows it updated.
    pub(crate) fn start<F, Fut>(backend: &'static str, lanes: usize, run: F) -> Self
    where
        F: Fn(Vec<Group>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Vec<Alert>>> + Send + 'static,
    {
        let lanes = (0..lanes.max(1))
            .map(|_| {
                let (calls, queue) = mpsc::unbounded_channel();
                tokio::spawn(serve(backend, queue, run.clone()));
                calls
            })
            .collect();
        Self { lanes, backend }
    }

    /// One repeated trigger, answered once its batch is committed.
    pub(crate) async fn call(
        &self,
        service: ServiceId,
        dedup_key: &str,
        at: Timestamp,
    ) -> Result<Option<Alert>> {
        let stopped = || Error::backend(self.backend, "the repeated-trigger batcher has stopped");
        let (reply, answer) = oneshot::channel();
        let lane = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (service, dedup_key).hash(&mut h);
            (h.finish() % self.lanes.len() as u64) as usize
        };
        self.lanes
            .get(lane)
            .ok_or_else(stopped)?
            .send(Call {
                service,
                dedup_key: dedup_key.to_owned(),
                at,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn serve<F, Fut>(backend: &'static str, mut queue: mpsc::UnboundedReceiver<Call>, run: F)
where
    F: Fn(Vec<Group>) -> Fut,
    Fut: Future<Output = Result<Vec<Alert>>>,
{
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let calls = std::mem::take(&mut batch);
        let groups = group(&calls);
        match run(groups).await {
            Ok(rows) => {
                let mut by_key: HashMap<(ServiceId, &str), &Alert> = HashMap::new();
                for a in &rows {
                    by_key.insert((a.service_id, a.dedup_key.as_str()), a);
                }
                for c in calls {
                    let row = by_key
                        .get(&(c.service, c.dedup_key.as_str()))
                        .map(|a| (*a).clone());
                    let _ = c.reply.send(Ok(row));
                }
            }
            Err(e) => {
                // Nothing of the batch stands; every caller hears why.
                let why = e.to_string();
                for c in calls {
                    let _ = c.reply.send(Err(Error::backend(backend, why.clone())));
                }
            }
        }
    }
}

/// The calls summed per `(service, dedup key)`, in the order first seen.
fn group(calls: &[Call]) -> Vec<Group> {
    let mut index: HashMap<(ServiceId, &str), usize> = HashMap::new();
    let mut out: Vec<Group> = Vec::new();
    for c in calls {
        match index.get(&(c.service, c.dedup_key.as_str())) {
            Some(&n) => {
                let g = &mut out[n];
                g.events += 1;
                g.at = g.at.max(c.at);
            }
            None => {
                index.insert((c.service, c.dedup_key.as_str()), out.len());
                out.push(Group {
                    service: c.service,
                    dedup_key: c.dedup_key.clone(),
                    events: 1,
                    at: c.at,
                });
            }
        }
    }
    out
}
