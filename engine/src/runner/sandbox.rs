//! The runner's sandbox, put in place before any block runs:
//!
//! 1. dies with its parent (`PR_SET_PDEATHSIG` = SIGKILL), no new
//!    privileges;
//! 2. rlimits: address space, CPU seconds, open files, file size 0, no core
//!    dumps;
//! 3. Landlock: every filesystem access right handled, none granted (where
//!    the kernel has Landlock);
//! 4. seccomp-bpf: an allowlist of the system calls the engine needs after
//!    start-up (memory, futexes, clocks, randomness, threads, reading and
//!    writing the pipes it already has). Anything else — sockets, exec,
//!    fork, ptrace, mount, ... — kills the process with SIGSYS. Opening a
//!    path fails with EACCES instead (the C library itself tries to read a
//!    /proc file now and then). `clone` is allowed only with
//!    `CLONE_THREAD`; `clone3` fails with ENOSYS (so glibc falls back to
//!    `clone`, whose flags can be checked).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::protocol::SandboxReport;

/// Limits of a runner process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// `RLIMIT_AS`: address space, in bytes. Default: 8 GiB (virtual; the
    /// engine's allocator caps each run's heap far below).
    pub address_space_bytes: u64,
    /// `RLIMIT_CPU`: CPU seconds over the runner's life (the pool retires
    /// runners well before). Default: 3600.
    pub cpu_seconds: u64,
    /// `RLIMIT_NOFILE`: open file descriptors. Default: 16.
    pub open_files: u64,
    /// The runner's nice value (`setpriority`; higher is lower priority).
    /// Blocks' CPU loops then never outrank the server's own threads
    /// (accepting requests, WebSocket writes, history), so a workspace
    /// saturating the cores with CPU-bound runs slows other workspaces'
    /// runs by their fair CPU share, not by the server's queueing. A
    /// process may raise its own nice value without privileges (never
    /// lower it). Default: 5.
    pub nice: i32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            address_space_bytes: 8 << 30,
            cpu_seconds: 3600,
            open_files: 16,
            nice: 5,
        }
    }
}

/// Set both the soft and hard limit of `resource` (so it cannot be raised).
pub(crate) fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> bool {
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass; no memory is retained.
    unsafe { libc::setrlimit(resource, &lim) == 0 }
}

/// Steps 1–3 (before any other thread exists: Landlock binds the calling
/// thread and the threads it creates later).
pub(crate) fn restrict_process(limits: &SandboxLimits) -> SandboxReport {
    let mut report = SandboxReport::default();
    // SAFETY: plain prctl calls with integer arguments.
    unsafe {
        report.parent_death_signal =
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == 0;
        // If the parent is already gone, the signal will never come.
        if libc::getppid() == 1 {
            libc::_exit(0);
        }
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        report.niced = libc::setpriority(libc::PRIO_PROCESS, 0, limits.nice) == 0;
    }
    report.rlimits = set_rlimit(libc::RLIMIT_AS, limits.address_space_bytes)
        & set_rlimit(libc::RLIMIT_CPU, limits.cpu_seconds)
        & set_rlimit(libc::RLIMIT_NOFILE, limits.open_files)
        & set_rlimit(libc::RLIMIT_FSIZE, 0)
        & set_rlimit(libc::RLIMIT_CORE, 0);
    report.landlock = landlock_no_fs();
    report
}

fn landlock_no_fs() -> bool {
    use landlock::{Access, AccessFs, Ruleset, RulesetAttr, RulesetStatus, ABI};
    let abi = ABI::V5;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self());
    match status {
        Ok(s) => s.ruleset != RulesetStatus::NotEnforced,
        Err(e) => {
            tracing::debug!(error = %e, "landlock unavailable");
            false
        }
    }
}

/// System calls a runner may make once sandboxed.
fn allowed() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_futex,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigaction,
        libc::SYS_sigaltstack,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_gettimeofday,
        libc::SYS_getrandom,
        libc::SYS_sched_yield,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_tgkill,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_restart_syscall,
        libc::SYS_sched_getaffinity,
        libc::SYS_getrusage,
        libc::SYS_membarrier,
    ];
    #[cfg(target_arch = "x86_64")]
    v.push(libc::SYS_time);
    v
}

pub(crate) fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e:?}"))
}

fn filters() -> Result<[BpfProgram; 3], String> {
    let err = |e: seccompiler::BackendError| format!("seccomp: {e}");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        allowed().into_iter().map(|s| (s, vec![])).collect();
    rules.insert(libc::SYS_clone, vec![thread_clone()?]);
    // prctl only to name threads.
    let name = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::PR_SET_NAME as u64,
    )
    .map_err(err)?;
    rules.insert(
        libc::SYS_prctl,
        vec![SeccompRule::new(vec![name]).map_err(err)?],
    );
    rules.insert(libc::SYS_clone3, vec![]);
    for s in open_calls() {
        rules.insert(s, vec![]);
    }
    let allow: BpfProgram = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch()?,
    )
    .map_err(err)?
    .try_into()
    .map_err(err)?;
    let no_clone3 = no_clone3()?;
    // The C library opens a /proc file on its own (malloc reads
    // overcommit_memory when it first shrinks a heap): opening fails with
    // EACCES rather than killing the runner. The open never happens.
    let no_open: BpfProgram = SeccompFilter::new(
        open_calls().into_iter().map(|s| (s, vec![])).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch()?,
    )
    .map_err(err)?
    .try_into()
    .map_err(err)?;
    Ok([no_open, no_clone3, allow])
}

/// Clone flags that would make something other than a thread of this
/// process.
const CLONE_NEW: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

/// The `clone` rule of both runners: threads only (`CLONE_THREAD`, no
/// fork) and no namespace flags.
pub(crate) fn thread_clone() -> Result<SeccompRule, String> {
    let err = |e: seccompiler::BackendError| format!("seccomp: {e}");
    let thread = libc::CLONE_THREAD as u64;
    let cond = |mask: u64, value: u64| {
        SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(mask),
            value,
        )
        .map_err(err)
    };
    SeccompRule::new(vec![cond(thread, thread)?, cond(CLONE_NEW, 0)?]).map_err(err)
}

/// `clone3` passes its flags in memory, where seccomp cannot look: this
/// filter answers it `ENOSYS`, so the C library falls back to `clone`
/// (which [`thread_clone`] checks). Installed before an allowlist.
pub(crate) fn no_clone3() -> Result<BpfProgram, String> {
    let err = |e: seccompiler::BackendError| format!("seccomp: {e}");
    SeccompFilter::new(
        [(libc::SYS_clone3, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(err)?
    .try_into()
    .map_err(err)
}

/// Calls that open paths: refused with EACCES (see `filters`).
fn open_calls() -> Vec<i64> {
    let mut v = vec![libc::SYS_openat, libc::SYS_openat2];
    #[cfg(target_arch = "x86_64")]
    v.push(libc::SYS_open);
    v
}

/// Step 4, on every thread of the process.
pub(crate) fn install_seccomp() -> Result<(), String> {
    // The allowlist goes last: installing a filter first sets
    // no_new_privs with a prctl the allowlist itself forbids.
    for f in filters()? {
        seccompiler::apply_filter_all_threads(&f).map_err(|e| format!("seccomp: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_filters_compile_for_this_architecture() {
        assert!(super::filters().is_ok());
    }
}
