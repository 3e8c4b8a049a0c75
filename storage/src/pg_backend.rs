//! [`Backend`] on PostgreSQL: the store of a deployment that runs quire as
//! several processes (issue 18). Each [`Table`] is a table `kv_<name>` of
//! `bytea` keys and values (the bytes sled would hold; PostgreSQL orders
//! `bytea` bytewise, as sled does), so every rule of [`crate::Store`]
//! (workspace-prefixed keys, versioned compare-and-set, quotas) holds
//! unchanged on it.
//!
//! - **Schema** under sqlx migrations (`storage/migrations/`), applied and
//!   checked when the backend opens: a database migrated by a newer quire
//!   is refused.
//! - **Writes** are one `SERIALIZABLE` transaction each; a serialization
//!   failure or deadlock runs the closure again (as the trait allows), so
//!   two processes' read-modify-writes never interleave. Reads go to the
//!   database as the closure asks (after the write's own changes); the
//!   changes are sent together at commit, a statement or two per table.
//! - **Threads**: the store's API is synchronous and is called from
//!   blocking threads (and sometimes from async ones). The backend owns a
//!   small Tokio runtime; each call is spawned on it and waited for on a
//!   channel, never with `block_on`, so calling it from inside another
//!   runtime is safe.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::backend::{Backend, Table, Tx, Visit};
use crate::error::{Result, StorageError};

/// The schema, from `storage/migrations/`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Rows a scan reads at a time.
const SCAN_PAGE: i64 = 256;
/// Times a write is tried before a serialization conflict is an error.
const WRITE_TRIES: u32 = 16;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Connections in the pool. Default: 8.
    pub max_connections: u32,
    /// How long to wait for a connection. Default: 10 s.
    pub connect_timeout: Duration,
}

impl PgConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

fn pg(e: impl std::fmt::Display) -> StorageError {
    StorageError::Postgres(e.to_string())
}

/// The store's tables in PostgreSQL (see the module docs).
pub struct PgBackend {
    /// Always `Some` until dropped.
    rt: Option<tokio::runtime::Runtime>,
    pub(crate) pool: PgPool,
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        // Without waiting: the store may be dropped on an async thread,
        // where a runtime must not block to shut down.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").finish_non_exhaustive()
    }
}

impl PgBackend {
    /// Connect, then apply and check the schema's migrations.
    ///
    /// # Errors
    /// A bad URL, no server, or a schema this build does not know.
    pub fn open(config: &PgConfig) -> Result<Self> {
        // The URL is checked first: past the runtime's creation, every
        // error path must shut it down without blocking.
        let opts: PgConnectOptions = config
            .url
            .parse()
            .map_err(|e| pg(format!("the URL is not a PostgreSQL URL ({e})")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quire-pg")
            .enable_all()
            .build()
            .map_err(pg)?;
        let pool_opts = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(config.connect_timeout);
        let (tx, rx) = flume::bounded(1);
        rt.spawn(async move {
            let r: Result<PgPool> = async {
                let pool = pool_opts.connect_with(opts).await.map_err(pg)?;
                MIGRATOR
                    .run(&pool)
                    .await
                    .map_err(|e| pg(format!("schema migration: {e}")))?;
                Ok(pool)
            }
            .await;
            let _ = tx.send(r);
        });
        match rx.recv().map_err(|_| pg("the connection task ended")) {
            Ok(Ok(pool)) => Ok(Self { rt: Some(rt), pool }),
            Ok(Err(e)) | Err(e) => {
                // Not dropped: this may run on an async thread, where a
                // runtime must not block to shut down.
                rt.shutdown_background();
                Err(e)
            }
        }
    }

    /// Run `fut` on the backend's runtime and wait for it on this thread.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = flume::bounded(1);
        self.spawn(async move {
            let _ = tx.send(fut.await);
        })?;
        rx.recv().map_err(|_| pg("the query task ended"))?
    }

    pub(crate) fn spawn(
        &self,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| pg("the backend is closed"))?;
        rt.spawn(fut);
        Ok(())
    }
}

