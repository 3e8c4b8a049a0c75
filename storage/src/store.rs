//! [`Store`]: the one entry point to stored data. Workspace-scoped methods
//! take a [`WorkspaceId`] and build every key from it (see `keys`), so a
//! caller can only ever reach the workspace it names.

use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, MemoryBackend, Table, Tx};
use crate::crypto::SecretKey;
use crate::error::{corrupt, invalid, Result, StorageError};
use crate::keys::check_name;
use crate::model::{now_ms, Workspace, WorkspaceId};
use crate::schema;
use crate::sled_backend::{Durability, SledBackend, SledConfig};

/// Where and how to open an on-disk store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Data directory. The sled database lives in `DIR/db`; the secret
    /// key file (unless `secret_key` is given) in `DIR/secret.key`, outside
    /// the database.
    pub data_dir: PathBuf,
    /// The key that encrypts secrets, when the operator provides one.
    /// Default: `None` (read `DIR/secret.key`, creating it on first start).
    pub secret_key: Option<SecretKey>,
    /// sled page cache, in bytes. Default: 64 MiB.
    pub cache_bytes: u64,
    /// When writes become durable. Default: flush before acknowledging.
    pub durability: Durability,
}

impl StoreConfig {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            secret_key: None,
            cache_bytes: 64 * 1024 * 1024,
            durability: Durability::FlushEachWrite,
        }
    }
}

/// Stored data: workspaces and everything in them.
#[derive(Clone)]
pub struct Store {
    pub(crate) b: Arc<dyn Backend>,
    pub(crate) key: SecretKey,
    /// The shared run queue, on PostgreSQL.
    queue: Option<crate::RunQueue>,
    /// The PostgreSQL backend, when the store is on it.
    pg: Option<Arc<crate::PgBackend>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Open (or create) the on-disk store described by `config`, checking
    /// and migrating its schema.
    ///
    /// # Errors
    /// Opening sled, reading the key file, or a schema newer than this
    /// build ([`StorageError::SchemaTooNew`]).
    pub fn open(config: &StoreConfig) -> Result<Self> {
        let key = match &config.secret_key {
            Some(k) => k.clone(),
            None => SecretKey::load_or_create(&config.data_dir.join("secret.key"))?,
        };
        let backend = SledBackend::open(&SledConfig {
            path: config.data_dir.join("db"),
            cache_bytes: config.cache_bytes,
            durability: config.durability,
        })?;
        Self::with_backend(Arc::new(backend), key)
    }

    /// The store of a deployment on PostgreSQL (several processes may
    /// share it), its schema migrated and checked; secrets are encrypted
    /// with `key`, the operator's.
    ///
    /// # Errors
    /// No server, a bad URL, or a schema newer than this build.
    pub fn open_postgres(config: &crate::PgConfig, key: SecretKey) -> Result<Self> {
        let pg = Arc::new(crate::PgBackend::open(config)?);
        let mut store = Self::with_backend(pg.clone(), key)?;
        store.queue = Some(crate::RunQueue::open(pg.clone())?);
        store.pg = Some(pg);
        Ok(store)
    }

    /// Take part in electing the scheduler's leader, as `holder` (see
    /// [`crate::Leadership`]); `None` off PostgreSQL, where the one
    /// process leads.
    ///
    /// # Errors
    /// When the backend is closed.
    pub fn scheduler_leadership(&self, holder: &str) -> Result<Option<crate::Leadership>> {
        self.pg
            .as_ref()
            .map(|pg| crate::Leadership::start(pg.clone(), holder.to_string()))
            .transpose()
    }

    /// The run id of schedule `schedule`'s fire at `at_ms` in `ws`: the
    /// same for every process that files it, so the queue runs it once.
    /// Sorts by `at_ms` like any id (see `ids`).
    pub fn fire_id(&self, ws: &WorkspaceId, schedule: &str, at_ms: u64) -> String {
        crate::ids::derived_id(&[ws.as_bytes(), schedule.as_bytes()], at_ms)
    }

