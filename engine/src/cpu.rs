//! Thread CPU clocks: how the engine measures a run's CPU time, and how the
//! watchdog reads a worker's clock from another thread.

use std::time::Duration;

/// A CPU-time clock of one thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThreadClock(libc::clockid_t);

impl ThreadClock {
    /// The calling thread's CPU clock.
    pub(crate) fn current() -> Self {
        let mut id: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid for the calling thread and
        // `id` is a valid out-pointer.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        if rc != 0 {
            return Self(libc::CLOCK_THREAD_CPUTIME_ID);
        }
        Self(id)
    }

    /// CPU time consumed so far by the thread.
    pub(crate) fn now(self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; an invalid clock id (thread
        // gone) only makes the call fail, which reads as zero.
        let rc = unsafe { libc::clock_gettime(self.0, &mut ts) };
        if rc != 0 {
            return Duration::ZERO;
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_advances_with_work() {
        let c = ThreadClock::current();
        let a = c.now();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(c.now() > a);
    }
}
