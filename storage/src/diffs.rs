//! Dry-run diffs: the changes a dry-run staged, kept for a bounded time
//! so an editor can apply exactly them later, in one transaction, if none
//! of the records they touch changed meanwhile.
//!
//! Storage knows records (documents, rows, kv keys) and compares their
//! stored JSON; what a run staged, and the limits on it, are decided above
//! (`quire-host-api` stages, the run service files the diff).
//!
//! A diff is run history: its bytes count in the workspace's
//! `history_bytes`, and pruning a run deletes its diff. Its changes are
//! dropped once it is applied, discarded or expired (the run's `diff`
//! event keeps what they were); its head (status, count) stays with the
//! run, in `DiffHeads`, so listings never read the changes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::{Table, Tx};
use crate::error::{invalid, Result};
use crate::keys::{check_name, Key};
use crate::model::{Document, WorkspaceId};
use crate::store::{to_vec, Store};

/// A record a dry-run changes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A document, by id.
    Doc {
        /// Its id.
        id: String,
    },
    /// A row of a collection.
    Row {
        /// The collection.
        collection: String,
        /// The row's id.
        id: String,
    },
    /// A kv key.
    Kv {
        /// The key.
        key: String,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Doc { id } => write!(f, "document '{id}'"),
            Target::Row { collection, id } => write!(f, "row '{id}' of '{collection}'"),
            Target::Kv { key } => write!(f, "kv key '{key}'"),
        }
    }
}

/// What a change does to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// The record did not exist; `after` is what it becomes.
    Insert,
    /// The record existed as `before` and becomes `after`.
    Update,
    /// The record existed as `before` and is removed.
    Delete,
}

/// One record's change: `before` (null for an insert) and `after` (null
/// for a delete) as stored JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Which record.
    #[serde(flatten)]
    pub target: Target,
    /// What happens to it.
    pub op: ChangeOp,
    /// The record when the dry-run first touched it.
    pub before: Value,
    /// The record as the dry-run left it.
    pub after: Value,
}

/// Where a diff stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffStatus {
    /// Waiting for an editor: it may be applied or discarded.
    Pending,
    /// Applied: its changes were committed.
    Applied,
    /// Discarded by an editor.
    Discarded,
    /// Its time ran out; its changes are no longer kept.
    Expired,
}

impl DiffStatus {
    /// The status's name (`pending`, `applied`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DiffStatus::Pending => "pending",
            DiffStatus::Applied => "applied",
            DiffStatus::Discarded => "discarded",
            DiffStatus::Expired => "expired",
        }
    }
}

/// A dry-run's diff as filed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedDiff {
    /// The dry-run's id.
    pub run: String,
    /// Every change, in the order the run first touched each record.
    pub changes: Vec<Change>,
    /// [`digest`] of `changes`: what an apply must name.
    pub digest: String,
    /// Their JSON size, in bytes.
    pub bytes: u64,
    /// How many changes there were (kept when `changes` is dropped).
    pub count: usize,
    /// Filed at, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// After this (ms since the epoch) it can no longer be applied.
    pub expires_ms: u64,
    /// The dry-run finished `ok` (a failed run's diff is shown, never
    /// applied).
    pub run_ok: bool,
    /// Where it stands.
    pub status: DiffStatus,
    /// When it was applied, discarded or pruned as expired.
    #[serde(default)]
    pub decided_ms: Option<u64>,
}

impl StagedDiff {
    /// Its status at `now_ms` (a pending diff past its time is expired).
    pub fn status_at(&self, now_ms: u64) -> DiffStatus {
        if self.status == DiffStatus::Pending && now_ms > self.expires_ms {
            DiffStatus::Expired
        } else {
            self.status
        }
    }
}

/// The hex SHA-256 of `changes` as JSON: names exactly one diff.
pub fn digest(changes: &[Change]) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(changes).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why an apply was refused (nothing was written).
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyRefusal {
    /// No diff of that run in the workspace.
    NotFound,
    /// Its time ran out at `expires_ms`.
    Expired {
        /// When (ms since the epoch).
        expires_ms: u64,
    },
    /// It was applied or discarded already.
    Decided(DiffStatus),
    /// The dry-run failed; its changes are shown, not applied.
    RunFailed,
    /// The digest given is not the diff's, or the stored changes no longer
    /// match their digest.
    Digest,
    /// These records changed since the dry-run read them.
    Conflicts(Vec<Target>),
}

