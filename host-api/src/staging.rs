//! Dry-runs: a run's `doc`, `db` and `kv` writes staged in memory instead
//! of committed. The run's later reads see its own staged writes; when the
//! run ends its host is sealed and the staged records become a diff
//! (every record's `before`, as stored when the run first wrote it, and
//! `after`), which the run service files for an editor to apply.
//!
//! Staging holds one lock per run while a call reads storage and stages,
//! so a run's own calls (two may run at once) never interleave on a
//! record. The diff's size is bounded ([`DryRunLimits::max_diff_bytes`]):
//! a write that would pass it rejects with `RangeError`, as a write past
//! the storage quota rejects at dry-run time, never at apply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use quire_engine::HostError;
use quire_storage::{Change, ChangeOp, Target};
use serde_json::Value;

/// Bytes each staged record counts beyond its name and values (what
/// holding it costs the host).
pub const ENTRY_OVERHEAD_BYTES: u64 = 64;

/// Bounds on dry-runs and their diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DryRunLimits {
    /// Largest diff one dry-run may stage: the JSON of every written
    /// record's `before` and `after`, its name and
    /// [`ENTRY_OVERHEAD_BYTES`], in bytes. Default: 1 MiB.
    pub max_diff_bytes: u64,
    /// Most records one dry-run may write (a record written back to what
    /// it was still counts). Default: 10,000.
    pub max_changes: usize,
    /// How long a diff can be applied after its run ends, in
    /// milliseconds; then it expires (its changes are dropped). Default:
    /// 24 hours.
    pub keep_ms: u64,
}

impl Default for DryRunLimits {
    fn default() -> Self {
        Self {
            max_diff_bytes: 1024 * 1024,
            max_changes: 10_000,
            keep_ms: 24 * 60 * 60 * 1000,
        }
    }
}

/// One staged record.
struct Entry {
    /// When the run first wrote it (the diff's order).
    first: u64,
    /// As stored then (`None`: absent).
    before: Option<Value>,
    /// As the run left it (`None`: deleted).
    after: Option<Value>,
    /// What it counts against the diff's size.
    bytes: u64,
    /// The run may read it: its `before` is shown in the `diff` event
    /// (without the read grant, a write must not reveal what it replaced).
    readable: bool,
}

#[derive(Default)]
pub(crate) struct State {
    entries: HashMap<Target, Entry>,
    next: u64,
    bytes: u64,
    after_bytes: u64,
    sealed: bool,
}

/// A record as the run sees it.
pub(crate) struct View {
    /// Staged, else stored (`None`: absent).
    pub(crate) now: Option<Value>,
    /// Its stored value when the run has not written it yet.
    stored: Option<Option<Value>>,
}

fn name_len(t: &Target) -> u64 {
    (match t {
        Target::Doc { id } => id.len(),
        Target::Row { collection, id } => collection.len() + id.len(),
        Target::Kv { key } => key.len(),
    }) as u64
}

fn json_len(v: &Option<Value>) -> u64 {
    v.as_ref()
        .and_then(|v| serde_json::to_vec(v).ok())
        .map_or(0, |b| b.len() as u64)
}

impl State {
    /// Record `t` as the run sees it; `read` fetches it from storage when
    /// the run has not written it.
    pub(crate) fn view(
        &self,
        t: &Target,
        read: impl FnOnce() -> Result<Option<Value>, HostError>,
    ) -> Result<View, HostError> {
        match self.entries.get(t) {
            Some(e) => Ok(View {
                now: e.after.clone(),
                stored: None,
            }),
            None => {
                let v = read()?;
                Ok(View {
                    now: v.clone(),
                    stored: Some(v),
                })
            }
        }
    }

