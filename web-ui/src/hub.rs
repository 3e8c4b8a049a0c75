//! The run hub: every run the server starts goes through here, whichever
//! way it was asked for (HTTP, WebSocket, later schedules).
//!
//! For each run the hub keeps a [`LiveRun`]: the serialized events so far,
//! in order, and a watch channel that ticks as they arrive. Followers read
//! it by cursor, so a client that connects mid-run catches up and then
//! follows live through the same code, and a slow follower never makes the
//! hub buffer more than the run's own (limited) output. When the run ends
//! its record, with every event, is written to history before the live
//! log is dropped, so `GET .../runs/{run}` always finds it in one place or
//! the other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quire_engine::{Canceller, Engine, EngineKind, EventBody, Lang, Limits, RunEvent, RunRequest};
use quire_host_api::{Grants, HostApi, SessionQuota};
use quire_storage::{
    now_ms, utc_day, BlockRecord, Quota, RunRecord, Store, Workspace, WorkspaceId,
};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use crate::admission::{Admission, Permit, QuotaRefusal, Ticket};
use crate::counting::CountingHost;
use crate::error::{ApiError, ApiResult};
use crate::metrics::{Gauges, Metrics};

/// What to run.
#[derive(Debug, Clone)]
pub struct StartRun {
    /// The workspace it runs in (its data, its grants' scope).
    pub workspace: Workspace,
    /// The stored block it runs as, if any: its grants apply, and the run
    /// is filed under it.
    pub block: Option<BlockRecord>,
    /// The source to run (a saved block's, or unsaved source).
    pub source: String,
    /// Its language.
    pub lang: Lang,
    /// `ctx.input`.
    pub input: Value,
    /// `ctx.trigger`, e.g. `{"kind":"manual"}`.
    pub trigger: Value,
    /// The id of a run filed earlier as `queued` (a schedule's); `None`
    /// takes a fresh id.
    pub run_id: Option<String>,
    /// The engine, when the caller chose one (unsaved source); `None`
    /// takes the block's, else the workspace's default (QuickJS).
    pub engine: Option<EngineKind>,
    /// The caller is an admin of the workspace: the block's grants apply
    /// to `source` even if it is not the source they were approved for
    /// (see [`crate::approval`]).
    pub admin_caller: bool,
}

/// A stored block's engine (`v8`, else QuickJS; routes validate it on
/// write).
pub fn block_engine(engine: &str) -> EngineKind {
    EngineKind::parse(engine).unwrap_or_default()
}

/// A stored block's language (`ts`, else JavaScript; routes validate it on
/// write).
pub(crate) fn block_lang(lang: &str) -> Lang {
    if lang == "ts" {
        Lang::Ts
    } else {
        Lang::Js
    }
}

impl StartRun {
    /// Run saved block `block` of `workspace` as it is stored: its source,
    /// its language, its grants.
    pub fn for_block(
        workspace: Workspace,
        block: BlockRecord,
        input: Value,
        trigger: Value,
    ) -> Self {
        let lang = block_lang(&block.lang);
        Self {
            workspace,
            source: block.source.clone(),
            block: Some(block),
            lang,
            input,
            trigger,
            run_id: None,
            engine: None,
            admin_caller: false,
        }
    }
}

/// One run's live event log.
#[derive(Debug)]
pub struct LiveRun {
    /// The run id.
    pub id: String,
    /// Its workspace.
    pub workspace: WorkspaceId,
    /// The block it runs as, if any.
    pub block: Option<String>,
    /// What started it.
    pub trigger: Value,
    /// What was asked (language, input, grants, limits), as history keeps it.
    pub request: Value,
    /// Start time, milliseconds since the Unix epoch.
    pub started_ms: u64,
    log: Mutex<Log>,
    changed: watch::Sender<usize>,
    /// Set once the run holds an admission permit and is in the engine.
    canceller: Mutex<Option<Canceller>>,
    /// Waiting in admission for a permit.
    waiting: AtomicBool,
    cancel_requested: AtomicBool,
    cancel_notify: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Log {
    /// The events, serialized once as they arrive (followers send these
    /// lines as they are; history and snapshots parse them back, so a
    /// run's output is held once, not twice).
    lines: Vec<Arc<str>>,
    status: Option<String>,
}

impl LiveRun {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `max` serialized events from position `from`, and whether the
    /// run has finished (its last event is in the log).
    pub fn read_from(&self, from: usize, max: usize) -> (Vec<Arc<str>>, bool) {
        let log = self.lock();
        let end = log.lines.len().min(from.saturating_add(max));
        let batch = log
            .lines
            .get(from..end)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        (batch, log.status.is_some())
    }

