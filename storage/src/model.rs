//! The records the store keeps, as serde types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A workspace's id: 16 random bytes, written as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId([u8; 16]);

impl WorkspaceId {
    /// A new random id.
    pub fn random() -> Self {
        Self(*uuid::Uuid::new_v4().as_bytes())
    }

    /// The id with these bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// Its bytes (the prefix of every key of the workspace).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", uuid::Uuid::from_bytes(self.0).simple())
    }
}

impl std::str::FromStr for WorkspaceId {
    type Err = crate::StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(crate::error::invalid(
                "workspace id",
                "expected 32 hexadecimal digits",
            ));
        }
        uuid::Uuid::parse_str(s)
            .map(|u| Self(*u.as_bytes()))
            .map_err(|e| crate::error::invalid("workspace id", e.to_string()))
    }
}

impl Serialize for WorkspaceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WorkspaceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A workspace: the unit of isolation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Its unique name.
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The engine for its blocks that do not choose one: `quickjs` or
    /// `v8`; empty means QuickJS.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_engine: String,
    /// The grants of code an AI agent runs in it (MCP `run_code`), as its
    /// admins set them; empty: pure computation. The caller validates
    /// them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_grants: Vec<String>,
}

/// One block of a document's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DocBlock {
    /// Prose.
    Text {
        /// The text (Markdown).
        text: String,
    },
    /// A code block: inline source, or a reference to a stored block.
    Code {
        /// `js` or `ts`.
        lang: String,
        /// The source.
        source: String,
        /// The stored block it runs as, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block: Option<String>,
    },
}

/// A document: a title, free-form properties, and an ordered body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Its id (unique in the workspace).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Free-form properties.
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// The body, in order.
    #[serde(default)]
    pub blocks: Vec<DocBlock>,
    /// Last change, milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_ms: u64,
}

/// A document without its body, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocSummary {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Last change, milliseconds since the Unix epoch.
    pub updated_ms: u64,
}

/// A stored code block with its grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockRecord {
    /// Its id (unique in the workspace).
    pub id: String,
    /// A human name.
    #[serde(default)]
    pub name: String,
    /// The source.
    pub source: String,
    /// `js` or `ts`.
    pub lang: String,
    /// Capability grants, e.g. `db:read:tasks` (empty: pure computation).
    #[serde(default)]
    pub grants: Vec<String>,
    /// The digest of the source (language and text) an admin approved
    /// `grants` for; the grants apply only to that source. `None`: the
    /// stored source is the approved one (blocks stored before approvals
    /// were recorded, and blocks without grants). The server decides what
    /// the digest is; storage only keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants_approved_for: Option<String>,
    /// The engine that runs it: `quickjs` or `v8`; empty means QuickJS
    /// (blocks stored before engines could be chosen).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine: String,
    /// Last change, milliseconds since the Unix epoch.
    #[serde(default)]
    pub updated_ms: u64,
}

/// A run as kept in history: what was asked, everything it emitted, how it
/// ended and what it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id.
    pub id: String,
    /// The stored block it ran, if any.
    #[serde(default)]
    pub block: Option<String>,
    /// What started it (`{"kind":"manual"}`, a schedule, ...).
    #[serde(default)]
    pub trigger: Value,
    /// The request (source hash, input, limits, grants) as JSON.
    #[serde(default)]
    pub request: Value,
    /// `running`, `ok` or `error`.
    pub status: String,
    /// The run's events, in order. Stored apart from the record, in
    /// chunks (see [`crate::Store::run_events`]): a record read from
    /// history has them only from [`crate::Store::get_run`]; listings
    /// and [`crate::Store::get_run_head`] leave them out. Writing a
    /// record with events replaces the run's stored events; with none,
    /// keeps them (a server appends them as they arrive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Value>,
    /// `{kind, message}` of the run's error event, or null.
    #[serde(default)]
    pub error: Value,
    /// CPU time used, in milliseconds.
    #[serde(default)]
    pub cpu_ms: f64,
    /// Wall-clock time, in milliseconds.
    #[serde(default)]
    pub wall_ms: f64,
    /// Peak isolate memory, in bytes.
    #[serde(default)]
    pub peak_memory_bytes: u64,
    /// Start time, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// Where its output came from (the block's version, engine, grants,
    /// a hash of its input, its document and the runs whose results it
    /// read), as the run service records it; storage keeps it as given.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub provenance: Value,
}

impl RunRecord {
    /// A run filed as `queued` (nothing run yet, no usage).
    pub fn queued(
        id: String,
        block: Option<String>,
        trigger: serde_json::Value,
        started_ms: u64,
    ) -> Self {
        Self {
            id,
            block,
            trigger,
            request: serde_json::Value::Null,
            status: "queued".into(),
            events: vec![],
            error: serde_json::Value::Null,
            cpu_ms: 0.0,
            wall_ms: 0.0,
            peak_memory_bytes: 0,
            started_ms,
            provenance: serde_json::Value::Null,
        }
    }
}

/// A secret's value and the hosts it may be sent to.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The plaintext value.
    pub value: String,
    /// Hosts (`host` or `host:port`) that a `{{secret:NAME}}` fetch header
    /// may carry it to.
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("value", &"<redacted>")
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An API token as stored: its hash, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Its public id (the part of the token that finds this record).
    pub id: String,
    /// The workspace it opens; `None` for a server-admin token.
    pub workspace: Option<WorkspaceId>,
    /// Its role (`admin`, `editor`, `viewer`); the server interprets it.
    pub role: String,
    /// A human label.
    #[serde(default)]
    pub label: String,
    /// Hex SHA-256 of the token's secret part.
    pub secret_sha256: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// A block's webhook: a secret URL that runs the block. Only the hash of
/// its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// Its public id (in the URL, finds this record).
    pub id: String,
    /// The workspace of the block.
    pub workspace: WorkspaceId,
    /// The block it runs.
    pub block: String,
    /// Hex SHA-256 of the URL's secret part.
    pub secret_sha256: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}
