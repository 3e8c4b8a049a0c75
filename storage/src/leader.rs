//! Which scheduler process leads, on PostgreSQL (issue 19). Any number of
//! processes may have the scheduler role; one fires schedules at a time.
//!
//! - **Leading** is holding a session-level advisory lock
//!   ([`LOCK_KEY`]) on a connection of the process's own, outside the
//!   pool. A process that dies loses its connection, PostgreSQL releases
//!   the lock, and a waiting process (trying every [`RETRY`]) takes it.
//! - **Terms**: on taking the lock the new leader raises
//!   `schedule_leader.epoch`, and says whether the last leader was alive
//!   in the last [`TAKEOVER_WINDOW`] (a takeover, so fires missed in
//!   between run; otherwise a start, where the schedules' catch-up rules
//!   apply).
//! - **Fencing**: a fire is claimed in `schedule_fires` with the leader's
//!   epoch, under a share lock of the leader row, only while that epoch is
//!   current. A deposed leader that has not noticed yet claims nothing;
//!   two processes that both believe they lead cannot claim one fire
//!   (primary key: workspace, schedule, fire time).

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::sync::watch;

use crate::error::{Result, StorageError};
use crate::model::WorkspaceId;
use crate::pg_backend::PgBackend;

/// The advisory lock's key ("quireSch").
pub const LOCK_KEY: i64 = 0x7175_6972_6553_6368;

/// How often a process that does not lead tries the lock, and a leader
/// checks its connection.
pub const RETRY: Duration = Duration::from_millis(500);

/// A previous leader seen alive this recently makes a new term a
/// takeover.
pub const TAKEOVER_WINDOW: Duration = Duration::from_secs(30);

/// Fire claims older than this are deleted.
const KEEP_FIRES: &str = "7 days";

fn pg(e: impl std::fmt::Display) -> StorageError {
    StorageError::Postgres(e.to_string())
}

/// A term of leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// The epoch (raised by every new leader).
    pub epoch: i64,
    /// The previous leader was alive within [`TAKEOVER_WINDOW`].
    pub takeover: bool,
}

/// What [`Leadership::claim_fire`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireClaim {
    /// This leader claimed it: file it.
    Claimed,
    /// Claimed before (by this leader or one before it, which may have
    /// died before filing it): file it if the schedule still waits for
    /// it; its run id is derived from it, so it runs once either way.
    AlreadyClaimed,
    /// The epoch is no longer current: this process no longer leads.
    Fenced,
}

/// This process's part in the scheduler election (see the module docs).
/// Cheap to clone; the election runs until every clone is dropped.
#[derive(Clone)]
pub struct Leadership {
    pg: Arc<PgBackend>,
    term: watch::Receiver<Option<Term>>,
    _stop: Arc<watch::Sender<()>>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("term", &*self.term.borrow())
            .finish()
    }
}

impl Leadership {
    /// Start taking part, as `holder` (a name for people).
    pub(crate) fn start(pg: Arc<PgBackend>, holder: String) -> Result<Self> {
        let (tx, term) = watch::channel(None);
        let (stop, stopped) = watch::channel(());
        let pool = pg.pool.clone();
        pg.spawn(async move { elect(pool, holder, tx, stopped).await })?;
        Ok(Self {
            pg,
            term,
            _stop: Arc::new(stop),
        })
    }

    /// The term this process leads in, or `None`.
    pub fn term(&self) -> Option<Term> {
        *self.term.borrow()
    }

    /// Ticks when the term changes.
    pub fn changes(&self) -> watch::Receiver<Option<Term>> {
        self.term.clone()
    }

    /// Note that the leader of `epoch` is alive; `false` when `epoch` is
    /// no longer current (fenced).
    ///
    /// # Errors
    /// When the database fails.
    pub fn heartbeat(&self, epoch: i64) -> Result<bool> {
        let pool = self.pg.pool.clone();
        self.pg.call(async move {
            let n = sqlx::query(
                "UPDATE schedule_leader SET heartbeat_at = clock_timestamp() WHERE id = 1 AND epoch = $1",
            )
            .bind(epoch)
            .execute(&pool)
            .await
            .map_err(pg)?
            .rows_affected();
            sqlx::query(&format!(
                "DELETE FROM schedule_fires WHERE claimed_at < clock_timestamp() - interval '{KEEP_FIRES}'"
            ))
            .execute(&pool)
            .await
            .map_err(pg)?;
            Ok(n == 1)
        })
    }

