//! The shared run queue of a deployment on PostgreSQL (issue 18): api
//! processes enqueue runs, worker processes claim them. Windmill's model:
//! no coordinator and no broker, one table and row locks.
//!
//! - **Enqueue** checks the workspace's `runs_per_minute` and
//!   `max_queued_runs` and files the run in one transaction that holds
//!   the workspace's lane row, so two api processes enqueueing for one
//!   workspace at once are counted one after the other.
//! - **Claim** takes the lane with the fewest runs going, ties to the one
//!   that started a run longest ago (the single-machine admission's
//!   "fewest running first, then round robin"), locks its lane row `FOR
//!   UPDATE SKIP LOCKED`, counts its running runs again under that lock
//!   and takes its oldest queued run only below `max_concurrent`. Every
//!   move into the running set happens under the lane lock, so no number
//!   of workers can start a third run of a workspace limited to two.
//! - **Leases**: a claimed run belongs to its worker until its lease
//!   (the database's clock) runs out; the worker renews it. A run whose
//!   lease ran out is re-queued if it had not started (at most
//!   [`MAX_CLAIMS`] times) or handed back by [`RunQueue::reap`] as lost,
//!   for the caller to close as `internal`; either way it never runs
//!   twice without saying so.
//! - **Once per id**: a run's row stays (`done`) for a day after it
//!   ended, so enqueueing its id again is refused ([`Refusal::Duplicate`]).
//! - **Wake-ups**: every change that may let a worker claim (an enqueue, a
//!   run's end, a cancel) sends `NOTIFY quire_queue`; [`RunQueue::wakeups`]
//!   ticks on each.
//!
//! The jobs are opaque JSON here: what a run is belongs to the service.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::watch;

use crate::error::{Result, StorageError};
use crate::model::WorkspaceId;
use crate::pg_backend::PgBackend;

/// Times a run is claimed and lost before it started, before it is given
/// up as lost.
pub const MAX_CLAIMS: i32 = 3;

/// The notification channel.
const CHANNEL: &str = "quire_queue";

fn pg(e: impl std::fmt::Display) -> StorageError {
    StorageError::Postgres(e.to_string())
}

/// A run to enqueue.
#[derive(Debug, Clone)]
pub struct Enqueue {
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// Its run id (unique).
    pub run_id: String,
    /// What the worker needs to run it.
    pub job: Value,
    /// The workspace's `max_concurrent_runs`.
    pub max_concurrent: u32,
    /// The workspace's `max_queued_runs`.
    pub max_queued: u32,
    /// The workspace's `runs_per_minute`.
    pub runs_per_minute: u32,
}

/// What marks a row done (kept a day, so its id cannot be enqueued again).
const DONE: &str =
    "state = 'done', worker = NULL, lease_until = NULL, finished_at = clock_timestamp()";

/// How long a done run's row is kept: its id cannot be enqueued again
/// meanwhile.
const KEEP_DONE: &str = "1 day";

/// Why the queue refused a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A run with its id was enqueued before (in the last day): a run id
    /// is enqueued once, so a retry (a scheduler's, after a crash) never
    /// runs it twice.
    Duplicate,
    /// The workspace accepted `runs_per_minute` runs in the last minute;
    /// the oldest leaves the window at `resets_at_ms`.
    RunsPerMinute {
        /// Milliseconds since the Unix epoch (the database's clock).
        resets_at_ms: u64,
    },
    /// The workspace has `running` runs going and `queued` waiting:
    /// every free slot is spoken for and `max_queued_runs` wait beyond.
    MaxQueued {
        /// Runs claimed or running.
        running: u32,
        /// Runs waiting.
        queued: u32,
    },
}

/// A run a worker claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// Its run id.
    pub run_id: String,
    /// What was enqueued.
    pub job: Value,
    /// Times it was claimed before (by workers that stopped).
    pub attempts: i32,
}

/// What [`RunQueue::cancel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// It was still queued: it left the queue and never starts.
    Dequeued,
    /// A worker holds it: asked to cancel (it sees the flag when it next
    /// renews its lease, woken by the notification).
    Requested,
    /// Not in the queue (finished, or never queued here).
    NotQueued,
}

