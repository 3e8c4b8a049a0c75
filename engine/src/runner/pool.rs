//! The server side of runner processes: a pool of pre-started, sandboxed
//! runners, each bound to one workspace for its whole life, with every
//! message they send checked as untrusted input.
//!
//! - **Binding.** A warm runner is unbound; the first run it takes binds it
//!   to that run's workspace, and it only ever serves that workspace
//!   afterwards (several of its runs at once). It is retired when idle, so
//!   code that compromised a runner never sees another workspace's runs.
//! - **Authority stays here.** The server keeps each run's record
//!   (`RunControl`): it numbers events, counts output against the limit,
//!   enforces the wall clock (killing a runner that overstays), counts host
//!   calls and checks their size, and runs the host calls itself with the
//!   run's own host (grants never enter a runner).
//! - **Failure.** A runner that exits, is killed (including by seccomp),
//!   or breaks the protocol ends its runs with `internal` (or the limit the
//!   server recorded) and is replaced; events already received stay.
//!
//! Here: the pool, its runners and their start, hand-out and end;
//! `relay.rs`: what runners send (checked); `watch.rs`: the monitor
//! (deadlines, V8 limits from `/proc`, priorities, idle retirement).

mod relay;
mod watch;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::procfs;
use super::protocol::{read_frame, write_frame, FromRunner, SandboxReport, ToRunner};
use crate::control::RunControl;
use crate::event::{ErrorInfo, ErrorKind, EventBody};
use crate::host::HostHandle;
use crate::worker::{Job, Waker};
use watch::{describe_status, drain_stderr, monitor};

/// Which engine a pool's runner processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunnerKind {
    /// `quire __runner`: QuickJS, several runs per process, limits enforced
    /// inside the runner (and checked here).
    #[default]
    QuickJs,
    /// A Node process through `quire __v8-runner` (isolated-vm): several
    /// runs per process, each in a fresh V8 isolate from a snapshot; CPU,
    /// wall and memory enforced by the runner on the isolate (and checked
    /// here); sources prepared by `v8::prepare`, the prelude sent first, a
    /// V8 stack fixed per process.
    V8,
}

/// How the server runs runner processes.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The engine in the runners. Default: QuickJS.
    pub kind: RunnerKind,
    /// The runner executable (the `quire` binary).
    pub program: PathBuf,
    /// Its arguments (e.g. `["__runner"]`).
    pub args: Vec<String>,
    /// Unbound runners kept started and sandboxed, ready for any
    /// workspace. Default: 2.
    pub warm_runners: usize,
    /// Runner processes at most. Default: 8.
    pub max_runners: usize,
    /// Runs one runner holds at once (all of one workspace). Default: 16.
    pub runs_per_runner: usize,
    /// JavaScript worker threads in each runner. A runner serves one
    /// workspace, so this is how many cores one workspace's runs can use
    /// until it has more than `runs_per_runner` runs going (then it gets
    /// another runner). At 1, a workspace flooding the server with
    /// CPU-bound runs takes one core and leaves the rest to the server
    /// and other workspaces (BENCHMARKS.md, fairness); more threads give
    /// one busy workspace more throughput at their expense. Default: 1.
    pub threads_per_runner: usize,
    /// Runs a runner serves before it is retired. Default: 1000.
    pub runs_per_runner_life: u64,
    /// A bound runner with no runs for this long is retired, in
    /// milliseconds. Default: 30,000.
    pub idle_timeout_ms: u64,
    /// Largest frame accepted from a runner, in bytes. Default: 8 MiB.
    pub max_frame_bytes: usize,
    /// How long past a run's wall-clock deadline (or a cancel) the server
    /// waits for the runner before killing it, in milliseconds.
    /// Default: 500.
    pub kill_grace_ms: u64,
    /// How long a new runner may take to report ready, in milliseconds.
    /// Default: 10,000.
    pub start_timeout_ms: u64,
    /// The nice value a runner gets while it is CPU-bound: when its
    /// threads used more than half a core over the last
    /// `busy_window_ms`, measured by the kernel
    /// (`/proc`). Runners start at nice 5; one workspace's CPU loops then
    /// rank below every light runner's short runs (another workspace's
    /// hello-world waits for a core a fraction as long), and cost nothing
    /// when nothing else wants the core. Going back to 5 when the runner
    /// turns light needs `CAP_SYS_NICE`; without it a runner stays at this
    /// value until retired. `None` leaves priorities alone. Default:
    /// `Some(15)`.
    pub busy_nice: Option<i32>,
    /// The window over which a runner's CPU share is measured for
    /// `busy_nice`, in milliseconds. Default: 100.
    pub busy_window_ms: u64,
    /// V8 runners only: the JavaScript stack warm runners start with, in
    /// KiB (V8's `--stack-size` is fixed when a process starts). A run
    /// whose `stack_bytes` asks for another size gets a process started
    /// for it (one cold start). Default: 1024, the default limits' 1 MiB.
    pub stack_kb: u64,
    /// V8 runners only: the resident memory a runner process may reach
    /// while it has runs, in bytes; past it the process is killed and its
    /// runs end with `memory_limit` (0: not checked). Default: 0.
    pub max_rss_bytes: u64,
}

