//! Fresh ids for runs, blocks, documents, rows and schedules: sortable by
//! creation time, unguessable.
//!
//! An id is 32 lowercase hex digits:
//!
//! ```text
//! 0199a3f0c2e1 0003 9f1c0b7e44d2a815
//! └─ ms ──────┘└seq┘└─ 64 random bits┘
//! ```
//!
//! - 12 digits of milliseconds since the Unix epoch,
//! - 4 digits of a per-process sequence within that millisecond, starting
//!   at a random value below 0x8000 each new millisecond (so its value
//!   does not tell how many ids came before in that millisecond),
//! - 16 digits (64 bits) from the system's randomness.
//!
//! The first 16 digits never go backwards in one process, even if the
//! clock does (a step back keeps the last millisecond and counts on; when
//! the sequence runs out, after at least 32,768 ids in one millisecond, the
//! millisecond is borrowed from the future), so ids made later in a
//! process sort after earlier ones, which
//! the newest-first listings and their `before=` paging rely on. Across
//! restarts the order is the clock's. The random part means an id tells
//! nobody how many other ids (other workspaces' runs) were made, and
//! cannot be guessed from its neighbours.
//!
//! Ids made before this format (16 hex digits of the database's counter,
//! all starting `000`) still work wherever an id is taken, and sort before
//! every new one.

use std::sync::{Mutex, PoisonError};

use crate::error::{Result, StorageError};
use crate::model::now_ms;

/// The largest millisecond 12 hex digits hold (the year 10889).
const MAX_MS: u64 = 0xffff_ffff_ffff;

/// The last `(millisecond, sequence)` this process handed out.
static LAST: Mutex<Stamp> = Mutex::new(Stamp { ms: 0, seq: 0 });

/// The ordered part of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp {
    pub(crate) ms: u64,
    pub(crate) seq: u16,
}

impl Stamp {
    /// The stamp after `self` for a clock reading `now_ms`: `now_ms` with
    /// sequence `start` (taken below 0x8000) if the clock moved on, else
    /// one more in the sequence.
    pub(crate) fn next(self, now_ms: u64, start: u16) -> Self {
        let now_ms = now_ms.min(MAX_MS);
        let start = start & 0x7fff;
        if now_ms > self.ms {
            Self {
                ms: now_ms,
                seq: start,
            }
        } else if self.seq < u16::MAX {
            Self {
                ms: self.ms,
                seq: self.seq + 1,
            }
        } else {
            Self {
                ms: (self.ms + 1).min(MAX_MS),
                seq: start,
            }
        }
    }
}

/// A fresh id (see the module docs).
///
/// # Errors
/// [`StorageError::Io`] when the system has no randomness.
pub(crate) fn new_id() -> Result<String> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|e| StorageError::Io {
        what: "reading system randomness",
        path: "getrandom".into(),
        error: std::io::Error::other(e.to_string()),
    })?;
    let [t0, t1, t2, t3, t4, t5, t6, t7, s0, s1] = random;
    let stamp = {
        let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
        *last = last.next(now_ms(), u16::from_be_bytes([s0, s1]));
        *last
    };
    Ok(format_id(
        stamp,
        u64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
    ))
}

