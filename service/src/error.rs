//! The run service's errors: what went wrong, never how a transport words
//! it (the HTTP crate maps each to a status).

use quire_storage::StorageError;

use crate::admission::QuotaRefusal;

/// Why the service could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A value of the request is not acceptable (the input too deep, a
    /// block's stored grants that do not parse, a cron expression).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field, as the client spelled it (`input`, `grants`, `cron`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A workspace quota refused the run.
    #[error("{0}")]
    Quota(QuotaRefusal),
    /// The service is shutting down and starts no new runs.
    #[error("the server is shutting down and starts no new runs")]
    ShuttingDown,
    /// The store refused or failed (not found, stale, invalid, I/O).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A run with this id was enqueued before (a run id runs once).
    #[error("run {0} was enqueued before; a run id runs once")]
    AlreadyQueued(String),
    /// What was asked cannot be done as things are (a cycle of blocks
    /// that read each other's results).
    #[error("{0}")]
    Conflict(String),
    /// A dry-run's preview could not be applied or discarded (nothing
    /// was written): `refusal` says why, `message` in words.
    #[error("{message}")]
    Preview {
        /// The dry-run.
        run: String,
        /// Why.
        refusal: quire_storage::ApplyRefusal,
        /// What happened and what to do.
        message: String,
    },
    /// Something failed inside the service.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// An [`ServiceError::Invalid`] for `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<tokio::task::JoinError> for ServiceError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// The service's results.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Run a store call (or any blocking work) off the async threads.
///
/// # Errors
/// `f`'s error, or [`ServiceError::Internal`] if the task panicked.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ServiceResult<T> + Send + 'static,
) -> ServiceResult<T> {
    tokio::task::spawn_blocking(f).await?
}
