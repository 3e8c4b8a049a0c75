//! The public face of the engine: [`Engine`] and [`RunHandle`].

use std::sync::Arc;

use crate::config::EngineConfig;
use crate::control::{RunControl, RunOutcome};
use crate::error::EngineError;
use crate::event::{ErrorInfo, ErrorKind, Finished, RunEvent, RunStatus};
use crate::isolate::{prelude_bytecode, Isolate};
use crate::request::RunRequest;
use crate::worker::{watchdog, Job, Shared};

/// Runs blocks on a fixed pool of worker threads.
///
/// ```no_run
/// use quire_engine::{Engine, EngineConfig, Lang, RunRequest};
/// let engine = Engine::new(EngineConfig::default())?;
/// let run = engine.run(RunRequest::new("console.log('hi'); export default 1 + 1", Lang::Js));
/// for event in run.events().iter() {
///     println!("{}", serde_json::to_string(&event)?);
/// }
/// assert_eq!(run.wait().result, Some(serde_json::json!(2)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine {
    shared: Arc<Shared>,
    /// Runner processes, when isolation is [`crate::Isolation::Runners`].
    pool: Option<crate::runner::pool::Pool>,
    /// The V8 pool, or why there is none.
    v8: Result<crate::runner::pool::Pool, String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("worker_threads", &self.shared.config.worker_threads)
            .finish()
    }
}

/// Counters for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Worker threads serving runs now.
    pub workers: usize,
    /// Worker threads given up (and replaced) because a run was stuck in
    /// native code past its limit.
    pub workers_replaced: usize,
    /// Runs waiting for a worker.
    pub queued_runs: usize,
    /// Compiled blocks in the bytecode cache.
    pub cached_blocks: usize,
    /// Runner processes alive (runner isolation only).
    pub runners: usize,
    /// Runner processes that died or were killed while holding runs.
    pub runners_lost: u64,
    /// Bytes that dropped isolates' runtimes still held, in this process
    /// (all engines). Anything but 0 is a leak in the engine.
    pub isolate_bytes_leaked: u64,
}

impl Engine {
    /// Start the worker threads and the watchdog.
    ///
    /// # Errors
    /// [`EngineError::Config`] for zero workers, [`EngineError::Prelude`] if
    /// the runtime prelude does not compile, [`EngineError::Spawn`] if a
    /// thread cannot start.
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        if config.worker_threads == 0 {
            return Err(EngineError::Config(
                "worker_threads must be at least 1".into(),
            ));
        }
        if config.default_limits.stack_bytes >= config.worker_stack_bytes as u64 {
            return Err(EngineError::Config(format!(
                "stack_bytes ({}) must be below worker_stack_bytes ({})",
                config.default_limits.stack_bytes, config.worker_stack_bytes
            )));
        }
        prelude_bytecode()?;
        // The lazy modules too: a broken one fails here, not in a run, and
        // no run waits for a compile.
        crate::isolate::lazy_bytecode(crate::isolate::LazyModule::Extras)?;
        crate::isolate::lazy_bytecode(crate::isolate::LazyModule::Streams)?;
        let v8 = match &config.v8 {
            None => Err("the V8 engine is not configured in this process".to_string()),
            Some(v) => match v.check() {
                Err(e) => Err(e),
                // A broken V8 setup costs V8 runs only, never QuickJS.
                Ok(()) => v
                    .runner_config(config.default_limits.stack_bytes)
                    .and_then(crate::runner::pool::Pool::new)
                    .map_err(|e| format!("the V8 engine could not start: {e}")),
            },
        };
        let shared = Shared::new(config);
        if let crate::Isolation::Runners(rc) = &shared.config.isolation {
            // Runs go to runner processes; no local workers.
            let pool = crate::runner::pool::Pool::new(rc.clone())?;
            return Ok(Self {
                shared,
                pool: Some(pool),
                v8,
            });
        }
        for _ in 0..shared.config.worker_threads {
            shared.spawn_worker()?;
        }
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("quire-watchdog".into())
            .spawn(move || watchdog(weak))?;
        Ok(Self {
            shared,
            pool: None,
            v8,
        })
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Queue a run. Events start flowing on the handle as soon as a worker
    /// picks it up; the handle's outcome arrives exactly once.
    pub fn run(&self, request: RunRequest) -> RunHandle {
        let id = request
            .run_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut limits = request
            .limits
            .clone()
            .unwrap_or_else(|| self.shared.config.default_limits.clone());
        // The stack limit must fit the worker threads' stacks.
        let max_stack = (self.shared.config.worker_stack_bytes as u64) / 2;
        limits.stack_bytes = limits.stack_bytes.min(max_stack);
        let (tx, rx) = flume::unbounded();
        let (otx, orx) = flume::bounded(1);
        let control = RunControl::new(id.clone(), limits, tx, otx);
        if let Some(tap) = request.tap.clone() {
            let _ = control.tap.set(tap);
        }
        let handle = RunHandle {
            id,
            events: rx,
            outcome: orx,
            control: control.clone(),
        };
        // An input too deep for the run's readers (a runner's frame
        // parser among them) ends this run only.
        if let Err(m) = crate::check_depth("ctx.input", &request.input, 0) {
            control.begin();
            control.emit(crate::EventBody::Started);
            control.finish(
                Some(ErrorInfo::new(ErrorKind::Exception, m)),
                std::time::Duration::ZERO,
                0,
            );
            return handle;
        }
        if request.engine == crate::EngineKind::V8 {
            match &self.v8 {
                Ok(pool) => pool.submit(Job {
                    request,
                    control: control.clone(),
                    v8: None,
                }),
                Err(why) => {
                    control.begin();
                    control.finish(
                        Some(ErrorInfo::new(ErrorKind::Internal, why.clone())),
                        std::time::Duration::ZERO,
                        0,
                    );
                }
            }
            return handle;
        }
        if let Some(pool) = &self.pool {
            pool.submit(Job {
                request,
                control: control.clone(),
                v8: None,
            });
            return handle;
        }
        let queued = self.shared.hub.push(Job {
            request,
            control: control.clone(),
            v8: None,
        });
        if !queued {
            control.finish(
                Some(ErrorInfo::new(
                    ErrorKind::Internal,
                    EngineError::ShutDown.to_string(),
                )),
                std::time::Duration::ZERO,
                0,
            );
        }
        handle
    }