/// An id made from `parts` and `at_ms` alone: `at_ms`, the sequence
/// 0x8000 (above every random start, so it never equals a fresh id) and 64
/// bits of the SHA-256 of the parts, each length-prefixed.
pub(crate) fn derived_id(parts: &[&[u8]], at_ms: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.update(at_ms.to_be_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    format_id(
        Stamp {
            ms: at_ms.min(MAX_MS),
            seq: 0x8000,
        },
        u64::from_be_bytes(first),
    )
}

pub(crate) fn format_id(stamp: Stamp, random: u64) -> String {
    format!("{:012x}{:04x}{random:016x}", stamp.ms, stamp.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Length of an id, in bytes (ASCII hex digits).
    const ID_LEN: usize = 32;

    #[test]
    fn derived_ids_are_stable_distinct_and_sort_by_time() {
        let a = derived_id(&[b"ws", b"sched"], 1_000);
        assert_eq!(a, derived_id(&[b"ws", b"sched"], 1_000));
        assert_eq!(a.len(), ID_LEN);
        assert_ne!(a, derived_id(&[b"ws", b"sched"], 1_001));
        assert_ne!(
            a,
            derived_id(&[b"wss", b"ched"], 1_000),
            "parts are length-prefixed"
        );
        assert_ne!(a, derived_id(&[b"ws2", b"sched"], 1_000));
        assert!(a < derived_id(&[b"ws", b"sched"], 1_001));
        assert!(&a[12..16] == "8000");
    }

    #[test]
    fn stamps_only_go_forward() {
        let s = Stamp { ms: 100, seq: 7 };
        // The clock moves on: its millisecond, the sequence from its
        // (random) start, kept below 0x8000.
        assert_eq!(s.next(105, 42), Stamp { ms: 105, seq: 42 });
        assert_eq!(
            s.next(105, 0xffff),
            Stamp {
                ms: 105,
                seq: 0x7fff
            }
        );
        // Same millisecond: the sequence counts, whatever the start.
        assert_eq!(s.next(100, 0), Stamp { ms: 100, seq: 8 });
        // The clock stepped back: the last millisecond, counting on.
        assert_eq!(s.next(3, 0), Stamp { ms: 100, seq: 8 });
        // The sequence is full: borrow the next millisecond.
        let full = Stamp {
            ms: 100,
            seq: u16::MAX,
        };
        assert_eq!(full.next(100, 9), Stamp { ms: 101, seq: 9 });
        assert!(full.next(100, u16::MAX) > full);
        // The width holds whatever the clock says.
        assert_eq!(format_id(s.next(u64::MAX, u16::MAX), 0).len(), ID_LEN);
    }

    #[test]
    fn ids_sort_in_creation_order_and_are_not_a_counter() -> Result<()> {
        // Two stores (as two workspaces' runs share one store's ids).
        let (s1, s2) = (crate::testing::store()?, crate::testing::store()?);
        let ids = (0..5000)
            .map(|i| if i % 2 == 0 { s1.new_id() } else { s2.new_id() })
            .collect::<Result<Vec<_>>>()?;
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "ids out of creation order, or repeated");
        // Many share a millisecond; the sequence keeps them in order.
        let same_ms = ids.windows(2).filter(|w| w[0][..12] == w[1][..12]).count();
        assert!(same_ms > 0, "no two of 5000 ids shared a millisecond");
        // Each millisecond's sequence starts at random, not at 0: its value
        // does not count the ids made before in that millisecond.
        let firsts: Vec<&str> = ids
            .iter()
            .enumerate()
            .filter(|(i, id)| *i == 0 || ids[i - 1][..12] != id[..12])
            .map(|(_, id)| &id[12..16])
            .collect();
        assert!(firsts.iter().any(|seq| *seq != "0000"), "{firsts:?}");
        for id in &ids {
            assert_eq!(id.len(), ID_LEN, "{id}");
            assert!(id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        }
        // Not a counter: no id is a number in sequence, and neighbours
        // differ in their random part, so the next id cannot be worked
        // out from the last one.
        for (i, id) in ids.iter().enumerate() {
            assert_ne!(id.trim_start_matches('0'), format!("{:x}", i + 1));
            assert_ne!(id.as_str(), format!("{:016x}", i + 1));
        }
        for w in ids.windows(2) {
            assert_ne!(w[0][16..], w[1][16..], "{} then {}", w[0], w[1]);
        }
        let distinct: std::collections::HashSet<_> = ids.iter().map(|i| &i[16..]).collect();
        assert_eq!(distinct.len(), ids.len());
        Ok(())
    }

    #[test]
    fn old_counter_ids_sort_before_new_ones() -> Result<()> {
        let new = crate::testing::store()?.new_id()?;
        for old in ["0000000000000001", "00000000ffffffff"] {
            assert!(old < new.as_str(), "{old} sorts after {new}");
        }
        Ok(())
    }
}