    /// The shared run queue, when the store is on PostgreSQL (several
    /// processes may serve it); `None` on sled and in memory, where runs
    /// are admitted in the process.
    pub fn run_queue(&self) -> Option<&crate::RunQueue> {
        self.queue.as_ref()
    }

    /// An empty store in memory (tests, `quire run` without `--data`).
    pub fn memory() -> Result<Self> {
        Self::with_backend(Arc::new(MemoryBackend::new()), SecretKey::random()?)
    }

    /// A store over any backend.
    ///
    /// # Errors
    /// As [`Store::open`] for the schema check.
    pub fn with_backend(b: Arc<dyn Backend>, key: SecretKey) -> Result<Self> {
        schema::check_and_migrate(b.as_ref(), schema::MIGRATIONS)?;
        Ok(Self {
            b,
            key,
            queue: None,
            pg: None,
        })
    }

    /// Flush every completed write to disk.
    ///
    /// # Errors
    /// An I/O error from sled.
    pub fn flush(&self) -> Result<()> {
        self.b.flush()
    }

    /// Bytes the data takes.
    pub fn size_bytes(&self) -> u64 {
        self.b.size_bytes()
    }

    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        t: Table,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>> {
        match self.b.get(t, key)? {
            Some(v) => crate::error::decode(what, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Scan `prefix`, decoding each value; `visit` returns `false` to stop.
    pub(crate) fn scan_json<T: DeserializeOwned>(
        &self,
        t: Table,
        prefix: &[u8],
        what: &'static str,
        mut visit: impl FnMut(&[u8], T) -> bool,
    ) -> Result<()> {
        self.b.scan(t, prefix, None, &mut |k, v| {
            let item: T = crate::error::decode(what, v)?;
            Ok(visit(k, item))
        })
    }

    /// Write a record that carries `updated_ms` as its version, in one
    /// atomic read-check-write. The new version is now, or one more than
    /// the stored one if the clock has not moved past it, so every save
    /// gets a distinct version. With `expect`, the write happens only if
    /// the stored version equals it (a missing record has version 0).
    pub(crate) fn put_versioned(
        &self,
        t: Table,
        key: &[u8],
        what: &'static str,
        id: &str,
        expect: Option<u64>,
        record: &mut serde_json::Value,
    ) -> Result<u64> {
        let mut version = 0;
        self.b.write(&mut |tx: &mut dyn Tx| {
            let current = match tx.get(t, key)? {
                Some(v) => crate::error::decode::<serde_json::Value>(what, &v)?
                    .get("updated_ms")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
                None => 0,
            };
            if let Some(expected_ms) = expect {
                if expected_ms != current {
                    return Err(StorageError::Stale {
                        what,
                        id: id.to_string(),
                        expected_ms,
                        current_ms: current,
                    });
                }
            }
            version = now_ms().max(current + 1);
            record["updated_ms"] = serde_json::Value::from(version);
            tx.put(t, key, &to_vec(record)?)
        })?;
        Ok(version)
    }

    /// Remove one key atomically; whether it existed.
    pub(crate) fn remove_key(&self, t: Table, key: &[u8]) -> Result<bool> {
        let mut existed = false;
        self.b.write(&mut |tx| {
            existed = tx.remove(t, key)?.is_some();
            Ok(())
        })?;
        Ok(existed)
    }

    /// A fresh id for a run, block, document, row or schedule: 32 hex
    /// digits, the creation time in milliseconds, a sequence within the
    /// millisecond and 64 random bits. Ids made later in this process sort
    /// after earlier ones (across restarts, in clock order); an id gives
    /// away neither how many others were made nor its neighbours.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the system has no randomness.
    pub fn new_id(&self) -> Result<String> {
        crate::ids::new_id()
    }

    // ------------------------------------------------------------ workspaces

    /// Create a workspace. Names are 1–64 characters of letters, digits,
    /// `-`, `_` and `.`.
    ///
    /// # Errors
    /// [`StorageError::Invalid`] for a bad name,
    /// [`StorageError::WorkspaceExists`] when the name is taken.
    pub fn create_workspace(&self, name: &str) -> Result<Workspace> {
        check_workspace_name(name)?;
        let ws = Workspace {
            id: WorkspaceId::random(),
            name: name.to_string(),
            created_ms: now_ms(),
            default_engine: String::new(),
            agent_grants: Vec::new(),
        };
        let value = to_vec(&ws)?;
        self.b.write(&mut |tx: &mut dyn Tx| {
            if tx.get(Table::WorkspaceNames, name.as_bytes())?.is_some() {
                return Err(StorageError::WorkspaceExists(name.to_string()));
            }
            tx.put(Table::WorkspaceNames, name.as_bytes(), ws.id.as_bytes())?;
            tx.put(Table::Workspaces, ws.id.as_bytes(), &value)?;
            Ok(())
        })?;
        tracing::info!(workspace = %ws.id, name, "workspace created");
        Ok(ws)
    }

    /// Set the workspace's default engine (`quickjs`, `v8`, or empty for
    /// QuickJS; the caller validates the name).
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown workspace.
    pub fn set_default_engine(&self, id: &WorkspaceId, engine: &str) -> Result<Workspace> {
        self.update_workspace(id, &|ws| ws.default_engine = engine.to_string())
    }

    /// Set the grants of agent-written code in the workspace (the caller
    /// validates them).
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown workspace.
    pub fn set_agent_grants(&self, id: &WorkspaceId, grants: &[String]) -> Result<Workspace> {
        self.update_workspace(id, &|ws| ws.agent_grants = grants.to_vec())
    }

    fn update_workspace(
        &self,
        id: &WorkspaceId,
        change: &dyn Fn(&mut Workspace),
    ) -> Result<Workspace> {
        let mut out = None;
        self.b.write(&mut |tx: &mut dyn Tx| {
            let Some(raw) = tx.get(Table::Workspaces, id.as_bytes())? else {
                return Err(StorageError::NotFound {
                    what: "workspace",
                    id: id.to_string(),
                });
            };
            let mut ws: Workspace = crate::error::decode("workspace", &raw)?;
            change(&mut ws);
            tx.put(Table::Workspaces, id.as_bytes(), &to_vec(&ws)?)?;
            out = Some(ws);
            Ok(())
        })?;
        out.ok_or_else(|| StorageError::NotFound {
            what: "workspace",
            id: id.to_string(),
        })
    }

    /// The workspace with this id.
    pub fn workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>> {
        self.get_json(Table::Workspaces, id.as_bytes(), "workspace")
    }

    /// The workspace with this name.
    pub fn workspace_by_name(&self, name: &str) -> Result<Option<Workspace>> {
        let Some(id) = self.b.get(Table::WorkspaceNames, name.as_bytes())? else {
            return Ok(None);
        };
        let id: [u8; 16] = id
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("workspace name index", "id is not 16 bytes"))?;
        self.workspace(&WorkspaceId::from_bytes(id))
    }

    /// The workspace with this name, created if missing.
    pub fn ensure_workspace(&self, name: &str) -> Result<Workspace> {
        if let Some(ws) = self.workspace_by_name(name)? {
            return Ok(ws);
        }
        match self.create_workspace(name) {
            Err(StorageError::WorkspaceExists(_)) => {
                self.workspace_by_name(name)?
                    .ok_or_else(|| StorageError::NotFound {
                        what: "workspace",
                        id: name.to_string(),
                    })
            }
            other => other,
        }
    }

    /// Every workspace.
    pub fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        let mut out = Vec::new();
        self.scan_json(Table::Workspaces, b"", "workspace", |_, w: Workspace| {
            out.push(w);
            true
        })?;
        Ok(out)
    }
}

pub(crate) fn to_vec<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| corrupt("record", e))
}

fn check_workspace_name(name: &str) -> Result<()> {
    check_name("workspace name", name)?;
    if name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            "workspace name",
            format!("'{name}' must be 1-64 characters of letters, digits, '-', '_' and '.'"),
        ));
    }
    Ok(())
}