impl RunnerConfig {
    /// Defaults for runners started as `program args...`.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            kind: RunnerKind::QuickJs,
            program: program.into(),
            args,
            warm_runners: 2,
            max_runners: 8,
            runs_per_runner: 16,
            threads_per_runner: 1,
            runs_per_runner_life: 1000,
            idle_timeout_ms: 30_000,
            max_frame_bytes: super::protocol::DEFAULT_MAX_FRAME_BYTES,
            kill_grace_ms: 500,
            start_timeout_ms: 10_000,
            busy_nice: Some(15),
            busy_window_ms: 100,
            stack_kb: 1024,
            max_rss_bytes: 0,
        }
    }
}

/// A run held by a runner, as the server tracks it.
pub(super) struct Remote {
    control: Arc<RunControl>,
    host: Option<HostHandle>,
    error: Option<ErrorInfo>,
    started: bool,
    calls: u32,
    /// V8 runs: its position map (TypeScript).
    map: Option<Arc<crate::compile::LineMap>>,
    filename: String,
}

struct Runner {
    id: u64,
    child: Mutex<Child>,
    /// Frames for its stdin, written by its own writer thread (see
    /// [`Runner::send`]).
    inbox: flume::Sender<Vec<u8>>,
    /// Bytes queued in `inbox` and not yet written.
    unread: Arc<AtomicU64>,
    born: Instant,
    ready: AtomicBool,
    dead: AtomicBool,
    /// Takes no new runs; ended once its runs are (a V8 runner that lost
    /// control of one isolate: its other isolates go on to the end).
    draining: AtomicBool,
    buried: AtomicBool,
    /// Ended on purpose (idle, worn out, or to make room).
    retired: AtomicBool,
    workspace: Mutex<Option<String>>,
    runs: Mutex<HashMap<String, Remote>>,
    served: AtomicU64,
    idle_since: Mutex<Instant>,
    sandbox: Mutex<Option<SandboxReport>>,
    pid: u32,
    /// The last CPU reading for `busy_nice`: when, and the total then.
    cpu_seen: Mutex<Option<(Instant, Duration)>>,
    /// The runner has `busy_nice` now.
    busy: AtomicBool,
    /// V8 runners: the stack it was started with, in KiB (0 for QuickJS).
    stack_kb: u64,
}

/// Most bytes queued for a runner and not yet read by it; past this it
/// is killed as not reading (its runs end `internal`).
const MAX_UNREAD_BYTES: u64 = 64 * 1024 * 1024;

