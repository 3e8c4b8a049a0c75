//! The V8 runner's seccomp allowlist, installed by the launcher just before
//! it execs Node (the filter survives exec and binds every thread Node
//! starts).
//!
//! The list was made from what deno 2.9.6 (V8 15.0, tokio, glibc), the V8
//! runner before issue 16, was seen to call under strace across the spec,
//! hostile and V8 suites and the engines
//! benchmark (JIT, GC threads, WebAssembly, timers, heap OOM, stack
//! overflow), plus the calls every process needs on paths a trace may miss
//! (signal return, restart, thread exit, abort). Anything else answers
//! `EPERM` rather than killing the process: a runtime probes a few calls
//! at start and copes with a refusal (libuv falls back from `io_uring`),
//! and a refusal reaches the block as an ordinary failure, which the run
//! then reports. Node 24 with isolated-vm runs the spec, hostile and V8
//! suites under this list (CI runs them), which is what would catch a
//! call it cannot do without. Arguments are checked where they decide what a call can reach
//! outside the process:
//!
//! - `clone` only makes threads (`CLONE_THREAD`, no namespace flags), and
//!   `clone3` (flags in memory, where seccomp cannot look) answers
//!   `ENOSYS`, so glibc falls back to `clone`;
//! - `prlimit64` only on the process itself (pid 0): never the server's
//!   limits; `tgkill` only to the process's own threads (its pid, which
//!   the exec keeps); `kill`, `tkill` and `setpriority` are refused;
//! - `ioctl` only for the few terminal and fd queries a runtime makes
//!   (`TIOCSTI`, which pushes input into a terminal, is refused);
//! - `prctl` only to name threads and memory areas (not
//!   `PR_SET_DUMPABLE`, which would make it traceable again);
//! - `socketpair` only `AF_UNIX` (internal wake-ups); `socket`,
//!   `connect`, `bind` and every other network call are refused.
//!
//! Not filtered by arguments, and why: `mmap`/`mprotect` with `PROT_EXEC`
//! (V8's JIT needs them); file opens and stats (Landlock decides what a
//! path reaches; only the runner's directory, libraries and `/proc/self`);
//! `execve` (this filter is installed before the launcher's own exec of
//! Node; Landlock lets only the Node binary execute, and whatever it
//! execs inherits this filter, Landlock and the rlimits).

use std::collections::BTreeMap;

use seccompiler::{
    BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};

use crate::runner::sandbox;

/// Calls allowed with any arguments.
fn allowed() -> Vec<i64> {
    let mut v = vec![
        // memory
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_pkey_alloc,
        libc::SYS_pkey_free,
        libc::SYS_pkey_mprotect,
        libc::SYS_membarrier,
        // files already open, and paths Landlock limits
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_pread64,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_close,
        libc::SYS_lseek,
        libc::SYS_fcntl,
        libc::SYS_dup,
        libc::SYS_dup3,
        libc::SYS_pipe2,
        libc::SYS_openat,
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_statx,
        libc::SYS_readlinkat,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_getdents64,
        libc::SYS_getcwd,
        // waiting and waking
        libc::SYS_futex,
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        libc::SYS_ppoll,
        libc::SYS_eventfd2,
        libc::SYS_sched_yield,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_restart_syscall,
        // sockets that already exist (the socketpair below)
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_sendto,
        libc::SYS_sendmsg,
        libc::SYS_shutdown,
        // signals
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        // threads and the process itself
        libc::SYS_set_robust_list,
        libc::SYS_set_tid_address,
        libc::SYS_rseq,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_getpid,
        libc::SYS_getppid,
        libc::SYS_gettid,
        libc::SYS_getuid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getegid,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_getparam,
        libc::SYS_sched_getscheduler,
        libc::SYS_sched_get_priority_max,
        libc::SYS_sched_get_priority_min,
        libc::SYS_getrusage,
        libc::SYS_uname,
        libc::SYS_sysinfo,
        libc::SYS_getrandom,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_gettimeofday,
        // the launcher's own exec of Node (see the module docs)
        libc::SYS_execve,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_arch_prctl,
        libc::SYS_open,
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_access,
        libc::SYS_readlink,
        libc::SYS_dup2,
        libc::SYS_pipe,
        libc::SYS_epoll_wait,
        libc::SYS_poll,
        libc::SYS_time,
    ]);
    v
}

/// `ioctl` requests deno makes on its pipes: terminal probes and
/// non-blocking / close-on-exec switches.
const IOCTLS: [u64; 6] = [
    libc::TCGETS,
    libc::TIOCGWINSZ,
    libc::FIONBIO,
    libc::FIOCLEX,
    libc::FIONCLEX,
    libc::FIONREAD,
];

/// `prctl` options: naming threads and anonymous memory.
const PRCTLS: [u64; 3] = [
    libc::PR_SET_NAME as u64,
    libc::PR_GET_NAME as u64,
    libc::PR_SET_VMA as u64,
];

fn err(e: BackendError) -> String {
    format!("seccomp: {e}")
}

/// One rule per allowed value of argument `index` (`len` wide: a `Dword`
/// for C `int` arguments, whose upper half the kernel does not clear).
fn one_of(index: u8, len: SeccompCmpArgLen, values: &[u64]) -> Result<Vec<SeccompRule>, String> {
    values
        .iter()
        .map(|&v| {
            let cond =
                SeccompCondition::new(index, len.clone(), SeccompCmpOp::Eq, v).map_err(err)?;
            SeccompRule::new(vec![cond]).map_err(err)
        })
        .collect()
}

fn conditional(pid: u32) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    use SeccompCmpArgLen::{Dword, Qword};
    Ok(BTreeMap::from([
        (libc::SYS_clone, vec![sandbox::thread_clone()?]),
        (libc::SYS_ioctl, one_of(1, Qword, &IOCTLS)?),
        (libc::SYS_prctl, one_of(0, Dword, &PRCTLS)?),
        (libc::SYS_prlimit64, one_of(0, Dword, &[0])?),
        (libc::SYS_tgkill, one_of(0, Dword, &[u64::from(pid)])?),
        (
            libc::SYS_socketpair,
            one_of(0, Dword, &[libc::AF_UNIX as u64])?,
        ),
    ]))
}

/// The two filters for a process whose pid is `pid` (the launcher's, kept
/// by Node across the exec), in the order they are installed: `clone3` →
/// `ENOSYS`, then the allowlist (last, since installing a filter makes a
/// `prctl` and a `seccomp` call the allowlist refuses).
pub(crate) fn filters(pid: u32) -> Result<[BpfProgram; 2], String> {
    let mut rules = conditional(pid)?;
    for s in allowed() {
        rules.insert(s, vec![]);
    }
    rules.insert(libc::SYS_clone3, vec![]);
    let allow: BpfProgram = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        sandbox::arch()?,
    )
    .map_err(err)?
    .try_into()
    .map_err(err)?;
    Ok([sandbox::no_clone3()?, allow])
}

/// Install both filters on the calling thread (the launcher is single
/// threaded; threads Node starts inherit them).
pub(crate) fn install() -> Result<(), String> {
    for f in filters(std::process::id())? {
        seccompiler::apply_filter(&f).map_err(|e| format!("seccomp: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
