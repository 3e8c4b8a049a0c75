//! The shared record of one run: its stop reason, its event sink and its
//! usage. The worker running the block, the watchdog, and the caller's
//! [`crate::RunHandle`] all hold it.
//!
//! The record decides the outcome. Once a stop reason is set it never
//! changes, and once `finished` is emitted nothing more is.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::event::{
    ErrorInfo, ErrorKind, EventBody, Finished, Meter, MeterLimits, RunEvent, RunStatus,
    METER_IDLE_INTERVAL_MS, METER_INTERVAL_MS,
};
use crate::host::{HostError, HostErrorKind, Mailbox};
use crate::worker::Waker;

/// Why the engine stopped a run (as opposed to the block finishing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StopReason {
    Cpu = 1,
    Wall = 2,
    Memory = 3,
    Output = 4,
    Cancelled = 5,
    Jobs = 6,
    Deadlock = 7,
    OutputEvents = 8,
}

impl StopReason {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Cpu,
            2 => Self::Wall,
            3 => Self::Memory,
            4 => Self::Output,
            5 => Self::Cancelled,
            6 => Self::Jobs,
            7 => Self::Deadlock,
            8 => Self::OutputEvents,
            _ => return None,
        })
    }

    pub(crate) fn kind(self) -> ErrorKind {
        match self {
            Self::Cpu | Self::Jobs => ErrorKind::CpuLimit,
            Self::Wall | Self::Deadlock => ErrorKind::WallLimit,
            Self::Memory => ErrorKind::MemoryLimit,
            Self::Output | Self::OutputEvents => ErrorKind::OutputLimit,
            Self::Cancelled => ErrorKind::Cancelled,
        }
    }

    pub(crate) fn message(self, limits: &Limits) -> String {
        match self {
            Self::Cpu => format!("CPU time limit of {} ms exceeded", limits.cpu_time_ms),
            Self::Wall => format!("wall-clock time limit of {} ms exceeded", limits.wall_time_ms),
            Self::Memory => format!("memory limit of {} bytes exceeded", limits.memory_bytes),
            Self::Output => format!("output limit of {} bytes exceeded", limits.output_bytes),
            Self::OutputEvents => format!(
                "output limit of {} events exceeded (logs, displays and the result count one each)",
                limits.output_events
            ),
            Self::Cancelled => "the run was cancelled".to_string(),
            Self::Jobs => format!(
                "job limit of {} promise/timer jobs exceeded (counts against the CPU budget)",
                limits.max_jobs
            ),
            Self::Deadlock => "the block awaits a promise that can never settle: no timers or host calls are pending, so the run ended instead of waiting for the wall-clock limit".to_string(),
        }
    }
}

/// The final outcome of a run, as [`crate::RunHandle::wait`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The run's id.
    pub run: String,
    /// `ok` or `error`.
    pub status: RunStatus,
    /// The result, when the block produced one.
    pub result: Option<serde_json::Value>,
    /// Why it failed, when it did.
    pub error: Option<ErrorInfo>,
    /// Measured usage (the `finished` event's payload).
    pub finished: Finished,
}

struct Sink {
    /// Dropped after `finished`, which ends the receiver's stream.
    tx: Option<flume::Sender<RunEvent>>,
    outcome_tx: Option<flume::Sender<RunOutcome>>,
    seq: u64,
    output_bytes: u64,
    output_events: u64,
    finished: bool,
    result: Option<serde_json::Value>,
    /// When the last live meter went out, and what it said (see
    /// [`RunControl::tick_meter`]).
    meter_last: Option<(Duration, MeterKey)>,
}

/// What makes a meter differ from the last one, besides the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MeterKey {
    cpu_ms: u64,
    memory_bytes: u64,
    output_bytes: u64,
    host_calls: u64,
}

pub(crate) struct RunControl {
    pub(crate) id: String,
    pub(crate) limits: Limits,
    created: Instant,
    /// Nanoseconds after `created` at which execution began.
    begun_ns: AtomicU64,
    stop: AtomicU8,
    /// Nanoseconds after `started` at which the stop reason was set.
    stop_at_ns: AtomicU64,
    /// CPU time used so far, in nanoseconds (updated by the worker between
    /// steps; the watchdog adds the live step on top).
    pub(crate) cpu_used_ns: AtomicU64,
    /// Peak isolate bytes, published by the worker.
    pub(crate) peak_memory: AtomicU64,
    /// Isolate bytes as last measured (for meters).
    pub(crate) memory_now: AtomicU64,
    /// Host calls made so far (for meters).
    pub(crate) host_calls: AtomicU64,
    sink: Mutex<Sink>,
    /// The worker that holds the run, to wake it on cancel.
    pub(crate) waker: Mutex<Option<Waker>>,
    /// Host-call replies waiting for the worker.
    pub(crate) mailbox: Mailbox,
    /// Called with each event as it is emitted (see
    /// [`crate::RunRequest::with_event_tap`]).
    pub(crate) tap: std::sync::OnceLock<crate::request::EventTap>,
    /// Denials and quota refusals the host (or the engine's own call
    /// checks) answered this run with: only these may end it with
    /// `capability_denied` or `quota_exceeded` (see [`RunControl::vet`]).
    refusals: Mutex<Vec<HostError>>,
}