/// A runner's writer thread: frames to its stdin, in order, until the
/// runner is dropped (closing stdin ends the runner) or a write fails.
fn write_loop(mut stdin: ChildStdin, frames: flume::Receiver<Vec<u8>>, unread: &AtomicU64) {
    use std::io::Write;
    while let Ok(frame) = frames.recv() {
        if stdin
            .write_all(&frame)
            .and_then(|()| stdin.flush())
            .is_err()
        {
            return;
        }
        unread.fetch_sub(frame.len() as u64, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runner {
    /// Queue `msg` for the runner. Never blocks: a writer thread per
    /// runner writes its stdin, so a runner that stops reading (a block
    /// flooding calls while its replies pile up, or a compromised runner)
    /// cannot stall the thread that answers it (its reader, a storage or
    /// fetch thread) and, through it, every other run of the runner. A
    /// runner with more than [`MAX_UNREAD_BYTES`] unread is killed.
    fn send(&self, msg: &ToRunner) -> bool {
        if self.dead.load(Ordering::Acquire) {
            return false;
        }
        let mut frame = Vec::new();
        if write_frame(&mut frame, msg).is_err() {
            self.kill();
            return false;
        }
        let n = frame.len() as u64;
        if self.unread.fetch_add(n, Ordering::AcqRel) + n > MAX_UNREAD_BYTES {
            tracing::warn!(runner = self.id, "runner stopped reading its input; killed");
            self.kill();
            return false;
        }
        let ok = self.inbox.send(frame).is_ok();
        if !ok {
            self.kill();
        }
        ok
    }

    fn kill(&self) {
        let _ = lock(&self.child).kill();
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.dead.store(true, Ordering::Release);
        self.kill();
    }

    fn bound_to(&self, ws: &str) -> bool {
        lock(&self.workspace).as_deref() == Some(ws)
    }
}

#[derive(Default)]
struct State {
    runners: Vec<Arc<Runner>>,
    queue: VecDeque<Job>,
    /// Runners being started, by their stack size (see `stack_kb`).
    starting: Vec<u64>,
}

pub(crate) struct PoolInner {
    config: RunnerConfig,
    state: Mutex<State>,
    spawn_tx: flume::Sender<u64>,
    shutdown: AtomicBool,
    next_id: AtomicU64,
    /// Runners that died or were killed (for stats and tests).
    pub(crate) lost: AtomicU64,
    /// Runners in a row that died before reporting ready.
    failed_starts: AtomicU64,
}

/// The runner pool.
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    pub(crate) fn new(mut config: RunnerConfig) -> std::io::Result<Self> {
        // Runners start in `/`: resolve a relative program path now.
        config.program = std::fs::canonicalize(&config.program)?;
        let (spawn_tx, spawn_rx) = flume::unbounded::<u64>();
        let inner = Arc::new(PoolInner {
            config,
            state: Mutex::new(State::default()),
            spawn_tx,
            shutdown: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            lost: AtomicU64::new(0),
            failed_starts: AtomicU64::new(0),
        });
        // Runners are spawned from one long-lived thread: a runner's
        // parent-death signal fires when the thread that spawned it exits.
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("quire-runner-spawner".into())
            .spawn(move || {
                while let Ok(stack_kb) = spawn_rx.recv() {
                    let Some(inner) = weak.upgrade() else { return };
                    inner.spawn_one(stack_kb);
                }
            })?;
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("quire-runner-monitor".into())
            .spawn(move || monitor(weak))?;
        inner.pump();
        Ok(Self { inner })
    }

    pub(crate) fn submit(&self, mut job: Job) {
        if self.inner.config.kind == RunnerKind::V8 {
            let r = &job.request;
            match crate::v8::prepare::prepare(r.lang, &r.filename(), &r.source, r.host.is_some()) {
                Ok(p) => job.v8 = Some(Box::new(p)),
                Err(rej) => {
                    let c = job.control;
                    c.begin();
                    c.emit(EventBody::Started);
                    let kind = if rej.syntax {
                        ErrorKind::Syntax
                    } else {
                        ErrorKind::Exception
                    };
                    let mut e = ErrorInfo::new(kind, rej.error.message);
                    e.line = rej.error.line;
                    e.column = rej.error.column;
                    c.finish(Some(e), Duration::ZERO, 0);
                    return;
                }
            }
        }
        lock(&self.inner.state).queue.push_back(job);
        self.inner.pump();
    }

    pub(crate) fn stats(&self) -> (usize, usize, u64) {
        let st = lock(&self.inner.state);
        (
            st.runners.len(),
            st.queue.len(),
            self.inner.lost.load(Ordering::Relaxed),
        )
    }

    /// The sandbox report of every ready runner.
    pub(crate) fn sandbox_reports(&self) -> Vec<SandboxReport> {
        lock(&self.inner.state)
            .runners
            .iter()
            .filter_map(|r| lock(&r.sandbox).clone())
            .collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner.shutdown.store(true, Ordering::Release);
        let runners = std::mem::take(&mut lock(&self.inner.state).runners);
        for r in runners {
            r.kill();
        }
    }
}

/// Remove one `value` from `v`, if there.
fn remove_one(v: &mut Vec<u64>, value: u64) {
    if let Some(i) = v.iter().position(|&x| x == value) {
        v.swap_remove(i);
    }
}

fn workspace_of(job: &Job) -> String {
    job.request
        .workspace
        .clone()
        .unwrap_or_else(|| "default".into())
}

impl PoolInner {
    /// Start queued runs where there is room; ask for runners where not.
    fn pump(self: &Arc<Self>) {
        if self.shutdown.load(Ordering::Acquire) {
            return;
        }
        let mut st = lock(&self.state);
        let mut waiting = VecDeque::new();
        let mut assigned = Vec::new();
        while let Some(job) = st.queue.pop_front() {
            if job.control.is_finished() {
                continue;
            }
            let ws = workspace_of(&job);
            let stack = self.stack_of(&job);
            let usable = |r: &&Arc<Runner>| {
                r.ready.load(Ordering::Acquire)
                    && !r.dead.load(Ordering::Acquire)
                    && !r.draining.load(Ordering::Acquire)
                    && r.stack_kb == stack
            };
            let bound = st.runners.iter().filter(usable).find(|r| {
                r.bound_to(&ws)
                    && lock(&r.runs).len() < self.config.runs_per_runner
                    && r.served.load(Ordering::Relaxed) < self.config.runs_per_runner_life
            });
            let runner = match bound {
                Some(r) => Some(r.clone()),
                None => st
                    .runners
                    .iter()
                    .filter(usable)
                    .find(|r| lock(&r.workspace).is_none())
                    .cloned(),
            };
            match runner {
                Some(r) => {
                    // The wall clock starts now, under the pool lock: the
                    // monitor sees the reserved run at once and must not
                    // judge it by when it was queued.
                    job.control.begin();
                    *lock(&r.workspace) = Some(ws);
                    // Reserve the slot now so the next job sees it taken.
                    lock(&r.runs).insert(
                        job.control.id.clone(),
                        Remote {
                            control: job.control.clone(),
                            host: job.request.host.clone(),
                            error: None,
                            started: false,
                            calls: 0,
                            map: None,
                            filename: job.request.filename(),
                        },
                    );
                    assigned.push((r, job));
                }
                None => waiting.push_back(job),
            }
        }
        st.queue = waiting;
        let spawn = self.capacity(&mut st);
        st.starting.extend(&spawn);
        drop(st);
        for stack_kb in spawn {
            let _ = self.spawn_tx.send(stack_kb);
        }
        for (r, job) in assigned {
            self.start_on(&r, job);
        }
    }

    /// The stack a job's runner must have been started with: V8 runs by
    /// their `stack_bytes`, QuickJS runs any (0).
    fn stack_of(&self, job: &Job) -> u64 {
        match self.config.kind {
            RunnerKind::QuickJs => 0,
            RunnerKind::V8 => crate::v8::stack_kb(job.control.limits.stack_bytes),
        }
    }

    /// The stack warm runners start with.
    fn warm_stack(&self) -> u64 {
        match self.config.kind {
            RunnerKind::QuickJs => 0,
            RunnerKind::V8 => self.config.stack_kb,
        }
    }

    /// Which runners to start now, by stack size. Keep `warm_runners`
    /// unbound runners of the warm stack, start one for waiting runs that
    /// no unbound or starting runner can take (another stack size), all up
    /// to `max_runners`; at the cap, retire an idle runner bound to
    /// another workspace to make room.
    fn capacity(&self, st: &mut State) -> Vec<u64> {
        let unbound_of = |s: u64| {
            st.runners
                .iter()
                .filter(|r| {
                    r.stack_kb == s
                        && lock(&r.workspace).is_none()
                        && !r.dead.load(Ordering::Acquire)
                })
                .count()
                + st.starting.iter().filter(|&&x| x == s).count()
        };
        let warm = self.warm_stack();
        let mut spawn = Vec::new();
        // First what waiting runs need, then the warm reserve.
        let mut needed: Vec<u64> = st.queue.iter().map(|j| self.stack_of(j)).collect();
        needed.sort_unstable();
        needed.dedup();
        for &s in &needed {
            if unbound_of(s) == 0 {
                spawn.push(s);
            }
        }
        let reserve = self
            .config
            .warm_runners
            .saturating_sub(unbound_of(warm) + spawn.iter().filter(|&&x| x == warm).count());
        spawn.extend(std::iter::repeat_n(warm, reserve));
        let room = self
            .config
            .max_runners
            .saturating_sub(st.runners.len() + st.starting.len());
        if spawn.len() > room && !st.queue.is_empty() {
            // Bound and idle, or unbound with a stack no one needs.
            if let Some(idle) = st.runners.iter().find(|r| {
                !r.dead.load(Ordering::Acquire)
                    && lock(&r.runs).is_empty()
                    && (lock(&r.workspace).is_some()
                        || (r.stack_kb != warm && !needed.contains(&r.stack_kb)))
            }) {
                idle.retire();
            }
        }
        spawn.truncate(room);
        spawn
    }

    fn start_on(self: &Arc<Self>, r: &Arc<Runner>, job: Job) {
        let Job {
            mut request,
            control,
            v8: prepared,
        } = job;
        if self.config.kind == RunnerKind::V8 {
            // The module comes wrapped (`v8::wrap`); the runner enforces
            // the run's own limits, so it gets them all.
            if let Some(p) = prepared.map(|p| *p) {
                request.source = p.js;
                request.limits = Some(control.limits.clone());
                if let Some(remote) = lock(&r.runs).get_mut(&control.id) {
                    remote.map = p.map.map(Arc::new);
                }
            }
        }
        let (wc, wr) = (Arc::downgrade(&control), Arc::downgrade(r));
        let run = control.id.clone();
        let cancel_sent = AtomicBool::new(false);
        *lock(&control.waker) = Some(Waker::Remote(Arc::new(move || {
            let (Some(c), Some(r)) = (wc.upgrade(), wr.upgrade()) else {
                return;
            };
            for (call, result) in c.mailbox.take() {
                r.send(&ToRunner::Reply {
                    run: run.clone(),
                    call,
                    result,
                });
            }
            if c.stop_reason().is_some() && !cancel_sent.swap(true, Ordering::AcqRel) {
                r.send(&ToRunner::Cancel { run: run.clone() });
            }
        })));
        r.served.fetch_add(1, Ordering::Relaxed);
        let host_module = request
            .host
            .as_ref()
            .map(|h| h.0.module_source().to_string());
        let msg = ToRunner::Start {
            run: control.id.clone(),
            request: Box::new(request),
            host_module,
        };
        if !r.send(&msg) {
            tracing::warn!(
                runner = r.id,
                dead = r.dead.load(Ordering::Relaxed),
                retired = r.retired.load(Ordering::Relaxed),
                "could not hand a run to its runner"
            );
        }
        // A cancel that came before the waker existed.
        if control.stop_reason().is_some() {
            control.wake();
        }
    }

    fn spawn_one(self: &Arc<Self>, stack_kb: u64) {
        let mut cmd = Command::new(&self.config.program);
        cmd.args(&self.config.args);
        match self.config.kind {
            RunnerKind::QuickJs => cmd
                .arg("--threads")
                .arg(self.config.threads_per_runner.max(1).to_string()),
            RunnerKind::V8 => cmd.arg("--stack-kb").arg(stack_kb.to_string()),
        };
        let result = cmd
            .env_clear()
            .env("TZ", "UTC0")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match result {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, program = %self.config.program.display(), "could not start a runner");
                self.started(stack_kb);
                // Fail what waits rather than hang it.
                let queued: Vec<Job> = lock(&self.state).queue.drain(..).collect();
                for j in queued {
                    j.control.finish(
                        Some(ErrorInfo::new(
                            ErrorKind::Internal,
                            format!("could not start a runner process: {e}"),
                        )),
                        Duration::ZERO,
                        0,
                    );
                }
                return;
            }
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            self.started(stack_kb);
            return;
        };
        let pid = child.id();
        if let Some(err) = child.stderr.take() {
            let _ = std::thread::Builder::new()
                .name("quire-runner-stderr".into())
                .spawn(move || drain_stderr(err));
        }
        let (inbox, frames) = flume::unbounded::<Vec<u8>>();
        let unread = Arc::new(AtomicU64::new(0));
        let counted = unread.clone();
        let writer = std::thread::Builder::new()
            .name("quire-runner-in".into())
            .spawn(move || write_loop(stdin, frames, &counted));
        if let Err(e) = writer {
            tracing::error!(error = %e, "could not start a runner writer thread");
            let _ = child.kill();
            self.started(stack_kb);
            return;
        }
        let runner = Arc::new(Runner {
            pid,
            cpu_seen: Mutex::new(None),
            busy: AtomicBool::new(false),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            child: Mutex::new(child),
            inbox,
            unread,
            born: Instant::now(),
            ready: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            buried: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            workspace: Mutex::new(None),
            runs: Mutex::new(HashMap::new()),
            served: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
            sandbox: Mutex::new(None),
            stack_kb,
        });
        if self.config.kind == RunnerKind::V8 {
            // The prelude goes first: the runner installs it and only
            // then says `ready`, so a ready V8 runner is fully warm.
            let (core, extras, streams) = crate::v8::prelude_sources();
            runner.send(&ToRunner::Prelude {
                core: core.into(),
                extras: extras.into(),
                streams: streams.into(),
            });
        }
        {
            let mut st = lock(&self.state);
            remove_one(&mut st.starting, stack_kb);
            st.runners.push(runner.clone());
        }
        let inner = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("quire-runner-{}", runner.id))
            .spawn(move || inner.read_loop(runner, stdout));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a runner reader thread");
        }
    }

    /// A runner of this stack is no longer starting (it could not be).
    fn started(&self, stack_kb: u64) {
        remove_one(&mut lock(&self.state).starting, stack_kb);
    }

    fn read_loop(self: Arc<Self>, r: Arc<Runner>, stdout: std::process::ChildStdout) {
        let mut input = std::io::BufReader::new(stdout);
        let why = loop {
            match read_frame::<FromRunner>(&mut input, self.config.max_frame_bytes) {
                Ok(Some(msg)) => {
                    if let Err(v) = self.handle(&r, msg) {
                        break format!("the runner broke the protocol: {v}");
                    }
                }
                Ok(None) => break "the runner process exited".to_string(),
                Err(e) => break format!("the runner broke the protocol: {e}"),
            }
        };
        self.bury(&r, &why);
    }

    /// A runner is gone: end its runs and make room for a new one.
    fn bury(self: &Arc<Self>, r: &Arc<Runner>, why: &str) {
        if r.buried.swap(true, Ordering::AcqRel) {
            return;
        }
        r.dead.store(true, Ordering::Release);
        r.kill();
        let status = lock(&r.child).wait().ok();
        let cause = match status {
            Some(s) => describe_status(s),
            None => "its exit status is unknown".into(),
        };
        lock(&self.state).runners.retain(|x| !Arc::ptr_eq(x, r));
        let runs: Vec<Remote> = lock(&r.runs).drain().map(|(_, v)| v).collect();
        let quiet = runs.is_empty()
            && (r.retired.load(Ordering::Acquire) || self.shutdown.load(Ordering::Acquire));
        if quiet {
            tracing::debug!(runner = r.id, why, cause = %cause, "runner retired");
        } else {
            tracing::warn!(runner = r.id, why, cause = %cause, runs = runs.len(), "runner ended");
        }
        if !runs.is_empty() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
        if !r.ready.load(Ordering::Acquire) && !self.shutdown.load(Ordering::Acquire) {
            let n = self.failed_starts.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= 3 {
                // Runners cannot start here: fail what waits instead of
                // retrying forever.
                self.failed_starts.store(0, Ordering::Relaxed);
                let queued: Vec<Job> = lock(&self.state).queue.drain(..).collect();
                for j in queued {
                    j.control.finish(
                        Some(ErrorInfo::new(
                            ErrorKind::Internal,
                            format!("runner processes fail to start ({why}; {cause})"),
                        )),
                        Duration::ZERO,
                        0,
                    );
                }
                return;
            }
        }
        for remote in runs {
            let c = remote.control;
            let error = c.stop_error().unwrap_or_else(|| {
                ErrorInfo::new(ErrorKind::Internal, format!("the runner process running this block ended ({why}; {cause}); it was replaced, run the block again"))
            });
            let cpu = Duration::from_nanos(c.cpu_used_ns.load(Ordering::Relaxed));
            c.finish(Some(error), cpu, c.peak_memory.load(Ordering::Relaxed));
        }
        self.pump();
    }
}
