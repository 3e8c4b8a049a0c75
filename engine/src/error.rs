//! Errors of the engine API (not of blocks: a block's failure is a run
//! event, never an `Err`).

/// Why the engine could not start or run something.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The runtime prelude failed to compile or load (a bug in quire).
    #[error("the runtime prelude failed to load: {0}")]
    Prelude(String),
    /// QuickJS could not create a runtime or context (usually out of memory).
    #[error("could not create an isolate: {0}")]
    Isolate(String),
    /// A worker thread could not be started.
    #[error("could not start a worker thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The engine has shut down and takes no more runs.
    #[error("the engine is shut down")]
    ShutDown,
    /// The configuration is unusable.
    #[error("invalid engine configuration: {0}")]
    Config(String),
}
