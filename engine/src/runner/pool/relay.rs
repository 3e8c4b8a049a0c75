//! What a runner sends, checked as untrusted input: its ready message,
//! its runs' events (numbered, counted against the output limits and
//! worded by the server) and its host calls (counted, size-checked and
//! run here with the run's own host).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lock, PoolInner, Runner, RunnerKind};
use crate::control::StopReason;
use crate::event::{ErrorKind, EventBody};
use crate::host::{CallContext, HostCall, HostError, HostReply};
use crate::runner::protocol::FromRunner;

impl PoolInner {
    /// One message from a runner. `Err` is a protocol violation.
    pub(super) fn handle(self: &Arc<Self>, r: &Arc<Runner>, msg: FromRunner) -> Result<(), String> {
        match msg {
            FromRunner::Ready { pid, sandbox } => {
                if r.ready.swap(true, Ordering::AcqRel) {
                    return Err("a second ready message".into());
                }
                tracing::debug!(
                    runner = r.id,
                    pid,
                    ?sandbox,
                    ms = r.born.elapsed().as_millis() as u64,
                    "runner ready"
                );
                *lock(&r.sandbox) = Some(sandbox);
                self.failed_starts.store(0, Ordering::Relaxed);
                self.pump();
                Ok(())
            }
            FromRunner::Event { run, body } => self.event(r, &run, body),
            FromRunner::Failing { why } => {
                // No new run goes to it; the runs it has go on, and it is
                // retired when they have ended (see `watch::monitor`).
                tracing::warn!(runner = r.id, why = %why.chars().take(200).collect::<String>(), "runner failing");
                r.draining.store(true, Ordering::Release);
                self.pump();
                Ok(())
            }
            FromRunner::Call {
                run,
                call,
                op,
                args,
            } => {
                let mut runs = lock(&r.runs);
                let Some(remote) = runs.get_mut(&run) else {
                    return Ok(()); // a run that already ended
                };
                let control = remote.control.clone();
                let limits = control.limits.clone();
                let reply = HostReply::new(call, &control);
                remote.calls += 1;
                control
                    .host_calls
                    .store(u64::from(remote.calls), Ordering::Relaxed);
                if remote.calls > limits.host_calls {
                    drop(runs);
                    reply.send(Err(HostError::quota(format!(
                        "host call limit of {} calls per run exceeded (at `{op}`)",
                        limits.host_calls
                    ))));
                    return Ok(());
                }
                let Some(host) = remote.host.clone() else {
                    drop(runs);
                    reply.send(Err(HostError::denied(
                        format!("`{op}` is denied: no host API is attached to this run, so it has no grants"),
                        None,
                    )));
                    return Ok(());
                };
                drop(runs);
                let size = serde_json::to_string(&args)
                    .map(|s| s.len() as u64)
                    .unwrap_or(u64::MAX);
                if let Err(m) = crate::check_depth(&format!("an argument of `{op}`"), &args, 1) {
                    reply.send(Err(HostError::new("RangeError", m)));
                    return Ok(());
                }
                if size > limits.host_value_bytes {
                    reply.send(Err(HostError::new(
                        "RangeError",
                        format!(
                            "the arguments of `{op}` exceed the host value limit of {} bytes",
                            limits.host_value_bytes
                        ),
                    )));
                    return Ok(());
                }
                let cx = CallContext {
                    run: run.clone(),
                    deadline: control.wall_deadline(),
                    limits,
                };
                host.0.call(&cx, HostCall { op, args }, reply);
                Ok(())
            }
        }
    }