    /// Stage `after` for `t`, seen as `view`; `readable`: the run holds
    /// the grant to read `t`.
    pub(crate) fn put(
        &mut self,
        limits: &DryRunLimits,
        (t, readable): (Target, bool),
        view: View,
        after: Option<Value>,
    ) -> Result<(), HostError> {
        let limit = limits.max_diff_bytes;
        if self.sealed {
            return Err(HostError::new(
                "InvalidStateError",
                "the dry-run has ended: nothing more can be staged",
            ));
        }
        let (first, before) = match (self.entries.get(&t), view.stored) {
            (Some(e), _) => (e.first, e.before.clone()),
            (None, stored) => (self.next, stored.unwrap_or_default()),
        };
        if !self.entries.contains_key(&t) && self.entries.len() >= limits.max_changes {
            return Err(HostError::new(
                "RangeError",
                format!(
                    "dry-run: staging a write of {t} would pass the limit of {} records a dry-run may write",
                    limits.max_changes
                ),
            ));
        }
        let bytes = ENTRY_OVERHEAD_BYTES + name_len(&t) + json_len(&before) + json_len(&after);
        let (was, was_after) = self
            .entries
            .get(&t)
            .map_or((0, 0), |e| (e.bytes, json_len(&e.after)));
        let total = self.bytes - was + bytes;
        if total > limit {
            return Err(HostError::new(
                "RangeError",
                format!(
                    "dry-run: staging this write of {t} would make the diff {total} bytes, over the limit of {limit} bytes a dry-run may stage"
                ),
            ));
        }
        self.after_bytes = self.after_bytes - was_after + json_len(&after);
        self.bytes = total;
        if first == self.next {
            self.next += 1;
        }
        self.entries.insert(
            t,
            Entry {
                first,
                before,
                after,
                bytes,
                readable,
            },
        );
        Ok(())
    }

    /// Staged rows of `collection` (id → row, `None` when deleted).
    pub(crate) fn rows_of<'a>(
        &'a self,
        collection: &'a str,
    ) -> impl Iterator<Item = (&'a str, Option<&'a Value>)> + 'a {
        self.entries.iter().filter_map(move |(t, e)| match t {
            Target::Row { collection: c, id } if c == collection => {
                Some((id.as_str(), e.after.as_ref()))
            }
            _ => None,
        })
    }

    /// The staged document `id`, if the run wrote it.
    pub(crate) fn doc(&self, id: &str) -> Option<&Value> {
        self.entries
            .get(&Target::Doc { id: id.into() })
            .and_then(|e| e.after.as_ref())
    }
}

/// A dry-run's staged writes; the run service keeps this handle and
/// seals it when the run ends (see [`crate::HostApi::session_in`]).
#[derive(Clone)]
pub struct DryRun {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) limits: DryRunLimits,
}

/// What a sealed dry-run staged.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedDiff {
    /// Each changed record, in the order the run first wrote it. Records
    /// written back to what they were, and rows inserted then deleted,
    /// are left out. What is filed (and applied).
    pub changes: Vec<Change>,
    /// The same as shown in the run's `diff` event: the `before` of a
    /// record the run may not read is `null`, with `"before_hidden":
    /// true`.
    pub shown: Vec<Value>,
    /// What they counted against [`DryRunLimits::max_diff_bytes`].
    pub bytes: u64,
}