    /// Ticks with the number of events each time one arrives.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.changed.subscribe()
    }

    /// The events so far as JSON, and `queued` (waiting for admission),
    /// `running`, `ok` or `error`.
    pub fn snapshot(&self) -> (Vec<Value>, String) {
        let queued = self.is_queued();
        let log = self.lock();
        let events = log
            .lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let status = log.status.clone().unwrap_or_else(|| {
            if queued {
                "queued".into()
            } else {
                "running".into()
            }
        });
        (events, status)
    }

    /// Whether the run still waits for admission (its workspace is at
    /// `max_concurrent_runs`, or the server at `max_active_runs`).
    pub fn is_queued(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Wait until the run has finished (its last event is in the log).
    pub async fn finished(&self) {
        let mut rx = self.watch();
        loop {
            if self.lock().status.is_some() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// End the run with `cancelled` (no-op once it finished). A run still
    /// queued leaves the queue and ends at once.
    pub fn cancel(&self) {
        self.cancel_requested.store(true, Ordering::SeqCst);
        if let Some(c) = &*self.canceller.lock().unwrap_or_else(|e| e.into_inner()) {
            c.cancel();
        }
        self.cancel_notify.notify_one();
    }

    /// Attach the engine's canceller once the run is admitted; a cancel
    /// that came first is passed on.
    fn admitted(&self, c: Canceller) {
        let mut slot = self.canceller.lock().unwrap_or_else(|e| e.into_inner());
        if self.cancel_requested.load(Ordering::SeqCst) {
            c.cancel();
        }
        *slot = Some(c);
    }

    /// The events of a run cancelled before it was admitted.
    fn cancelled_in_queue(&self, waited_ms: f64) -> Vec<RunEvent> {
        let ev = |seq, body| RunEvent {
            run: self.id.clone(),
            seq,
            body,
            t_ms: if seq == 0 { 0.0 } else { waited_ms },
        };
        vec![
            ev(0, EventBody::Started),
            ev(
                1,
                EventBody::Error(quire_engine::ErrorInfo::new(
                    quire_engine::ErrorKind::Cancelled,
                    "the run was cancelled while it waited in its workspace's queue; it never started",
                )),
            ),
            ev(
                2,
                EventBody::Finished(quire_engine::Finished {
                    status: quire_engine::RunStatus::Error,
                    cpu_ms: 0.0,
                    wall_ms: waited_ms,
                    peak_memory_bytes: 0,
                }),
            ),
        ]
    }

    fn push(&self, ev: RunEvent) -> ApiResult<()> {
        let line: Arc<str> = serde_json::to_string(&ev)
            .map_err(|e| ApiError::Internal(format!("event did not serialize: {e}")))?
            .into();
        let n = {
            let mut log = self.lock();
            if let EventBody::Finished(f) = &ev.body {
                log.status = Some(if f.status == quire_engine::RunStatus::Ok {
                    "ok".into()
                } else {
                    "error".into()
                });
            }
            log.lines.push(line);
            log.lines.len()
        };
        self.changed.send_replace(n);
        Ok(())
    }
}

/// A run just started; announced to subscribers when dropped.
#[derive(Debug)]
pub struct Started {
    live: Arc<LiveRun>,
    hub: Arc<RunHub>,
}

impl Started {
    /// The live run.
    pub fn live(&self) -> Arc<LiveRun> {
        self.live.clone()
    }
}

impl std::ops::Deref for Started {
    type Target = LiveRun;
    fn deref(&self) -> &LiveRun {
        &self.live
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.hub.announce.send(self.live.clone());
    }
}

/// What [`RunHub::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs that finished on their own during the grace period.
    pub finished: usize,
    /// Runs cancelled when the grace period ended.
    pub cancelled: usize,
}

/// Run a store call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// Starts runs and keeps their live logs (see the module docs).
pub struct RunHub {
    engine: Arc<Engine>,
    admission: Arc<Admission>,
    api: HostApi,
    store: Store,
    metrics: Arc<Metrics>,
    limits: Limits,
    active: Mutex<HashMap<String, Arc<LiveRun>>>,
    announce: broadcast::Sender<Arc<LiveRun>>,
    accepting: AtomicBool,
    stopped: watch::Sender<bool>,
    retention: Arc<crate::retention::Retention>,
}

impl std::fmt::Debug for RunHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHub")
            .field("active", &self.active_count())
            .finish()
    }
}

