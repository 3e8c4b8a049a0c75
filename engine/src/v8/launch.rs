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
//! 4. seccomp-bpf: a deny-list (V8's JIT, its GC threads and deno's tokio
//!    runtime need a wide, version-dependent set of system calls, so an
//!    allowlist as tight as the QuickJS runner's would break with any deno
//!    update). Denied with `EPERM`: every socket, ptrace and
//!    process_vm_*, namespaces and mounts, module loading, bpf,
//!    perf_event_open, userfaultfd, io_uring, keyrings, fork/vfork, and the
//!    rest listed in [`denied`]. See SECURITY.md.
//!
//! Deno itself then runs with no `--allow-*` flag, no prompt, no npm or
//! remote modules and no config file, so file, network, env, ffi and
//! subprocess APIs are refused by deno as well.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use crate::runner::protocol::SandboxReport;

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
    /// V8 stack limit, in KiB.
    pub stack_kb: u64,
}

fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> bool {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass; no memory is retained.
    unsafe { libc::setrlimit(resource, &lim) == 0 }
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

/// System calls the V8 runner may never make.
pub(crate) fn denied() -> Vec<i64> {
    vec![
        libc::SYS_socket,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_personality,
        libc::SYS_acct,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_syslog,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_mknod,
        libc::SYS_mknodat,
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_fanotify_init,
        libc::SYS_quotactl,
    ]
}

fn seccomp() -> Result<(), String> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        denied().into_iter().map(|n| (n, vec![])).collect();
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    seccompiler::apply_filter(&prog).map_err(|e| e.to_string())
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
        & set_rlimit(libc::RLIMIT_AS, 64 << 30);
    report.landlock = landlock(&args);
    if let Err(e) = seccomp() {
        eprintln_safe(&format!(
            "quire v8 runner: refusing to run unsandboxed: {e}"
        ));
        return 3;
    }
    report.seccomp = true;
    let sandbox = serde_json::to_string(&report).unwrap_or_else(|_| "{}".into());
    let err = std::process::Command::new(&args.deno)
        .args([
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
        .env("DENO_DIR", "/nonexistent/quire-deno-dir")
        .exec();
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
