//! # quire-engine
//!
//! Runs one notebook-style code block (a JavaScript or TypeScript ES module)
//! in a fresh QuickJS-ng isolate under hard limits, and streams what it does
//! as [`RunEvent`]s.
//!
//! **Owns:** isolates and their limits (CPU, wall clock, memory, stack,
//! output, timers, jobs), the runtime prelude (web globals) compiled to
//! bytecode once per process, the bytecode cache of compiled blocks, the
//! worker threads with their pools of ready isolates, the watchdog backstop,
//! TypeScript stripping (oxc) and position mapping, the run-event
//! contract, and the host-call boundary: a run may carry a [`Host`] that
//! receives each call as `HostCall { op, args: JSON }` and answers through a
//! [`HostReply`] from any thread, while the worker runs other blocks.
//!
//! **Does not own:** documents, storage, grants or the host API (that is
//! `quire-host-api`), nor HTTP (that is `quire-web`). No rquickjs type
//! appears in this crate's public API, so a V8 backend can sit behind the
//! same API.
//!
//! ## Using it
//!
//! ```no_run
//! use quire_engine::{Engine, EngineConfig, Lang, Limits, RunRequest};
//! let engine = Engine::new(EngineConfig::default())?;
//! let request = RunRequest::new("export default (ctx) => ctx.input * 2", Lang::Js)
//!     .with_input(serde_json::json!(21))
//!     .with_limits(Limits { cpu_time_ms: 100, ..Limits::default() });
//! let outcome = engine.run(request).wait();
//! assert_eq!(outcome.result, Some(serde_json::json!(42)));
//! # Ok::<(), quire_engine::EngineError>(())
//! ```
//!
//! ## Two engines
//!
//! QuickJS runs here or in QuickJS runner processes. With
//! [`EngineConfig::v8`] set, requests with [`EngineKind::V8`] run in real
//! V8, a fresh isolate per run inside pooled, sandboxed Node processes
//! (see [`v8`]).
//!
//! ## Isolation in this process
//!
//! Isolates here run inside the embedding process: the boundary is
//! QuickJS's own memory safety. The server runs them in sandboxed runner
//! processes instead; see SECURITY.md.

mod alloc;
mod analysis;
mod compile;
mod config;
mod control;
mod cpu;
mod deps;
mod depth;
mod describe;
mod engine;
mod error;
mod event;
mod host;
mod hostcall;
mod isolate;
mod natives;
mod request;
mod run;
pub mod runner;
mod schema;
mod serialize;
pub mod v8;
mod worker;

pub use config::{EngineConfig, Isolation, Limits};
pub use control::RunOutcome;
pub use deps::{result_reads, ResultReads, UnknownRead};
pub use depth::{check_depth, too_deep, value_depth, MAX_VALUE_DEPTH};
pub use engine::{idle_isolate_bytes, Canceller, Engine, EngineStats, RunHandle};
pub use error::EngineError;
pub use event::{
    check_display, check_display_id, Diff, ErrorInfo, ErrorKind, EventBody, Finished, LogLevel,
    Meter, MeterLimits, RunEvent, RunStatus, DISPLAY_MIMES, METER_IDLE_INTERVAL_MS,
    METER_INTERVAL_MS, PROGRESS_MIME,
};
pub use flume;
pub use host::{
    CallContext, Host, HostCall, HostError, HostErrorKind, HostHandle, HostReply, HostResult,
};
pub use isolate::HOST_MODULE;
pub use request::{EngineKind, Lang, RunRequest};
pub use schema::input_schema;
pub use v8::V8Config;
