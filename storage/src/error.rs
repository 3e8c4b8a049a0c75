//! Storage errors: one variant per failure, each naming what failed.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The sled database reported an I/O or corruption error.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// PostgreSQL reported an error (connection, query, migration).
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// Reading or writing a file beside the database (the secret key).
    #[error("{what} at {path}: {error}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error (in the message, not a separate source, so it is
        /// printed once).
        error: std::io::Error,
    },
    /// A stored value did not decode (a bug or a damaged database).
    #[error("stored {what} is damaged: {detail}")]
    Corrupt {
        /// What kind of record.
        what: &'static str,
        /// The decoding error.
        detail: String,
    },
    /// The database was written by a newer quire.
    #[error("the database has schema version {found}, newer than this build supports ({supported}); upgrade quire")]
    SchemaTooNew {
        /// Version on disk.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// A name or id the caller passed is not acceptable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid (`collection name`, `kv key`, ...).
        what: &'static str,
        /// Why, with the limit where there is one.
        reason: String,
    },
    /// The named thing does not exist (in this workspace).
    #[error("{what} '{id}' not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its id or name, as the caller gave it.
        id: String,
    },
    /// A versioned write expected another version than the stored one
    /// (someone else saved in between).
    #[error("{what} '{id}' was changed by someone else (it is now at version {current_ms}, the write expected {expected_ms}); reload and reapply")]
    Stale {
        /// What kind of record.
        what: &'static str,
        /// Its id.
        id: String,
        /// The version the caller based its change on (`updated_ms`).
        expected_ms: u64,
        /// The stored version (0: it no longer exists).
        current_ms: u64,
    },
    /// A workspace with this name exists already.
    #[error("a workspace named '{0}' already exists")]
    WorkspaceExists(String),
    /// A secret could not be encrypted or decrypted (wrong key file, or a
    /// record moved between workspaces).
    #[error("secret '{0}' could not be decrypted with this server's secret key")]
    Decrypt(String),
    /// The secret key file exists but is not a 32-byte key.
    #[error("the secret key file {path} is not a 32-byte key ({len} bytes)")]
    BadKey {
        /// The key file.
        path: String,
        /// Its length in bytes.
        len: usize,
    },
    /// sled asked to retry a transaction (handled inside; never returned
    /// to callers).
    #[error("transaction conflict")]
    Conflict(#[from] sled::transaction::UnabortableTransactionError),
}

/// Shorthand for storage results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Decode a stored JSON record. Values are held to a depth limit where
/// they enter (the server and host API), but records stored before it,
/// or nested inside envelopes (a run's events), may be deeper than
/// serde_json's default recursion limit of 128: every reader takes
/// whatever was once accepted, so the limit is off here (records are
/// only ever ones this store wrote).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = T::deserialize(&mut de).map_err(|e| corrupt(what, e))?;
    de.end().map_err(|e| corrupt(what, e))?;
    Ok(v)
}

pub(crate) fn corrupt(what: &'static str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> StorageError {
    StorageError::Invalid {
        what,
        reason: reason.into(),
    }
}
