//! The isolate allocator: counts every byte QuickJS holds, records the peak
//! and enforces the run's memory limit.
//!
//! Enforcing the limit here (rather than through QuickJS's own limit) means
//! the engine *knows* the limit was hit, from its own record, whatever the
//! block does with the resulting `out of memory` error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Shared byte counters of one isolate's allocator.
#[derive(Debug, Default)]
pub(crate) struct AllocStats {
    current: AtomicU64,
    peak: AtomicU64,
    /// 0 means unlimited.
    limit: AtomicU64,
    limit_hit: AtomicBool,
    /// While tearing a runtime down: blocks freed, kept until the teardown
    /// is over (see [`Self::begin_quarantine`]).
    quarantine: std::sync::Mutex<Option<Vec<usize>>>,
    /// Fast check for `quarantine.is_some()` (every free asks).
    quarantining: AtomicBool,
}

impl AllocStats {
    /// From now on, keep freed blocks instead of freeing them.
    ///
    /// QuickJS-ng frees module records in `JS_FreeContext` while promise
    /// reactions of a still-pending top-level `await` hold references to
    /// them; the garbage collector in `JS_FreeRuntime` then decrements a
    /// reference count inside the freed record (a write after free, found
    /// by our fuzzer under AddressSanitizer). Holding every block freed
    /// during teardown until it ends makes such late writes land in memory
    /// nobody else can have reused.
    pub(crate) fn begin_quarantine(&self) {
        *self.quarantine.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
        self.quarantining.store(true, Ordering::Release);
    }

    /// Free the blocks kept since [`Self::begin_quarantine`].
    pub(crate) fn release_quarantine(&self) {
        self.quarantining.store(false, Ordering::Release);
        let held = self
            .quarantine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        for p in held {
            // SAFETY: each address came from libc's malloc family through
            // this allocator and was handed to `dealloc`/`realloc` exactly
            // once, during the quarantine.
            unsafe { libc::free(p as *mut libc::c_void) };
        }
    }

    /// Keep `ptr` if a quarantine is on. `true` if kept.
    fn keep(&self, ptr: *mut u8) -> bool {
        if !self.quarantining.load(Ordering::Acquire) {
            return false;
        }
        let mut q = self.quarantine.lock().unwrap_or_else(|e| e.into_inner());
        match q.as_mut() {
            Some(list) => {
                list.push(ptr as usize);
                true
            }
            None => false,
        }
    }

    /// Bytes held now.
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    /// Most bytes held at once since the last [`Self::arm`].
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Whether an allocation was refused because of the limit.
    pub(crate) fn limit_hit(&self) -> bool {
        self.limit_hit.load(Ordering::Relaxed)
    }

    /// Start enforcing `limit_bytes` and reset the peak to what is held now.
    pub(crate) fn arm(&self, limit_bytes: u64) {
        self.limit.store(limit_bytes, Ordering::Relaxed);
        self.peak.store(self.current(), Ordering::Relaxed);
    }

    /// Lift the limit (used while tearing an isolate down).
    pub(crate) fn disarm(&self) {
        self.limit.store(0, Ordering::Relaxed);
    }