    /// Claim the fire of schedule `schedule` of `ws` at `fire_ms` for the
    /// leader of `epoch` (see [`FireClaim`]).
    ///
    /// # Errors
    /// When the database fails.
    pub fn claim_fire(
        &self,
        ws: &WorkspaceId,
        schedule: &str,
        fire_ms: u64,
        epoch: i64,
    ) -> Result<FireClaim> {
        let (pool, ws, schedule) = (self.pg.pool.clone(), ws.to_string(), schedule.to_string());
        let fire_ms = i64::try_from(fire_ms).map_err(pg)?;
        self.pg.call(async move {
            let mut tx = pool.begin().await.map_err(pg)?;
            // Shared with other claims, exclusive of a new leader's raise.
            let current: Option<i64> =
                sqlx::query("SELECT epoch FROM schedule_leader WHERE id = 1 FOR SHARE")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(pg)?
                    .map(|r| r.get(0));
            if current != Some(epoch) {
                return Ok(FireClaim::Fenced);
            }
            let n = sqlx::query(
                "INSERT INTO schedule_fires (workspace, schedule, fire_ms, epoch) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(ws)
            .bind(schedule)
            .bind(fire_ms)
            .bind(epoch)
            .execute(&mut *tx)
            .await
            .map_err(pg)?
            .rows_affected();
            tx.commit().await.map_err(pg)?;
            Ok(if n == 1 {
                FireClaim::Claimed
            } else {
                FireClaim::AlreadyClaimed
            })
        })
    }
}

/// Try for the lock until this process holds it, then hold it while the
/// connection lives; again after losing it. Ends when `stopped` closes.
async fn elect(
    pool: PgPool,
    holder: String,
    tx: watch::Sender<Option<Term>>,
    mut stopped: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            () = lead_once(&pool, &holder, &tx) => {}
            _ = stopped.changed() => return,
        }
        tx.send_replace(None);
        tokio::time::sleep(RETRY).await;
    }
}

/// One connection's life: wait for the lock, lead until the connection
/// fails.
async fn lead_once(pool: &PgPool, holder: &str, tx: &watch::Sender<Option<Term>>) {
    let mut conn = match PgConnection::connect_with(&pool.connect_options()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "scheduler election cannot connect");
            return;
        }
    };
    loop {
        match sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await
        {
            Ok(r) if r.get::<bool, _>(0) => break,
            Ok(_) => tokio::time::sleep(RETRY).await,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler election lost its connection");
                return;
            }
        }
    }
    match begin_term(&mut conn, holder).await {
        Ok(term) => {
            tracing::info!(
                epoch = term.epoch,
                takeover = term.takeover,
                "this process leads the scheduler"
            );
            tx.send_replace(Some(term));
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not begin a scheduler term");
            return;
        }
    }
    // Hold the lock while the connection answers.
    loop {
        tokio::time::sleep(RETRY).await;
        if let Err(e) = conn.ping().await {
            tracing::warn!(error = %e, "the scheduler leader's connection failed; leading no more");
            return;
        }
    }
}

async fn begin_term(
    conn: &mut PgConnection,
    holder: &str,
) -> std::result::Result<Term, sqlx::Error> {
    let window = i64::try_from(TAKEOVER_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let takeover: bool = sqlx::query(
        "SELECT COALESCE((SELECT heartbeat_at > clock_timestamp() - $1 * interval '1 millisecond' \
         FROM schedule_leader WHERE id = 1), false)",
    )
    .bind(window)
    .fetch_one(&mut *conn)
    .await?
    .get(0);
    let epoch: i64 = sqlx::query(
        "INSERT INTO schedule_leader (id, epoch, holder, heartbeat_at) VALUES (1, 1, $1, clock_timestamp()) \
         ON CONFLICT (id) DO UPDATE SET epoch = schedule_leader.epoch + 1, holder = EXCLUDED.holder, \
         heartbeat_at = clock_timestamp() RETURNING epoch",
    )
    .bind(holder)
    .fetch_one(&mut *conn)
    .await?
    .get(0);
    Ok(Term { epoch, takeover })
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
