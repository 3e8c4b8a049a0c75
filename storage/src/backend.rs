//! The ordered key-value layer under [`crate::Store`]: named tables of
//! byte keys and values, prefix scans, and atomic multi-table writes.
//!
//! Two implementations: [`SledBackend`](crate::SledBackend) (on disk) and
//! [`MemoryBackend`] (in memory, for tests and embedding). Every piece of
//! document logic lives once, in `Store`, above this trait.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::Result;

/// The tables the store keeps. Each is a sled tree on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Schema version and other database-wide facts.
    Meta,
    /// Workspace id → workspace record.
    Workspaces,
    /// Workspace name → workspace id.
    WorkspaceNames,
    /// Workspace id + document id → document.
    Docs,
    /// Workspace id + collection + row id → row.
    Rows,
    /// Workspace id + key → value.
    Kv,
    /// Workspace id + name → encrypted secret.
    Secrets,
    /// Workspace id + block id → block (source, lang, grants).
    Blocks,
    /// Workspace id + run id → run record (request, events, outcome).
    Runs,
    /// Workspace id + block id + start time + run id → nothing (index).
    RunsByBlock,
    /// Token id → API token record (its hash, never the token).
    Tokens,
    /// Workspace id + run id → nothing, for runs recorded as `running`
    /// (what a restart must close).
    RunsActive,
    /// Workspace id + schedule id → schedule (cron, next fire time).
    Schedules,
    /// Workspace id + run id → nothing, for runs filed as `queued` by a
    /// schedule and not started yet (what a restart must start).
    RunsQueued,
    /// Webhook id → webhook record (its hash, never the secret).
    Webhooks,
    /// Workspace id → the quota its admins set; `ceilings` → the server
    /// admin's ceilings.
    Quotas,
    /// Workspace id + UTC day number → that day's metered usage.
    Usage,
    /// Workspace id → bytes of its run history (its run records, as
    /// stored), kept with every run write and delete.
    HistoryBytes,
    /// Workspace id + run id + seq + part → a chunk of the run's events;
    /// workspace id + run id → the run's event totals (see `events`).
    RunEvents,
    /// Workspace id + run id → a dry-run's diff (see `diffs`).
    Diffs,
    /// Workspace id + run id → the diff's head (its status and count,
    /// without its changes), for listings.
    DiffHeads,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 21] = [
        Table::Meta,
        Table::Workspaces,
        Table::WorkspaceNames,
        Table::Docs,
        Table::Rows,
        Table::Kv,
        Table::Secrets,
        Table::Blocks,
        Table::Runs,
        Table::RunsByBlock,
        Table::Tokens,
        Table::RunsActive,
        Table::Schedules,
        Table::RunsQueued,
        Table::Webhooks,
        Table::Quotas,
        Table::Usage,
        Table::HistoryBytes,
        Table::RunEvents,
        Table::Diffs,
        Table::DiffHeads,
    ];

    /// The table's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Workspaces => "workspaces",
            Table::WorkspaceNames => "workspace_names",
            Table::Docs => "docs",
            Table::Rows => "rows",
            Table::Kv => "kv",
            Table::Secrets => "secrets",
            Table::Blocks => "blocks",
            Table::Runs => "runs",
            Table::RunsByBlock => "runs_by_block",
            Table::Tokens => "tokens",
            Table::RunsActive => "runs_active",
            Table::Schedules => "schedules",
            Table::RunsQueued => "runs_queued",
            Table::Webhooks => "webhooks",
            Table::Quotas => "quotas",
            Table::Usage => "usage",
            Table::HistoryBytes => "history_bytes",
            Table::RunEvents => "run_events",
            Table::Diffs => "diffs",
            Table::DiffHeads => "diff_heads",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Reads and writes inside one atomic write.
