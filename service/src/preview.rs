//! Dry-runs' previews: a dry-run's staged changes filed as a diff when it
//! ends (before its `finished` event goes out), and applying or
//! discarding that diff later.
//!
//! What a dry-run may stage is `quire-host-api`'s (staging); the
//! transaction that applies a diff only if none of its records changed is
//! `quire-storage`'s. This module joins them to runs: the diff's expiry,
//! its digest, and words for every refusal.

use quire_engine::{Diff, Finished, RunStatus};
use quire_host_api::DryRun;
use quire_storage::{now_ms, ApplyRefusal, DiffStatus, StagedDiff, WorkspaceId};
use serde_json::{json, Value};

use crate::error::{blocking, ServiceError, ServiceResult};
use crate::hub::RunHub;

impl RunHub {
    /// Seal `dry`, file its diff for run `run` and return the event that
    /// shows it. A diff that cannot be filed is still shown (with no
    /// digest, so it can never be applied) and the failure logged.
    pub(crate) async fn file_diff(
        &self,
        ws: WorkspaceId,
        run: &str,
        dry: &DryRun,
        finished: &Finished,
    ) -> Diff {
        let sealed = dry.seal();
        let created_ms = now_ms();
        let expires_ms = created_ms.saturating_add(self.api.dry_run_limits().keep_ms);
        let digest = quire_storage::digest(&sealed.changes);
        let changes = Value::Array(sealed.shown);
        let filed = StagedDiff {
            run: run.to_string(),
            count: sealed.changes.len(),
            changes: sealed.changes,
            digest: digest.clone(),
            bytes: sealed.bytes,
            created_ms,
            expires_ms,
            run_ok: finished.status == RunStatus::Ok,
            status: DiffStatus::Pending,
            decided_ms: None,
        };
        let store = self.store.clone();
        let stored = blocking(move || Ok(store.put_diff(&ws, &filed)?)).await;
        let digest = match stored {
            Ok(()) => digest,
            Err(e) => {
                tracing::error!(error = %e, "a dry-run's diff could not be filed");
                String::new()
            }
        };
        Diff {
            changes,
            applicable: !digest.is_empty() && finished.status == RunStatus::Ok,
            digest,
            bytes: sealed.bytes,
            expires_ms,
        }
    }

    /// Apply dry-run `run`'s diff, named by `digest`; how many changes
    /// were written.
    ///
    /// # Errors
    /// [`ServiceError::Preview`] saying why nothing was written.
    pub async fn apply_preview(
        &self,
        ws: WorkspaceId,
        run: String,
        digest: String,
    ) -> ServiceResult<usize> {
        let limit = self.quota(ws).await?.storage_bytes;
        let (store, api) = (self.store.clone(), self.api.clone());
        let now = now_ms();
        let r = run.clone();
        let out = blocking(move || {
            // The workspace may have grown since the dry-run: what the diff
            // adds is held to the quota again.
            if let Some(d) = store.get_diff(&ws, &r)? {
                let growth = growth_bytes(&d);
                if growth > 0 {
                    if let Err(e) = api.storage_meter().check(&ws, limit, growth) {
                        return Err(ServiceError::Conflict(format!(
                            "nothing was applied: the changes of run '{r}' would pass the storage quota: {e}"
                        )));
                    }
                }
            }
            Ok(store.apply_diff(&ws, &r, &digest, now)?)
        })
        .await?;
        if out.is_ok() {
            tracing::info!(run = %run, "dry-run applied");
        }
        out.map_err(|refusal| refused(&run, refusal))
    }

    /// Discard dry-run `run`'s diff.
    ///
    /// # Errors
    /// [`ServiceError::Preview`] when it is not pending.
    pub async fn discard_preview(&self, ws: WorkspaceId, run: String) -> ServiceResult<()> {
        let store = self.store.clone();
        let r = run.clone();
        let out = blocking(move || Ok(store.discard_diff(&ws, &r, now_ms())?)).await?;
        out.map_err(|refusal| refused(&run, refusal))
    }
}

/// Bytes applying `d` would add to its workspace's data (JSON of every
/// `after` less every `before`; 0 when it shrinks).
fn growth_bytes(d: &StagedDiff) -> u64 {
    let len = |v: &Value| {
        if v.is_null() {
            0
        } else {
            serde_json::to_vec(v).map_or(0, |b| b.len() as i64)
        }
    };
    let net: i64 = d
        .changes
        .iter()
        .map(|c| len(&c.after) - len(&c.before))
        .sum();
    u64::try_from(net).unwrap_or(0)
}

/// A diff as run listings show it.
pub fn summary(d: &StagedDiff) -> Value {
    json!({
        "status": d.status_at(now_ms()).as_str(),
        "changes": d.count,
        "expires_ms": d.expires_ms,
        "decided_ms": d.decided_ms,
    })
}

fn refused(run: &str, refusal: ApplyRefusal) -> ServiceError {
    let message = match &refusal {
        ApplyRefusal::NotFound => format!("run '{run}' is not a dry-run of this workspace"),
        ApplyRefusal::Expired { expires_ms } => format!(
            "the preview of run '{run}' expired at {expires_ms} (ms since the epoch); dry-run it again"
        ),
        ApplyRefusal::Decided(status) => {
            format!("the preview of run '{run}' was {} already", status.as_str())
        }
        ApplyRefusal::RunFailed => format!(
            "dry-run '{run}' ended with an error; its changes are shown, not applied"
        ),
        ApplyRefusal::Digest => format!(
            "the digest does not name the changes of run '{run}' as filed; apply with the digest of its diff event"
        ),
        ApplyRefusal::Conflicts(records) => format!(
            "nothing was applied: {} changed since the dry-run read {}; dry-run it again",
            records
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if records.len() == 1 { "it" } else { "them" }
        ),
    };
    ServiceError::Preview {
        run: run.to_string(),
        refusal,
        message,
    }
}