impl RunHub {
    /// A hub running on `engine`, with host sessions from `api` and
    /// history in `store`. Every run gets `limits`, with CPU, wall-clock,
    /// memory and output limits from its workspace's quota instead; at
    /// most `max_active_runs` run at once.
    pub fn new(
        engine: Arc<Engine>,
        api: HostApi,
        store: Store,
        metrics: Arc<Metrics>,
        limits: Limits,
        max_active_runs: usize,
    ) -> Arc<Self> {
        let (announce, _) = broadcast::channel(1024);
        Arc::new(Self {
            engine,
            admission: Admission::new(max_active_runs),
            api,
            store,
            metrics,
            limits,
            active: Mutex::new(HashMap::new()),
            announce,
            accepting: AtomicBool::new(true),
            stopped: watch::channel(false).0,
            retention: Arc::default(),
        })
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The quota that applies to `ws` now: what its admins set (or the
    /// defaults), cut down to the server's ceilings.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn quota(&self, ws: WorkspaceId) -> ApiResult<Quota> {
        let store = self.store.clone();
        blocking(move || {
            let ceilings = store.quota_ceilings()?;
            Ok(store.get_quota(&ws)?.unwrap_or_default().within(&ceilings))
        })
        .await
    }

    /// Check the workspace's quotas and take its place in admission.
    async fn admit(&self, ws: WorkspaceId) -> ApiResult<(Ticket, Quota, f64)> {
        let quota = self.quota(ws).await?;
        let now = now_ms();
        let store = self.store.clone();
        let used = blocking(move || Ok(store.usage_day(&ws, utc_day(now))?.cpu_ms)).await?;
        if used >= quota.cpu_ms_per_day as f64 {
            self.metrics.runs_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::Quota(QuotaRefusal {
                quota: "cpu_ms_per_day",
                limit: quota.cpu_ms_per_day,
                resets_at_ms: Some((u64::from(utc_day(now)) + 1) * 86_400_000),
                message: format!(
                    "the workspace used {used:.0} ms of CPU today, its quota of {} ms per day; it resets at 00:00 UTC",
                    quota.cpu_ms_per_day
                ),
            }));
        }
        let ticket = self.admission.request(ws, &quota, now).map_err(|e| {
            self.metrics.runs_rejected.fetch_add(1, Ordering::Relaxed);
            ApiError::Quota(e)
        })?;
        Ok((ticket, quota, quota.cpu_ms_per_day as f64 - used))
    }

    /// The limits of one run under `quota`, with `cpu_left_ms` of the
    /// day's CPU left: the quota's per-run limits, and the server's for
    /// the rest.
    fn limits_for(&self, quota: &Quota, cpu_left_ms: f64) -> Limits {
        Limits {
            cpu_time_ms: quota.cpu_ms_per_run.min(cpu_left_ms.ceil().max(1.0) as u64),
            wall_time_ms: quota.wall_ms_per_run,
            memory_bytes: quota.memory_bytes_per_run,
            output_bytes: quota.output_bytes_per_run,
            ..self.limits.clone()
        }
    }