/// Refusals kept per run for [`RunControl::vet`]; past it the oldest
/// distinct ones are kept (a run that is refused more often than this
/// has long since lost the thread).
const MAX_REFUSALS_KEPT: usize = 64;

impl RunControl {
    pub(crate) fn new(
        id: String,
        limits: Limits,
        tx: flume::Sender<RunEvent>,
        outcome_tx: flume::Sender<RunOutcome>,
    ) -> Arc<Self> {
        Arc::new(Self {
            id,
            limits,
            created: Instant::now(),
            begun_ns: AtomicU64::new(0),
            stop: AtomicU8::new(0),
            stop_at_ns: AtomicU64::new(0),
            cpu_used_ns: AtomicU64::new(0),
            peak_memory: AtomicU64::new(0),
            memory_now: AtomicU64::new(0),
            host_calls: AtomicU64::new(0),
            sink: Mutex::new(Sink {
                tx: Some(tx),
                outcome_tx: Some(outcome_tx),
                seq: 0,
                output_bytes: 0,
                output_events: 0,
                finished: false,
                result: None,
                meter_last: None,
            }),
            waker: Mutex::new(None),
            mailbox: Mailbox::default(),
            tap: std::sync::OnceLock::new(),
            refusals: Mutex::new(Vec::new()),
        })
    }

    /// Record a refusal the host answered a call with (a no-op for other
    /// failures).
    pub(crate) fn record_refusal(&self, e: &HostError) {
        if e.kind == HostErrorKind::Failed {
            return;
        }
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() < MAX_REFUSALS_KEPT && !r.contains(e) {
            r.push(e.clone());
        }
    }

    /// The kind of an uncaught error as the record decides it: an error
    /// that claims `capability_denied` or `quota_exceeded` (by its name,
    /// which a block can set on any error it throws) keeps that kind only
    /// if it carries the message of a refusal this run was answered with,
    /// and then takes its grant from that refusal; otherwise it is an
    /// `exception`. What a runner sent as `grant` is never kept.
    fn vet(&self, mut e: ErrorInfo) -> ErrorInfo {
        let claimed = match e.kind {
            ErrorKind::CapabilityDenied => HostErrorKind::Denied,
            ErrorKind::QuotaExceeded => HostErrorKind::Quota,
            _ => {
                e.grant = None;
                return e;
            }
        };
        let refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        let found = refusals
            .iter()
            .find(|r| r.kind == claimed && crate::describe::clip(r.event_message()) == e.message);
        e.grant = found.and_then(|r| r.grant.clone());
        if found.is_none() {
            e.kind = ErrorKind::Exception;
        }
        e
    }

    /// Mark the moment execution begins: the run's clock (and its
    /// wall-clock limit) counts from here, not from when it was queued.
    pub(crate) fn begin(&self) {
        self.begun_ns
            .store(self.created.elapsed().as_nanos() as u64, Ordering::Release);
    }

    pub(crate) fn started(&self) -> Instant {
        self.created + Duration::from_nanos(self.begun_ns.load(Ordering::Acquire))
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started().elapsed()
    }

    pub(crate) fn wall_deadline(&self) -> Instant {
        self.started() + self.limits.wall_time()
    }

