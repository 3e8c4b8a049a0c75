//! The allowlist, tried from a forked child that installs it and then
//! makes the calls a compromised deno would.

use super::{allowed, filters, install};

/// Calls the V8 runner may never make, with any arguments.
fn never() -> Vec<i64> {
    let mut v = vec![
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
        libc::SYS_mknodat,
        libc::SYS_kill,
        libc::SYS_tkill,
        libc::SYS_setpriority,
        libc::SYS_fanotify_init,
        libc::SYS_quotactl,
        libc::SYS_execveat,
        libc::SYS_memfd_create,
        libc::SYS_seccomp,
        libc::SYS_pidfd_open,
        libc::SYS_pidfd_getfd,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_mkdirat,
        libc::SYS_unlinkat,
        libc::SYS_renameat2,
        libc::SYS_linkat,
        libc::SYS_symlinkat,
        libc::SYS_ftruncate,
        libc::SYS_chdir,
        libc::SYS_fchmodat,
        libc::SYS_fchownat,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_mknod,
        libc::SYS_mkdir,
        libc::SYS_unlink,
    ]);
    v
}

#[test]
fn the_filters_compile_and_allow_none_of_the_forbidden_calls() {
    assert!(filters(1).is_ok());
    let allowed = allowed();
    for n in never() {
        assert!(!allowed.contains(&n), "system call {n} is on the allowlist");
    }
    for n in [
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_ioctl,
        libc::SYS_prctl,
    ] {
        assert!(
            !allowed.contains(&n),
            "system call {n} must be checked by arguments"
        );
    }
}