impl PgBackend {
    /// Visit the keys with `prefix` strictly between `low` and `high`
    /// (either open), ascending or (`rev`) descending, a page at a time.
    fn walk(
        &self,
        t: Table,
        prefix: &[u8],
        mut low: Option<Vec<u8>>,
        mut high: Option<Vec<u8>>,
        rev: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        loop {
            let (pool, start) = (self.pool.clone(), prefix.to_vec());
            let (lo, hi) = (low.clone(), high.clone());
            let rows = self.call(async move {
                let sql = format!(
                    "SELECT k, v FROM {} WHERE k >= $1 AND ($2::bytea IS NULL OR k < $2) \
                     AND ($3::bytea IS NULL OR k > $3) ORDER BY k {} LIMIT {SCAN_PAGE}",
                    table(t),
                    if rev { "DESC" } else { "ASC" }
                );
                let rows = sqlx::query(&sql)
                    .bind(start)
                    .bind(hi)
                    .bind(lo)
                    .fetch_all(&pool)
                    .await
                    .map_err(pg)?;
                Ok(rows
                    .into_iter()
                    .map(|r| (r.get::<Vec<u8>, _>(0), r.get::<Vec<u8>, _>(1)))
                    .collect::<Vec<_>>())
            })?;
            let full = rows.len() as i64 == SCAN_PAGE;
            for (k, v) in &rows {
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            match rows.into_iter().last() {
                Some((k, _)) if full && rev => high = Some(k),
                Some((k, _)) if full => low = Some(k),
                _ => return Ok(()),
            }
        }
    }
}

fn table(t: Table) -> String {
    format!("kv_{}", t.name())
}

/// The first key past every key starting with `prefix` (`None`: no such
/// key, the prefix is all 0xFF or empty).
fn past(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < u8::MAX {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

impl Backend for PgBackend {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let (pool, key) = (self.pool.clone(), key.to_vec());
        self.call(async move {
            let row = sqlx::query(&format!("SELECT v FROM {} WHERE k = $1", table(t)))
                .bind(key)
                .fetch_optional(&pool)
                .await
                .map_err(pg)?;
            Ok(row.map(|r| r.get::<Vec<u8>, _>(0)))
        })
    }

    fn scan(
        &self,
        t: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        self.walk(
            t,
            prefix,
            after.map(<[u8]>::to_vec),
            past(prefix),
            false,
            visit,
        )
    }

    fn scan_rev(
        &self,
        t: Table,
        prefix: &[u8],
        before: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        // Below the smaller of `before` and the end of the prefix.
        let upto = match (before, past(prefix)) {
            (Some(b), Some(p)) => Some(if b < p.as_slice() { b.to_vec() } else { p }),
            (Some(b), None) => Some(b.to_vec()),
            (None, p) => p,
        };
        self.walk(t, prefix, None, upto, true, visit)
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        for attempt in 1..=WRITE_TRIES {
            match self.try_write(f) {
                Err(WriteError::Conflict(why)) if attempt < WRITE_TRIES => {
                    tracing::debug!(attempt, %why, "write conflicted; trying again");
                    std::thread::sleep(Duration::from_millis(u64::from(attempt)));
                }
                Err(WriteError::Conflict(why)) => {
                    return Err(pg(format!("a write kept conflicting ({why})")))
                }
                Err(WriteError::Failed(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // A commit is durable when it returns (synchronous_commit).
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        let pool = self.pool.clone();
        let names: Vec<String> = Table::ALL.iter().map(|t| table(*t)).collect();
        self.call(async move {
            let mut total = 0i64;
            for n in names {
                let row = sqlx::query("SELECT pg_total_relation_size($1::regclass)")
                    .bind(n)
                    .fetch_one(&pool)
                    .await
                    .map_err(pg)?;
                total += row.get::<i64, _>(0);
            }
            Ok(u64::try_from(total).unwrap_or(0))
        })
        .unwrap_or(0)
    }
}

/// Why one try of a write did not commit.
enum WriteError {
    /// Another transaction conflicted (SQLSTATE 40001 or 40P01): try again.
    Conflict(String),
    /// Anything else, including the closure's own error.
    Failed(StorageError),
}

/// A read inside a write, sent from the caller's thread to the task that
/// holds the transaction.
struct Op(Table, Vec<u8>, flume::Sender<OpResult>);

type OpResult = std::result::Result<Option<Vec<u8>>, sqlx::Error>;

/// A write's changes, by table and key: the value, or `None` to delete.
/// Sent once, at commit, so a write costs its reads plus a statement or
/// two per table it changes, not a round trip per key.
type Changes = BTreeMap<(Table, Vec<u8>), Option<Vec<u8>>>;

fn conflict(e: &sqlx::Error) -> bool {
    matches!(
        e.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("40001" | "40P01")
    )
}

async fn read(tx: &mut Transaction<'static, Postgres>, Op(t, k, reply): Op) {
    let r = sqlx::query(&format!("SELECT v FROM {} WHERE k = $1", table(t)))
        .bind(k)
        .fetch_optional(&mut **tx)
        .await
        .map(|row| row.map(|r| r.get::<Vec<u8>, _>(0)));
    let _ = reply.send(r);
}

/// One table's part of [`Changes`]: keys and values to upsert, keys to
/// delete.
type TableChanges = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Apply `changes`: per table, one upsert of every new value and one
/// delete of every removed key (keys in order, so two writes lock rows
/// in the same order).
async fn flush(
    tx: &mut Transaction<'static, Postgres>,
    changes: Changes,
) -> std::result::Result<(), sqlx::Error> {
    let mut by_table: BTreeMap<Table, TableChanges> = BTreeMap::new();
    for ((t, k), v) in changes {
        let (keys, values, gone) = by_table.entry(t).or_default();
        match v {
            Some(v) => {
                keys.push(k);
                values.push(v);
            }
            None => gone.push(k),
        }
    }
    for (t, (keys, values, gone)) in by_table {
        if !keys.is_empty() {
            sqlx::query(&format!(
                "INSERT INTO {} (k, v) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                table(t)
            ))
            .bind(keys)
            .bind(values)
            .execute(&mut **tx)
            .await?;
        }
        if !gone.is_empty() {
            sqlx::query(&format!(
                "DELETE FROM {} WHERE k = ANY($1::bytea[])",
                table(t)
            ))
            .bind(gone)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The caller's side of an open transaction: reads go to the database
/// (after this write's own changes), changes wait for the commit.
struct PgTx {
    ops: flume::Sender<Op>,
    changes: Changes,
    /// The first conflict seen: the whole write is tried again.
    conflict: Option<String>,
}

impl PgTx {
    fn read(&mut self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.changes.get(&(t, key.to_vec())) {
            return Ok(v.clone());
        }
        let (tx, rx) = flume::bounded(1);
        self.ops
            .send(Op(t, key.to_vec(), tx))
            .map_err(|_| pg("the transaction ended"))?;
        match rx.recv().map_err(|_| pg("the transaction ended"))? {
            Ok(v) => Ok(v),
            Err(e) if conflict(&e) => {
                let why = e.to_string();
                self.conflict.get_or_insert(why.clone());
                Err(pg(why))
            }
            Err(e) => Err(pg(e)),
        }
    }
}

impl Tx for PgTx {
    fn get(&mut self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(t, key)
    }

    fn put(&mut self, t: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.changes.insert((t, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn remove(&mut self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.read(t, key)?;
        self.changes.insert((t, key.to_vec()), None);
        Ok(old)
    }
}

impl PgBackend {
    /// One try: open a serializable transaction on the runtime, run `f`
    /// here with its statements sent there, then commit or roll back.
    fn try_write(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>,
    ) -> std::result::Result<(), WriteError> {
        let (ops_tx, ops_rx) = flume::unbounded::<Op>();
        // `Some(changes)`: apply them and commit; `None`: roll back.
        let (done_tx, done_rx) = flume::bounded::<Option<Changes>>(1);
        let (end_tx, end_rx) = flume::bounded::<std::result::Result<(), sqlx::Error>>(1);
        let pool = self.pool.clone();
        self.spawn(async move {
            let r = async {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                    .execute(&mut *tx)
                    .await?;
                // Statements until the caller has no more; each waits for
                // its answer, so none is pending when the decision comes.
                while let Ok(op) = ops_rx.recv_async().await {
                    read(&mut tx, op).await;
                }
                match done_rx.recv_async().await {
                    Ok(Some(changes)) => {
                        flush(&mut tx, changes).await?;
                        tx.commit().await
                    }
                    _ => tx.rollback().await,
                }
            }
            .await;
            let _ = end_tx.send(r);
        })
        .map_err(WriteError::Failed)?;
        let mut handle = PgTx {
            ops: ops_tx,
            changes: Changes::new(),
            conflict: None,
        };
        let outcome = f(&mut handle);
        let commit = outcome.is_ok() && handle.conflict.is_none();
        let _ = done_tx.send(commit.then(|| std::mem::take(&mut handle.changes)));
        drop(handle.ops);
        let ended = end_rx
            .recv()
            .map_err(|_| WriteError::Failed(pg("the transaction task ended")))?;
        if let Some(why) = handle.conflict {
            return Err(WriteError::Conflict(why));
        }
        match (outcome, ended) {
            (Err(e), _) => Err(WriteError::Failed(e)),
            (Ok(()), Err(e)) if conflict(&e) => Err(WriteError::Conflict(e.to_string())),
            (Ok(()), Err(e)) => Err(WriteError::Failed(pg(e))),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every store table has a `kv_` table in the migrations (a table
    /// added to `Table` without one fails to open on PostgreSQL).
    #[test]
    fn the_migrations_create_a_table_for_every_store_table() {
        let created: Vec<String> = MIGRATOR
            .iter()
            .flat_map(|m| {
                m.sql
                    .split("CREATE TABLE ")
                    .skip(1)
                    .filter_map(|rest| rest.split_whitespace().next().map(String::from))
                    .collect::<Vec<_>>()
            })
            .collect();
        for t in Table::ALL {
            assert!(
                created.contains(&table(t)),
                "no migration creates {}",
                table(t)
            );
        }
    }
}
