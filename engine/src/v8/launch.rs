//! `quire __v8-runner`: sandbox this process, then exec the pinned Node
//! with the isolate runner (`engine/runners/node/runner.mjs`).
//!
//! What is put in place before exec (it all survives exec):
//!
//! 1. death with the parent (`PR_SET_PDEATHSIG`), `no_new_privs`, not
//!    dumpable, nice 5 (below the server);
//! 2. rlimits: CPU seconds, open files, file size 0 (no file is ever
//!    written), no core dumps, address space (a backstop far above the
//!    per-run memory limits, which the runner enforces per isolate), and
//!    the stack: a run's V8 stack ([`stack_rlimit`]);
//! 3. Landlock (where the kernel has it): the filesystem is read-only and
//!    limited to the runner's directory (Node, `runner.mjs`, `glue.js`,
//!    isolated-vm, an empty `openssl.cnf`), the shared libraries and the
//!    process's own `/proc` directory; nothing else can be read, written
//!    or executed;
//! 4. seccomp-bpf: an allowlist of calls, with arguments checked where
//!    they reach outside the process (threads only, its own limits and
//!    threads, no sockets): `seccomp.rs`, and SECURITY.md for what is and
//!    is not filtered.
//!
//! Node then starts with an empty environment; blocks run in isolates of
//! their own, which have no Node API at all.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::runner::protocol::SandboxReport;
use crate::runner::sandbox::set_rlimit;

/// What the launcher is told by the pool (parsed by the binary).
#[derive(Debug, Clone)]
pub struct LaunchArgs {
    /// The Node binary.
    pub node: PathBuf,
    /// The runner script (`runner.mjs`); its directory may be read.
    pub script: PathBuf,
    /// The heap limit of the process's own (Node) isolate, in MiB.
    pub heap_mb: u64,
    /// The V8 stack of every run in this process, in KiB.
    pub stack_kb: u64,
}

fn landlock(args: &LaunchArgs) -> bool {
    use landlock::{
        path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, ABI,
    };
    let abi = ABI::V5;
    let read = AccessFs::from_read(abi);
    let dir: Vec<&Path> = args.script.parent().into_iter().collect();
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
        .and_then(|r| r.add_rules(path_beneath_rules([&args.node], read | AccessFs::Execute)))
        .and_then(|r| r.add_rules(path_beneath_rules(libs, read)))
        .and_then(|r| r.add_rules(path_beneath_rules(&dir, read)))
        // Its own /proc directory (this pid survives the exec): glibc reads
        // /proc/self/maps to find the main thread's stack.
        .and_then(|r| r.add_rules(path_beneath_rules(["/proc/self"], read)))
        .and_then(|r| r.restrict_self());
    matches!(status, Ok(s) if s.ruleset != RulesetStatus::NotEnforced)
}

/// The stack rlimit the runner starts with, in bytes: the run's stack plus
/// 32 KiB. Runs' isolates run on isolated-vm's threads, whose stacks glibc
/// sizes from this rlimit, and isolated-vm gives V8 all of a thread's
/// stack but 24 KiB.
fn stack_rlimit(args: &LaunchArgs) -> u64 {
    args.stack_kb.saturating_mul(1024) + (32 << 10)
}

/// Node with the runner, an empty environment and its own V8 stack below
/// the rlimit (its main thread shares it).
fn runtime_command(args: &LaunchArgs, sandbox: String) -> std::process::Command {
    let mut cmd = std::process::Command::new(&args.node);
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
    // Node reads OpenSSL's configuration at start; the sandbox lets it
    // read only the runner's own (empty) one.
    .env("OPENSSL_CONF", args.script.with_file_name("openssl.cnf"));
    cmd
}

/// Sandbox, then exec Node. Returns only on failure (the exit code).
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
        args.node.display()
    ));
    3
}

fn eprintln_safe(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}