/// The result of a raw system call: its return value, or the errno.
fn sys(n: i64, args: &[i64]) -> Result<i64, i32> {
    let mut a = [0i64; 6];
    a[..args.len()].copy_from_slice(args);
    // SAFETY: a raw system call with integer arguments; the calls below
    // pass only null or valid pointers into this child's own memory.
    let r = unsafe { libc::syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

fn expect(name: &str, got: Result<i64, i32>, want: Result<(), i32>) -> Result<(), String> {
    match (got, want) {
        (Ok(_), Ok(())) => Ok(()),
        (Err(e), Err(w)) if e == w => Ok(()),
        _ => Err(format!("{name}: got {got:?}, wanted {want:?}")),
    }
}

/// What the child checks once filtered. Every refusal must be the filter's
/// (EPERM, or ENOSYS for clone3), not the kernel's own answer.
fn checks() -> Result<(), String> {
    const EPERM: Result<(), i32> = Err(libc::EPERM);
    install()?;
    // SAFETY: getppid/getpid take no arguments.
    let (parent, me) = unsafe { (i64::from(libc::getppid()), i64::from(libc::getpid())) };
    let mut buf = [0u64; 8];
    let ptr = buf.as_mut_ptr() as i64;
    expect("socket inet", sys(libc::SYS_socket, &[2, 1]), EPERM)?;
    expect("socket unix", sys(libc::SYS_socket, &[1, 1]), EPERM)?;
    expect("connect", sys(libc::SYS_connect, &[0, ptr, 16]), EPERM)?;
    expect(
        "socketpair inet",
        sys(libc::SYS_socketpair, &[2, 1, 0, ptr]),
        EPERM,
    )?;
    expect(
        "socketpair unix",
        sys(libc::SYS_socketpair, &[1, 1, 0, ptr]),
        Ok(()),
    )?;
    // fork-like clone: a new process, not a thread
    expect(
        "clone process",
        sys(libc::SYS_clone, &[libc::SIGCHLD as i64]),
        EPERM,
    )?;
    let ns =
        (libc::CLONE_THREAD | libc::CLONE_SIGHAND | libc::CLONE_VM | libc::CLONE_NEWNET) as i64;
    expect(
        "clone thread in a namespace",
        sys(libc::SYS_clone, &[ns]),
        EPERM,
    )?;
    expect(
        "clone3",
        sys(libc::SYS_clone3, &[ptr, 32]),
        Err(libc::ENOSYS),
    )?;
    let nofile = libc::RLIMIT_NOFILE as i64;
    expect(
        "prlimit of the parent",
        sys(libc::SYS_prlimit64, &[parent, nofile, 0, ptr]),
        EPERM,
    )?;
    expect(
        "prlimit of itself",
        sys(libc::SYS_prlimit64, &[0, nofile, 0, ptr]),
        Ok(()),
    )?;
    expect(
        "tgkill of the parent",
        sys(libc::SYS_tgkill, &[parent, parent]),
        EPERM,
    )?;
    let tid = sys(libc::SYS_gettid, &[]).map_err(|e| format!("gettid: {e}"))?;
    expect(
        "tgkill of itself",
        sys(libc::SYS_tgkill, &[me, tid]),
        Ok(()),
    )?;
    expect("kill", sys(libc::SYS_kill, &[parent]), EPERM)?;
    expect(
        "setpriority",
        sys(libc::SYS_setpriority, &[0, parent, 19]),
        EPERM,
    )?;
    expect(
        "ioctl TIOCSTI",
        sys(libc::SYS_ioctl, &[0, libc::TIOCSTI as i64, ptr]),
        EPERM,
    )?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err("pipe failed".into());
    }
    let one: i32 = 1;
    let on = std::ptr::from_ref(&one) as i64;
    expect(
        "ioctl FIONBIO",
        sys(
            libc::SYS_ioctl,
            &[i64::from(fds[0]), libc::FIONBIO as i64, on],
        ),
        Ok(()),
    )?;
    let dumpable = libc::PR_SET_DUMPABLE as i64;
    expect(
        "prctl dumpable",
        sys(libc::SYS_prctl, &[dumpable, 1]),
        EPERM,
    )?;
    let name = c"quire-test".as_ptr() as i64;
    expect(
        "prctl name",
        sys(libc::SYS_prctl, &[libc::PR_SET_NAME as i64, name]),
        Ok(()),
    )?;
    expect(
        "ptrace attach",
        sys(libc::SYS_ptrace, &[libc::PTRACE_ATTACH as i64, parent]),
        EPERM,
    )?;
    expect(
        "unshare",
        sys(libc::SYS_unshare, &[libc::CLONE_NEWUSER as i64]),
        EPERM,
    )?;
    expect("memfd_create", sys(libc::SYS_memfd_create, &[name]), EPERM)?;
    expect("execveat", sys(libc::SYS_execveat, &[-100, name]), EPERM)?;
    expect(
        "io_uring_setup",
        sys(libc::SYS_io_uring_setup, &[8, ptr]),
        EPERM,
    )?;
    expect("bpf", sys(libc::SYS_bpf, &[0, ptr, 16]), EPERM)?;
    expect("getpid", sys(libc::SYS_getpid, &[]), Ok(()))?;
    // The JIT's mapping: read, write and execute.
    let rwx = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as i64;
    let anon = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as i64;
    expect(
        "mmap rwx",
        sys(libc::SYS_mmap, &[0, 4096, rwx, anon, -1]),
        Ok(()),
    )?;
    Ok(())
}

#[test]
fn a_filtered_process_is_refused_what_a_compromised_deno_would_try() {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes system calls, writes to the pipe and
    // leaves with _exit; it never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let msg = match checks() {
            Ok(()) => "ok".to_string(),
            Err(e) => e,
        };
        // SAFETY: writes our own buffer to the pipe, then exits the child.
        unsafe {
            libc::write(fds[1], msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end; reading into our buffer;
    // waiting for our own child.
    let msg = unsafe {
        libc::close(fds[1]);
        let mut out = vec![0u8; 4096];
        let n = libc::read(fds[0], out.as_mut_ptr().cast(), out.len());
        libc::close(fds[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        String::from_utf8_lossy(&out[..n.max(0) as usize]).into_owned()
    };
    assert_eq!(msg, "ok");
}
