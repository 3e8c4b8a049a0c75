//! Run history's size, and its retention by size and age.
//!
//! Every run write, event append and delete keeps a per-workspace count
//! of the bytes its run records and their event chunks take
//! (`Table::HistoryBytes`), in the same atomic write, so
//! the size is known without a scan. [`Store::prune_history`] deletes the
//! oldest finished runs of a workspace until its history fits a byte
//! budget and no finished run is older than a cutoff; the server calls it
//! as runs finish, with the workspace's `history_bytes` and
//! `history_days` quotas. Runs stored before this count existed are not
//! counted, and are deleted by age (they are the oldest).

use serde::Deserialize;

use crate::backend::{Table, Tx};
use crate::error::Result;
use crate::keys::Key;
use crate::model::WorkspaceId;
use crate::store::Store;

/// What one prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Runs deleted.
    pub runs: u64,
    /// Bytes of history they took.
    pub bytes: u64,
}

/// The fields of a stored run that retention reads (the rest, its
/// events, is skipped over without being kept).
#[derive(Deserialize)]
struct RunHead {
    #[serde(default)]
    status: String,
    #[serde(default)]
    started_ms: u64,
    #[serde(default)]
    block: Option<String>,
}

/// One run to delete: its key, size (record and events), by-block index
/// key, and its events' keys.
struct Doomed {
    key: Vec<u8>,
    bytes: u64,
    index: Option<Vec<u8>>,
    events: Vec<Vec<u8>>,
}

fn counter_key(ws: &WorkspaceId) -> Vec<u8> {
    Key::ws(ws).prefix()
}

fn read_counter(v: Option<Vec<u8>>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Change workspace `ws`'s history size by `delta` bytes inside `tx`.
pub(crate) fn add_history_in(tx: &mut dyn Tx, ws: &WorkspaceId, delta: i64) -> Result<()> {
    let key = counter_key(ws);
    let now = read_counter(tx.get(Table::HistoryBytes, &key)?);
    let next = now.saturating_add_signed(delta);
    tx.put(Table::HistoryBytes, &key, &next.to_be_bytes())
}

/// The run id at the end of a `Table::Runs` key.
fn run_id(key: &[u8], prefix_len: usize) -> String {
    crate::keys::tail(key, prefix_len)
}

/// Runs deleted per atomic write while pruning (a run's events are up
/// to a few thousand chunks).
const PRUNE_BATCH: usize = 8;

impl Store {
    /// Bytes workspace `ws`'s run history takes (see the module docs).
    pub fn history_bytes(&self, ws: &WorkspaceId) -> Result<u64> {
        Ok(read_counter(
            self.b.get(Table::HistoryBytes, &counter_key(ws))?,
        ))
    }

    /// Delete workspace `ws`'s oldest finished runs (never one still
    /// `running` or `queued`) until its history takes at most `max_bytes`
    /// and none started before `oldest_ms`.
    ///
    /// # Errors
    /// When the store fails.
    pub fn prune_history(
        &self,
        ws: &WorkspaceId,
        max_bytes: u64,
        oldest_ms: u64,
    ) -> Result<Pruned> {
        let mut left = self.history_bytes(ws)?;
        let mut doomed = Vec::new();
        let prefix = Key::ws(ws).prefix();
        self.b.scan(Table::Runs, &prefix, None, &mut |k, v| {
            let Ok(head) = serde_json::from_slice::<RunHead>(v) else {
                return Ok(true);
            };
            if head.status == "running" || head.status == "queued" {
                return Ok(true);
            }
            if left <= max_bytes && head.started_ms >= oldest_ms {
                return Ok(false);
            }
            let id = k.get(prefix.len()..).unwrap_or_default();
            let diff = self.b.get(Table::Diffs, k)?.map_or(0, |d| d.len() as u64);
            let bytes =
                v.len() as u64 + diff + self.run_event_totals(ws, &run_id(k, prefix.len()))?.bytes;
            left = left.saturating_sub(bytes);
            let index = head.block.as_ref().map(|b| {
                Key::ws(ws)
                    .seg(b.as_bytes())
                    .raw(&head.started_ms.to_be_bytes())
                    .last(id)
            });
            doomed.push(Doomed {
                key: k.to_vec(),
                bytes,
                index,
                events: Vec::new(),
            });
            Ok(true)
        })?;
        let mut pruned = Pruned::default();
        for batch in doomed.chunks_mut(PRUNE_BATCH) {
            for d in batch.iter_mut() {
                d.events = self.event_keys(ws, &run_id(&d.key, prefix.len()))?;
            }
            let mut freed = 0u64;
            self.b.write(&mut |tx| {
                freed = 0;
                for d in batch.iter() {
                    if tx.remove(Table::Runs, &d.key)?.is_some() {
                        freed += d.bytes;
                    }
                    // A dry-run's diff goes with its run.
                    tx.remove(Table::Diffs, &d.key)?;
                    tx.remove(Table::DiffHeads, &d.key)?;
                    if let Some(i) = &d.index {
                        tx.remove(Table::RunsByBlock, i)?;
                    }
                    crate::events::remove_in(tx, ws, &run_id(&d.key, prefix.len()), &d.events)?;
                }
                add_history_in(tx, ws, -i64::try_from(freed).unwrap_or(i64::MAX))
            })?;
            pruned.runs += batch.len() as u64;
            pruned.bytes += freed;
        }
        Ok(pruned)
    }
}
