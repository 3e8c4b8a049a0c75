//! A live run's event log: what the hub holds in memory while a run goes,
//! and when it hands events to the store.
//!
//! Events are serialized once as they arrive. They are appended to the
//! run's stored events (see `quire_storage::Store::append_run_events`) in
//! batches: once [`STORE_BATCH_BYTES`] are waiting, once the oldest has
//! waited [`STORE_AFTER`], and when the run ends. Stored events stay in
//! memory only while the log holds less than [`HELD_STORED_BYTES`] of
//! them, for followers a little behind; a reader further behind reads the
//! store. So a run's memory is bounded by about one batch plus that tail,
//! whatever its output limit, and history always has the run up to its
//! last batch, also after a crash.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_engine::{EventBody, RunStatus};
use serde_json::{json, Value};

/// Events waiting to be stored, in bytes, that make the hub store them.
pub const STORE_BATCH_BYTES: usize = 256 * 1024;

/// How long an event waits, at most, before the hub stores it.
pub const STORE_AFTER: Duration = Duration::from_millis(500);

/// Bytes of already stored events a live log keeps for followers.
pub const HELD_STORED_BYTES: usize = 1024 * 1024;

/// The events of one live run (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// Events from seq `base` on.
    lines: VecDeque<Arc<str>>,
    base: usize,
    /// Events before this seq are stored.
    stored: usize,
    /// Bytes of `lines` before `stored`.
    held_stored_bytes: usize,
    /// Bytes of `lines` from `stored` on.
    unstored_bytes: usize,
    unstored_since: Option<Instant>,
    /// `ok` or `error` once the `finished` event is in.
    pub status: Option<String>,
    /// The `result` event.
    pub result: Option<Arc<str>>,
    /// `{kind, message}` of the first `error` event, or null.
    pub error: Value,
    /// The `finished` event.
    pub finished: Option<Arc<str>>,
}

/// Where the events a reader asked for are.
#[derive(Debug)]
pub(crate) enum Held {
    /// In memory: these (possibly none yet).
    Lines(Vec<Arc<str>>),
    /// Only in the store (the log no longer holds the first of them).
    Stored,
}

impl Log {
    /// Take event `line` (serialized `body`); the number of events now.
    pub fn push(&mut self, line: Arc<str>, body: &EventBody) -> usize {
        match body {
            EventBody::Error(e) if self.error.is_null() => {
                self.error = json!({"kind": e.kind.as_str(), "message": e.message});
            }
            EventBody::Result { .. } => self.result = Some(line.clone()),
            EventBody::Finished(f) => {
                let ok = f.status == RunStatus::Ok;
                self.status = Some(if ok { "ok" } else { "error" }.into());
                self.finished = Some(line.clone());
            }
            _ => {}
        }
        self.unstored_bytes += line.len();
        self.unstored_since.get_or_insert_with(Instant::now);
        self.lines.push_back(line);
        self.len()
    }

    /// Events so far.
    pub fn len(&self) -> usize {
        self.base + self.lines.len()
    }

    /// Up to `max` events from seq `from`.
    pub fn held_from(&self, from: usize, max: usize) -> Held {
        if from < self.base {
            return Held::Stored;
        }
        let start = from - self.base;
        Held::Lines(self.lines.iter().skip(start).take(max).cloned().collect())
    }

    /// Up to `max_bytes` of events from seq `from` (at least one), when
    /// the log holds `from`.
    pub fn held_bytes_from(&self, from: usize, max_bytes: usize) -> Held {
        if from < self.base {
            return Held::Stored;
        }
        let mut bytes = 0;
        let mut out = Vec::new();
        for l in self.lines.iter().skip(from - self.base) {
            if bytes >= max_bytes {
                break;
            }
            bytes += l.len();
            out.push(l.clone());
        }
        Held::Lines(out)
    }

    /// The first seq held in memory.
    #[cfg(test)]
    pub fn base(&self) -> usize {
        self.base
    }

    /// The events not stored yet: the first one's seq, and them.
    pub fn unstored(&self) -> (usize, Vec<Arc<str>>) {
        let skip = self.stored - self.base;
        (self.stored, self.lines.iter().skip(skip).cloned().collect())
    }

    /// Events before seq `n` are stored now; drop the oldest stored ones
    /// past [`HELD_STORED_BYTES`].
    pub fn stored_up_to(&mut self, n: usize) {
        // Never backwards: what was stored stays stored.
        let n = n.min(self.len()).max(self.stored);
        for l in self
            .lines
            .iter()
            .skip(self.stored - self.base)
            .take(n - self.stored)
        {
            self.unstored_bytes -= l.len();
            self.held_stored_bytes += l.len();
        }
        self.stored = self.stored.max(n);
        self.unstored_since = (self.stored < self.len()).then(Instant::now);
        while self.held_stored_bytes > HELD_STORED_BYTES && self.base < self.stored {
            if let Some(l) = self.lines.pop_front() {
                self.held_stored_bytes -= l.len();
            }
            self.base += 1;
        }
    }

    /// Whether enough events wait to be stored now.
    pub fn store_due(&self) -> bool {
        self.unstored_bytes >= STORE_BATCH_BYTES
    }

    /// When the waiting events must be stored at the latest.
    pub fn store_deadline(&self) -> Option<Instant> {
        self.unstored_since.map(|t| t + STORE_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_line(n: usize) -> (Arc<str>, EventBody) {
        let text = "x".repeat(n);
        (
            format!(r#"{{"type":"log","text":"{text}"}}"#).into(),
            EventBody::Log {
                level: quire_engine::LogLevel::Info,
                text,
            },
        )
    }

    #[test]
    fn only_stored_events_leave_memory_and_then_only_past_the_tail_budget() {
        let mut log = Log::default();
        let (line, body) = log_line(100 * 1024);
        for _ in 0..30 {
            log.push(line.clone(), &body);
        }
        assert!(log.store_due());
        assert!(log.store_deadline().is_some());
        // Nothing stored: everything held, however much.
        assert!(matches!(log.held_from(0, 1), Held::Lines(l) if l.len() == 1));
        let (from, lines) = log.unstored();
        assert_eq!((from, lines.len()), (0, 30));
        log.stored_up_to(20);
        assert!(log.base() > 0 && log.base() <= 20);
        assert!(matches!(log.held_from(0, 1), Held::Stored));
        assert!(
            matches!(log.held_from(log.base(), 100), Held::Lines(l) if l.len() == 30 - log.base())
        );
        let (from, lines) = log.unstored();
        assert_eq!((from, lines.len()), (20, 10));
        log.stored_up_to(30);
        assert_eq!(log.store_deadline(), None);
        assert_eq!(log.len(), 30);
        let held: usize = match log.held_from(log.base(), usize::MAX) {
            Held::Lines(l) => l.iter().map(|l| l.len()).sum(),
            Held::Stored => 0,
        };
        assert!(held <= HELD_STORED_BYTES + line.len(), "{held}");
    }
}