    /// The grants `req` runs with: its block's, suspended unless they were
    /// approved for its source or an admin started it.
    fn grants_for(&self, req: &StartRun) -> ApiResult<Grants> {
        let Some(b) = &req.block else {
            return Ok(Grants::none());
        };
        let grants =
            Grants::parse(&b.grants).map_err(|e| ApiError::field("grants", e.to_string()))?;
        let applies =
            req.admin_caller || crate::approval::grants_apply(b, req.lang.as_str(), &req.source);
        Ok(if applies { grants } else { grants.suspend() })
    }

    /// Start a run. Its workspace's quotas are checked first; then it is
    /// recorded as `running` in history before this returns, and starts
    /// at once or waits its turn in admission (see [`crate::admission`];
    /// its live status is `queued` meanwhile). It is announced to the
    /// block's subscribers when the returned [`Started`] is dropped, so
    /// the caller can first send its own reply (`accepted`) and start
    /// following.
    ///
    /// # Errors
    /// 503 while shutting down; 429 ([`ApiError::Quota`]) when a quota
    /// refuses it; 400 if the block's stored grants do not parse; 500 if
    /// history cannot be written.
    pub async fn start(self: &Arc<Self>, req: StartRun) -> ApiResult<Started> {
        if !self.accepting.load(Ordering::SeqCst) {
            self.metrics.runs_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::ShuttingDown);
        }
        // Every way of starting a run (HTTP, WebSocket, webhooks,
        // schedules) passes here.
        quire_engine::check_depth("input", &req.input, 0)
            .map_err(|m| ApiError::field("input", m))?;
        let grants = self.grants_for(&req)?;
        let ws = req.workspace.id;
        let (ticket, quota, cpu_left_ms) = self.admit(ws).await?;
        let limits = self.limits_for(&quota, cpu_left_ms);
        let id = match req.run_id.clone() {
            Some(id) => id,
            None => {
                let store = self.store.clone();
                blocking(move || Ok(store.new_id()?)).await?
            }
        };
        let started_ms = now_ms();
        let block_id = req.block.as_ref().map(|b| b.id.clone());
        let record_request = serde_json::json!({
            "lang": req.lang,
            "input": req.input,
            "grants": grants.to_strings(),
            "grants_suspended": grants.suspended(),
            "limits": limits,
            "source_bytes": req.source.len(),
        });
        let record = RunRecord {
            id: id.clone(),
            block: block_id.clone(),
            trigger: req.trigger.clone(),
            request: record_request,
            status: "running".into(),
            events: vec![],
            error: Value::Null,
            cpu_ms: 0.0,
            wall_ms: 0.0,
            peak_memory_bytes: 0,
            started_ms,
        };
        self.write_record(ws, record.clone()).await?;

        let session = SessionQuota {
            storage_bytes: Some(quota.storage_bytes),
        };
        let host = CountingHost::wrap(
            self.api.session_with(ws, grants, session),
            self.metrics.clone(),
        );
        // The caller's choice, else the block's, else the workspace's.
        let engine = req
            .engine
            .or_else(|| {
                req.block
                    .as_ref()
                    .filter(|b| !b.engine.is_empty())
                    .map(|b| block_engine(&b.engine))
            })
            .unwrap_or_else(|| block_engine(&req.workspace.default_engine));
        let mut run = RunRequest::new(req.source, req.lang)
            .with_engine(engine)
            .with_input(req.input)
            .with_limits(limits)
            .with_host(host);
        run.run_id = Some(id.clone());
        run.trigger = Some(req.trigger.clone());
        run.workspace = Some(req.workspace.name.clone());
        run.block = match &req.block {
            Some(b) => serde_json::json!({"id": b.id, "name": b.name}),
            None => Value::Null,
        };
        run.filename = req
            .block
            .as_ref()
            .map(|b| format!("{}.{}", b.id, req.lang.as_str()));
        let accepted_at = Instant::now();
        let mut ticket = ticket;
        let turn = ticket.try_now().ok_or(ticket);
        let (changed, _) = watch::channel(0);
        let live = Arc::new(LiveRun {
            id: id.clone(),
            workspace: ws,
            block: block_id,
            trigger: req.trigger,
            request: record.request.clone(),
            started_ms,
            log: Mutex::new(Log::default()),
            changed,
            canceller: Mutex::new(None),
            waiting: AtomicBool::new(turn.is_err()),
            cancel_requested: AtomicBool::new(false),
            cancel_notify: tokio::sync::Notify::new(),
        });
        self.active().insert(id.clone(), live.clone());