/// A run lost with its worker (see [`RunQueue::reap`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// Its run id.
    pub run_id: String,
    /// The worker that held it.
    pub worker: String,
    /// It had started (output may be missing); else it was claimed
    /// [`MAX_CLAIMS`] times and never started.
    pub started: bool,
}

/// How many runs a workspace has in the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneCounts {
    /// Claimed or running.
    pub running: u32,
    /// Waiting.
    pub queued: u32,
    /// Accepted in the last minute.
    pub last_minute: u32,
}

/// The shared run queue (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct RunQueue {
    pg: Arc<PgBackend>,
    wake: watch::Receiver<u64>,
}

impl std::fmt::Debug for RunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunQueue")
    }
}

fn ws_of(s: &str) -> Result<WorkspaceId> {
    s.parse()
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl RunQueue {
    /// The queue in `pg`'s database, listening for its notifications.
    pub(crate) fn open(pg: Arc<PgBackend>) -> Result<Self> {
        let (tx, wake) = watch::channel(0u64);
        let pool = pg.pool.clone();
        pg.spawn(async move { listen(pool, tx).await })?;
        Ok(Self { pg, wake })
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(PgPool) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send>>,
    ) -> Result<T> {
        let pool = self.pg.pool.clone();
        self.pg.call(f(pool))
    }

    /// Ticks on every queue notification (and at least when the listener
    /// reconnects); workers wait on it between claims.
    pub fn wakeups(&self) -> watch::Receiver<u64> {
        self.wake.clone()
    }

    /// File `e`, or refuse it by the workspace's quotas (see the module
    /// docs).
    ///
    /// # Errors
    /// When the database fails, or the run id is already queued.
    pub fn enqueue(&self, e: Enqueue) -> Result<std::result::Result<(), Refusal>> {
        self.call(move |pool| Box::pin(async move { enqueue(&pool, e).await }))
    }

    /// Claim the next run for `worker`, held for `lease`; `None` when no
    /// workspace with a free slot has one waiting.
    ///
    /// # Errors
    /// When the database fails.
    pub fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claimed>> {
        let worker = worker.to_string();
        self.call(move |pool| Box::pin(async move { claim(&pool, &worker, lease).await }))
    }

    /// Mark `run` as started by `worker`. `false` when the worker no
    /// longer holds it (its lease ran out): it must not run it.
    ///
    /// # Errors
    /// When the database fails.
    pub fn start(&self, run: &str, worker: &str, lease: Duration) -> Result<bool> {
        let (run, worker) = (run.to_string(), worker.to_string());
        self.call(move |pool| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE run_queue SET state = 'running', \
                     lease_until = clock_timestamp() + $3 * interval '1 millisecond' \
                     WHERE run_id = $1 AND worker = $2 AND state = 'claimed'",
                )
                .bind(run)
                .bind(worker)
                .bind(millis(lease))
                .execute(&pool)
                .await
                .map_err(pg)?;
                Ok(n.rows_affected() == 1)
            })
        })
    }

    /// Extend the leases of every run `worker` holds by `lease`; the runs
    /// it still holds, each with whether a cancel was asked for. A run
    /// missing from the answer was taken from the worker (reaped).
    ///
    /// # Errors
    /// When the database fails.
    pub fn renew(&self, worker: &str, lease: Duration) -> Result<Vec<(String, bool)>> {
        let worker = worker.to_string();
        self.call(move |pool| {
            Box::pin(async move {
                let rows = sqlx::query(
                    "UPDATE run_queue SET lease_until = clock_timestamp() + $2 * interval '1 millisecond' \
                     WHERE worker = $1 AND state IN ('claimed', 'running') RETURNING run_id, cancel_requested",
                )
                .bind(worker)
                .bind(millis(lease))
                .fetch_all(&pool)
                .await
                .map_err(pg)?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            })
        })
    }

    /// `worker` is done with `run` (its history is written): it leaves the
    /// queue and its slot frees.
    ///
    /// # Errors
    /// When the database fails.
    pub fn finish(&self, run: &str, worker: &str) -> Result<()> {
        let (run, worker) = (run.to_string(), worker.to_string());
        self.call(move |pool| {
            Box::pin(async move {
                let mut tx = pool.begin().await.map_err(pg)?;
                sqlx::query(&format!(
                    "UPDATE run_queue SET {DONE} WHERE run_id = $1 AND worker = $2"
                ))
                .bind(run)
                .bind(worker)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
                notify(&mut tx, "freed").await?;
                tx.commit().await.map_err(pg)
            })
        })
    }

    /// Cancel run `run` of workspace `ws` (see [`Cancelled`]).
    ///
    /// # Errors
    /// When the database fails.
    pub fn cancel(&self, ws: &WorkspaceId, run: &str) -> Result<Cancelled> {
        let (ws, run) = (ws.to_string(), run.to_string());
        self.call(move |pool| Box::pin(async move { cancel(&pool, &ws, &run).await }))
    }

    /// Take back runs whose lease ran out: re-queue those not started
    /// (claimed fewer than [`MAX_CLAIMS`] times) and return the others,
    /// removed from the queue, for the caller to close in history.
    ///
    /// # Errors
    /// When the database fails.
    pub fn reap(&self) -> Result<Vec<Lost>> {
        self.call(move |pool| Box::pin(async move { reap(&pool).await }))
    }

    /// What workspace `ws` has in the queue.
    ///
    /// # Errors
    /// When the database fails.
    pub fn counts(&self, ws: &WorkspaceId) -> Result<LaneCounts> {
        let ws = ws.to_string();
        self.call(move |pool| {
            Box::pin(async move {
                let r = sqlx::query(
                    "SELECT count(*) FILTER (WHERE state IN ('claimed', 'running')), count(*) FILTER (WHERE state = 'queued'), \
                     (SELECT count(*) FROM run_queue_accepted WHERE workspace = $1 \
                      AND at_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 60000) \
                     FROM run_queue WHERE workspace = $1 AND state <> 'done'",
                )
                .bind(ws)
                .fetch_one(&pool)
                .await
                .map_err(pg)?;
                Ok(LaneCounts {
                    running: count(r.get(0)),
                    queued: count(r.get(1)),
                    last_minute: count(r.get(2)),
                })
            })
        })
    }

    /// Whether `worker` still holds run `run` (its lease was not taken).
    ///
    /// # Errors
    /// When the database fails.
    pub fn holds(&self, run: &str, worker: &str) -> Result<bool> {
        let (run, worker) = (run.to_string(), worker.to_string());
        self.call(move |pool| {
            Box::pin(async move {
                let r = sqlx::query(
                    "SELECT 1 FROM run_queue WHERE run_id = $1 AND worker = $2 \
                     AND state IN ('claimed', 'running')",
                )
                .bind(run)
                .bind(worker)
                .fetch_optional(&pool)
                .await
                .map_err(pg)?;
                Ok(r.is_some())
            })
        })
    }

    /// Whether run `run` is in the queue, and if so its state (`queued`,
    /// `claimed`, `running`).
    ///
    /// # Errors
    /// When the database fails.
    pub fn state(&self, run: &str) -> Result<Option<String>> {
        let run = run.to_string();
        self.call(move |pool| {
            Box::pin(async move {
                let r = sqlx::query(
                    "SELECT state FROM run_queue WHERE run_id = $1 AND state <> 'done'",
                )
                .bind(run)
                .fetch_optional(&pool)
                .await
                .map_err(pg)?;
                Ok(r.map(|r| r.get(0)))
            })
        })
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

async fn notify(tx: &mut Transaction<'static, Postgres>, what: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(what)
        .execute(&mut **tx)
        .await
        .map_err(pg)?;
    Ok(())
}

/// Keep a LISTEN connection, ticking `tx` on each notification and on
/// each reconnect (a notification may have been missed meanwhile).
async fn listen(pool: PgPool, tx: watch::Sender<u64>) {
    loop {
        let mut l = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "queue listener cannot connect; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = l.listen(CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tx.send_modify(|n| *n += 1);
        loop {
            match l.try_recv().await {
                Ok(_) => {
                    tx.send_modify(|n| *n += 1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "queue listener lost; reconnecting");
                    break;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    }
}

async fn enqueue(pool: &PgPool, e: Enqueue) -> Result<std::result::Result<(), Refusal>> {
    let ws = e.workspace.to_string();
    let mut tx = pool.begin().await.map_err(pg)?;
    // Takes (or creates) the lane row's lock: enqueues of one workspace
    // are counted one after the other.
    let now_ms: i64 = sqlx::query(
        "INSERT INTO run_queue_lanes (workspace, max_concurrent) VALUES ($1, $2) \
         ON CONFLICT (workspace) DO UPDATE SET max_concurrent = EXCLUDED.max_concurrent \
         RETURNING (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    )
    .bind(&ws)
    .bind(i64::from(e.max_concurrent))
    .fetch_one(&mut *tx)
    .await
    .map_err(pg)?
    .get(0);
    sqlx::query("DELETE FROM run_queue_accepted WHERE workspace = $1 AND at_ms <= $2")
        .bind(&ws)
        .bind(now_ms - 60_000)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
    let r = sqlx::query("SELECT count(*), min(at_ms) FROM run_queue_accepted WHERE workspace = $1")
        .bind(&ws)
        .fetch_one(&mut *tx)
        .await
        .map_err(pg)?;
    let (last_minute, oldest): (i64, Option<i64>) = (r.get(0), r.get(1));
    if last_minute >= i64::from(e.runs_per_minute) {
        let resets = oldest.unwrap_or(now_ms) + 60_000;
        return Ok(Err(Refusal::RunsPerMinute {
            resets_at_ms: u64::try_from(resets).unwrap_or(0),
        }));
    }
    let r = sqlx::query(
        "SELECT count(*) FILTER (WHERE state IN ('claimed', 'running')), count(*) FILTER (WHERE state = 'queued') \
         FROM run_queue WHERE workspace = $1 AND state <> 'done'",
    )
    .bind(&ws)
    .fetch_one(&mut *tx)
    .await
    .map_err(pg)?;
    let (running, queued) = (count(r.get(0)), count(r.get(1)));
    // Runs beyond the free slots wait; at most `max_queued` of them.
    if u64::from(running) + u64::from(queued)
        >= u64::from(e.max_concurrent) + u64::from(e.max_queued)
    {
        return Ok(Err(Refusal::MaxQueued { running, queued }));
    }
    sqlx::query("INSERT INTO run_queue_accepted (workspace, at_ms) VALUES ($1, $2)")
        .bind(&ws)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
    let inserted = sqlx::query(
        "INSERT INTO run_queue (run_id, workspace, state, job) VALUES ($1, $2, 'queued', $3) \
         ON CONFLICT (run_id) DO NOTHING",
    )
    .bind(&e.run_id)
    .bind(&ws)
    .bind(sqlx::types::Json(&e.job))
    .execute(&mut *tx)
    .await
    .map_err(pg)?
    .rows_affected();
    if inserted == 0 {
        // Rolled back: the acceptance is not counted.
        return Ok(Err(Refusal::Duplicate));
    }
    notify(&mut tx, "enqueued").await?;
    tx.commit().await.map_err(pg)?;
    Ok(Ok(()))
}

/// Lanes a claim looks at, best first, before taking one's lock.
const CLAIM_CANDIDATES: i64 = 16;

async fn claim(pool: &PgPool, worker: &str, lease: Duration) -> Result<Option<Claimed>> {
    let lanes: Vec<String> = sqlx::query(
        "SELECT l.workspace FROM run_queue_lanes l \
         CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE q.state IN ('claimed', 'running')) AS going, \
                                    count(*) FILTER (WHERE q.state = 'queued') AS waiting \
                             FROM run_queue q WHERE q.workspace = l.workspace AND q.state <> 'done') c \
         WHERE c.waiting > 0 AND c.going < l.max_concurrent \
         ORDER BY c.going, l.last_started_at, l.workspace LIMIT $1",
    )
    .bind(CLAIM_CANDIDATES)
    .fetch_all(pool)
    .await
    .map_err(pg)?
    .iter()
    .map(|r| r.get(0))
    .collect();
    for ws in lanes {
        let mut tx = pool.begin().await.map_err(pg)?;
        let Some(lane) = sqlx::query(
            "SELECT max_concurrent FROM run_queue_lanes WHERE workspace = $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(&ws)
        .fetch_optional(&mut *tx)
        .await
        .map_err(pg)?
        else {
            continue; // another worker is claiming from it
        };
        let max: i32 = lane.get(0);
        // Counted again under the lane's lock: every claim of this
        // workspace waits for it, so this count cannot go stale.
        let going: i64 = sqlx::query(
            "SELECT count(*) FROM run_queue WHERE workspace = $1 AND state IN ('claimed', 'running')",
        )
        .bind(&ws)
        .fetch_one(&mut *tx)
        .await
        .map_err(pg)?
        .get(0);
        if going >= i64::from(max) {
            continue;
        }
        let Some(job) = sqlx::query(
            "UPDATE run_queue SET state = 'claimed', worker = $2, \
             lease_until = clock_timestamp() + $3 * interval '1 millisecond' \
             WHERE run_id = (SELECT run_id FROM run_queue WHERE workspace = $1 AND state = 'queued' \
                             ORDER BY enqueued_at, run_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING run_id, job, attempts",
        )
        .bind(&ws)
        .bind(worker)
        .bind(millis(lease))
        .fetch_optional(&mut *tx)
        .await
        .map_err(pg)?
        else {
            continue;
        };
        sqlx::query(
            "UPDATE run_queue_lanes SET last_started_at = clock_timestamp() WHERE workspace = $1",
        )
        .bind(&ws)
        .execute(&mut *tx)
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        let sqlx::types::Json(value): sqlx::types::Json<Value> = job.get(1);
        return Ok(Some(Claimed {
            workspace: ws_of(&ws)?,
            run_id: job.get(0),
            job: value,
            attempts: job.get(2),
        }));
    }
    Ok(None)
}

async fn cancel(pool: &PgPool, ws: &str, run: &str) -> Result<Cancelled> {
    let mut tx = pool.begin().await.map_err(pg)?;
    let state: Option<String> =
        sqlx::query("SELECT state FROM run_queue WHERE run_id = $1 AND workspace = $2 FOR UPDATE")
            .bind(run)
            .bind(ws)
            .fetch_optional(&mut *tx)
            .await
            .map_err(pg)?
            .map(|r| r.get(0));
    let out = match state.as_deref() {
        None | Some("done") => return Ok(Cancelled::NotQueued),
        Some("queued") => {
            sqlx::query(&format!("UPDATE run_queue SET {DONE} WHERE run_id = $1"))
                .bind(run)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
            Cancelled::Dequeued
        }
        Some(_) => {
            sqlx::query("UPDATE run_queue SET cancel_requested = true WHERE run_id = $1")
                .bind(run)
                .execute(&mut *tx)
                .await
                .map_err(pg)?;
            Cancelled::Requested
        }
    };
    notify(&mut tx, "cancel").await?;
    tx.commit().await.map_err(pg)?;
    Ok(out)
}

async fn reap(pool: &PgPool) -> Result<Vec<Lost>> {
    let mut tx = pool.begin().await.map_err(pg)?;
    let requeued = sqlx::query(
        "UPDATE run_queue SET state = 'queued', worker = NULL, lease_until = NULL, \
         attempts = attempts + 1 \
         WHERE state = 'claimed' AND lease_until < clock_timestamp() AND attempts + 1 < $1",
    )
    .bind(MAX_CLAIMS)
    .execute(&mut *tx)
    .await
    .map_err(pg)?
    .rows_affected();
    let rows = sqlx::query(
        "WITH lost AS (SELECT run_id, worker, state FROM run_queue \
           WHERE state IN ('claimed', 'running') AND lease_until < clock_timestamp() FOR UPDATE) \
         UPDATE run_queue q SET state = 'done', worker = NULL, lease_until = NULL, finished_at = clock_timestamp() \
         FROM lost WHERE q.run_id = lost.run_id \
         RETURNING q.workspace, q.run_id, lost.worker, lost.state",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(pg)?;
    if requeued > 0 || !rows.is_empty() {
        notify(&mut tx, "freed").await?;
    }
    sqlx::query(&format!(
        "DELETE FROM run_queue WHERE state = 'done' AND finished_at < clock_timestamp() - interval '{KEEP_DONE}'"
    ))
    .execute(&mut *tx)
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    if requeued > 0 {
        tracing::warn!(
            runs = requeued,
            "re-queued runs claimed by a worker that stopped before starting them"
        );
    }
    rows.iter()
        .map(|r| {
            Ok(Lost {
                workspace: ws_of(r.get::<&str, _>(0))?,
                run_id: r.get(1),
                worker: r.get::<Option<String>, _>(2).unwrap_or_default(),
                started: r.get::<&str, _>(3) == "running",
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
