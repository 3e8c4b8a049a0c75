//! The on-disk backend: one sled 0.34 database, one tree per [`Table`].
//!
//! Atomic writes are sled transactions over all trees. Durability: with
//! [`Durability::FlushEachWrite`] (the default) every write is flushed to
//! the log before it is acknowledged, so it survives `kill -9` and power
//! loss alike; [`Durability::Periodic`] leaves flushing to sled's
//! background thread (faster; the last few hundred milliseconds can be
//! lost on a crash).

use std::cell::RefCell;
use std::path::PathBuf;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::backend::{Backend, Table, Tx, Visit};
use crate::error::{Result, StorageError};

/// When writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flush (fsync) after every write, before it is acknowledged.
    /// Default.
    FlushEachWrite,
    /// Let sled flush in the background every `every_ms` milliseconds.
    Periodic {
        /// Flush interval in milliseconds (sled's `flush_every_ms`).
        every_ms: u64,
    },
}

/// How to open the sled database.
#[derive(Debug, Clone)]
pub struct SledConfig {
    /// Directory of the sled database (created if missing).
    pub path: PathBuf,
    /// Page cache size in bytes. Default: 64 MiB.
    pub cache_bytes: u64,
    /// When writes become durable. Default: [`Durability::FlushEachWrite`].
    pub durability: Durability,
}

impl SledConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache_bytes: 64 * 1024 * 1024,
            durability: Durability::FlushEachWrite,
        }
    }
}

/// A sled database with one tree per table.
pub struct SledBackend {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    flush_each_write: bool,
}

impl SledBackend {
    /// Open (or create) the database.
    ///
    /// # Errors
    /// [`StorageError::Db`] when sled cannot open it (locked by another
    /// process, damaged, no permission).
    pub fn open(config: &SledConfig) -> Result<Self> {
        let mut c = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_bytes)
            .mode(sled::Mode::HighThroughput);
        c = match config.durability {
            Durability::FlushEachWrite => c.flush_every_ms(Some(1000)),
            Durability::Periodic { every_ms } => c.flush_every_ms(Some(every_ms.max(1))),
        };
        let db = c.open()?;
        let trees = Table::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            db,
            trees,
            flush_each_write: config.durability == Durability::FlushEachWrite,
        })
    }

    fn tree(&self, t: Table) -> &sled::Tree {
        &self.trees[t.index()]
    }
}

struct SledTx<'a>(&'a [TransactionalTree]);

impl Tx for SledTx<'_> {
    fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0[table.index()].get(key)?.map(|v| v.to_vec()))
    }
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.0[table.index()].insert(key, value)?;
        Ok(())
    }
    fn remove(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0[table.index()].remove(key)?.map(|v| v.to_vec()))
    }
}

impl Backend for SledBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(table).get(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        let tree = self.tree(table);
        let iter = match after {
            Some(a) => tree.range((
                std::ops::Bound::Excluded(a.to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => tree.range(prefix.to_vec()..),
        };
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn scan_rev(
        &self,
        table: Table,
        prefix: &[u8],
        before: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        use std::ops::Bound;
        let end = crate::backend::rev_end(prefix, before);
        let iter = self
            .tree(table)
            .range((Bound::Included(prefix.to_vec()), end))
            .rev();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            if !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let f = RefCell::new(f);
        let r = self.trees.as_slice().transaction(|trees| {
            let mut tx = SledTx(trees);
            let mut f = f.borrow_mut();
            match (*f)(&mut tx) {
                Ok(()) => Ok(()),
                Err(StorageError::Conflict(e)) => Err(e.into()),
                Err(e) => Err(ConflictableTransactionError::Abort(e)),
            }
        });
        match r {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        if self.flush_each_write {
            self.db.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