fn diff_key(ws: &WorkspaceId, run: &str) -> Result<Vec<u8>> {
    check_name("run id", run)?;
    Ok(Key::ws(ws).last(run.as_bytes()))
}

fn record_key(ws: &WorkspaceId, t: &Target) -> Result<(Table, Vec<u8>)> {
    Ok(match t {
        Target::Doc { id } => {
            check_name("document id", id)?;
            (Table::Docs, Key::ws(ws).last(id.as_bytes()))
        }
        Target::Row { collection, id } => {
            check_name("collection name", collection)?;
            check_name("row id", id)?;
            (
                Table::Rows,
                Key::ws(ws).seg(collection.as_bytes()).last(id.as_bytes()),
            )
        }
        Target::Kv { key } => {
            check_name("kv key", key)?;
            (Table::Kv, Key::ws(ws).last(key.as_bytes()))
        }
    })
}

/// Write `d` (and its head) in `tx`, counting the change in size in the
/// workspace's history bytes.
fn put_in(tx: &mut dyn Tx, ws: &WorkspaceId, key: &[u8], d: &StagedDiff) -> Result<()> {
    let was = tx.get(Table::Diffs, key)?.map_or(0, |v| v.len() as i64);
    let bytes = to_vec(d)?;
    let head = StagedDiff {
        changes: Vec::new(),
        ..d.clone()
    };
    tx.put(Table::DiffHeads, key, &to_vec(&head)?)?;
    tx.put(Table::Diffs, key, &bytes)?;
    crate::retention::add_history_in(tx, ws, bytes.len() as i64 - was)
}

fn read_in(tx: &mut dyn Tx, table: Table, key: &[u8]) -> Result<Option<Value>> {
    tx.get(table, key)?
        .map(|v| crate::error::decode("record", &v))
        .transpose()
}

/// Whether the stored record (`None`: absent) is what `c` found.
fn unchanged(c: &Change, stored: Option<&Value>) -> bool {
    match (c.op, stored) {
        (ChangeOp::Insert, None) => true,
        (ChangeOp::Update | ChangeOp::Delete, Some(v)) => *v == c.before,
        _ => false,
    }
}

