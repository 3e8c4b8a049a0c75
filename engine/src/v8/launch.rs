//! `quire __v8-runner`: sandbox this process, then exec deno with the V8
//! runner script and no permissions.
//!
//! What is put in place before exec (it all survives exec):
//!
//! 1. death with the parent (`PR_SET_PDEATHSIG`), `no_new_privs`, not
//!    dumpable, nice 5 (below the server);
//! 2. rlimits: CPU seconds, open files, file size 0 (no file is ever
//!    written), no core dumps, address space (a backstop far above the
//!    per-run memory limit, which the server enforces on resident memory);
//! 3. Landlock (where the kernel has it): the filesystem is read-only and
//!    limited to the deno binary (read and execute), the shared libraries
//!    it loads and the process's own `/proc` directory (the runner script
//!    comes as a `data:` URL); nothing else can be read, written or
//!    executed;
//! 4. seccomp-bpf: an allowlist of what deno was seen to call, with
//!    arguments checked where they reach outside the process (threads
//!    only, its own limits and threads, no sockets): `seccomp.rs`, and
//!    SECURITY.md for what is and is not filtered.
//!
//! Deno itself then runs with no `--allow-*` flag, no prompt, no npm or
//! remote modules and no config file, so file, network, env, ffi and
//! subprocess APIs are refused by deno as well.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use crate::runner::protocol::SandboxReport;
use crate::runner::sandbox::set_rlimit;

/// What the launcher is told by the pool (parsed by the binary).
#[derive(Debug, Clone)]
pub struct LaunchArgs {
    /// The deno binary.
    pub deno: PathBuf,
    /// The runner script: a path, or (as the pool passes it) a `data:`
    /// URL of its JavaScript.
    pub script: String,
    /// V8 heap limit, in MiB.
    pub heap_mb: u64,
    /// V8 stack limit, in KiB (`--stack-size`); the main thread's stack
    /// rlimit is raised to hold it with 4 MiB to spare (at least 8 MiB).
    pub stack_kb: u64,
    /// `deno` is Node and `script` the isolate runner (`runner.mjs`): its
    /// directory (glue, isolated-vm) may be read as well.
    pub node: bool,
}

fn landlock(args: &LaunchArgs) -> bool {
    use landlock::{
        path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, ABI,
    };
    let abi = ABI::V5;
    let read = AccessFs::from_read(abi);
    // A script given as a path may be read from its directory; a data:
    // URL needs nothing.
    let script_dir: Vec<PathBuf> = if args.script.starts_with("data:") {
        Vec::new()
    } else {
        std::path::Path::new(&args.script)
            .parent()
            .map(PathBuf::from)
            .into_iter()
            .collect()
    };
    let libs = [
        "/lib",
        "/lib64",
        "/usr/lib",
        "/usr/lib64",
        "/etc/ld.so.cache",
    ];
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([&args.deno], read | AccessFs::Execute)))
        .and_then(|r| r.add_rules(path_beneath_rules(libs, read)))
        .and_then(|r| r.add_rules(path_beneath_rules(&script_dir, read)))
        // Its own /proc directory (this pid survives the exec): glibc reads
        // /proc/self/maps to find the main thread's stack, which deno's
        // stack guard (stacker) asks for.
        .and_then(|r| r.add_rules(path_beneath_rules(["/proc/self"], read)))
        .and_then(|r| r.restrict_self());
    matches!(status, Ok(s) if s.ruleset != RulesetStatus::NotEnforced)
}

/// The stack rlimit the runtime starts with, in bytes. deno runs
/// JavaScript on its main thread, whose stack the kernel sizes from it at
/// exec: the V8 stack plus 4 MiB (at least 8 MiB). Node's isolates run on
/// isolated-vm's threads, whose stacks glibc sizes from it, and
/// isolated-vm gives V8 all of a thread's stack but 24 KiB: the run's
/// stack plus that.
fn stack_rlimit(args: &LaunchArgs) -> u64 {
    let stack = args.stack_kb.saturating_mul(1024);
    if args.node {
        stack + (24 << 10) + (8 << 10)
    } else {
        (stack + (4 << 20)).max(8 << 20)
    }
}

/// The command the sandboxed process becomes: deno with the runner script
/// and no permissions, or Node with the isolate runner.
fn runtime_command(args: &LaunchArgs, sandbox: String) -> std::process::Command {
    let mut cmd = std::process::Command::new(&args.deno);
    if args.node {
        // Node's own isolate runs on the main thread, within the same
        // rlimit: its V8 stack stays below it.
        cmd.arg(format!(
            "--stack-size={}",
            args.stack_kb.saturating_sub(32).max(64)
        ))
        .arg(format!("--max-old-space-size={}", args.heap_mb))
        .arg("--no-warnings")
        .arg(&args.script)
        .arg(sandbox)
        .env_clear()
        .env("TZ", "UTC0")
        .env("NO_COLOR", "1")
        // Node reads OpenSSL's configuration at start; the sandbox
        // lets it read only the runner's own (empty) one.
        .env(
            "OPENSSL_CONF",
            std::path::Path::new(&args.script).with_file_name("openssl.cnf"),
        );
        return cmd;
    }
    cmd.args([
        "run",
        "--quiet",
        "--no-prompt",
        "--no-config",
        "--no-lock",
        "--no-npm",
        "--no-remote",
        "--cached-only",
        "--no-check",
    ])
    .arg(format!(
        "--v8-flags=--max-old-space-size={},--stack-size={}",
        args.heap_mb, args.stack_kb
    ))
    .arg(&args.script)
    .arg(sandbox)
    .env_clear()
    .env("TZ", "UTC0")
    .env("NO_COLOR", "1")
    .env("DENO_NO_UPDATE_CHECK", "1")
    .env("DENO_DIR", "/nonexistent/quire-deno-dir");
    cmd
}

/// Sandbox, then exec deno. Returns only on failure (the exit code).
pub fn launch_main(args: LaunchArgs) -> i32 {
    let mut report = SandboxReport::default();
    // SAFETY: plain prctl/setpriority calls with integer arguments.
    unsafe {
        report.parent_death_signal =
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == 0;
        if libc::getppid() == 1 {
            return 0;
        }
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        report.niced = libc::setpriority(libc::PRIO_PROCESS, 0, 5) == 0;
    }
    report.rlimits = set_rlimit(libc::RLIMIT_CPU, 3600)
        & set_rlimit(libc::RLIMIT_NOFILE, 256)
        & set_rlimit(libc::RLIMIT_FSIZE, 0)
        & set_rlimit(libc::RLIMIT_CORE, 0)
        & set_rlimit(libc::RLIMIT_AS, 64 << 30)
        // V8 runs JavaScript on deno's main thread, whose stack the
        // kernel sizes from this rlimit at exec.
        & set_rlimit(libc::RLIMIT_STACK, stack_rlimit(&args));
    report.landlock = landlock(&args);
    if let Err(e) = super::seccomp::install() {
        eprintln_safe(&format!(
            "quire v8 runner: refusing to run unsandboxed: {e}"
        ));
        return 3;
    }
    report.seccomp = true;
    let sandbox = serde_json::to_string(&report).unwrap_or_else(|_| "{}".into());
    let err = runtime_command(&args, sandbox).exec();
    eprintln_safe(&format!(
        "quire v8 runner: could not exec {}: {err}",
        args.deno.display()
    ));
    3
}

fn eprintln_safe(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}
