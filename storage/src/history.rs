//! Stored blocks (source, language, grants) and run history.

use crate::backend::Table;
use crate::error::{Result, StorageError};
use crate::keys::{check_name, Key};
use crate::model::{now_ms, BlockRecord, RunRecord, WorkspaceId};
use crate::store::{to_vec, Store};

impl Store {
    /// Create or replace a block (an empty id gets a fresh one).
    pub fn put_block(&self, ws: &WorkspaceId, mut block: BlockRecord) -> Result<BlockRecord> {
        if block.id.is_empty() {
            block.id = self.new_id()?;
        }
        check_name("block id", &block.id)?;
        block.updated_ms = now_ms();
        let v = to_vec(&block)?;
        let key = Key::ws(ws).last(block.id.as_bytes());
        self.b.write(&mut |tx| tx.put(Table::Blocks, &key, &v))?;
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

    /// Record a run (insert or replace), with its by-block index entry, in
    /// one atomic write.
    pub fn put_run(&self, ws: &WorkspaceId, run: &RunRecord) -> Result<()> {
        check_name("run id", &run.id)?;
        let key = Key::ws(ws).last(run.id.as_bytes());
        let index = run.block.as_ref().map(|b| {
            Key::ws(ws)
                .seg(b.as_bytes())
                .raw(&run.started_ms.to_be_bytes())
                .last(run.id.as_bytes())
        });
        let v = to_vec(run)?;
        self.b.write(&mut |tx| {
            tx.put(Table::Runs, &key, &v)?;
            if let Some(i) = &index {
                tx.put(Table::RunsByBlock, i, b"")?;
            }
            Ok(())
        })
    }

    /// One run.
    pub fn get_run(&self, ws: &WorkspaceId, id: &str) -> Result<Option<RunRecord>> {
        check_name("run id", id)?;
        self.get_json(Table::Runs, &Key::ws(ws).last(id.as_bytes()), "run")
    }

    /// Runs of the workspace, or of one block, oldest first, at most
    /// `limit`.
    pub fn list_runs(
        &self,
        ws: &WorkspaceId,
        block: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let mut out = Vec::new();
        match block {
            None => self.scan_json(Table::Runs, &Key::ws(ws).prefix(), "run", |_, r| {
                out.push(r);
                out.len() < limit
            })?,
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
