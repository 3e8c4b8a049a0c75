//! Worker threads, their isolate pools, and the watchdog backstop.
//!
//! A fixed set of worker threads (one per core by default) pull runs from a
//! shared queue. Each worker keeps a few ready isolates and interleaves the
//! runs it holds: a run waiting on a timer does not hold the thread.
//!
//! The watchdog checks every running step. If a run should have stopped (CPU
//! or wall limit, cancel) but its step has not returned within the grace
//! period — QuickJS built-ins that run long stretches of C without polling
//! the interrupt handler — the watchdog ends the run from the engine's
//! record, gives up that worker thread (it exits whenever the C code
//! returns), and starts a replacement so capacity stays the same.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::compile::BytecodeCache;
use crate::config::EngineConfig;
use crate::control::{RunControl, StopReason};
use crate::cpu::ThreadClock;
use crate::error::EngineError;
use crate::event::{ErrorInfo, ErrorKind};
use crate::isolate::Isolate;
use crate::request::RunRequest;
use crate::run::{ActiveRun, Step};

/// The run queue and the wake-ups of every worker, behind one lock and
/// one condition variable (simple, and no wake-up can be lost).
#[derive(Default)]
pub(crate) struct Hub {
    q: Mutex<Queue>,
    cv: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    wakes: HashSet<usize>,
    shutdown: bool,
}

impl Hub {
    /// Queue a run. `false` once shut down.
    pub(crate) fn push(&self, job: Job) -> bool {
        let mut q = lock(&self.q);
        if q.shutdown {
            return false;
        }
        q.jobs.push_back(job);
        drop(q);
        self.cv.notify_all();
        true
    }

    pub(crate) fn queued(&self) -> usize {
        lock(&self.q).jobs.len()
    }

    fn try_pop(&self) -> Option<Job> {
        lock(&self.q).jobs.pop_front()
    }

    fn is_empty(&self) -> bool {
        lock(&self.q).jobs.is_empty()
    }

    fn wake(&self, worker: usize) {
        lock(&self.q).wakes.insert(worker);
        self.cv.notify_all();
    }

    pub(crate) fn shut_down(&self) {
        lock(&self.q).shutdown = true;
        self.cv.notify_all();
    }

    fn wait(&self, worker: usize, accepting: bool, deadline: Option<Instant>) -> Wait {
        let mut q = lock(&self.q);
        loop {
            if q.shutdown {
                return Wait::Shutdown;
            }
            if q.wakes.remove(&worker) {
                return Wait::Wake;
            }
            if accepting {
                if let Some(job) = q.jobs.pop_front() {
                    return Wait::Job(Box::new(job));
                }
            }
            match deadline {
                None => q = self.cv.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Wait::Timeout;
                    }
                    q = self
                        .cv
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

/// Wakes whoever holds a run (on cancel, or when a host reply arrives):
/// the worker thread that steps it, or, for a run in a runner process, the
/// server side that relays to the runner.
pub(crate) enum Waker {
    Worker { hub: Arc<Hub>, worker: usize },
    Remote(Arc<dyn Fn() + Send + Sync>),
}

impl Waker {
    pub(crate) fn wake(&self) {
        match self {
            Waker::Worker { hub, worker } => hub.wake(*worker),
            Waker::Remote(f) => f(),
        }
    }
}

/// A queued run.
pub(crate) struct Job {
    pub(crate) request: RunRequest,
    pub(crate) control: Arc<RunControl>,
    /// For V8 runners: the source as prepared when the run was submitted.
    pub(crate) v8: Option<Box<crate::v8::prepare::V8Source>>,
}

/// What the watchdog can see of a worker.
pub(crate) struct WorkerSlot {
    pub(crate) id: usize,
    clock: Mutex<Option<ThreadClock>>,
    /// The run in a step right now, with the thread CPU reading at its start.
    current: Mutex<Option<(Arc<RunControl>, Duration)>>,
    /// Runs this worker holds.
    held: Mutex<Vec<Arc<RunControl>>>,
    abandoned: AtomicBool,
}

/// State shared by the engine, its workers and the watchdog.
pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    pub(crate) hub: Arc<Hub>,
    pub(crate) cache: BytecodeCache,
    pub(crate) workers: Mutex<Vec<Arc<WorkerSlot>>>,
    next_id: AtomicUsize,
    pub(crate) shutdown: AtomicBool,
    pub(crate) replaced: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(config: EngineConfig) -> Arc<Self> {
        let cache = BytecodeCache::new(config.bytecode_cache_bytes);
        Arc::new(Self {
            config,
            hub: Arc::new(Hub::default()),
            cache,
            workers: Mutex::new(Vec::new()),
            next_id: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            replaced: AtomicUsize::new(0),
        })
    }

    /// Start one worker thread.
    pub(crate) fn spawn_worker(self: &Arc<Self>) -> Result<(), EngineError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(WorkerSlot {
            id,
            clock: Mutex::new(None),
            current: Mutex::new(None),
            held: Mutex::new(Vec::new()),
            abandoned: AtomicBool::new(false),
        });
        let shared = self.clone();
        let s2 = slot.clone();
        std::thread::Builder::new()
            .name(format!("quire-worker-{id}"))
            .stack_size(self.config.worker_stack_bytes)
            .spawn(move || Worker::new(shared, s2).run())?;
        lock(&self.workers).push(slot);
        Ok(())
    }

    /// Ask every worker to exit.
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.hub.shut_down();
    }
}

