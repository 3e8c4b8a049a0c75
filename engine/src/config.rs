//! Engine configuration and per-run limits.
//!
//! Limits are plain data: every field carries its unit in its name and
//! documents its default. The binary (or an embedder) fills them in once; the
//! engine never reads the environment or flags.

use std::time::Duration;

/// Hard limits for one run. Every limit, once hit, ends the run with its own
/// [`crate::ErrorKind`]; the block cannot catch or undo it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Limits {
    /// CPU time the run may use, in milliseconds, measured on the worker
    /// thread's CPU clock (time spent waiting on timers does not count).
    /// Exceeding it ends the run with `cpu_limit`. Default: 1000.
    pub cpu_time_ms: u64,
    /// Wall-clock time from start to finish, in milliseconds. Exceeding it
    /// ends the run with `wall_limit`. Default: 5000.
    pub wall_time_ms: u64,
    /// Bytes the isolate may allocate (heap, bytecode, strings, buffers),
    /// counted by the engine's own allocator. An allocation over the limit
    /// fails and ends the run with `memory_limit`. Default: 64 MiB.
    pub memory_bytes: u64,
    /// Native stack the block's JavaScript may use, in bytes. Deeper
    /// recursion throws a `RangeError` that ends the run with
    /// `stack_overflow` when uncaught. Default: 1 MiB.
    pub stack_bytes: u64,
    /// Bytes of output: log text, `display()` data and the serialized
    /// result together. The write that crosses it is dropped and the run
    /// ends with `output_limit`. Default: 1 MiB.
    pub output_bytes: u64,
    /// Output events (each log, `display()` and the result count one),
    /// so a block cannot flood history and live clients with empty
    /// lines that cost no bytes. The event past it is dropped and the run
    /// ends with `output_limit`. Default: 100,000.
    pub output_events: u64,
    /// Timers (`setTimeout`/`setInterval`) pending at once. One more throws
    /// a `RangeError` in the block. Default: 1000.
    pub max_pending_timers: u32,
    /// Jobs (promise reactions, `queueMicrotask` callbacks, timer
    /// callbacks) the run may execute in total. Exceeding it ends the run
    /// with `cpu_limit`. Default: 10,000,000.
    pub max_jobs: u64,
    /// Host calls (`quire` module functions and `fetch`) the run may make in
    /// total. The call past it rejects with a `QuotaExceeded` error.
    /// Default: 1000.
    pub host_calls: u32,
    /// JSON bytes of one host call's arguments, and of one reply. Larger
    /// arguments reject with a `RangeError`; a larger reply rejects the
    /// call. Default: 1 MiB.
    pub host_value_bytes: u64,
    /// Rows one `db.query` may return, enforced by the host API: a query
    /// whose `limit` asks for more (or that gives none) returns at most
    /// this many. Default: 1000.
    pub host_rows_per_query: u32,
    /// The shortest gap between two live meters of the run, in
    /// milliseconds (see [`crate::Meter`]); 0 sends none (nor the final
    /// one), and a value under 100 counts as 100. Default: 100.
    pub meter_interval_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_time_ms: 1000,
            wall_time_ms: 5000,
            memory_bytes: 64 * 1024 * 1024,
            stack_bytes: 1024 * 1024,
            output_bytes: 1024 * 1024,
            output_events: 100_000,
            max_pending_timers: 1000,
            max_jobs: 10_000_000,
            host_calls: 1000,
            host_value_bytes: 1024 * 1024,
            host_rows_per_query: 1000,
            meter_interval_ms: crate::event::METER_INTERVAL_MS,
        }
    }
}

impl Limits {
    /// The CPU limit as a [`Duration`].
    pub fn cpu_time(&self) -> Duration {
        Duration::from_millis(self.cpu_time_ms)
    }

    /// The wall-clock limit as a [`Duration`].
    pub fn wall_time(&self) -> Duration {
        Duration::from_millis(self.wall_time_ms)
    }
}

/// How the engine runs: thread counts, pools, caches.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads that execute runs. Default: one per available core.
    pub worker_threads: usize,
    /// Ready isolates (runtime + context + prelude) each worker keeps warm.
    /// An isolate serves exactly one run and is then dropped. Default: 4.
    pub isolate_pool_per_worker: usize,
    /// Runs a worker interleaves at once (runs waiting on timers or host
    /// calls do not hold a thread). Default: 64.
    pub max_active_runs_per_worker: usize,
    /// Bytes of compiled block bytecode kept in the shared cache, keyed by a
    /// BLAKE3 hash of language, file name and source. Default: 64 MiB.
    pub bytecode_cache_bytes: usize,
    /// Native stack size of each worker thread, in bytes. Must exceed the
    /// largest `Limits::stack_bytes` used. Default: 16 MiB.
    pub worker_stack_bytes: usize,
    /// How long after a run should have stopped (limit hit or cancelled)
    /// the watchdog waits for it before giving up its worker thread and
    /// starting a replacement, in milliseconds. Default: 100.
    pub backstop_grace_ms: u64,
    /// How often the watchdog checks running blocks, in milliseconds.
    /// Default: 5.
    pub watchdog_interval_ms: u64,
    /// Limits used when a request does not bring its own.
    pub default_limits: Limits,
    /// Where isolates run: in this process, or in sandboxed runner
    /// processes. Default: in this process.
    pub isolation: Isolation,
    /// The V8 engine (fresh isolates in pooled Node processes), for requests with
    /// `engine: V8`. `None`: such runs fail with an error saying V8 is not
    /// configured. Default: `None`.
    pub v8: Option<crate::v8::V8Config>,
    /// Test-only: give blocks a global `__quire_test_native_spin(ms)` that
    /// spins in Rust without polling the interrupt handler, standing in for
    /// a QuickJS built-in that runs long stretches of C. Never enable in
    /// production. Default: false.
    #[doc(hidden)]
    pub test_native_spin: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            worker_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            isolate_pool_per_worker: 4,
            max_active_runs_per_worker: 64,
            bytecode_cache_bytes: 64 * 1024 * 1024,
            worker_stack_bytes: 16 * 1024 * 1024,
            backstop_grace_ms: 100,
            watchdog_interval_ms: 5,
            default_limits: Limits::default(),
            isolation: Isolation::InProcess,
            v8: None,
            test_native_spin: false,
        }
    }
}

/// Where a block's isolate lives.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// On the engine's worker threads, in this process. Fastest; the
    /// boundary is QuickJS's own memory safety, so a QuickJS exploit owns
    /// the process. For embedding and tests; see SECURITY.md.
    #[default]
    InProcess,
    /// In pooled, sandboxed runner processes (seccomp allowlist, no
    /// filesystem, rlimits, death with the parent), one workspace per
    /// runner. The default for `quire serve`.
    Runners(crate::runner::RunnerConfig),
}