/// `c.after` as it is written: a document gets a version newer than the
/// one it replaces.
fn written(c: &Change) -> Result<Vec<u8>> {
    if let Target::Doc { .. } = c.target {
        let was = c
            .before
            .get("updated_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut doc = c.after.clone();
        doc["updated_ms"] = Value::from(crate::model::now_ms().max(was + 1));
        let doc: Document = serde_json::from_value(doc)
            .map_err(|e| invalid("document in a diff", e.to_string()))?;
        return to_vec(&doc);
    }
    to_vec(&c.after)
}

impl Store {
    /// The stored JSON of one record (`None`: absent).
    pub fn get_record(&self, ws: &WorkspaceId, t: &Target) -> Result<Option<Value>> {
        let (table, key) = record_key(ws, t)?;
        self.get_json(table, &key, "record")
    }

    /// File a dry-run's diff (replacing one of the same run).
    pub fn put_diff(&self, ws: &WorkspaceId, d: &StagedDiff) -> Result<()> {
        let key = diff_key(ws, &d.run)?;
        self.b.write(&mut |tx| put_in(tx, ws, &key, d))
    }

    /// Dry-run `run`'s diff without its changes (status, count, expiry).
    pub fn get_diff_head(&self, ws: &WorkspaceId, run: &str) -> Result<Option<StagedDiff>> {
        self.get_json(Table::DiffHeads, &diff_key(ws, run)?, "diff head")
    }

    /// Dry-run `run`'s diff, if one was filed.
    pub fn get_diff(&self, ws: &WorkspaceId, run: &str) -> Result<Option<StagedDiff>> {
        self.get_json(Table::Diffs, &diff_key(ws, run)?, "diff")
    }

    /// Apply dry-run `run`'s diff, named by `digest`, in one transaction:
    /// every record must still be as the dry-run found it. Returns how many
    /// changes were written, or why none were.
    pub fn apply_diff(
        &self,
        ws: &WorkspaceId,
        run: &str,
        digest_given: &str,
        now_ms: u64,
    ) -> Result<std::result::Result<usize, ApplyRefusal>> {
        let key = diff_key(ws, run)?;
        let mut out = Err(ApplyRefusal::NotFound);
        self.b.write(&mut |tx| {
            out = Err(ApplyRefusal::NotFound);
            let Some(bytes) = tx.get(Table::Diffs, &key)? else {
                return Ok(());
            };
            let mut d: StagedDiff = crate::error::decode("diff", &bytes)?;
            if let Some(refused) = refusal(&d, digest_given, now_ms) {
                out = Err(refused);
                return Ok(());
            }
            let mut targets = Vec::with_capacity(d.changes.len());
            let mut conflicts = Vec::new();
            for c in &d.changes {
                let (table, k) = record_key(ws, &c.target)?;
                if !unchanged(c, read_in(tx, table, &k)?.as_ref()) {
                    conflicts.push(c.target.clone());
                }
                targets.push((table, k));
            }
            if !conflicts.is_empty() {
                out = Err(ApplyRefusal::Conflicts(conflicts));
                return Ok(());
            }
            for (c, (table, k)) in d.changes.iter().zip(&targets) {
                match c.op {
                    ChangeOp::Delete => {
                        tx.remove(*table, k)?;
                    }
                    ChangeOp::Insert | ChangeOp::Update => tx.put(*table, k, &written(c)?)?,
                }
            }
            out = Ok(d.changes.len());
            decide(&mut d, DiffStatus::Applied, now_ms);
            put_in(tx, ws, &key, &d)
        })?;
        Ok(out)
    }

    /// Discard dry-run `run`'s diff: it can no longer be applied.
    pub fn discard_diff(
        &self,
        ws: &WorkspaceId,
        run: &str,
        now_ms: u64,
    ) -> Result<std::result::Result<(), ApplyRefusal>> {
        let key = diff_key(ws, run)?;
        let mut out = Err(ApplyRefusal::NotFound);
        self.b.write(&mut |tx| {
            out = Err(ApplyRefusal::NotFound);
            let Some(bytes) = tx.get(Table::Diffs, &key)? else {
                return Ok(());
            };
            let mut d: StagedDiff = crate::error::decode("diff", &bytes)?;
            if let Some(refused) = not_pending(&d, now_ms) {
                out = Err(refused);
                return Ok(());
            }
            decide(&mut d, DiffStatus::Discarded, now_ms);
            out = Ok(());
            put_in(tx, ws, &key, &d)
        })?;
        Ok(out)
    }

    /// Expire every diff of `ws` still pending past its time at `now_ms`:
    /// its changes are dropped (the record stays, with its status and
    /// count). Reads only the heads. How many expired.
    pub fn prune_diffs(&self, ws: &WorkspaceId, now_ms: u64) -> Result<usize> {
        let mut stale = Vec::new();
        self.b.scan(
            Table::DiffHeads,
            &Key::ws(ws).prefix(),
            None,
            &mut |k, v| {
                let d: StagedDiff = crate::error::decode("diff head", v)?;
                if d.status == DiffStatus::Pending && d.status_at(now_ms) == DiffStatus::Expired {
                    stale.push(k.to_vec());
                }
                Ok(true)
            },
        )?;
        for key in &stale {
            self.b.write(&mut |tx| {
                let Some(bytes) = tx.get(Table::Diffs, key)? else {
                    return Ok(());
                };
                let mut d: StagedDiff = crate::error::decode("diff", &bytes)?;
                if d.status_at(now_ms) != DiffStatus::Expired || d.status != DiffStatus::Pending {
                    return Ok(());
                }
                decide(&mut d, DiffStatus::Expired, now_ms);
                put_in(tx, ws, key, &d)
            })?;
        }
        Ok(stale.len())
    }
}

/// Why `d` can no longer be applied or discarded at `now_ms`, if so.
fn not_pending(d: &StagedDiff, now_ms: u64) -> Option<ApplyRefusal> {
    match d.status_at(now_ms) {
        DiffStatus::Pending => None,
        DiffStatus::Expired => Some(ApplyRefusal::Expired {
            expires_ms: d.expires_ms,
        }),
        other => Some(ApplyRefusal::Decided(other)),
    }
}

fn refusal(d: &StagedDiff, digest_given: &str, now_ms: u64) -> Option<ApplyRefusal> {
    if let Some(refused) = not_pending(d, now_ms) {
        return Some(refused);
    }
    if !d.run_ok {
        return Some(ApplyRefusal::RunFailed);
    }
    if digest_given != d.digest || digest(&d.changes) != d.digest {
        return Some(ApplyRefusal::Digest);
    }
    None
}

/// Settle `d` as `status`: its changes are no longer kept.
fn decide(d: &mut StagedDiff, status: DiffStatus, now_ms: u64) {
    d.status = status;
    d.decided_ms = Some(now_ms);
    d.changes = Vec::new();
}

#[cfg(test)]
mod tests;