pub trait Tx {
    /// The value at `key`, seeing this transaction's own writes.
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Set `key` to `value`.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()>;
    /// Remove `key`; the old value, if there was one.
    fn remove(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
}

/// Called for each entry of a scan: return `false` to stop.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// An ordered key-value store with atomic multi-table writes.
pub trait Backend: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Visit entries whose key starts with `prefix`, in key order, starting
    /// after `after` when given.
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()>;
    /// Visit entries whose key starts with `prefix` in reverse key order
    /// (last first), starting before `before` when given.
    fn scan_rev(
        &self,
        table: Table,
        prefix: &[u8],
        before: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()>;
    /// Run `f` as one atomic write: all its changes land or none do. `f`
    /// may be run more than once (on conflict), so it must not have side
    /// effects outside the transaction.
    fn write(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()>;
    /// Make every completed write durable (see `Durability`).
    fn flush(&self) -> Result<()>;
    /// Bytes the data takes (on disk, or in memory).
    fn size_bytes(&self) -> u64;
}

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// The exclusive upper bound of a reverse scan over `prefix` starting
/// before `before`: the smaller of `before` and the first key past every
/// key with the prefix.
pub(crate) fn rev_end(prefix: &[u8], before: Option<&[u8]>) -> std::ops::Bound<Vec<u8>> {
    use std::ops::Bound;
    let mut past = prefix.to_vec();
    while let Some(last) = past.pop() {
        if last < u8::MAX {
            past.push(last + 1);
            break;
        }
    }
    match before {
        Some(b) if past.is_empty() || b < past.as_slice() => Bound::Excluded(b.to_vec()),
        _ if past.is_empty() => Bound::Unbounded,
        _ => Bound::Excluded(past),
    }
}

/// Everything in memory, behind one lock; writes stage their changes and
/// apply them only when `f` succeeds. Nothing survives the process.
#[derive(Default)]
pub struct MemoryBackend {
    tables: Mutex<Vec<Map>>,
}

impl MemoryBackend {
    /// An empty in-memory backend.
    pub fn new() -> Self {
        Self {
            tables: Mutex::new(vec![Map::new(); Table::ALL.len()]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Map>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Page = Vec<(Vec<u8>, Vec<u8>)>;

/// Up to 256 entries of `iter` while they start with `prefix`, copied.
fn page<'a>(iter: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>, prefix: &[u8]) -> Page {
    iter.take_while(|(k, _)| k.starts_with(prefix))
        .take(256)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl MemoryBackend {
    /// Visit entries page by page, so `visit` runs without the lock held;
    /// `next` reads the page after `cursor` (the last key visited).
    fn paged(
        &self,
        table: Table,
        start: Option<&[u8]>,
        visit: &mut Visit<'_>,
        next: impl Fn(&Map, Option<&[u8]>) -> Page,
    ) -> Result<()> {
        let mut cursor: Option<Vec<u8>> = start.map(<[u8]>::to_vec);
        loop {
            let page = next(&self.lock()[table.index()], cursor.as_deref());
            if page.is_empty() {
                return Ok(());
            }
            for (k, v) in &page {
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            cursor = page.last().map(|(k, _)| k.clone());
        }
    }
}

struct MemTx<'a> {
    base: &'a [Map],
    staged: BTreeMap<(usize, Vec<u8>), Option<Vec<u8>>>,
}

impl Tx for MemTx<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.staged.get(&(table.index(), key.to_vec())) {
            return Ok(v.clone());
        }
        Ok(self.base[table.index()].get(key).cloned())
    }
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.staged
            .insert((table.index(), key.to_vec()), Some(value.to_vec()));
        Ok(())
    }
    fn remove(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.get(table, key)?;
        self.staged.insert((table.index(), key.to_vec()), None);
        Ok(old)
    }
}

impl Backend for MemoryBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lock()[table.index()].get(key).cloned())
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        use std::ops::Bound;
        self.paged(table, after, visit, |map, cursor| {
            let start = match cursor {
                Some(c) => Bound::Excluded(c.to_vec()),
                None => Bound::Included(prefix.to_vec()),
            };
            page(map.range((start, Bound::Unbounded)), prefix)
        })
    }

    fn scan_rev(
        &self,
        table: Table,
        prefix: &[u8],
        before: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        use std::ops::Bound;
        self.paged(table, before, visit, |map, cursor| {
            let end = rev_end(prefix, cursor);
            page(
                map.range((Bound::Included(prefix.to_vec()), end)).rev(),
                prefix,
            )
        })
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut tables = self.lock();
        let mut tx = MemTx {
            base: &tables,
            staged: BTreeMap::new(),
        };
        f(&mut tx)?;
        let staged = tx.staged;
        for ((t, k), v) in staged {
            match v {
                Some(v) => tables[t].insert(k, v),
                None => tables[t].remove(&k),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.lock()
            .iter()
            .flat_map(|m| m.iter())
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }
}
