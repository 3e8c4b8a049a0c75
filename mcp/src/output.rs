//! Following one run to its end for a tool call: its events folded into
//! the tool's result (displays in their final state), its logs and
//! displays sent as progress notifications while it goes, and the run
//! cancelled when the request is.

use std::sync::Arc;

use quire_engine::{EventBody, RunEvent, RunStatus};
use quire_service::{Followed, LiveRun};
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use serde_json::{json, Map, Value};

/// How long one progress notification may wait to be taken.
const PROGRESS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Log lines a result carries at most (the rest are counted).
pub(crate) const MAX_LOG_LINES: usize = 500;

/// What a finished run gave, shaped as the tools' output schema.
#[derive(Default)]
pub(crate) struct Collected {
    run: String,
    logs: Vec<Value>,
    logs_dropped: usize,
    /// `{display_id, mime, data}` in the order shown (`None`: cleared),
    /// and where each display id is in it.
    displays: Vec<Option<Value>>,
    shown_at: std::collections::HashMap<String, usize>,
    result: Value,
    error: Value,
    usage: Value,
    status: Option<RunStatus>,
    /// A dry-run's `{changes, digest, expires_ms}`.
    diff: Option<Value>,
}

impl Collected {
    fn take(&mut self, ev: &RunEvent) -> Option<String> {
        match &ev.body {
            EventBody::Log { level, text } => {
                if self.logs.len() < MAX_LOG_LINES {
                    self.logs
                        .push(json!({"level": level.as_str(), "text": text}));
                } else {
                    self.logs_dropped += 1;
                }
                Some(text.clone())
            }
            EventBody::Display {
                display_id,
                mime,
                data,
            }
            | EventBody::UpdateDisplay {
                display_id,
                mime,
                data,
            } => {
                let shown = json!({"display_id": display_id, "mime": mime, "data": data});
                match self.shown_at.get(display_id) {
                    Some(&i) => self.displays[i] = Some(shown),
                    None => {
                        self.shown_at
                            .insert(display_id.clone(), self.displays.len());
                        self.displays.push(Some(shown));
                    }
                }
                Some(format!("display {mime}"))
            }
            EventBody::ClearDisplay { display_id } => {
                if let Some(i) = self.shown_at.remove(display_id) {
                    self.displays[i] = None;
                }
                None
            }
            EventBody::Result { value } => {
                self.result = value.clone();
                None
            }
            EventBody::Error(e) => {
                self.error = json!({
                    "kind": e.kind.as_str(), "message": e.message,
                    "line": e.line, "column": e.column,
                });
                None
            }
            EventBody::Finished(f) => {
                self.status = Some(f.status);
                self.usage = json!({
                    "cpu_ms": f.cpu_ms, "wall_ms": f.wall_ms,
                    "peak_memory_bytes": f.peak_memory_bytes,
                });
                None
            }
            EventBody::Diff(d) => {
                self.diff = Some(json!({
                    "changes": d.changes, "digest": d.digest, "expires_ms": d.expires_ms,
                }));
                None
            }
            EventBody::Started | EventBody::Meter(_) => None,
        }
    }

    /// The tool's structured result, and whether the run failed.
    pub(crate) fn finish(self) -> (Value, bool) {
        let ok = self.status == Some(RunStatus::Ok);
        let mut out = Map::new();
        out.insert("run".into(), json!(self.run));
        out.insert("status".into(), json!(if ok { "ok" } else { "error" }));
        out.insert("result".into(), self.result);
        out.insert("logs".into(), Value::Array(self.logs));
        if self.logs_dropped > 0 {
            out.insert("logs_dropped".into(), json!(self.logs_dropped));
        }
        let displays = self.displays.into_iter().flatten().collect();
        out.insert("displays".into(), Value::Array(displays));
        out.insert("error".into(), self.error);
        let usage = if self.usage.is_null() {
            json!({})
        } else {
            self.usage
        };
        out.insert("usage".into(), usage);
        if let Some(diff) = self.diff {
            out.insert("diff".into(), diff);
        }
        (Value::Object(out), !ok)
    }
}

/// Follow `live` to its end (see the module docs).
pub(crate) async fn follow(live: Arc<LiveRun>, ctx: &RequestContext<RoleServer>) -> Collected {
    let mut out = Collected {
        run: live.id.clone(),
        ..Collected::default()
    };
    let token = ctx.meta.get_progress_token();
    let (mut changed, mut meters) = (live.watch(), live.meters());
    let (mut cursor, mut cancelled) = (0usize, false);
    // Progress stops at the first one not delivered in time (a client
    // that does not read must not hold the run's events).
    let mut progress = token.is_some();
    loop {
        let next = tokio::select! {
            next = live.next_output(cursor, 64, &mut changed, &mut meters) => next,
            () = ctx.ct.cancelled(), if !cancelled => {
                tracing::info!(run = %live.id, "the client cancelled the request: cancelling the run");
                cancelled = true;
                live.cancel();
                continue;
            }
        };
        let lines = match next {
            Ok(Some(Followed::Events(lines))) => lines,
            Ok(Some(Followed::Meter(_))) => continue,
            Ok(None) => return out,
            Err(e) => {
                tracing::error!(error = %e, "a run's events could not be read");
                return out;
            }
        };
        for line in lines {
            cursor += 1;
            let Ok(ev) = serde_json::from_str::<RunEvent>(&line) else {
                continue;
            };
            let Some(message) = out.take(&ev) else {
                continue;
            };
            if let (Some(token), true, false) = (&token, progress, cancelled) {
                let p = ProgressNotificationParam::new(token.clone(), cursor as f64)
                    .with_message(message);
                let sent = tokio::time::timeout(PROGRESS_WAIT, ctx.peer.notify_progress(p)).await;
                if !matches!(sent, Ok(Ok(()))) {
                    tracing::debug!("progress not delivered in time: no more for this call");
                    progress = false;
                }
            }
        }
    }
}
