//! The SQLite writer: one thread that owns the one write connection and commits
//! the writes queued meanwhile together (group commit).
//!
//! SQLite lets one connection write at a time, so every write of a store is a
//! job for this thread. The thread takes every job waiting (up to
//! [`MAX_BATCH`]), opens one transaction, runs each job inside its own
//! savepoint (a job that fails is rolled back alone and reports its own
//! error), commits once, and only then answers each caller. A caller is
//! therefore told "done" only for a write that is committed, and a burst of
//! requests costs one transaction and one thread wake-up rather than one per
//! statement, which is what the async driver's per-statement thread hand-offs
//! cost before.
//!
//! A job runs to its end even if its caller stops waiting (a dropped request):
//! a change is committed whole or not at all, never half.
//!
//! Checkpoints (copying the write-ahead log back into the database file, and
//! its `fsync`) run on a second thread with a connection of its own, in
//! SQLite's `PASSIVE` mode, which never blocks the writer: left to SQLite, the
//! commit that happens to cross the WAL's size threshold runs the checkpoint
//! itself, and every write queued behind it waits the whole copy and flush
//! (the ingestion benchmark's p99 stalls). The writer keeps SQLite's automatic
//! checkpoint only as a backstop at [`BACKSTOP_PAGES`], for a checkpointer
//! that cannot keep up.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use imas_core::error::{Error, Result};
use rusqlite::Connection;
use tokio::sync::oneshot;

const BACKEND: &str = "sqlite";

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 256;

/// The WAL size (in pages) at which the writer checkpoints by itself, should
/// the checkpointer thread fall behind (SQLite's default is 1,000).
pub(crate) const BACKSTOP_PAGES: u32 = 16_000;

/// The shortest time between two checkpoints of the checkpointer thread: the
/// commits of that time are copied back together.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

fn stopped() -> Error {
    Error::backend(BACKEND, "the SQLite writer thread has stopped")
}

/// A write waiting for the thread.
trait Job: Send {
    /// Runs the write inside the open transaction; `false` if it failed.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch is committed (`Ok`) or not (`Err`).
    fn finish(self: Box<Self>, committed: std::result::Result<(), &str>);
}

struct Write<F, R> {
    work: Option<F>,
    outcome: Option<Result<R>>,
    reply: oneshot::Sender<Result<R>>,
}

impl<F, R> Job for Write<F, R>
where
    F: FnOnce(&Connection) -> Result<R> + Send,
    R: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = match self.work.take() {
            Some(work) => work(conn),
            None => Err(Error::backend(BACKEND, "a write was run twice")),
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), &str>) {
        let answer = match (committed, self.outcome) {
            // A failed job keeps its own error (it was rolled back either way).
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(why), _) => Err(Error::backend(BACKEND, why.to_owned())),
            (Ok(()), None) => Err(Error::backend(BACKEND, "a write was not run")),
        };
        // The caller may have stopped waiting; the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// The handle to the writer thread. Cheap to clone; the thread ends when the
/// last handle is dropped, after finishing the jobs already queued.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the thread on `conn` (a read-write connection, configured),
    /// and the checkpointer thread on `checkpoints` (another connection to the
    /// same database), which checkpoints after commits.
    pub(crate) fn start(conn: Connection, checkpoints: Connection) -> Result<Self> {
        let (jobs, queue) = mpsc::channel();
        // One pending wake-up is enough: the checkpoint copies every commit
        // made before it runs.
        let (committed, wake) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name("imas-sqlite-checkpoint".into())
            .spawn(move || checkpoint(&checkpoints, &wake))
            .map_err(|e| Error::backend(BACKEND, e))?;
        thread::Builder::new()
            .name("imas-sqlite-writer".into())
            .spawn(move || serve(&conn, &queue, &committed))
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the write connection inside a transaction and returns its
    /// result once that transaction is committed. An `Err` from `work` rolls
    /// back what it wrote (and only that).
    pub(crate) async fn write<R, F>(&self, work: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(Write {
                work: Some(work),
                outcome: None,
                reply,
            }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn serve(
    conn: &Connection,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    checkpointer: &mpsc::SyncSender<()>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        let committed = commit_batch(conn, &mut batch);
        if committed.is_err() && !conn.is_autocommit() {
            // Nothing of this batch stands; a failed ROLLBACK leaves nothing
            // more to undo either (SQLite then has rolled back itself).
            let _ = conn.execute_batch("ROLLBACK");
        }
        if committed.is_ok() {
            // Full: a wake-up is pending already. Gone: the backstop remains.
            let _ = checkpointer.try_send(());
        }
        let why = committed.as_ref().map_err(ToString::to_string);
        for job in batch {
            job.finish(why.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// The checkpointer thread: after commits, at most every
/// [`CHECKPOINT_EVERY`], a `PASSIVE` checkpoint (it copies what no reader
/// still needs and never waits for a lock, so neither the writer nor a reader
/// waits for it). Ends with the writer thread. A failed checkpoint is logged
/// and tried again after the next commit; nothing is lost meanwhile (the WAL
/// holds it, and the writer's backstop bounds the WAL).
fn checkpoint(conn: &Connection, wake: &mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        if let Err(e) = done {
            tracing::warn!(error = %e, "SQLite checkpoint failed; the next commit tries again");
        }
        thread::sleep(CHECKPOINT_EVERY);
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn commit_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    exec(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        exec(conn, "SAVEPOINT job")?;
        // A job that panics counts as failed (it answers "not run"); the thread
        // and the other jobs go on.
        let ok = panic::catch_unwind(AssertUnwindSafe(|| job.run(conn))).unwrap_or(false);
        if !ok {
            exec(conn, "ROLLBACK TO job")?;
        }
        exec(conn, "RELEASE job")?;
    }
    exec(conn, "COMMIT")
}