impl DryRun {
    pub(crate) fn new(limits: DryRunLimits) -> Self {
        Self {
            state: Arc::default(),
            limits,
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes the staged records would store (for the storage quota).
    pub(crate) fn after_bytes(&self) -> u64 {
        self.lock().after_bytes
    }

    /// End staging (later writes of the run reject) and take the diff.
    pub fn seal(&self) -> SealedDiff {
        let mut st = self.lock();
        st.sealed = true;
        let mut entries: Vec<_> = st.entries.iter().collect();
        entries.sort_by_key(|(_, e)| e.first);
        let (mut changes, mut shown) = (Vec::new(), Vec::new());
        for (t, e) in entries {
            let op = match (&e.before, &e.after) {
                (None, Some(_)) => ChangeOp::Insert,
                (Some(b), Some(a)) if b != a => ChangeOp::Update,
                (Some(_), None) => ChangeOp::Delete,
                _ => continue,
            };
            let c = Change {
                target: t.clone(),
                op,
                before: e.before.clone().unwrap_or_default(),
                after: e.after.clone().unwrap_or_default(),
            };
            let mut v = serde_json::to_value(&c).unwrap_or_default();
            if !e.readable && op != ChangeOp::Insert {
                v["before"] = Value::Null;
                v["before_hidden"] = Value::Bool(true);
            }
            shown.push(v);
            changes.push(c);
        }
        SealedDiff {
            changes,
            shown,
            bytes: st.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const LIMITS: DryRunLimits = DryRunLimits {
        max_diff_bytes: 100_000,
        max_changes: 100,
        keep_ms: 1,
    };

    fn kv(k: &str) -> Target {
        Target::Kv { key: k.into() }
    }

    #[test]
    fn the_diff_keeps_first_write_order_and_drops_no_ops() {
        let d = DryRun::new(DryRunLimits::default());
        {
            let mut st = d.lock();
            for (k, stored, after) in [
                ("b", Some(json!(1)), Some(json!(2))),
                ("a", None, Some(json!("new"))),
                ("same", Some(json!(1)), Some(json!(1))),
                ("gone", Some(json!(true)), None),
                ("never", None, None),
            ] {
                let v = st.view(&kv(k), || Ok(stored.clone())).unwrap();
                st.put(&LIMITS, (kv(k), k != "gone"), v, after).unwrap();
            }
            // A second write keeps the first `before`.
            let v = st
                .view(&kv("b"), || panic!("staged: not read again"))
                .unwrap();
            assert_eq!(v.now, Some(json!(2)));
            st.put(&LIMITS, (kv("b"), true), v, Some(json!(3))).unwrap();
        }
        let diff = d.seal();
        let got: Vec<_> = diff
            .changes
            .iter()
            .map(|c| (c.target.clone(), c.op, c.before.clone(), c.after.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (kv("b"), ChangeOp::Update, json!(1), json!(3)),
                (kv("a"), ChangeOp::Insert, Value::Null, json!("new")),
                (kv("gone"), ChangeOp::Delete, json!(true), Value::Null),
            ]
        );
        // Without the read grant, what a write replaced is not shown.
        assert_eq!(diff.shown[2]["before"], Value::Null);
        assert_eq!(diff.shown[2]["before_hidden"], true);
        assert_eq!(diff.shown[0]["before"], 1);
        // Sealed: nothing more is staged.
        let mut st = d.lock();
        let v = st.view(&kv("z"), || Ok(None)).unwrap();
        assert!(st.put(&LIMITS, (kv("z"), true), v, Some(json!(1))).is_err());
    }

    #[test]
    fn the_diff_size_and_record_count_are_bounded_and_rewrites_count_once() {
        let d = DryRun::new(DryRunLimits::default());
        let mut st = d.lock();
        let small = DryRunLimits {
            max_diff_bytes: 250,
            ..LIMITS
        };
        let big = json!("x".repeat(40));
        for _ in 0..10 {
            let v = st.view(&kv("k"), || Ok(None)).unwrap();
            st.put(&small, (kv("k"), true), v, Some(big.clone()))
                .unwrap();
        }
        // 64 + 1 + 42 = 107 bytes each: a second record fits, a third does not.
        let v = st.view(&kv("k2"), || Ok(None)).unwrap();
        st.put(&small, (kv("k2"), true), v, Some(big.clone()))
            .unwrap();
        let v = st.view(&kv("k3"), || Ok(None)).unwrap();
        let e = st
            .put(&small, (kv("k3"), true), v, Some(big.clone()))
            .unwrap_err();
        assert_eq!(e.name, "RangeError");
        assert!(
            e.message.contains("over the limit of 250 bytes"),
            "{}",
            e.message
        );
        assert_eq!(st.after_bytes, 84);
        // Records that come to nothing still count toward the record limit.
        let few = DryRunLimits {
            max_changes: 3,
            ..LIMITS
        };
        let v = st.view(&kv("k4"), || Ok(None)).unwrap();
        st.put(&few, (kv("k4"), true), v, None).unwrap();
        let v = st.view(&kv("k5"), || Ok(None)).unwrap();
        let e = st.put(&few, (kv("k5"), true), v, None).unwrap_err();
        assert!(e.message.contains("limit of 3 records"), "{}", e.message);
    }
}