    fn event(self: &Arc<Self>, r: &Arc<Runner>, run: &str, body: EventBody) -> Result<(), String> {
        let mut runs = lock(&r.runs);
        let Some(remote) = runs.get_mut(run) else {
            return Ok(());
        };
        let c = remote.control.clone();
        match body {
            EventBody::Started => {
                if remote.started {
                    return Err("a second started event".into());
                }
                remote.started = true;
                c.emit(EventBody::Started);
            }
            EventBody::Log { level, text } => {
                let bytes = text.len() as u64;
                if c.emit_output(EventBody::Log { level, text }, bytes)
                    .is_err()
                {
                    c.wake();
                }
            }
            body @ (EventBody::Display { .. } | EventBody::UpdateDisplay { .. }) => {
                let (EventBody::Display {
                    display_id,
                    mime,
                    data,
                }
                | EventBody::UpdateDisplay {
                    display_id,
                    mime,
                    data,
                }) = &body
                else {
                    return Ok(());
                };
                let bytes = match checked_display(display_id, mime, data)? {
                    Ok(b) => b,
                    Err(m) => return refuse_output(remote, m),
                };
                if c.emit_output(body, bytes).is_err() {
                    c.wake();
                }
            }
            EventBody::ClearDisplay { display_id } => {
                crate::event::check_display_id(&display_id)?;
                let bytes = display_id.len() as u64;
                if c.emit_output(EventBody::ClearDisplay { display_id }, bytes)
                    .is_err()
                {
                    c.wake();
                }
            }
            EventBody::Meter(m) => {
                // What the runner measured (CPU, heap) is taken, within
                // what a run can use; the rest comes from the server's own
                // record, and the record decides when a meter goes out.
                if m.last || !m.cpu_ms.is_finite() || m.cpu_ms < 0.0 {
                    return Ok(());
                }
                let cpu =
                    Duration::from_secs_f64(m.cpu_ms.min(c.limits.cpu_time_ms as f64) / 1000.0);
                c.memory_now.store(
                    m.memory_bytes.min(c.limits.memory_bytes.saturating_mul(2)),
                    Ordering::Relaxed,
                );
                c.cpu_used_ns
                    .fetch_max(cpu.as_nanos() as u64, Ordering::Relaxed);
                c.tick_meter(cpu);
            }
            EventBody::Result { value } => {
                if let Err(m) = crate::check_depth("the result", &value, 0) {
                    remote.error = Some(crate::ErrorInfo::new(ErrorKind::Exception, m));
                    return Ok(());
                }
                let bytes = value.to_string().len() as u64;
                if c.emit_result(value, bytes).is_err() {
                    c.wake();
                }
            }
            EventBody::Error(mut e) => {
                if self.config.kind == RunnerKind::V8 {
                    // Limits the runner noticed first: the server's record
                    // words them, exactly as for QuickJS.
                    let limit = match (e.kind, e.message.as_str()) {
                        (ErrorKind::CpuLimit, _) => Some(StopReason::Cpu),
                        (ErrorKind::WallLimit, "wall") => Some(StopReason::Wall),
                        (ErrorKind::WallLimit, "deadlock") => Some(StopReason::Deadlock),
                        (ErrorKind::Cancelled, _) => Some(StopReason::Cancelled),
                        (ErrorKind::OutputLimit, "events") => Some(StopReason::OutputEvents),
                        (ErrorKind::OutputLimit, _) => Some(StopReason::Output),
                        (ErrorKind::MemoryLimit, _) => Some(StopReason::Memory),
                        _ => None,
                    };
                    match limit {
                        Some(reason) => {
                            c.stop(reason);
                        }
                        None => {
                            crate::v8::locate_error(&mut e, &remote.filename, remote.map.as_deref())
                        }
                    }
                }
                remote.error = Some(e);
            }
            EventBody::Diff(_) => return Err("a diff event (only the run service adds one)".into()),
            EventBody::Finished(f) => {
                let remote = runs.remove(run);
                let idle = runs.is_empty();
                drop(runs);
                if idle {
                    *lock(&r.idle_since) = Instant::now();
                }
                let cpu = if f.cpu_ms.is_finite() && f.cpu_ms >= 0.0 {
                    Duration::from_secs_f64(f.cpu_ms / 1000.0)
                } else {
                    Duration::ZERO
                };
                let peak = f.peak_memory_bytes;
                let error = c.stop_error().or(remote.and_then(|x| x.error));
                c.finish(error, cpu, peak);
                self.pump();
            }
        }
        Ok(())
    }
}

/// A display or update from a runner, checked as untrusted input: the
/// bytes it counts against the output limit; `Ok(Err(..))` for data that
/// does not fit its mime (a block can shape what the glue serializes, so
/// that fails its own run only); `Err` for what our runner never sends.
fn checked_display(
    id: &str,
    mime: &str,
    data: &serde_json::Value,
) -> Result<Result<u64, String>, String> {
    // The runner refuses deeper values in the block (display() throws);
    // one that sends them is not the runner we wrote.
    if crate::check_depth("display data", data, 0).is_err() {
        return Err("display data nested past the depth limit".into());
    }
    crate::event::check_display_id(id)?;
    if let Err(m) = crate::event::check_display(mime, data) {
        return Ok(Err(m));
    }
    Ok(Ok(match data {
        serde_json::Value::String(s) => (s.len() + mime.len() + id.len()) as u64,
        v => (v.to_string().len() + id.len()) as u64,
    }))
}

/// Drop an output the run's block shaped wrongly; the run fails with it
/// when it ends (its runner goes on serving its other runs).
fn refuse_output(remote: &mut super::Remote, why: String) -> Result<(), String> {
    if remote.error.is_none() {
        remote.error = Some(crate::ErrorInfo::new(
            ErrorKind::Exception,
            format!("TypeError: display: {why}"),
        ));
    }
    Ok(())
}