    /// Current counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            workers: self.shared.workers.lock().map(|w| w.len()).unwrap_or(0),
            workers_replaced: self
                .shared
                .replaced
                .load(std::sync::atomic::Ordering::Relaxed),
            queued_runs: self.shared.hub.queued() + self.pool.as_ref().map_or(0, |p| p.stats().1),
            cached_blocks: self.shared.cache.len(),
            runners: self.pool.as_ref().map_or(0, |p| p.stats().0),
            runners_lost: self.pool.as_ref().map_or(0, |p| p.stats().2),
            isolate_bytes_leaked: crate::isolate::LEAKED_BYTES
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Whether runs with `engine: V8` can run here; the error says why not
    /// (naming the install command when Node or the runner is missing).
    pub fn v8_status(&self) -> Result<(), String> {
        self.v8.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    /// The sandbox report of every ready V8 runner.
    pub fn v8_sandbox_reports(&self) -> Vec<crate::runner::protocol::SandboxReport> {
        self.v8
            .as_ref()
            .map_or_else(|_| Vec::new(), |p| p.sandbox_reports())
    }

    /// What the sandbox of each ready runner process put in place (empty
    /// for in-process isolation).
    pub fn sandbox_reports(&self) -> Vec<crate::runner::protocol::SandboxReport> {
        self.pool
            .as_ref()
            .map_or_else(Vec::new, |p| p.sandbox_reports())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.shut_down();
    }
}

/// Bytes one idle, ready isolate (runtime, context, prelude) holds, as
/// counted by the engine's allocator. For benchmarks.
///
/// # Errors
/// As [`Engine::new`].
pub fn idle_isolate_bytes() -> Result<u64, EngineError> {
    let iso = Isolate::new(1024 * 1024, false)?;
    Ok(iso.bytes())
}

/// A run in flight: its events, its outcome, and a way to cancel it.
#[derive(Debug)]
pub struct RunHandle {
    id: String,
    events: flume::Receiver<RunEvent>,
    outcome: flume::Receiver<RunOutcome>,
    control: Arc<RunControl>,
}

/// Cancels a run from any thread.
#[derive(Clone)]
pub struct Canceller(Arc<RunControl>);

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Canceller").field(&self.0.id).finish()
    }
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl").field("id", &self.id).finish()
    }
}

impl Canceller {
    /// End the run with `cancelled` (no-op once it has finished).
    pub fn cancel(&self) {
        cancel(&self.0);
    }
}

fn cancel(control: &RunControl) {
    control.cancel();
    if control.waker.lock().map(|w| w.is_none()).unwrap_or(false) {
        // Still queued: finish it now rather than when a worker frees up.
        control.finish(control.stop_error(), std::time::Duration::ZERO, 0);
    }
}

impl RunHandle {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event stream, in order; it ends after `finished`. Use `iter()` /
    /// `recv()` to block or `recv_async()` / `stream()` from async code.
    pub fn events(&self) -> &flume::Receiver<RunEvent> {
        &self.events
    }

    /// End the run with `cancelled`.
    pub fn cancel(&self) {
        cancel(&self.control);
    }

    /// A cloneable, sendable canceller for this run.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.control.clone())
    }

    /// Block until the run ends and return its outcome.
    pub fn wait(self) -> RunOutcome {
        let Self { id, outcome, .. } = self;
        outcome.recv().unwrap_or_else(|_| lost(id))
    }

    /// Await the outcome from async code.
    pub async fn outcome(self) -> RunOutcome {
        let Self { id, outcome, .. } = self;
        outcome.recv_async().await.unwrap_or_else(|_| lost(id))
    }
}

fn lost(run: String) -> RunOutcome {
    let error = ErrorInfo::new(
        ErrorKind::Internal,
        "the engine dropped the run without an outcome",
    );
    RunOutcome {
        run,
        status: RunStatus::Error,
        result: None,
        error: Some(error),
        finished: Finished {
            status: RunStatus::Error,
            cpu_ms: 0.0,
            wall_ms: 0.0,
            peak_memory_bytes: 0,
        },
    }
}
