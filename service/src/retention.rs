//! Run history retention: after a run's history is written, its
//! workspace's oldest finished runs are deleted until the history fits the
//! `history_bytes` quota and none is older than `history_days`.
//!
//! The size check is a counter read, so it runs after every run; the age
//! check reads the oldest run, so it runs at most once a minute per
//! workspace (or whenever the size is over). With the age check, dry-run
//! diffs that expired or were decided lose their changes (the run's own
//! `diff` event keeps what they were).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quire_storage::{StorageError, Store, WorkspaceId};

/// How often a workspace's history is checked for age alone.
const AGE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// When each workspace's history was last checked for age.
#[derive(Debug, Default)]
pub(crate) struct Retention {
    aged: Mutex<HashMap<WorkspaceId, Instant>>,
}

impl Retention {
    /// Apply workspace `ws`'s history quotas (blocking: call off the
    /// async threads).
    pub(crate) fn apply(
        &self,
        store: &Store,
        ws: &WorkspaceId,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        let quota = store
            .get_quota(ws)?
            .unwrap_or_default()
            .within(&store.quota_ceilings()?);
        let over = store.history_bytes(ws)? > quota.history_bytes;
        let age_due = {
            let mut aged = self.aged.lock().unwrap_or_else(|e| e.into_inner());
            let due = aged.get(ws).is_none_or(|t| t.elapsed() >= AGE_CHECK_EVERY);
            if due {
                aged.insert(*ws, Instant::now());
            }
            due
        };
        if age_due {
            let dropped = store.prune_diffs(ws, now_ms)?;
            if dropped > 0 {
                tracing::info!(workspace = %ws, diffs = dropped, "expired and decided dry-run diffs dropped");
            }
        }
        if !over && !age_due {
            return Ok(());
        }
        let oldest_ms = now_ms.saturating_sub(quota.history_days.saturating_mul(86_400_000));
        let pruned = store.prune_history(ws, quota.history_bytes, oldest_ms)?;
        if pruned.runs > 0 {
            tracing::info!(workspace = %ws, runs = pruned.runs, bytes = pruned.bytes, "old run history deleted (history quota)");
        }
        Ok(())
    }
}
