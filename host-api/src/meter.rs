//! [`StorageMeter`]: how many bytes each workspace stores, measured from
//! the store and cached, so writes can be held to a `storage_bytes`
//! quota without reading the whole workspace on every write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quire_storage::{StorageError, Store, WorkspaceId};

/// A measurement older than this is taken again before it is trusted.
const MAX_AGE: Duration = Duration::from_secs(10);
/// A workspace at its quota is measured again at most this often (so a
/// block retrying refused writes cannot make every write a full scan).
const MIN_REMEASURE: Duration = Duration::from_secs(1);

/// A write refused because the workspace is at its storage quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the workspace's storage quota of {limit_bytes} bytes is reached ({used_bytes} bytes stored, this write adds about {adding_bytes}); delete data, or ask a workspace admin to raise storage_bytes")]
pub struct StorageQuotaExceeded {
    /// The quota, in bytes.
    pub limit_bytes: u64,
    /// Bytes stored (measured, plus writes since).
    pub used_bytes: u64,
    /// About how many bytes the refused write adds.
    pub adding_bytes: u64,
}

/// Why [`StorageMeter::check`] refused.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    /// Over the quota.
    #[error(transparent)]
    Quota(#[from] StorageQuotaExceeded),
    /// Measuring failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    measured: u64,
    added: u64,
    at: Instant,
}

/// Per-workspace stored bytes: measured with
/// [`Store::workspace_data_bytes`], plus an estimate of what was written
/// since. Writes are estimated from their JSON size; deletes are not
/// subtracted until the next measurement, so the estimate errs high.
pub struct StorageMeter {
    store: Store,
    entries: Mutex<HashMap<WorkspaceId, Entry>>,
}

impl std::fmt::Debug for StorageMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageMeter")
    }
}

impl StorageMeter {
    /// A meter over `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkspaceId, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn measure(&self, ws: &WorkspaceId) -> Result<Entry, StorageError> {
        let e = Entry {
            measured: self.store.workspace_data_bytes(ws)?,
            added: 0,
            at: Instant::now(),
        };
        self.lock().insert(*ws, e);
        Ok(e)
    }

    /// Bytes `ws` stores now (measured afresh).
    ///
    /// # Errors
    /// When the store fails.
    pub fn bytes(&self, ws: &WorkspaceId) -> Result<u64, StorageError> {
        Ok(self.measure(ws)?.measured)
    }

    /// Allow a write of about `adding_bytes` to `ws` if its data stays
    /// within `limit_bytes`, and count it.
    ///
    /// # Errors
    /// [`MeterError::Quota`] when the write would pass the quota (after a
    /// fresh measurement, at most one per second per workspace);
    /// [`MeterError::Storage`] when measuring fails.
    pub fn check(
        &self,
        ws: &WorkspaceId,
        limit_bytes: u64,
        adding_bytes: u64,
    ) -> Result<(), MeterError> {
        self.check_with(ws, limit_bytes, adding_bytes, true)
    }

    /// As [`StorageMeter::check`], without counting the bytes: for a
    /// dry-run's staged writes, which store nothing.
    ///
    /// # Errors
    /// As [`StorageMeter::check`].
    pub fn peek(
        &self,
        ws: &WorkspaceId,
        limit_bytes: u64,
        adding_bytes: u64,
    ) -> Result<(), MeterError> {
        self.check_with(ws, limit_bytes, adding_bytes, false)
    }

    fn check_with(
        &self,
        ws: &WorkspaceId,
        limit_bytes: u64,
        adding_bytes: u64,
        count: bool,
    ) -> Result<(), MeterError> {
        let cached = self.lock().get(ws).copied();
        let mut e = match cached {
            Some(e) if e.at.elapsed() < MAX_AGE => e,
            _ => self.measure(ws)?,
        };
        let over = |e: &Entry| e.measured + e.added + adding_bytes > limit_bytes;
        if over(&e) && e.added > 0 && e.at.elapsed() >= MIN_REMEASURE {
            e = self.measure(ws)?;
        }
        if over(&e) {
            return Err(StorageQuotaExceeded {
                limit_bytes,
                used_bytes: e.measured + e.added,
                adding_bytes,
            }
            .into());
        }
        if !count {
            return Ok(());
        }
        if let Some(entry) = self.lock().get_mut(ws) {
            entry.added += adding_bytes;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stop_at_the_quota_and_other_workspaces_are_unaffected(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::memory()?;
        let a = store.create_workspace("a")?.id;
        let b = store.create_workspace("b")?.id;
        let meter = StorageMeter::new(store.clone());
        // Estimates add up without a new measurement.
        meter.check(&a, 10_000, 4_000)?;
        meter.check(&a, 10_000, 4_000)?;
        let e = meter.check(&a, 10_000, 4_000);
        assert!(
            matches!(e, Err(MeterError::Quota(q)) if q.limit_bytes == 10_000 && q.used_bytes == 8_000)
        );
        meter.check(&b, 10_000, 4_000)?;
        // A peek checks without counting.
        for _ in 0..3 {
            meter.peek(&b, 10_000, 5_000)?;
        }
        assert!(meter.peek(&b, 10_000, 6_001).is_err());
        // Measured data counts too.
        store.kv_set(&b, "big", &serde_json::json!("x".repeat(20_000)))?;
        assert!(meter.bytes(&b)? > 20_000);
        assert!(matches!(
            meter.check(&b, 10_000, 1),
            Err(MeterError::Quota(_))
        ));
        Ok(())
    }
}
