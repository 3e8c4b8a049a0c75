//! What the server reads about its runner processes from `/proc`, and the
//! one thing it changes: their CPU priority.
//!
//! The readings are the kernel's, not the runner's, so a compromised runner
//! cannot under-report them: CPU time (all threads, user + system) and
//! resident memory now and at its peak.

use std::time::Duration;

/// CPU time a process has used, all its threads, user and system, from
/// `/proc/<pid>/stat` (clock-tick resolution, 10 ms on Linux). `None` when
/// the process is gone.
pub(crate) fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    // After the name: state is field 3; utime 14 and stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(ticks(utime + stime))
}

fn ticks(n: u64) -> Duration {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Duration::from_nanos(n.saturating_mul(1_000_000_000) / hz)
}

/// Fields of `/proc/<pid>/status` given in kB (`VmRSS:`, ...), in bytes,
/// in the order asked; `None` when the process is gone or one is missing.
fn status_bytes<const N: usize>(pid: u32, names: [&str; N]) -> Option<[u64; N]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut out = [0u64; N];
    for (slot, name) in out.iter_mut().zip(names) {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        *slot = kb * 1024;
    }
    Some(out)
}

/// Resident and peak resident memory (`VmRSS`, `VmHWM`), in bytes.
pub(crate) fn memory(pid: u32) -> Option<(u64, u64)> {
    status_bytes(pid, ["VmRSS:", "VmHWM:"]).map(|[rss, hwm]| (rss, hwm))
}

/// Set the nice value of every thread of `pid` (on Linux `setpriority`
/// with `PRIO_PROCESS` changes one thread only). Raising it needs no
/// privilege; lowering it needs `CAP_SYS_NICE`, so without it a runner once
/// lowered stays lowered until it is retired. True if every thread took it.
pub(crate) fn set_nice(pid: u32, nice: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut all = true;
    for t in tasks.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // SAFETY: setpriority takes plain integers.
        all &= unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } == 0;
    }
    all
}

/// The nice value of the thread `tid` (for tests).
#[cfg(test)]
pub(crate) fn nice_of(tid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // nice is field 19: the 17th after the name.
    rest.split(' ').nth(16)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let before = cpu_time(pid).unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(60) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        let after = cpu_time(pid).unwrap();
        assert!(after > before, "{before:?} -> {after:?}");
        let (rss, peak) = memory(pid).unwrap();
        assert!(rss > 0 && peak >= rss);
        assert!(memory(u32::MAX).is_none());
        assert!(cpu_time(u32::MAX).is_none());
    }

    #[test]
    fn nice_reaches_every_thread() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(set_nice(pid, 12));
        assert_eq!(nice_of(pid), Some(12));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!set_nice(pid, 12), "a reaped process");
    }
}
