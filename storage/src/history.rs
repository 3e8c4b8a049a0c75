//! Stored blocks (source, language, grants) and run history (run
//! records; their events are in `events`).

use crate::backend::Table;
use crate::error::{corrupt, Result, StorageError};
use crate::keys::{check_name, Key};
use crate::model::{BlockRecord, RunRecord, WorkspaceId};
use crate::store::{to_vec, Store};

/// How [`Store::write_run_with`] writes a run record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Insert or replace.
    Put,
    /// Insert or replace, and meter its usage.
    Meter,
    /// Only if there is no record with its id.
    IfNew,
}

impl Store {
    /// Create or replace a block (an empty id gets a fresh one).
    pub fn put_block(&self, ws: &WorkspaceId, block: BlockRecord) -> Result<BlockRecord> {
        self.put_block_if(ws, block, None)
    }

    /// Create or replace a block if its stored version (`updated_ms`, 0
    /// when it does not exist) is `expect`; `None` skips the check.
    ///
    /// # Errors
    /// [`StorageError::Stale`] when the stored version differs.
    pub fn put_block_if(
        &self,
        ws: &WorkspaceId,
        mut block: BlockRecord,
        expect: Option<u64>,
    ) -> Result<BlockRecord> {
        if block.id.is_empty() {
            block.id = self.new_id()?;
        }
        check_name("block id", &block.id)?;
        let mut v = serde_json::to_value(&block).map_err(|e| corrupt("block", e))?;
        let key = Key::ws(ws).last(block.id.as_bytes());
        block.updated_ms =
            self.put_versioned(Table::Blocks, &key, "block", &block.id, expect, &mut v)?;
        Ok(block)
    }

    /// One block.
    pub fn get_block(&self, ws: &WorkspaceId, id: &str) -> Result<Option<BlockRecord>> {
        check_name("block id", id)?;
        self.get_json(Table::Blocks, &Key::ws(ws).last(id.as_bytes()), "block")
    }

    /// Every block of the workspace.
    pub fn list_blocks(&self, ws: &WorkspaceId) -> Result<Vec<BlockRecord>> {
        let mut out = Vec::new();
        self.scan_json(Table::Blocks, &Key::ws(ws).prefix(), "block", |_, b| {
            out.push(b);
            true
        })?;
        Ok(out)
    }

    /// Delete a block (its run history stays); whether it existed.
    pub fn delete_block(&self, ws: &WorkspaceId, id: &str) -> Result<bool> {
        check_name("block id", id)?;
        self.remove_key(Table::Blocks, &Key::ws(ws).last(id.as_bytes()))
    }

    /// Record a run (insert or replace), with its by-block index entry, in
    /// one atomic write. A run recorded with status `running` is also
    /// listed by [`Store::interrupted_runs`] until it is recorded again
    /// with another status.
    pub fn put_run(&self, ws: &WorkspaceId, run: &RunRecord) -> Result<()> {
        self.write_run(ws, run, Write::Put)
    }

    /// Record a run as [`Store::put_run`] does unless a record with its id
    /// exists (one written meanwhile by another process wins); whether it
    /// was written.
    pub fn put_run_if_new(&self, ws: &WorkspaceId, run: &RunRecord) -> Result<bool> {
        let mut wrote = false;
        self.write_run_with(ws, run, Write::IfNew, &mut wrote)?;
        Ok(wrote)
    }

    /// Record a finished run as [`Store::put_run`] does and, in the same
    /// atomic write (one flush), add its CPU and wall-clock time to its
    /// workspace's usage on the UTC day it started.
    pub fn finish_run(&self, ws: &WorkspaceId, run: &RunRecord) -> Result<()> {
        self.write_run(ws, run, Write::Meter)
    }

    fn write_run(&self, ws: &WorkspaceId, run: &RunRecord, how: Write) -> Result<()> {
        self.write_run_with(ws, run, how, &mut false)
    }