struct Held {
    run: ActiveRun,
    wake_at: Instant,
}

struct Worker {
    shared: Arc<Shared>,
    slot: Arc<WorkerSlot>,
    clock: ThreadClock,
    pool: VecDeque<Isolate>,
    runs: Vec<Held>,
}

enum Wait {
    Job(Box<Job>),
    Wake,
    Shutdown,
    Timeout,
}

impl Worker {
    fn new(shared: Arc<Shared>, slot: Arc<WorkerSlot>) -> Self {
        let clock = ThreadClock::current();
        *lock(&slot.clock) = Some(clock);
        Self {
            shared,
            slot,
            clock,
            pool: VecDeque::new(),
            runs: Vec::new(),
        }
    }

    fn stack_bytes(&self) -> u64 {
        self.shared.config.default_limits.stack_bytes
    }

    fn run(mut self) {
        let span = tracing::debug_span!("worker", id = self.slot.id);
        let _g = span.enter();
        loop {
            if self.slot.abandoned.load(Ordering::Acquire) {
                return;
            }
            if self.shared.shutdown.load(Ordering::Acquire) && self.runs.is_empty() {
                return;
            }
            // Take one new run per turn and step it at once: a short run
            // completes (and frees its isolate) before the next one starts,
            // which keeps memory and caches small under load.
            if self.runs.len() < self.shared.config.max_active_runs_per_worker {
                if let Some(job) = self.shared.hub.try_pop() {
                    self.accept(job);
                }
            }
            if !self.step_ready() {
                return;
            }
            let now = Instant::now();
            if self.runs.iter().any(|h| h.wake_at <= now) {
                continue;
            }
            if self.shared.hub.is_empty()
                && self.pool.len() < self.shared.config.isolate_pool_per_worker
            {
                match Isolate::new(self.stack_bytes(), self.shared.config.test_native_spin) {
                    Ok(iso) => self.pool.push_back(iso),
                    Err(e) => tracing::error!(error = %e, "could not pre-create an isolate"),
                }
                continue;
            }
            let deadline = self.runs.iter().map(|h| h.wake_at).min();
            match self.wait(deadline) {
                Wait::Job(job) => self.accept(*job),
                Wait::Shutdown => {
                    if self.runs.is_empty() {
                        return;
                    }
                    // Finish what is held, waking at the earliest deadline.
                    if let Some(d) = deadline {
                        std::thread::sleep(d.saturating_duration_since(Instant::now()));
                    }
                }
                Wait::Wake => {
                    for h in &mut self.runs {
                        if h.run.control.stop_reason().is_some() || h.run.control.mailbox.has_mail()
                        {
                            h.wake_at = now;
                        }
                    }
                }
                Wait::Timeout => {}
            }
        }
    }

    fn wait(&self, deadline: Option<Instant>) -> Wait {
        let accepting = self.runs.len() < self.shared.config.max_active_runs_per_worker
            && !self.shared.shutdown.load(Ordering::Acquire);
        self.shared.hub.wait(self.slot.id, accepting, deadline)
    }

    fn accept(&mut self, job: Job) {
        let Job {
            request, control, ..
        } = job;
        if control.is_finished() {
            return;
        }
        *lock(&control.waker) = Some(Waker::Worker {
            hub: self.shared.hub.clone(),
            worker: self.slot.id,
        });
        control.begin();
        let iso = match self.pool.pop_front() {
            Some(iso) => Ok(iso),
            None => Isolate::new(self.stack_bytes(), self.shared.config.test_native_spin),
        };
        let iso = match iso {
            Ok(iso) => iso,
            Err(e) => {
                control.finish(
                    Some(ErrorInfo::new(ErrorKind::Internal, e.to_string())),
                    Duration::ZERO,
                    0,
                );
                return;
            }
        };
        // Pooled isolates were made with the default stack: this run's.
        iso.rt
            .set_max_stack_size(usize::try_from(control.limits.stack_bytes).unwrap_or(usize::MAX));
        lock(&self.slot.held).push(control.clone());
        let run = ActiveRun::new(control, request, iso, self.clock);
        self.runs.push(Held {
            run,
            wake_at: Instant::now(),
        });
    }