        let hub = self.clone();
        let follower = live.clone();
        let span = tracing::info_span!("run", workspace = %ws, run = %id);
        tokio::spawn(
            async move {
                let Some(permit) = hub.wait_turn(turn, &follower).await else {
                    tracing::debug!("run cancelled while queued");
                    let waited = accepted_at.elapsed().as_secs_f64() * 1000.0;
                    for ev in follower.cancelled_in_queue(waited) {
                        if let Err(e) = follower.push(ev) {
                            tracing::error!(error = %e, "event dropped");
                        }
                    }
                    hub.complete(follower, record, None, "cancelled".into(), accepted_at)
                        .await;
                    return;
                };
                tracing::debug!("run started");
                let handle = hub.engine.run(run);
                follower.admitted(handle.canceller());
                let events = handle.events().clone();
                let mut kind = String::new();
                let mut finished = None;
                while let Ok(ev) = events.recv_async().await {
                    if let EventBody::Error(e) = &ev.body {
                        kind = e.kind.as_str().to_string();
                    }
                    let fin = match &ev.body {
                        EventBody::Finished(f) => Some(f.clone()),
                        _ => None,
                    };
                    if let Err(e) = follower.push(ev) {
                        tracing::error!(error = %e, "event dropped");
                    }
                    if fin.is_some() {
                        finished = fin;
                        break;
                    }
                }
                drop(handle);
                drop(permit);
                if finished.is_none() {
                    tracing::error!("the engine ended the run's stream without a finished event");
                }
                hub.complete(follower, record, finished, kind, accepted_at)
                    .await;
            }
            .instrument(span),
        );
        Ok(Started {
            live,
            hub: self.clone(),
        })
    }

    /// The run's permit, or `None` if it was cancelled while it waited.
    async fn wait_turn(&self, turn: Result<Permit, Ticket>, live: &LiveRun) -> Option<Permit> {
        let ticket = match turn {
            Ok(p) => return Some(p),
            Err(t) => t,
        };
        self.metrics
            .admission_queued
            .fetch_add(1, Ordering::Relaxed);
        let cancelled = async {
            while !live.cancel_requested.load(Ordering::SeqCst) {
                live.cancel_notify.notified().await;
            }
        };
        let out = tokio::select! {
            p = ticket.wait() => p,
            () = cancelled => None,
        };
        self.metrics
            .admission_queued
            .fetch_sub(1, Ordering::Relaxed);
        out
    }

    async fn complete(
        &self,
        live: Arc<LiveRun>,
        mut record: RunRecord,
        finished: Option<quire_engine::Finished>,
        kind: String,
        accepted_at: Instant,
    ) {
        let (events, status) = live.snapshot();
        record.events = events;
        record.status = if finished.is_some() {
            status
        } else {
            "error".into()
        };
        if let Some(f) = &finished {
            record.cpu_ms = f.cpu_ms;
            record.wall_ms = f.wall_ms;
            record.peak_memory_bytes = f.peak_memory_bytes;
        }
        self.metrics
            .run_finished(&record.status, &kind, accepted_at.elapsed().as_secs_f64());
        tracing::info!(status = %record.status, kind = %kind, cpu_ms = record.cpu_ms, wall_ms = record.wall_ms, "run finished");
        // A run that ran is metered with its history, in one write; one
        // cancelled in the queue used nothing.
        let (store, ws, ran) = (self.store.clone(), live.workspace, finished.is_some());
        let retention = self.retention.clone();
        let written = blocking(move || {
            if ran {
                store.finish_run(&ws, &record)?;
            } else {
                store.put_run(&ws, &record)?;
            }
            Ok(retention.apply(&store, &ws, now_ms())?)
        })
        .await;
        if let Err(e) = written {
            tracing::error!(error = %e, "run history and usage not written");
        }
        self.active().remove(&live.id);
    }

    async fn write_record(&self, ws: WorkspaceId, record: RunRecord) -> ApiResult<()> {
        let store = self.store.clone();
        blocking(move || Ok(store.put_run(&ws, &record)?)).await
    }

    /// Close the runs history still shows as `running`, which a previous
    /// server process was cut off in (a crash, `kill -9`): each gets an
    /// `internal` error and a `finished` event after what it had
    /// recorded. Call before serving. Returns how many were closed.
    ///
    /// # Errors
    /// When the store fails.
    pub fn close_interrupted(&self) -> ApiResult<usize> {
        let runs = self.store.interrupted_runs()?;
        let n = runs.len();
        for (ws, mut r) in runs {
            let next = r.events.len() as u64;
            let t_ms = r
                .events
                .last()
                .and_then(|e| e["t_ms"].as_f64())
                .unwrap_or(0.0);
            let run = r.id.clone();
            r.events.push(serde_json::json!({
                "run": run, "seq": next, "type": "error", "kind": "internal",
                "message": "the server stopped while this run was in progress; its output after the last event shown was lost",
                "t_ms": t_ms,
            }));
            r.events.push(serde_json::json!({
                "run": run, "seq": next + 1, "type": "finished", "status": "error",
                "cpu_ms": r.cpu_ms, "wall_ms": t_ms, "peak_memory_bytes": r.peak_memory_bytes, "t_ms": t_ms,
            }));
            r.status = "error".into();
            self.store.put_run(&ws, &r)?;
            tracing::warn!(workspace = %ws, run = %run, "closed a run the previous server process left running");
        }
        Ok(n)
    }

    /// The live run `run` of workspace `ws`, if it is still in the hub.
    pub fn get(&self, ws: &WorkspaceId, run: &str) -> Option<Arc<LiveRun>> {
        self.active()
            .get(run)
            .filter(|r| r.workspace == *ws)
            .cloned()
    }

    /// Live runs of one block, oldest first.
    pub fn active_for_block(&self, ws: &WorkspaceId, block: &str) -> Vec<Arc<LiveRun>> {
        let mut v: Vec<_> = self
            .active()
            .values()
            .filter(|r| r.workspace == *ws && r.block.as_deref() == Some(block))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Every run started from now on, as it starts.
    pub fn announcements(&self) -> broadcast::Receiver<Arc<LiveRun>> {
        self.announce.subscribe()
    }

    /// What workspace `ws` has running and queued in admission now.
    pub fn admission_stats(&self, ws: &WorkspaceId, now_ms: u64) -> crate::admission::LaneStats {
        self.admission.stats(ws, now_ms)
    }

    /// Bytes of data workspace `ws` stores (measured now; blocking).
    ///
    /// # Errors
    /// When the store fails.
    pub fn stored_bytes(&self, ws: &WorkspaceId) -> ApiResult<u64> {
        Ok(self.api.storage_meter().bytes(ws)?)
    }

    /// Runs accepted and not yet finished.
    pub fn active_count(&self) -> usize {
        self.active().len()
    }

    /// Resolves once [`RunHub::shutdown`] has ended every run.
    pub async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Whether new runs are accepted.
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    /// The gauges `/metrics` reports.
    pub fn gauges(&self) -> Gauges {
        let s = self.engine.stats();
        Gauges {
            active_runs: self.active_count() as u64,
            queued_runs: s.queued_runs as u64,
            runners: s.runners as u64,
            runners_lost: s.runners_lost,
            storage_bytes: self.store.size_bytes(),
        }
    }

    /// Stop accepting runs, let in-flight ones run for up to `grace`, then
    /// cancel the rest and wait until each has finished and is in history.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.accepting.store(false, Ordering::SeqCst);
        let at_start = self.active_count();
        let deadline = Instant::now() + grace;
        while self.active_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<_> = self.active().values().cloned().collect();
        for r in &left {
            r.cancel();
        }
        // A cancelled run ends within the engine's kill grace; bound the
        // wait anyway so a wedged store cannot hold shutdown forever.
        let hard = Instant::now() + Duration::from_secs(30);
        while self.active_count() > 0 && Instant::now() < hard {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stopped.send_replace(true);
        ShutdownReport {
            finished: at_start.saturating_sub(left.len()),
            cancelled: left.len(),
        }
    }
}
