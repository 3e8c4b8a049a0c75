//! The pool's monitor thread: start timeouts, wall-clock deadlines, V8
//! runners' resident memory from `/proc`, CPU priority of busy runners,
//! idle retirement; and the reader of runners' stderr.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{lock, procfs, PoolInner, Runner, RunnerKind};
use crate::control::StopReason;
use crate::runner::sandbox::SandboxLimits;

impl PoolInner {
    /// A V8 runner's resident memory against its ceiling: isolated-vm's
    /// per-isolate memory limit is soft against hostile code, so a
    /// process past [`RunnerConfig::max_rss_bytes`] is killed, and its runs
    /// end with `memory_limit`.
    fn v8_memory(&self, r: &Arc<Runner>) -> bool {
        let max = self.config.max_rss_bytes;
        if max == 0 || lock(&r.runs).is_empty() {
            return false;
        }
        let Some((rss, _)) = procfs::memory(r.pid) else {
            return false;
        };
        if rss <= max {
            return false;
        }
        for remote in lock(&r.runs).values() {
            remote.control.stop(StopReason::Memory);
        }
        true
    }

    /// Give a CPU-bound runner `busy_nice`, and a light one its start
    /// value back (see [`RunnerConfig::busy_nice`]).
    fn prioritize(&self, r: &Runner, now: Instant) {
        let Some(busy_nice) = self.config.busy_nice else {
            return;
        };
        let window = Duration::from_millis(self.config.busy_window_ms.max(10));
        let mut seen = lock(&r.cpu_seen);
        if seen.is_some_and(|(t, _)| now.duration_since(t) < window) {
            return;
        }
        let Some(cpu) = procfs::cpu_time(r.pid) else {
            return;
        };
        let last = seen.replace((now, cpu));
        drop(seen);
        let Some((t, before)) = last else { return };
        let share = cpu.saturating_sub(before).as_secs_f64() / now.duration_since(t).as_secs_f64();
        let busy = r.busy.load(Ordering::Relaxed);
        if !busy && share > 0.5 {
            if procfs::set_nice(r.pid, busy_nice) {
                r.busy.store(true, Ordering::Relaxed);
                tracing::debug!(
                    runner = r.id,
                    share,
                    "runner is CPU-bound: lowered its priority"
                );
            }
        } else if busy && share < 0.2 && procfs::set_nice(r.pid, SandboxLimits::default().nice) {
            r.busy.store(false, Ordering::Relaxed);
        }
    }
}

/// Bytes of a runner's stderr passed on to the server's log over its life;
/// the rest is read and dropped (a compromised runner must not flood the
/// log, nor block on a full pipe).
const STDERR_BUDGET_BYTES: usize = 64 * 1024;

/// Forward a runner's stderr lines to the log, within a budget. (A pipe,
/// not the server's own stderr: the runner's file-size rlimit is 0, and
/// the server's stderr may be a file.)
pub(super) fn drain_stderr(err: std::process::ChildStderr) {
    use std::io::BufRead;
    let mut budget = STDERR_BUDGET_BYTES;
    let mut r = std::io::BufReader::new(err);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(n) if budget > 0 => {
                let keep = n.min(budget).min(1024);
                budget -= keep;
                let text = String::from_utf8_lossy(&line[..keep]);
                tracing::warn!(target: "quire_runner", "{}", text.trim_end());
                if budget == 0 {
                    tracing::warn!(target: "quire_runner", "runner stderr budget spent; dropping the rest");
                }
            }
            Ok(_) => {}
        }
    }
}

pub(super) fn describe_status(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (_, Some(libc::SIGSYS)) => {
            "killed by SIGSYS: it made a system call the sandbox forbids".into()
        }
        (_, Some(libc::SIGKILL)) => "killed by SIGKILL".into(),
        (_, Some(libc::SIGXCPU)) => "killed by SIGXCPU: its CPU rlimit ran out".into(),
        (_, Some(libc::SIGSEGV)) => "killed by SIGSEGV (a crash)".into(),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown exit".into(),
    }
}

/// Enforce deadlines, start timeouts and idle retirement.
pub(super) fn monitor(weak: Weak<PoolInner>) {
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let Some(inner) = weak.upgrade() else { return };
        if inner.shutdown.load(Ordering::Acquire) {
            return;
        }
        let grace = Duration::from_millis(inner.config.kill_grace_ms);
        let runners: Vec<Arc<Runner>> = lock(&inner.state).runners.clone();
        let now = Instant::now();
        for r in runners {
            if r.dead.load(Ordering::Acquire) {
                continue;
            }
            if !r.ready.load(Ordering::Acquire)
                && r.born.elapsed() > Duration::from_millis(inner.config.start_timeout_ms)
            {
                inner.bury(&r, "it did not report ready in time");
                continue;
            }
            let mut overdue = false;
            if inner.config.kind == RunnerKind::V8 && inner.v8_memory(&r) {
                inner.bury(&r, "its resident memory passed the runner ceiling");
                continue;
            }
            for remote in lock(&r.runs).values() {
                let c = &remote.control;
                if now > c.wall_deadline() + grace {
                    c.stop(StopReason::Wall);
                    overdue = true;
                }
                if c.stopped_at().is_some_and(|t| now > t + grace) {
                    overdue = true;
                }
            }
            if overdue {
                // Do not wait for the pipe to close: whatever the runner
                // left behind may hold it open.
                inner.bury(&r, "it overstayed a run's deadline and was killed");
                continue;
            }
            inner.prioritize(&r, now);
            // Idle: bound with no runs, or started for a stack size that
            // no run took (its run was cancelled while it started).
            let idle = lock(&r.runs).is_empty()
                && (lock(&r.workspace).is_some()
                    || r.stack_kb != inner.warm_stack()
                    || r.draining.load(Ordering::Acquire));
            let worn = r.served.load(Ordering::Relaxed) >= inner.config.runs_per_runner_life
                || r.draining.load(Ordering::Acquire);
            if idle
                && (worn
                    || lock(&r.idle_since).elapsed()
                        > Duration::from_millis(inner.config.idle_timeout_ms))
            {
                // Decide under the pool lock: `pump` assigns runs under it
                // and skips dead runners, so no run lands on a runner
                // being retired.
                let st = lock(&inner.state);
                if lock(&r.runs).is_empty() {
                    r.retire();
                }
                drop(st);
            }
        }
        inner.pump();
    }
}
