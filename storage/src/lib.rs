//! # quire-storage
//!
//! Everything quire keeps: workspaces, documents, databases (collections of
//! JSON rows), kv, secrets (encrypted at rest), blocks with their grants,
//! and run history — in sled 0.34, or in memory.
//!
//! **Owns:** the key layout that keeps workspaces apart, atomic writes,
//! the schema version and migrations, durability, secret encryption.
//!
//! **Does not own:** JavaScript, grants checking or the host API (that is
//! `quire-host-api`, which decides *whether* a block may touch data before
//! calling in here), nor HTTP.
//!
//! ## Isolation
//!
//! Every workspace-scoped method takes a [`WorkspaceId`] and builds every
//! key from it; names are length-prefixed inside keys. No id, name or
//! prefix a caller passes can read, list or overwrite another workspace's
//! data (see `keys` and the tests in `tests/`).
//!
//! ## Durability
//!
//! With [`Durability::FlushEachWrite`] (the default) a write returns only
//! after sled has flushed it, so every acknowledged write survives `kill
//! -9`. Writes that belong together (a document's read-modify-write, a
//! batch of rows, a run with its index entry) are one transaction: all or
//! nothing.

mod backend;
mod crypto;
mod data;
mod diffs;
mod error;
mod events;
mod filter;
mod history;
mod ids;
mod keys;
mod leader;
mod model;
mod pg_backend;
mod queue;
mod quotas;
mod retention;
mod schedules;
mod schema;
mod sled_backend;
mod store;
#[cfg(test)]
mod testing;
mod tokens;

pub use backend::{Backend, MemoryBackend, Table, Tx, Visit};
pub use crypto::SecretKey;
pub use data::{
    check_doc_patch, check_secret_name, merge_patch, patch_document, RowQuery, MAX_SECRET_BYTES,
};
pub use diffs::{digest, ApplyRefusal, Change, ChangeOp, DiffStatus, StagedDiff, Target};
pub use error::{Result, StorageError};
pub use events::{EventPage, EventTotals, EVENT_CHUNK_BYTES};
pub use filter::Filter;
pub use history::{error_of, LATEST_RESULT_SCAN, LATEST_RESULT_SCAN_DRY};
pub use keys::MAX_NAME_BYTES;
pub use leader::{FireClaim, Leadership, Term, LOCK_KEY};
pub use model::{
    now_ms, BlockRecord, DocBlock, DocSummary, Document, RunRecord, Secret, TokenRecord,
    WebhookRecord, Workspace, WorkspaceId,
};
pub use pg_backend::{PgBackend, PgConfig};
pub use queue::{Cancelled, Claimed, Enqueue, LaneCounts, Lost, Refusal, RunQueue, MAX_CLAIMS};
pub use quotas::{utc_day, Quota, UsageDay};
pub use retention::Pruned;
pub use schedules::ScheduleRecord;
pub use schema::{Migration, CURRENT as SCHEMA_VERSION};
pub use sled_backend::{Durability, SledBackend, SledConfig};
pub use store::{Store, StoreConfig};