    fn admit(&self, extra: u64) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        if limit != 0 && self.current().saturating_add(extra) > limit {
            self.limit_hit.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn add(&self, n: u64) {
        let now = self.current.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(&self, n: u64) {
        self.current.fetch_sub(n, Ordering::Relaxed);
    }
}

/// A libc-backed allocator that reports to [`AllocStats`].
pub(crate) struct CountingAllocator {
    pub(crate) stats: Arc<AllocStats>,
}

fn usable(ptr: *mut u8) -> u64 {
    if ptr.is_null() {
        return 0;
    }
    // SAFETY: `ptr` came from libc malloc/calloc/realloc in this allocator
    // and has not been freed (QuickJS only asks about live allocations).
    unsafe { libc::malloc_usable_size(ptr.cast()) as u64 }
}

// SAFETY: every pointer comes from libc's malloc family, which returns memory
// aligned for any fundamental type (>= usize) or null, and `usable_size`
// reports libc's own usable size for it.
unsafe impl rquickjs::allocator::Allocator for CountingAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.stats.admit(size as u64) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain libc malloc; a null result is passed on to QuickJS,
        // which reports out-of-memory.
        let ptr = unsafe { libc::malloc(size.max(1)) }.cast::<u8>();
        self.stats.add(usable(ptr));
        ptr
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return std::ptr::null_mut();
        };
        if !self.stats.admit(total as u64) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain libc calloc, which checks the multiplication itself.
        let ptr = unsafe { libc::calloc(count.max(1), size.max(1)) }.cast::<u8>();
        self.stats.add(usable(ptr));
        ptr
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        self.stats.sub(usable(ptr));
        if ptr.is_null() || self.stats.keep(ptr) {
            return;
        }
        // SAFETY: the caller guarantees `ptr` came from this allocator.
        unsafe { libc::free(ptr.cast()) };
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        let old = usable(ptr);
        let quarantined = self.stats.quarantining.load(Ordering::Acquire);
        if quarantined && !ptr.is_null() {
            // Never let libc free the old block during a quarantine: copy.
            let new_ptr = self.alloc(new_size);
            if !new_ptr.is_null() {
                // SAFETY: both blocks are live and at least `min` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(ptr, new_ptr, (old as usize).min(new_size))
                };
                // SAFETY: `ptr` came from this allocator.
                unsafe { self.dealloc(ptr) };
            }
            return new_ptr;
        }
        if (new_size as u64) > old && !self.stats.admit(new_size as u64 - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller guarantees `ptr` is null or came from this
        // allocator; on failure libc leaves the old block untouched.
        let new_ptr = unsafe { libc::realloc(ptr.cast(), new_size.max(1)) }.cast::<u8>();
        if !new_ptr.is_null() {
            self.stats.sub(old);
            self.stats.add(usable(new_ptr));
        }
        new_ptr
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        usable(ptr) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rquickjs::allocator::Allocator;

    #[test]
    fn counts_and_enforces_the_limit() {
        let stats = Arc::new(AllocStats::default());
        let mut a = CountingAllocator {
            stats: stats.clone(),
        };
        let p = a.alloc(1000);
        assert!(!p.is_null());
        assert!(stats.current() >= 1000);
        stats.arm(stats.current() + 100);
        assert!(a.alloc(10_000).is_null(), "over the limit must fail");
        assert!(stats.limit_hit());
        // SAFETY: `p` came from `a`.
        let q = unsafe { a.realloc(p, 1 << 20) };
        assert!(q.is_null(), "growing past the limit must fail");
        // SAFETY: `p` is still live after the failed realloc.
        unsafe { a.dealloc(p) };
        assert_eq!(stats.current(), 0);
        assert!(stats.peak() >= 1000);
    }

    #[test]
    fn quarantined_blocks_stay_readable_until_released() {
        let stats = Arc::new(AllocStats::default());
        let mut a = CountingAllocator {
            stats: stats.clone(),
        };
        let p = a.alloc(64);
        // SAFETY: `p` is a live 64-byte block.
        unsafe { p.write_bytes(7, 64) };
        stats.begin_quarantine();
        // SAFETY: `p` came from `a`.
        unsafe { a.dealloc(p) };
        let q = a.alloc(64);
        assert_ne!(p, q, "a quarantined block must not be handed out again");
        // SAFETY: quarantined, so still allocated (this is what a late
        // write during teardown relies on).
        assert_eq!(unsafe { p.read() }, 7);
        // SAFETY: `q` came from `a`.
        unsafe { a.dealloc(q) };
        stats.release_quarantine();
        assert_eq!(stats.current(), 0);
    }
}