    fn write_run_with(
        &self,
        ws: &WorkspaceId,
        run: &RunRecord,
        how: Write,
        wrote: &mut bool,
    ) -> Result<()> {
        let meter = how == Write::Meter;
        check_name("run id", &run.id)?;
        let key = Key::ws(ws).last(run.id.as_bytes());
        let index = run.block.as_ref().map(|b| {
            Key::ws(ws)
                .seg(b.as_bytes())
                .raw(&run.started_ms.to_be_bytes())
                .last(run.id.as_bytes())
        });
        let mut head = run.clone();
        let lines = if run.events.is_empty() {
            None
        } else {
            if head.error.is_null() {
                head.error = error_of(&run.events);
            }
            head.events = Vec::new();
            let lines = run
                .events
                .iter()
                .map(serde_json::to_string)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| corrupt("run event", e))?;
            Some((lines, self.event_keys(ws, &run.id)?))
        };
        let v = to_vec(&head)?;
        let running = run.status == "running";
        let day = crate::quotas::utc_day(run.started_ms);
        self.b.write(&mut |tx| {
            let old = tx.get(Table::Runs, &key)?;
            *wrote = !(how == Write::IfNew && old.is_some());
            if !*wrote {
                return Ok(());
            }
            let was = old.map_or(0, |o| o.len() as i64);
            tx.put(Table::Runs, &key, &v)?;
            let mut delta = v.len() as i64 - was;
            if let Some((lines, old)) = &lines {
                delta -= crate::events::remove_in(tx, ws, &run.id, old)? as i64;
                delta += crate::events::append_in(tx, ws, &run.id, 0, lines)? as i64;
            }
            crate::retention::add_history_in(tx, ws, delta)?;
            if running {
                tx.put(Table::RunsActive, &key, b"")?;
            } else {
                tx.remove(Table::RunsActive, &key)?;
            }
            if run.status != "queued" {
                tx.remove(Table::RunsQueued, &key)?;
            }
            if let Some(i) = &index {
                tx.put(Table::RunsByBlock, i, b"")?;
            }
            if meter {
                crate::quotas::add_usage_in(tx, ws, day, run.cpu_ms, run.wall_ms)?;
            }
            Ok(())
        })
    }

    /// Every key of run `run`'s stored events (its totals' key, which
    /// is the prefix itself, included).
    pub(crate) fn event_keys(&self, ws: &WorkspaceId, run: &str) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        let prefix = crate::events::run_prefix(ws, run);
        self.b.scan(Table::RunEvents, &prefix, None, &mut |k, _| {
            keys.push(k.to_vec());
            Ok(true)
        })?;
        Ok(keys)
    }

    /// Runs still recorded as `running` (in every workspace): after a
    /// restart, these were cut off by the stop.
    pub fn interrupted_runs(&self) -> Result<Vec<(WorkspaceId, RunRecord)>> {
        self.indexed_runs(Table::RunsActive)
    }

    /// The runs an index table (`workspace id | run id` → nothing) lists,
    /// in key order. An entry whose run is gone is skipped.
    pub(crate) fn indexed_runs(&self, index: Table) -> Result<Vec<(WorkspaceId, RunRecord)>> {
        let mut keys = Vec::new();
        self.b.scan(index, b"", None, &mut |k, _| {
            keys.push(k.to_vec());
            Ok(true)
        })?;
        let mut out = Vec::new();
        for k in keys {
            let Some(ws) = k.get(..16).and_then(|b| <[u8; 16]>::try_from(b).ok()) else {
                continue;
            };
            let ws = WorkspaceId::from_bytes(ws);
            let id = String::from_utf8_lossy(k.get(16..).unwrap_or_default()).into_owned();
            if let Some(r) = self.get_run_head(&ws, &id)? {
                out.push((ws, r));
            }
        }
        Ok(out)
    }

    /// One run with all its events (a whole run in memory: servers read
    /// [`Store::get_run_head`] and page events with
    /// [`Store::run_events`]).
    pub fn get_run(&self, ws: &WorkspaceId, id: &str) -> Result<Option<RunRecord>> {
        check_name("run id", id)?;
        let key = Key::ws(ws).last(id.as_bytes());
        let Some(mut r) = self.get_json::<RunRecord>(Table::Runs, &key, "run")? else {
            return Ok(None);
        };
        if r.error.is_null() {
            r.error = error_of(&r.events);
        }
        r.events.extend(self.all_run_events(ws, id)?);
        Ok(Some(r))
    }

    /// One run's record without its events.
    pub fn get_run_head(&self, ws: &WorkspaceId, id: &str) -> Result<Option<RunRecord>> {
        check_name("run id", id)?;
        let key = Key::ws(ws).last(id.as_bytes());
        Ok(self
            .get_json::<RunRecord>(Table::Runs, &key, "run")?
            .map(head_of))
    }

    /// Runs of the workspace, or of one block, newest first, at most
    /// `limit`, starting after (older than) run `before` when given. Run
    /// ids must sort by start for the workspace-wide listing to be by
    /// time, as ids from [`Store::new_id`] do (also within one
    /// millisecond).
    pub fn recent_runs(
        &self,
        ws: &WorkspaceId,
        block: Option<&str>,
        limit: usize,
        before: Option<&RunRecord>,
    ) -> Result<Vec<RunRecord>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        match block {
            None => {
                let prefix = Key::ws(ws).prefix();
                let start = before.map(|r| Key::ws(ws).last(r.id.as_bytes()));
                self.b
                    .scan_rev(Table::Runs, &prefix, start.as_deref(), &mut |_, v| {
                        let r: RunRecord = crate::error::decode("run", v)?;
                        out.push(head_of(r));
                        Ok(out.len() < limit)
                    })?
            }
            Some(b) => {
                check_name("block id", b)?;
                let prefix = Key::ws(ws).seg(b.as_bytes()).prefix();
                let start = before.map(|r| {
                    Key::ws(ws)
                        .seg(b.as_bytes())
                        .raw(&r.started_ms.to_be_bytes())
                        .last(r.id.as_bytes())
                });
                let mut ids = Vec::new();
                self.b.scan_rev(
                    Table::RunsByBlock,
                    &prefix,
                    start.as_deref(),
                    &mut |k, _| {
                        let id = k.get(prefix.len() + 8..).unwrap_or_default();
                        ids.push(String::from_utf8_lossy(id).into_owned());
                        Ok(ids.len() < limit)
                    },
                )?;
                for id in ids {
                    if let Some(r) = self.get_run_head(ws, &id)? {
                        out.push(r);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The latest result of block `block`: the newest of its last
    /// [`LATEST_RESULT_SCAN`] runs that finished `ok` with a result, as
    /// `(run id, value)`. Dry-runs are passed over and do not count (a
    /// dry-run's result rests on changes that were not made), up to
    /// [`LATEST_RESULT_SCAN_DRY`] of them.
    pub fn latest_result(
        &self,
        ws: &WorkspaceId,
        block: &str,
    ) -> Result<Option<(String, serde_json::Value)>> {
        let (mut real, mut dry) = (0, 0);
        let mut before: Option<RunRecord> = None;
        loop {
            let page = self.recent_runs(ws, Some(block), LATEST_RESULT_SCAN, before.as_ref())?;
            let full = page.len() == LATEST_RESULT_SCAN;
            for r in &page {
                if r.request.get("mode").and_then(|m| m.as_str()) == Some("dry_run") {
                    dry += 1;
                    continue;
                }
                real += 1;
                if r.status == "ok" {
                    if let Some(v) = self.run_result(ws, &r.id)? {
                        return Ok(Some((r.id.clone(), v)));
                    }
                }
                if real >= LATEST_RESULT_SCAN {
                    return Ok(None);
                }
            }
            if !full || dry >= LATEST_RESULT_SCAN_DRY {
                return Ok(None);
            }
            before = page.into_iter().last();
        }
    }

    /// The run [`Store::latest_result`] would read, without its value.
    pub fn latest_result_run(&self, ws: &WorkspaceId, block: &str) -> Result<Option<String>> {
        Ok(self.latest_result(ws, block)?.map(|(run, _)| run))
    }

    /// The `result` event's value of a finished run (it is among its last
    /// three events: result, a final meter, finished).
    pub fn run_result(&self, ws: &WorkspaceId, run: &str) -> Result<Option<serde_json::Value>> {
        let totals = self.run_event_totals(ws, run)?;
        let from = totals.events.saturating_sub(3);
        let page = self.run_events(ws, run, from, usize::MAX)?;
        Ok(page
            .values()
            .into_iter()
            .rev()
            .find(|e| e["type"] == "result")
            .map(|mut e| e["value"].take()))
    }

    /// Runs of the workspace, or of one block, oldest first, at most
    /// `limit`, each with all its events (for tools and tests).
    pub fn list_runs(
        &self,
        ws: &WorkspaceId,
        block: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let mut out = Vec::new();
        match block {
            None => {
                let mut ids = Vec::new();
                self.scan_json(
                    Table::Runs,
                    &Key::ws(ws).prefix(),
                    "run",
                    |_, r: RunRecord| {
                        ids.push(r.id);
                        ids.len() < limit
                    },
                )?;
                for id in ids {
                    out.extend(self.get_run(ws, &id)?);
                }
            }
            Some(b) => {
                check_name("block id", b)?;
                let prefix = Key::ws(ws).seg(b.as_bytes()).prefix();
                let mut ids = Vec::new();
                self.b
                    .scan(Table::RunsByBlock, &prefix, None, &mut |k, _| {
                        let id = k.get(prefix.len() + 8..).unwrap_or_default();
                        ids.push(String::from_utf8_lossy(id).into_owned());
                        Ok(ids.len() < limit)
                    })?;
                for id in ids {
                    match self.get_run(ws, &id)? {
                        Some(r) => out.push(r),
                        None => return Err(StorageError::NotFound { what: "run", id }),
                    }
                }
            }
        }
        Ok(out)
    }
}

/// How many of a block's newest runs [`Store::latest_result`] looks at.
pub const LATEST_RESULT_SCAN: usize = 50;

/// How many dry-runs [`Store::latest_result`] passes over at most.
pub const LATEST_RESULT_SCAN_DRY: usize = 1000;

/// A record as listings show it: its error summary, no events.
fn head_of(mut r: RunRecord) -> RunRecord {
    if r.error.is_null() {
        r.error = error_of(&r.events);
    }
    r.events = Vec::new();
    r
}

/// `{kind, message}` of the first error event in `events`, or null.
pub fn error_of(events: &[serde_json::Value]) -> serde_json::Value {
    events
        .iter()
        .find(|e| e["type"] == "error")
        .map(|e| serde_json::json!({"kind": e["kind"], "message": e["message"]}))
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    fn run(id: &str, block: Option<&str>, started_ms: u64) -> RunRecord {
        RunRecord {
            status: "ok".into(),
            ..RunRecord::queued(
                id.into(),
                block.map(Into::into),
                serde_json::Value::Null,
                started_ms,
            )
        }
    }

    #[test]
    fn dry_runs_never_hide_the_latest_result() -> Result<()> {
        let s = crate::testing::store()?;
        let a = s.create_workspace("a")?.id;
        let with_result = |id: &str, at: u64, dry: bool| {
            let mut r = run(id, Some("b"), at);
            if dry {
                r.request = serde_json::json!({"mode": "dry_run"});
            }
            r.events = vec![
                serde_json::json!({"run": id, "seq": 0, "type": "result", "value": id}),
                serde_json::json!({"run": id, "seq": 1, "type": "finished"}),
            ];
            r
        };
        s.put_run(&a, &with_result("real", 1, false))?;
        for i in 0..(LATEST_RESULT_SCAN as u64 + 20) {
            s.put_run(&a, &with_result(&format!("dry{i:04}"), 10 + i, true))?;
        }
        let got = s.latest_result(&a, "b")?.map(|(run, _)| run);
        assert_eq!(got.as_deref(), Some("real"));
        Ok(())
    }

    fn check_recent(s: &Store) -> Result<()> {
        let a = s.create_workspace("a")?.id;
        let b = s.create_workspace("b")?.id;
        for i in 0..5u64 {
            let blk = if i % 2 == 0 { Some("x") } else { Some("y") };
            s.put_run(&a, &run(&format!("{i:016x}"), blk, 100 + i))?;
            s.put_run(&b, &run(&format!("{i:016x}"), blk, 100 + i))?;
        }
        let ids = |v: Vec<RunRecord>| v.into_iter().map(|r| r.started_ms).collect::<Vec<_>>();
        assert_eq!(ids(s.recent_runs(&a, None, 3, None)?), [104, 103, 102]);
        let last = s.get_run(&a, &format!("{:016x}", 2))?;
        assert_eq!(ids(s.recent_runs(&a, None, 9, last.as_ref())?), [101, 100]);
        assert_eq!(ids(s.recent_runs(&a, Some("x"), 9, None)?), [104, 102, 100]);
        assert_eq!(ids(s.recent_runs(&a, Some("x"), 9, last.as_ref())?), [100]);
        assert_eq!(
            ids(s.recent_runs(&a, Some("z"), 9, None)?),
            Vec::<u64>::new()
        );
        assert!(s.delete_block(&a, "x").is_ok());
        // Only runs still recorded as running are interrupted.
        let mut r = run("zz", Some("x"), 200);
        r.status = "running".into();
        s.put_run(&b, &r)?;
        let cut: Vec<_> = s
            .interrupted_runs()?
            .into_iter()
            .map(|(w, r)| (w, r.id))
            .collect();
        assert_eq!(cut, [(b, "zz".to_string())]);
        r.status = "error".into();
        s.put_run(&b, &r)?;
        assert!(s.interrupted_runs()?.is_empty());
        Ok(())
    }

    /// Runs made in one millisecond (and some from before this id format)
    /// page newest first, each exactly once, with `before=`.
    fn check_paging_within_a_millisecond(s: &Store) -> Result<()> {
        use crate::ids::{format_id, Stamp};
        let a = s.create_workspace("a")?.id;
        let b = s.create_workspace("b")?.id;
        let mut made = Vec::new();
        // Ids from before the current format: the database's counter.
        for i in 1..=3u64 {
            made.push(run(&format!("{i:016x}"), Some("x"), 50));
        }
        // One millisecond (in the past, before any id the store makes
        // below), 200 ids; the random part falls as the sequence rises, so
        // only the sequence can keep them in order.
        let ms = 1_700_000_000_000;
        for seq in 0..200u16 {
            let id = format_id(Stamp { ms, seq }, u64::MAX - u64::from(seq) * 7919);
            let blk = if seq % 3 == 0 { "y" } else { "x" };
            made.push(run(&id, Some(blk), ms));
        }
        // And as the store makes them, as fast as it can.
        for _ in 0..200 {
            made.push(run(&s.new_id()?, Some("x"), ms + 1));
        }
        for r in &made {
            s.put_run(&a, r)?;
        }
        s.put_run(&b, &run(&s.new_id()?, Some("x"), ms + 1))?;
        for block in [None, Some("x"), Some("y")] {
            let want: Vec<String> = made
                .iter()
                .rev()
                .filter(|r| block.is_none() || r.block.as_deref() == block)
                .map(|r| r.id.clone())
                .collect();
            let mut got = Vec::new();
            let mut before: Option<RunRecord> = None;
            loop {
                let page = s.recent_runs(&a, block, 7, before.as_ref())?;
                let Some(last) = page.last().cloned() else {
                    break;
                };
                got.extend(page.into_iter().map(|r| r.id));
                before = Some(last);
            }
            assert_eq!(got.len(), want.len(), "{block:?}");
            assert!(got == want, "{block:?}: pages out of order or repeated");
        }
        Ok(())
    }

    #[test]
    fn paging_runs_made_in_one_millisecond_returns_each_once() -> Result<()> {
        check_paging_within_a_millisecond(&crate::testing::store()?)?;
        let dir =
            tempfile::tempdir().map_err(|e| crate::error::invalid("tempdir", e.to_string()))?;
        let mut cfg = StoreConfig::new(dir.path());
        cfg.secret_key = Some(crate::SecretKey::from_bytes([7; 32]));
        check_paging_within_a_millisecond(&Store::open(&cfg)?)
    }

    #[test]
    fn versioned_block_writes_refuse_stale_versions() -> Result<()> {
        let s = crate::testing::store()?;
        let ws = s.create_workspace("a")?.id;
        let b = |src: &str| BlockRecord {
            id: "b".into(),
            name: String::new(),
            source: src.into(),
            lang: "js".into(),
            grants: vec![],
            grants_approved_for: None,
            engine: String::new(),
            updated_ms: 0,
        };
        let v1 = s.put_block_if(&ws, b("1"), Some(0))?.updated_ms;
        // Two saves in the same millisecond still get distinct versions.
        let v2 = s.put_block_if(&ws, b("2"), Some(v1))?.updated_ms;
        assert!(v2 > v1);
        match s.put_block_if(&ws, b("3"), Some(v1)) {
            Err(StorageError::Stale { current_ms, .. }) => assert_eq!(current_ms, v2),
            other => panic!("expected Stale, got {other:?}"),
        }
        assert_eq!(s.get_block(&ws, "b")?.map(|b| b.source), Some("2".into()));
        assert!(matches!(
            s.put_block_if(&ws, b("4"), Some(0)),
            Err(StorageError::Stale { .. })
        ));
        Ok(())
    }

    #[test]
    fn recent_runs_are_newest_first_and_page_in_memory() -> Result<()> {
        check_recent(&crate::testing::store()?)
    }

    #[test]
    fn recent_runs_are_newest_first_and_page_in_sled() -> Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| crate::error::invalid("tempdir", e.to_string()))?;
        let mut cfg = StoreConfig::new(dir.path());
        cfg.secret_key = Some(crate::SecretKey::from_bytes([7; 32]));
        check_recent(&Store::open(&cfg)?)
    }

    #[test]
    fn runs_nested_past_the_parsers_default_limit_stay_readable() -> Result<()> {
        // Values held to the depth limit travel in envelopes (a record, its
        // events), and records from before the limit hold deeper ones:
        // every reader takes them (serde_json alone stops at 128).
        let s = crate::testing::store()?;
        let ws = s.create_workspace("a")?.id;
        let mut deep = serde_json::json!(1);
        for _ in 0..200 {
            deep = serde_json::json!([deep]);
        }
        let mut r = run("deep", None, 1);
        r.events = vec![serde_json::json!({"type": "result", "value": deep.clone()})];
        r.request = serde_json::json!({"input": deep.clone()});
        s.put_run(&ws, &r)?;
        s.put_run(&ws, &run("plain", None, 2))?;
        assert_eq!(s.get_run(&ws, "deep")?.map(|r| r.events), Some(r.events));
        assert_eq!(s.recent_runs(&ws, None, 10, None)?.len(), 2);
        Ok(())
    }

    #[test]
    fn history_is_counted_and_pruned_oldest_first_by_size_and_age() -> Result<()> {
        let s = crate::testing::store()?;
        let ws = s.create_workspace("a")?.id;
        let other = s.create_workspace("b")?.id;
        // A record is stored without its events; they are counted as
        // their chunks.
        let size = |r: &RunRecord| -> Result<u64> {
            let head = RunRecord {
                events: vec![],
                ..r.clone()
            };
            Ok(to_vec(&head)?.len() as u64 + s.run_event_totals(&ws, &r.id)?.bytes)
        };
        let mut total = 0;
        for i in 0..10u64 {
            let mut r = run(&format!("{i:016x}"), Some("x"), 1000 + i);
            r.events = vec![serde_json::json!({"text": "x".repeat(100 * (i as usize + 1))})];
            if i == 1 {
                r.status = "running".into();
            }
            // Written twice (as a run is: running, then finished) counts once.
            s.put_run(&ws, &r)?;
            s.finish_run(&ws, &r)?;
            total += size(&r)?;
        }
        s.put_run(&other, &run("o", Some("x"), 1))?;
        assert_eq!(s.history_bytes(&ws)?, total);
        // By size: the oldest finished go first; the running one stays.
        let pruned = s.prune_history(&ws, total / 2, 0)?;
        assert!(
            pruned.runs > 0 && s.history_bytes(&ws)? <= total / 2,
            "{pruned:?}"
        );
        assert_eq!(s.history_bytes(&ws)?, total - pruned.bytes);
        let kept: Vec<_> = s
            .recent_runs(&ws, None, 100, None)?
            .into_iter()
            .map(|r| r.started_ms)
            .collect();
        assert!(
            kept.contains(&1001),
            "the running run is never pruned: {kept:?}"
        );
        assert!(!kept.contains(&1000), "{kept:?}");
        let first = format!("{:016x}", 0);
        assert_eq!(s.run_event_totals(&ws, &first)?.events, 0);
        assert!(s.event_keys(&ws, &first)?.is_empty(), "its events go too");
        let by_block = s.recent_runs(&ws, Some("x"), 100, None)?.len();
        assert_eq!(by_block, kept.len(), "index entries go with their runs");
        // By age: everything finished before 1008.
        s.prune_history(&ws, u64::MAX, 1008)?;
        let kept: Vec<_> = s
            .recent_runs(&ws, None, 100, None)?
            .into_iter()
            .map(|r| r.started_ms)
            .collect();
        assert_eq!(kept, [1009, 1008, 1001]);
        // The other workspace is untouched.
        assert_eq!(s.recent_runs(&other, None, 10, None)?.len(), 1);
        Ok(())
    }

    #[test]
    fn records_written_with_events_inline_before_chunks_still_read_whole() -> Result<()> {
        let s = crate::testing::store()?;
        let ws = s.create_workspace("a")?.id;
        let legacy = serde_json::json!({
            "id": "old", "status": "error", "started_ms": 5,
            "events": [{"seq": 0, "type": "started"},
                       {"seq": 1, "type": "error", "kind": "timeout", "message": "late"}],
        });
        let key = Key::ws(&ws).last(b"old");
        let v = serde_json::to_vec(&legacy).map_err(|e| corrupt("run", e))?;
        s.b.write(&mut |tx| tx.put(Table::Runs, &key, &v))?;
        let whole = s.get_run(&ws, "old")?.map(|r| r.events.len());
        assert_eq!(whole, Some(2));
        let listed = s.recent_runs(&ws, None, 10, None)?;
        assert!(listed[0].events.is_empty());
        assert_eq!(listed[0].error["kind"], "timeout");
        // Written again (as a restart closes it), its events move to chunks.
        let mut r = s
            .get_run(&ws, "old")?
            .ok_or_else(|| corrupt("run", "gone"))?;
        r.events
            .push(serde_json::json!({"seq": 2, "type": "finished"}));
        s.put_run(&ws, &r)?;
        assert_eq!(s.run_event_totals(&ws, "old")?.events, 3);
        assert_eq!(s.get_run(&ws, "old")?.map(|r| r.events), Some(r.events));
        Ok(())
    }
}