    /// Step every run that is due. `false` when this thread was given up.
    fn step_ready(&mut self) -> bool {
        let mut i = 0;
        while i < self.runs.len() {
            let now = Instant::now();
            let h = &mut self.runs[i];
            if h.wake_at > now
                && h.run.control.stop_reason().is_none()
                && !h.run.control.mailbox.has_mail()
            {
                i += 1;
                continue;
            }
            let control = h.run.control.clone();
            let span = tracing::debug_span!("run", run = %control.id);
            let _g = span.enter();
            *lock(&self.slot.current) = Some((control.clone(), self.clock.now()));
            let cache = &self.shared.cache;
            let clock = self.clock;
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.run.step(clock, cache)))
                .unwrap_or_else(|_| {
                    tracing::error!(run = %control.id, "a run step panicked; ending it with internal");
                    control.finish(
                        Some(ErrorInfo::new(ErrorKind::Internal, "the engine failed while running this block (a bug in quire, not in the block)")),
                        Duration::from_nanos(control.cpu_used_ns.load(Ordering::Relaxed)),
                        control.peak_memory.load(Ordering::Relaxed),
                    );
                    Step::Done
                });
            *lock(&self.slot.current) = None;
            if self.slot.abandoned.load(Ordering::Acquire) {
                return false;
            }
            match step {
                Step::Done => {
                    lock(&self.slot.held).retain(|c| !Arc::ptr_eq(c, &control));
                    let h = self.runs.swap_remove(i);
                    drop(h);
                }
                Step::WaitUntil(t) => {
                    h.wake_at = t;
                    i += 1;
                }
            }
        }
        true
    }
}

/// The watchdog loop: enforce limits on steps that do not return.
pub(crate) fn watchdog(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        let interval = Duration::from_millis(shared.config.watchdog_interval_ms.max(1));
        let grace = Duration::from_millis(shared.config.backstop_grace_ms);
        let slots: Vec<_> = lock(&shared.workers).clone();
        for slot in slots {
            let current = lock(&slot.current).clone();
            tick_meters(&slot, current.as_ref());
            let Some((control, step_cpu_start)) = current else {
                continue;
            };
            let clock = *lock(&slot.clock);
            let live = clock.map_or(Duration::ZERO, |c| c.now().saturating_sub(step_cpu_start));
            let used = Duration::from_nanos(control.cpu_used_ns.load(Ordering::Relaxed)) + live;
            if used >= control.limits.cpu_time() {
                control.stop(StopReason::Cpu);
            }
            if Instant::now() >= control.wall_deadline() {
                control.stop(StopReason::Wall);
            }
            if let Some(at) = control.stopped_at() {
                if at.elapsed() > grace {
                    abandon(&shared, &slot, &control, used);
                }
            }
        }
        drop(shared);
        std::thread::sleep(interval);
    }
}

/// Send the live meters that are due for the runs a worker holds (the
/// one it is stepping counts its CPU up to now).
fn tick_meters(slot: &WorkerSlot, current: Option<&(Arc<RunControl>, Duration)>) {
    let clock = *lock(&slot.clock);
    let held: Vec<_> = lock(&slot.held).clone();
    for c in held {
        let mut cpu = Duration::from_nanos(c.cpu_used_ns.load(Ordering::Relaxed));
        if let Some((_, start)) = current.filter(|(cur, _)| Arc::ptr_eq(cur, &c)) {
            cpu += clock.map_or(Duration::ZERO, |k| k.now().saturating_sub(*start));
        }
        c.tick_meter(cpu);
    }
}

fn abandon(shared: &Arc<Shared>, slot: &Arc<WorkerSlot>, stuck: &Arc<RunControl>, cpu: Duration) {
    if slot.abandoned.swap(true, Ordering::AcqRel) {
        return;
    }
    tracing::warn!(worker = slot.id, run = %stuck.id, "run stuck in native code past its limit; replacing its worker thread");
    lock(&shared.workers).retain(|w| !Arc::ptr_eq(w, slot));
    // Replace the worker first, so capacity is back before anyone sees
    // the stuck run end.
    shared.replaced.fetch_add(1, Ordering::Relaxed);
    if !shared.shutdown.load(Ordering::Acquire) {
        if let Err(e) = shared.spawn_worker() {
            tracing::error!(error = %e, "could not start a replacement worker");
        }
    }
    let held: Vec<_> = lock(&slot.held).clone();
    for c in held {
        if Arc::ptr_eq(&c, stuck) {
            let mut e = c
                .stop_error()
                .unwrap_or_else(|| ErrorInfo::new(ErrorKind::Internal, ""));
            e.message.push_str(" (the block was stuck in native code that does not check limits; its worker thread was replaced)");
            c.finish(Some(e), cpu, c.peak_memory.load(Ordering::Relaxed));
        } else {
            c.finish(
                Some(ErrorInfo::new(ErrorKind::Internal, "the worker thread running this block was replaced because another run on it was stuck in native code; run it again")),
                Duration::from_nanos(c.cpu_used_ns.load(Ordering::Relaxed)),
                c.peak_memory.load(Ordering::Relaxed),
            );
        }
    }
}
