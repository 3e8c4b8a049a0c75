//! # quire-host-api
//!
//! The host calls a block can make — `doc`, `db`, `kv`, `secrets` from the
//! module `"quire"`, and `fetch` — with the capability model that guards
//! them.
//!
//! **Owns:** grant parsing and checks ([`Grants`]), the proof values a
//! check returns and that the data gate requires, the dispatch of each call
//! (JSON in, JSON out, on its own thread pool so engine workers never
//! block), `fetch` with address filtering and secret substitution, and the
//! JavaScript of the `"quire"` module.
//!
//! **Does not own:** isolates or limits (that is `quire-engine`; this crate
//! implements its [`quire_engine::Host`] trait), nor how data is laid out
//! on disk (that is `quire-storage`).
//!
//! ## Deny by default
//!
//! A session starts from the block's grants and nothing else. Every call
//! checks its grant in Rust before touching storage or the network; a
//! denial rejects with an error named `CapabilityDenied` whose message
//! names the missing grant.
//!
//! ```no_run
//! use quire_host_api::{Grants, HostApi, HostConfig};
//! use quire_storage::Store;
//! let store = Store::memory()?;
//! let ws = store.ensure_workspace("default")?;
//! let api = HostApi::new(store, HostConfig::default())?;
//! let host = api.session(ws.id, Grants::parse(&["db:read:tasks"])?);
//! // RunRequest::new(src, Lang::Js).with_host(host)
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decode;
mod fetch;
mod gate;
mod grants;
mod meter;
mod net;
mod pool;
mod redact;
mod results;
mod session;
mod staged;
mod staging;

use std::sync::Arc;

use quire_engine::Host;
use quire_storage::{Store, WorkspaceId};

pub use fetch::FetchConfig;
pub use grants::{
    agent_grants, check_agent_grants, Access, CheckedCollection, CheckedDoc, CheckedKv,
    CheckedSecret, Grant, GrantError, Grants,
};
pub use meter::{MeterError, StorageMeter, StorageQuotaExceeded};
pub use net::{special as special_address, CheckedNet, Resolve, SystemResolver};
pub use results::{CheckedResult, DocScope, ResultRead, ResultReads};
pub use staging::{DryRun, DryRunLimits, SealedDiff};

/// Workspace quotas a run's host calls are held to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionQuota {
    /// Bytes the workspace may store: a write (`doc.update`, `db.insert`,
    /// `db.update`, `kv.set`) that would pass it rejects with
    /// `QuotaExceeded`. Default: `None` (no limit).
    pub storage_bytes: Option<u64>,
}

/// How the host API runs.
#[derive(Clone)]
pub struct HostConfig {
    /// Threads that run storage calls. Default: 4.
    pub storage_threads: usize,
    /// Threads that run `fetch` calls (each blocks on the network for up to
    /// `fetch.timeout_ms`). Default: 16.
    pub fetch_threads: usize,
    /// Limits of outgoing requests.
    pub fetch: FetchConfig,
    /// How host names resolve. Default: the system resolver.
    pub resolver: Arc<dyn Resolve>,
    /// Storage calls of one run executing at once; more wait in the run's
    /// own queue, so one run cannot fill the pool. Default: 2.
    pub storage_calls_per_run: usize,
    /// Fetches of one run in flight at once (as browsers limit
    /// connections per host). Default: 4.
    pub fetches_per_run: usize,
    /// Answer single-key reads (`kv.get`, `doc.get`, `secrets.get`) on the
    /// engine's worker thread instead of the storage pool: about 10x
    /// faster round trips, at the cost of the worker waiting on a read that
    /// misses sled's cache. Default: true.
    pub inline_point_reads: bool,
    /// Bounds on dry-runs' diffs.
    pub dry_run: DryRunLimits,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            storage_threads: 4,
            fetch_threads: 16,
            fetch: FetchConfig::default(),
            resolver: Arc::new(SystemResolver),
            inline_point_reads: true,
            storage_calls_per_run: 2,
            fetches_per_run: 4,
            dry_run: DryRunLimits::default(),
        }
    }
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostConfig")
            .field("storage_threads", &self.storage_threads)
            .field("fetch_threads", &self.fetch_threads)
            .field("fetch", &self.fetch)
            .field("inline_point_reads", &self.inline_point_reads)
            .finish()
    }
}