    /// Record a stop reason. The first one wins and is final.
    pub(crate) fn stop(&self, reason: StopReason) -> bool {
        let won = self
            .stop
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.stop_at_ns
                .store(self.elapsed().as_nanos() as u64, Ordering::Release);
        }
        won
    }

    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        StopReason::from_u8(self.stop.load(Ordering::Acquire))
    }

    /// When the stop reason was set, if it was.
    pub(crate) fn stopped_at(&self) -> Option<Instant> {
        self.stop_reason()?;
        Some(self.started() + Duration::from_nanos(self.stop_at_ns.load(Ordering::Acquire)))
    }

    /// Ask the run to stop with `cancelled` and wake its worker.
    pub(crate) fn cancel(&self) {
        self.stop(StopReason::Cancelled);
        self.wake();
    }

    pub(crate) fn wake(&self) {
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = waker.as_ref() {
            w.wake();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, sink: &mut Sink, body: EventBody) {
        self.send(sink, sink.seq, body);
        sink.seq += 1;
    }

    /// Hand an event with `seq` to the tap and the receiver.
    fn send(&self, sink: &Sink, seq: u64, body: EventBody) {
        let ev = RunEvent {
            run: self.id.clone(),
            seq,
            body,
            t_ms: self.elapsed().as_secs_f64() * 1000.0,
        };
        if let Some(tap) = self.tap.get() {
            tap(&ev);
        }
        // A caller that dropped its receiver no longer wants events; the run
        // still completes and reports its outcome.
        if let Some(tx) = &sink.tx {
            let _ = tx.send(ev);
        }
    }

    /// Emit a control event (not counted as output).
    pub(crate) fn emit(&self, body: EventBody) {
        let mut sink = self.lock();
        if !sink.finished {
            self.push(&mut sink, body);
        }
    }

    /// Emit block output of `bytes` bytes, or refuse it and stop the run
    /// with `output_limit` when it would cross the limit.
    pub(crate) fn emit_output(&self, body: EventBody, bytes: u64) -> Result<(), StopReason> {
        let mut sink = self.lock();
        if sink.finished {
            return Err(StopReason::Output);
        }
        if let Some(r) = self.stop_reason() {
            return Err(r);
        }
        if sink.output_bytes.saturating_add(bytes) > self.limits.output_bytes {
            drop(sink);
            self.stop(StopReason::Output);
            return Err(StopReason::Output);
        }
        if sink.output_events >= self.limits.output_events {
            drop(sink);
            self.stop(StopReason::OutputEvents);
            return Err(StopReason::OutputEvents);
        }
        sink.output_bytes += bytes;
        sink.output_events += 1;
        self.push(&mut sink, body);
        Ok(())
    }

    /// Output bytes still available.
    pub(crate) fn output_left(&self) -> u64 {
        self.limits
            .output_bytes
            .saturating_sub(self.lock().output_bytes)
    }

    /// Emit the result (counted as output).
    pub(crate) fn emit_result(
        &self,
        value: serde_json::Value,
        bytes: u64,
    ) -> Result<(), StopReason> {
        self.emit_output(
            EventBody::Result {
                value: value.clone(),
            },
            bytes,
        )?;
        self.lock().result = Some(value);
        Ok(())
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// End the run: emit `error` (if any) and `finished`, deliver the
    /// outcome. Only the first call does anything.
    pub(crate) fn finish(
        &self,
        error: Option<ErrorInfo>,
        cpu: Duration,
        peak_memory_bytes: u64,
    ) -> bool {
        let error = error.map(|e| self.vet(e));
        let mut sink = self.lock();
        if sink.finished {
            return false;
        }
        if sink.meter_last.is_some() {
            let mut m = self.meter(&sink, cpu);
            m.last = true;
            if m.memory_bytes == 0 {
                // No reading landed (a V8 isolate busy throughout): the
                // heap it ended with.
                m.memory_bytes = peak_memory_bytes;
            }
            self.push(&mut sink, EventBody::Meter(m));
        }
        if let Some(e) = &error {
            self.push(&mut sink, EventBody::Error(e.clone()));
        }
        let finished = Finished {
            status: if error.is_some() {
                RunStatus::Error
            } else {
                RunStatus::Ok
            },
            cpu_ms: cpu.as_secs_f64() * 1000.0,
            wall_ms: self.elapsed().as_secs_f64() * 1000.0,
            peak_memory_bytes,
        };
        self.push(&mut sink, EventBody::Finished(finished.clone()));
        sink.finished = true;
        sink.tx = None;
        let outcome = RunOutcome {
            run: self.id.clone(),
            status: finished.status,
            result: if error.is_none() {
                sink.result.take()
            } else {
                None
            },
            error,
            finished,
        };
        if let Some(tx) = sink.outcome_tx.take() {
            let _ = tx.send(outcome);
        }
        true
    }

    /// The run's meter now, given its CPU time so far.
    fn meter(&self, sink: &Sink, cpu: Duration) -> Meter {
        let l = &self.limits;
        Meter {
            cpu_ms: cpu.as_secs_f64() * 1000.0,
            wall_ms: self.elapsed().as_secs_f64() * 1000.0,
            memory_bytes: self.memory_now.load(Ordering::Relaxed),
            output_bytes: sink.output_bytes,
            host_calls: self.host_calls.load(Ordering::Relaxed),
            limits: MeterLimits {
                cpu_ms: l.cpu_time_ms,
                wall_ms: l.wall_time_ms,
                memory_bytes: l.memory_bytes,
                output_bytes: l.output_bytes,
                host_calls: u64::from(l.host_calls),
            },
            cpu_day_left_ms: None,
            last: false,
        }
    }

    /// Send a live meter if one is due, given the CPU time so far: the
    /// run has gone [`METER_INTERVAL_MS`] since it started and since the
    /// last meter, and its use changed (or [`METER_IDLE_INTERVAL_MS`]
    /// passed). Callers may tick as often as they like; a live meter
    /// does not take a `seq` of its own (see [`Meter`]).
    pub(crate) fn tick_meter(&self, cpu: Duration) {
        let interval = self.limits.meter_interval_ms;
        let mut sink = self.lock();
        if interval == 0 || sink.finished || sink.seq == 0 || self.stop_reason().is_some() {
            return;
        }
        let now = self.elapsed();
        let m = self.meter(&sink, cpu);
        let key = MeterKey {
            cpu_ms: m.cpu_ms as u64,
            memory_bytes: m.memory_bytes,
            output_bytes: m.output_bytes,
            host_calls: m.host_calls,
        };
        let gap = Duration::from_millis(interval.max(METER_INTERVAL_MS));
        let due = match sink.meter_last {
            None => now >= gap,
            Some((at, last)) => {
                let since = now.saturating_sub(at);
                (since >= gap && last != key)
                    || since >= Duration::from_millis(METER_IDLE_INTERVAL_MS).max(gap)
            }
        };
        if due {
            sink.meter_last = Some((now, key));
            self.send(&sink, sink.seq - 1, EventBody::Meter(m));
        }
    }

    /// The error for the recorded stop reason, if there is one.
    pub(crate) fn stop_error(&self) -> Option<ErrorInfo> {
        let r = self.stop_reason()?;
        Some(ErrorInfo::new(r.kind(), r.message(&self.limits)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(
        limits: Limits,
    ) -> (
        Arc<RunControl>,
        flume::Receiver<RunEvent>,
        flume::Receiver<RunOutcome>,
    ) {
        let (tx, rx) = flume::unbounded();
        let (otx, orx) = flume::bounded(1);
        (RunControl::new("r".into(), limits, tx, otx), rx, orx)
    }

    #[test]
    fn the_first_stop_reason_is_final() {
        let (c, _, _) = control(Limits::default());
        assert!(c.stop(StopReason::Cpu));
        assert!(!c.stop(StopReason::Cancelled));
        assert_eq!(c.stop_reason(), Some(StopReason::Cpu));
    }

    #[test]
    fn empty_events_are_counted_so_they_cannot_flood() {
        let (c, rx, _) = control(Limits {
            output_events: 3,
            ..Limits::default()
        });
        let log = || EventBody::Log {
            level: crate::LogLevel::Log,
            text: String::new(),
        };
        for _ in 0..3 {
            assert!(c.emit_output(log(), 0).is_ok());
        }
        assert_eq!(c.emit_output(log(), 0), Err(StopReason::OutputEvents));
        assert_eq!(
            c.stop_reason().map(|r| r.kind()),
            Some(ErrorKind::OutputLimit)
        );
        assert_eq!(rx.len(), 3);
    }

    #[test]
    fn output_over_the_limit_is_refused_and_stops_the_run() {
        let (c, rx, _) = control(Limits {
            output_bytes: 10,
            ..Limits::default()
        });
        let log = |t: &str| EventBody::Log {
            level: crate::LogLevel::Log,
            text: t.into(),
        };
        assert!(c.emit_output(log("12345"), 5).is_ok());
        assert_eq!(c.emit_output(log("123456"), 6), Err(StopReason::Output));
        assert_eq!(c.stop_reason(), Some(StopReason::Output));
        assert_eq!(rx.len(), 1);
    }

    #[test]
    fn finish_happens_once_and_seq_has_no_gaps() {
        let (c, rx, orx) = control(Limits::default());
        c.emit(EventBody::Started);
        assert!(c.finish(None, Duration::ZERO, 0));
        assert!(!c.finish(c.stop_error(), Duration::ZERO, 0));
        c.emit(EventBody::Started);
        let evs: Vec<_> = rx.drain().collect();
        assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(orx.recv().unwrap().status, RunStatus::Ok);
    }
}