/// Why the host API could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostApiError {
    /// A thread pool could not be started.
    #[error("could not start the {pool} thread pool: {source}")]
    Threads {
        /// Which pool.
        pool: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

pub(crate) struct Inner {
    pub(crate) gate: gate::Gate,
    pub(crate) fetcher: fetch::Fetcher,
    pub(crate) storage_pool: Arc<pool::Pool>,
    pub(crate) fetch_pool: Arc<pool::Pool>,
    pub(crate) storage_calls_per_run: usize,
    pub(crate) fetches_per_run: usize,
    pub(crate) inline_point_reads: bool,
    pub(crate) meter: meter::StorageMeter,
    pub(crate) dry_run: DryRunLimits,
}

/// The host API over one store. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct HostApi {
    inner: Arc<Inner>,
}

impl HostApi {
    /// Start the host API's thread pools over `store`.
    ///
    /// # Errors
    /// [`HostApiError::Threads`] when a pool cannot start.
    pub fn new(store: Store, config: HostConfig) -> Result<Self, HostApiError> {
        let storage_pool =
            pool::Pool::new("quire-host", config.storage_threads).map_err(|source| {
                HostApiError::Threads {
                    pool: "storage",
                    source,
                }
            })?;
        let fetch_pool =
            pool::Pool::new("quire-fetch", config.fetch_threads).map_err(|source| {
                HostApiError::Threads {
                    pool: "fetch",
                    source,
                }
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                meter: meter::StorageMeter::new(store.clone()),
                gate: gate::Gate::new(store),
                fetcher: fetch::Fetcher {
                    config: config.fetch,
                    resolver: config.resolver,
                },
                storage_pool: Arc::new(storage_pool),
                fetch_pool: Arc::new(fetch_pool),
                storage_calls_per_run: config.storage_calls_per_run,
                fetches_per_run: config.fetches_per_run,
                inline_point_reads: config.inline_point_reads,
                dry_run: config.dry_run,
            }),
        })
    }

    /// The host for one run of a block in workspace `ws` with `grants`,
    /// and no storage quota. Attach it with
    /// [`quire_engine::RunRequest::with_host`].
    pub fn session(&self, ws: WorkspaceId, grants: Grants) -> Arc<dyn Host> {
        self.session_with(ws, grants, SessionQuota::default())
    }

    /// As [`HostApi::session`], with the workspace's quota applied to
    /// the run's writes.
    pub fn session_with(
        &self,
        ws: WorkspaceId,
        grants: Grants,
        quota: SessionQuota,
    ) -> Arc<dyn Host> {
        self.session_in(ws, grants, quota, None).0
    }

    /// As [`HostApi::session_with`], for a dry-run: its `doc`, `db` and
    /// `kv` writes are staged, not committed, and the returned handle
    /// seals them into a diff when the run ends.
    pub fn dry_run_session(
        &self,
        ws: WorkspaceId,
        grants: Grants,
        quota: SessionQuota,
        scope: Option<DocScope>,
    ) -> (Arc<dyn Host>, ResultReads, DryRun) {
        let dry = DryRun::new(self.inner.dry_run);
        let (session, reads) = self.build(ws, grants, quota, scope, Some(dry.clone()));
        (Arc::new(session), reads, dry)
    }

    /// The bounds on dry-runs this host API applies.
    pub fn dry_run_limits(&self) -> DryRunLimits {
        self.inner.dry_run
    }

    /// A session for a run in document `scope` (its `results.get` reads
    /// that document's blocks; `None`: a run outside any document, which
    /// reads none), and the handle on what it reads.
    pub fn session_in(
        &self,
        ws: WorkspaceId,
        grants: Grants,
        quota: SessionQuota,
        scope: Option<DocScope>,
    ) -> (Arc<dyn Host>, ResultReads) {
        let (session, reads) = self.build(ws, grants, quota, scope, None);
        (Arc::new(session), reads)
    }

    fn build(
        &self,
        ws: WorkspaceId,
        grants: Grants,
        quota: SessionQuota,
        scope: Option<DocScope>,
        staging: Option<DryRun>,
    ) -> (session::Session, ResultReads) {
        let reads = ResultReads::default();
        let session = session::Session {
            inner: self.inner.clone(),
            check: grants::Checker { ws, grants },
            storage_lane: pool::Lane::new(self.inner.storage_calls_per_run),
            fetch_lane: pool::Lane::new(self.inner.fetches_per_run),
            quota,
            results: results::ResultsCheck {
                ws,
                scope,
                reads: reads.clone(),
            },
            staging,
        };
        (session, reads)
    }

    /// The meter holding workspaces to their `storage_bytes` quota (for
    /// writes that do not come from blocks, and for showing usage).
    pub fn storage_meter(&self) -> &StorageMeter {
        &self.inner.meter
    }
}
