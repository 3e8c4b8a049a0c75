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
use crate::error::{blocking, ServiceError, ServiceResult};
use crate::metrics::{Gauges, Metrics};
use crate::run_log::{Held, Log};

/// Bytes of stored events a follower reads at a time.
const READ_BATCH_BYTES: usize = 256 * 1024;

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
    /// Code an AI agent wrote (MCP `run_code`): it runs with the
    /// workspace's agent grants (none unless an admin set them; their
    /// writes only in a dry-run), never a block's.
    pub agent: bool,
    /// The document it runs in, when the caller names one: its
    /// `results.get` reads that document's blocks. `None` for a stored
    /// block: the first document (by id) that holds it; for unsaved
    /// source: no document.
    pub doc: Option<String>,
    /// A dry-run: its `doc`, `db` and `kv` writes are staged, not
    /// committed, and it ends with a `diff` event an editor may apply
    /// (see `quire_host_api::DryRun`).
    pub dry_run: bool,
    /// Started by the operator (`quire run`), not through a workspace's
    /// tokens: its grants and limits are given here, and the workspace's
    /// per-run quota and daily CPU do not apply. `None` for every run of
    /// the server.
    pub operator: Option<OperatorRun>,
}

/// What an operator's run brings of its own (see [`StartRun::operator`]).
#[derive(Debug, Clone)]
pub struct OperatorRun {
    /// The grants it runs with (already parsed: only `quire-host-api`
    /// builds them).
    pub grants: Grants,
    /// Its limits.
    pub limits: Limits,
    /// The file name its stack traces show.
    pub filename: Option<String>,
}

/// A stored block's engine (`v8`, else QuickJS; routes validate it on
/// write).
pub fn block_engine(engine: &str) -> EngineKind {
    EngineKind::parse(engine).unwrap_or_default()
}

/// A stored block's language (`ts`, else JavaScript; routes validate it on
/// write).
pub fn block_lang(lang: &str) -> Lang {
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
            agent: false,
            doc: None,
            dry_run: false,
            operator: None,
        }
    }
}

/// A run ready for the engine (see [`RunHub::prepare`]).
pub(crate) struct Prepared {
    pub run: RunRequest,
    pub record: RunRecord,
    /// The CPU limit the day's quota cut this run's to, if it did.
    pub cut_by_day: Option<u64>,
    pub cpu_ms_per_day: u64,
    /// The day's CPU left when the run started (`None` for an operator's
    /// run, which no daily quota limits): its meters show what is left.
    pub cpu_day_left_ms: Option<f64>,
    /// The results the run reads (for its provenance).
    pub reads: quire_host_api::ResultReads,
    /// A dry-run's staged writes.
    pub dry: Option<quire_host_api::DryRun>,
    /// Its workspace (dependents re-run in it).
    pub workspace: Workspace,
}

/// What lets a run into the engine.
pub(crate) enum Slot {
    /// This process's admission: a permit now, or a ticket to wait on.
    Local(Result<Permit, Ticket>),
    /// A permit held.
    Held(Permit),
    /// The shared queue's claim, released when its history is written.
    Queue(crate::cluster::QueueSlot),
}

/// What a live follower gets next (see [`LiveRun::next_output`]).
#[derive(Debug)]
pub enum Followed {
    /// Events, in order, from the cursor on.
    Events(Vec<Arc<str>>),
    /// The latest live meter (it does not move the cursor).
    Meter(Arc<str>),
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
    /// Where its output comes from (see [`crate::dataflow::provenance`];
    /// the results it read are added as it finishes).
    provenance: Mutex<Value>,
    /// Start time, milliseconds since the Unix epoch.
    pub started_ms: u64,
    log: Mutex<Log>,
    store: Store,
    changed: watch::Sender<usize>,
    /// The run's latest live meter (not in the log; see
    /// [`quire_engine::Meter`]).
    meter: watch::Sender<Option<Arc<str>>>,
    /// Set once the run holds an admission permit and is in the engine.
    canceller: Mutex<Option<Canceller>>,
    /// Waiting in admission for a permit.
    waiting: AtomicBool,
    cancel_requested: AtomicBool,
    cancel_notify: tokio::sync::Notify,
    /// Set once its history (record, events, usage) is written.
    recorded: AtomicBool,
    /// Runs in another process: its events are read from the store
    /// (see [`crate::cluster`]).
    pub(crate) remote: AtomicBool,
    /// Its worker lost the lease: it is cancelled and its history left
    /// to the process that reaped it.
    pub(crate) lost: AtomicBool,
    /// Announced to block subscribers (once, whoever learns of it first:
    /// this process's start, or another process's over NATS).
    announced: AtomicBool,
}

impl LiveRun {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `max` serialized events from seq `from`, and whether the run
    /// has finished (its last event is in the log); events the log no
    /// longer holds are read from the store.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn read_from(&self, from: usize, max: usize) -> ServiceResult<(Vec<Arc<str>>, bool)> {
        let (held, finished) = {
            let log = self.lock();
            (log.held_from(from, max), log.status.is_some())
        };
        let lines = match held {
            Held::Lines(l) => l,
            Held::Stored => {
                let (store, ws, id) = (self.store.clone(), self.workspace, self.id.clone());
                let page = blocking(move || {
                    Ok(store.run_events(&ws, &id, from as u64, READ_BATCH_BYTES)?)
                })
                .await?;
                page.lines.into_iter().take(max).map(Arc::from).collect()
            }
        };
        Ok((lines, finished))
    }

    /// The next events from seq `cursor` on, up to `max`, waiting (on
    /// `changed`, from [`LiveRun::watch`]) while there are none yet;
    /// `None` once the run has finished and every event was read. What a
    /// follower loops on, whatever it forwards to.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn next_events(
        &self,
        cursor: usize,
        max: usize,
        changed: &mut watch::Receiver<usize>,
    ) -> ServiceResult<Option<Vec<Arc<str>>>> {
        loop {
            let (batch, finished) = self.read_from(cursor, max).await?;
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
            if finished || changed.changed().await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Like [`LiveRun::next_events`], and the run's live meters as they
    /// change (`meters` from [`LiveRun::meters`]; a follower slower than
    /// the meters gets the latest one). What a live follower loops on.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn next_output(
        &self,
        cursor: usize,
        max: usize,
        changed: &mut watch::Receiver<usize>,
        meters: &mut watch::Receiver<Option<Arc<str>>>,
    ) -> ServiceResult<Option<Followed>> {
        // A follower still catching up gets no meters (they would be
        // ahead of it, and would restart its reads of the store).
        let caught_up = cursor >= self.lock().len();
        loop {
            tokio::select! {
                biased;
                next = self.next_events(cursor, max, changed) => {
                    return Ok(next?.map(Followed::Events));
                }
                Ok(()) = meters.changed(), if caught_up => {
                    if let Some(line) = meters.borrow_and_update().clone() {
                        return Ok(Some(Followed::Meter(line)));
                    }
                }
            }
        }
    }

    /// Serialized events from seq `from`, about `max_bytes` of them (at least one
    /// when there is one), and the seq after the last when there are
    /// more so far. Reads the store for events the log no longer holds
    /// (call off the async threads).
    ///
    /// # Errors
    /// When the store fails.
    pub fn page(
        &self,
        from: usize,
        max_bytes: usize,
    ) -> ServiceResult<(Vec<Arc<str>>, Option<u64>)> {
        // Memory first: what it drops after this was stored before.
        let held = self.lock().held_bytes_from(from, max_bytes);
        let lines: Vec<Arc<str>> = match held {
            Held::Lines(l) => l,
            Held::Stored => {
                let page =
                    self.store
                        .run_events(&self.workspace, &self.id, from as u64, max_bytes)?;
                let bytes: usize = page.lines.iter().map(String::len).sum();
                let done = page.next.is_none();
                let mut lines: Vec<Arc<str>> = page.lines.into_iter().map(Arc::from).collect();
                let next = from + lines.len();
                if done && bytes < max_bytes {
                    // The rest is held (what is not stored always is),
                    // unless more was stored and dropped meanwhile.
                    if let Held::Lines(more) = self.lock().held_bytes_from(next, max_bytes - bytes)
                    {
                        lines.extend(more);
                    }
                }
                lines
            }
        };
        let end = from + lines.len();
        let more = end < self.lock().len();
        Ok((lines, more.then_some(end as u64)))
    }

    /// Every event so far and the status (a whole run in memory: for
    /// tests and tools; servers read [`LiveRun::page`]).
    ///
    /// # Panics
    /// Never on purpose: a store failure gives the events held.
    pub fn snapshot(&self) -> (Vec<Value>, String) {
        let status = self.status();
        let lines = self.page(0, usize::MAX).map(|p| p.0).unwrap_or_default();
        let events = lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (events, status)
    }

    /// `queued` (waiting for admission), `running`, `ok` or `error`.
    pub fn status(&self) -> String {
        let queued = self.is_queued();
        self.lock().status.clone().unwrap_or_else(|| {
            if queued {
                "queued".into()
            } else {
                "running".into()
            }
        })
    }

    /// The `result` event's value (null when none), the first error's
    /// `{kind, message}` (null when none), and the `finished` event (null
    /// until it arrives).
    pub fn outcome(&self) -> (Value, Value, Value) {
        let log = self.lock();
        let parse = |l: &Option<Arc<str>>| {
            l.as_deref()
                .and_then(|l| serde_json::from_str::<Value>(l).ok())
                .unwrap_or(Value::Null)
        };
        (
            parse(&log.result)["value"].clone(),
            log.error.clone(),
            parse(&log.finished),
        )
    }

    /// Ticks with the number of events each time one arrives.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.changed.subscribe()
    }

    /// Whether the run still waits for admission (its workspace is at
    /// `max_concurrent_runs`, or the server at `max_active_runs`).
    pub fn is_queued(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Wait until the run has finished and its history is written (its
    /// usage counts against its workspace's quotas from then on).
    pub async fn finished(&self) {
        let mut rx = self.watch();
        loop {
            if self.recorded.load(Ordering::SeqCst) {
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

    /// Whether a cancel was asked for.
    pub(crate) fn cancel_was_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }

    /// Resolves when a cancel is asked for (after this is first polled).
    pub(crate) async fn cancel_notified(&self) {
        self.cancel_notify.notified().await;
    }

    /// Mark the run as waiting for admission or not.
    pub(crate) fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::SeqCst);
    }

    /// Take an event read from the store (a run of another process).
    pub(crate) fn push_stored(&self, line: Arc<str>, body: &EventBody) {
        let n = {
            let mut log = self.lock();
            if !self.remote.load(Ordering::SeqCst) {
                return; // a worker of this process feeds it now
            }
            let n = log.push(line, body);
            log.stored_up_to(n);
            n
        };
        self.changed.send_replace(n);
    }

    /// The first `n` events are in the store (written by the run's worker
    /// in another process): the log may let go of them as it does of its
    /// own stored events, so a relayed run holds about a tail in memory.
    pub(crate) fn stored_elsewhere(&self, n: usize) {
        self.lock().stored_up_to(n);
    }

    /// A worker of this process takes over a run it followed from
    /// elsewhere: from now on only its own pump feeds the log (checked
    /// under the log's lock, so no relayed event lands after this).
    pub(crate) fn take_over(&self) {
        let _log = self.lock();
        self.remote.store(false, Ordering::SeqCst);
    }

    /// Attach the engine's canceller once the run is admitted; a cancel
    /// that came first is passed on.
    pub(crate) fn admitted(&self, c: Canceller) {
        let mut slot = self.canceller.lock().unwrap_or_else(|e| e.into_inner());
        if self.cancel_requested.load(Ordering::SeqCst) {
            c.cancel();
        }
        *slot = Some(c);
    }

    /// The events of a run cancelled before it was admitted.
    pub(crate) fn cancelled_in_queue(&self, waited_ms: f64) -> Vec<RunEvent> {
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

    pub(crate) fn push_all(&self, events: Vec<RunEvent>) {
        for ev in events {
            if let Err(e) = self.push(ev) {
                tracing::error!(error = %e, "event dropped");
            }
        }
    }

    /// Where its output comes from (see [`crate::dataflow::provenance`]).
    pub fn provenance(&self) -> Value {
        self.provenance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The run's latest live meter as it changes: followers forward it
    /// beside the events (it is not in the log, and not stored).
    pub fn meters(&self) -> watch::Receiver<Option<Arc<str>>> {
        self.meter.subscribe()
    }

    /// Take event `ev`; its line, and `false` when it was a live meter
    /// (kept as the latest meter, not logged: not for other processes).
    pub(crate) fn push(&self, ev: RunEvent) -> ServiceResult<(Arc<str>, bool)> {
        let line: Arc<str> = serde_json::to_string(&ev)
            .map_err(|e| ServiceError::Internal(format!("event did not serialize: {e}")))?
            .into();
        if matches!(&ev.body, EventBody::Meter(m) if !m.last) {
            self.meter.send_replace(Some(line.clone()));
            return Ok((line, false));
        }
        let n = self.lock().push(line.clone(), &ev.body);
        self.changed.send_replace(n);
        Ok((line, true))
    }

    /// Take an event relayed from another process (over NATS): held in
    /// memory, never stored from here (its worker stores it).
    pub(crate) fn push_relayed(&self, line: Arc<str>, body: &EventBody) {
        let n = {
            let mut log = self.lock();
            if !self.remote.load(Ordering::SeqCst) {
                return; // a worker of this process feeds it now
            }
            log.push(line, body)
        };
        self.changed.send_replace(n);
    }

    /// Append the events not stored yet to the run's stored events.
    pub(crate) async fn store_events(&self) {
        let (from, lines) = self.lock().unstored();
        if lines.is_empty() {
            return;
        }
        let n = lines.len();
        let (store, ws, id) = (self.store.clone(), self.workspace, self.id.clone());
        let written =
            blocking(move || Ok(store.append_run_events(&ws, &id, from as u64, &lines)?)).await;
        match written {
            Ok(_) => self.lock().stored_up_to(from + n),
            Err(e) => tracing::error!(error = %e, "run events not stored; will retry"),
        }
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
        self.hub.announce(&self.live);
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

/// Starts runs and keeps their live logs (see the module docs).
pub struct RunHub {
    engine: Arc<Engine>,
    admission: Arc<Admission>,
    pub(crate) api: HostApi,
    pub(crate) store: Store,
    metrics: Arc<Metrics>,
    limits: Limits,
    active: Mutex<HashMap<String, Arc<LiveRun>>>,
    announce: broadcast::Sender<Arc<LiveRun>>,
    accepting: AtomicBool,
    stopped: watch::Sender<bool>,
    retention: Arc<crate::retention::Retention>,
    /// Runs go through the shared queue (a deployment on PostgreSQL).
    pub(crate) cluster: Option<crate::cluster::Cluster>,
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
        Self::build(engine, api, store, metrics, limits, max_active_runs, None)
    }

    /// [`RunHub::new`], or with `cluster` a hub of one process of a
    /// cluster: runs it starts are enqueued in the shared queue
    /// (`cluster.queue`), and, when it has the worker role,
    /// [`crate::cluster::work`] runs what it claims from there.
    pub fn with_cluster(
        engine: Arc<Engine>,
        api: HostApi,
        store: Store,
        metrics: Arc<Metrics>,
        limits: Limits,
        max_active_runs: usize,
        cluster: Option<crate::cluster::ClusterConfig>,
    ) -> Arc<Self> {
        let cluster = cluster.map(|c| crate::cluster::Cluster::new(c, max_active_runs));
        Self::build(
            engine,
            api,
            store,
            metrics,
            limits,
            max_active_runs,
            cluster,
        )
    }

    fn build(
        engine: Arc<Engine>,
        api: HostApi,
        store: Store,
        metrics: Arc<Metrics>,
        limits: Limits,
        max_active_runs: usize,
        cluster: Option<crate::cluster::Cluster>,
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
            cluster,
        })
    }

    pub(crate) fn active(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The quota that applies to `ws` now: what its admins set (or the
    /// defaults), cut down to the server's ceilings.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn quota(&self, ws: WorkspaceId) -> ServiceResult<Quota> {
        let store = self.store.clone();
        blocking(move || {
            let ceilings = store.quota_ceilings()?;
            Ok(store.get_quota(&ws)?.unwrap_or_default().within(&ceilings))
        })
        .await
    }

    /// Check the workspace's quotas and take its place in admission.
    async fn admit(&self, ws: WorkspaceId, operator: bool) -> ServiceResult<(Ticket, Quota, f64)> {
        let (quota, cpu_left_ms) = self.day_check(ws, operator).await?;
        let ticket = self.admission.request(ws, &quota, now_ms()).map_err(|e| {
            self.metrics.runs_rejected.fetch_add(1, Ordering::Relaxed);
            ServiceError::Quota(e)
        })?;
        Ok((ticket, quota, cpu_left_ms))
    }

    /// The quota that applies to `ws` and the CPU it has left today;
    /// refused when the day's CPU is used up (unless an operator runs it).
    pub(crate) async fn day_check(
        &self,
        ws: WorkspaceId,
        operator: bool,
    ) -> ServiceResult<(Quota, f64)> {
        let quota = self.quota(ws).await?;
        let now = now_ms();
        let store = self.store.clone();
        let used = blocking(move || Ok(store.usage_day(&ws, utc_day(now))?.cpu_ms)).await?;
        if !operator && used >= quota.cpu_ms_per_day as f64 {
            return Err(self.refused(QuotaRefusal {
                quota: "cpu_ms_per_day",
                limit: quota.cpu_ms_per_day,
                resets_at_ms: Some((u64::from(utc_day(now)) + 1) * 86_400_000),
                message: format!(
                    "the workspace used {used:.0} ms of CPU today, its quota of {} ms per day; it resets at 00:00 UTC",
                    quota.cpu_ms_per_day
                ),
            }));
        }
        Ok((quota, quota.cpu_ms_per_day as f64 - used))
    }

    /// Count a refusal and make it the error.
    pub(crate) fn refused(&self, r: QuotaRefusal) -> ServiceError {
        self.metrics.runs_rejected.fetch_add(1, Ordering::Relaxed);
        ServiceError::Quota(r)
    }

    /// The limits of one run under `quota`, with `cpu_left_ms` of the
    /// day's CPU left: the quota's per-run limits, and the server's for
    /// the rest.
    pub(crate) fn limits_for(&self, quota: &Quota, cpu_left_ms: f64) -> Limits {
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
    pub(crate) fn grants_for(&self, req: &StartRun) -> ServiceResult<Grants> {
        if let Some(op) = &req.operator {
            return Ok(op.grants.clone());
        }
        if req.agent {
            // Checked again here: what is stored may predate the rule.
            return quire_host_api::agent_grants(&req.workspace.agent_grants, req.dry_run)
                .map_err(|e| ServiceError::field("agent_grants", e));
        }
        let Some(b) = &req.block else {
            return Ok(Grants::none());
        };
        let grants =
            Grants::parse(&b.grants).map_err(|e| ServiceError::field("grants", e.to_string()))?;
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
    /// 503 while shutting down; 429 ([`ServiceError::Quota`]) when a quota
    /// refuses it; 400 if the block's stored grants do not parse; 500 if
    /// history cannot be written.
    pub async fn start(self: &Arc<Self>, req: StartRun) -> ServiceResult<Started> {
        if !self.accepting.load(Ordering::SeqCst) {
            self.metrics.runs_rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ServiceError::ShuttingDown);
        }
        // Every way of starting a run (HTTP, WebSocket, webhooks,
        // schedules) passes here.
        quire_engine::check_depth("input", &req.input, 0)
            .map_err(|m| ServiceError::field("input", m))?;
        let grants = self.grants_for(&req)?;
        if let (Some(cluster), None) = (&self.cluster, &req.operator) {
            return crate::cluster::enqueue(self, cluster, req, grants).await;
        }
        let ws = req.workspace.id;
        let (ticket, quota, cpu_left_ms) = self.admit(ws, req.operator.is_some()).await?;
        let id = match req.run_id.clone() {
            Some(id) => id,
            None => self.new_run_id().await?,
        };
        let scope = crate::dataflow::doc_scope(&self.store, &req).await?;
        let prepared = self.prepare(req, (grants, scope), &quota, cpu_left_ms, id, "running");
        self.write_record(ws, prepared.record.clone()).await?;
        let mut ticket = ticket;
        let turn = ticket.try_now().ok_or(ticket);
        let live = self.new_live(&prepared.record, ws, turn.is_err());
        self.active().insert(live.id.clone(), live.clone());
        self.launch(live.clone(), prepared, Slot::Local(turn), Instant::now());
        Ok(Started {
            live,
            hub: self.clone(),
        })
    }

    /// A fresh run id.
    pub(crate) async fn new_run_id(&self) -> ServiceResult<String> {
        let store = self.store.clone();
        blocking(move || Ok(store.new_id()?)).await
    }

    /// The history record, limits and engine request of run `id` of `req`
    /// with its grants and document scope, under `quota` with
    /// `cpu_left_ms` of the day's CPU left, recorded with `status`.
    pub(crate) fn prepare(
        &self,
        req: StartRun,
        (grants, scope): (Grants, Option<quire_host_api::DocScope>),
        quota: &Quota,
        cpu_left_ms: f64,
        id: String,
        status: &str,
    ) -> Prepared {
        let ws = req.workspace.id;
        let (limits, cut_by_day) = match &req.operator {
            Some(op) => (op.limits.clone(), None),
            None => {
                let limits = self.limits_for(quota, cpu_left_ms);
                // The day's CPU quota, not the per-run limit, set this
                // run's CPU limit: a run that reaches it is told so.
                let cut = (limits.cpu_time_ms < quota.cpu_ms_per_run).then_some(limits.cpu_time_ms);
                (limits, cut)
            }
        };
        let record = RunRecord {
            id: id.clone(),
            block: req.block.as_ref().map(|b| b.id.clone()),
            trigger: req.trigger.clone(),
            request: serde_json::json!({
                "lang": req.lang,
                "input": req.input,
                "grants": grants.to_strings(),
                "grants_suspended": grants.suspended(),
                "limits": limits,
                "source_bytes": req.source.len(),
            }),
            status: status.into(),
            events: vec![],
            error: Value::Null,
            cpu_ms: 0.0,
            wall_ms: 0.0,
            peak_memory_bytes: 0,
            started_ms: now_ms(),
            provenance: Value::Null,
        };
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
        let doc = scope.as_ref().map(|s| s.doc().to_string());
        let mut record = record;
        record.provenance = crate::dataflow::provenance(&req, engine, &grants, doc.as_deref());
        let session = SessionQuota {
            storage_bytes: Some(quota.storage_bytes),
        };
        let (host, reads, dry) = if req.dry_run {
            let (host, reads, dry) = self.api.dry_run_session(ws, grants, session, scope);
            (host, reads, Some(dry))
        } else {
            let (host, reads) = self.api.session_in(ws, grants, session, scope);
            (host, reads, None)
        };
        if dry.is_some() {
            record.request["mode"] = Value::from("dry_run");
        }
        let host = CountingHost::wrap(host, self.metrics.clone());
        let mut run = RunRequest::new(req.source, req.lang)
            .with_engine(engine)
            .with_input(req.input)
            .with_limits(limits)
            .with_host(host);
        run.run_id = Some(id);
        run.trigger = Some(req.trigger);
        run.workspace = Some(req.workspace.name.clone());
        run.block = match &req.block {
            Some(b) => serde_json::json!({"id": b.id, "name": b.name}),
            None => Value::Null,
        };
        run.filename = match &req.operator {
            Some(op) => op.filename.clone(),
            None => req
                .block
                .as_ref()
                .map(|b| format!("{}.{}", b.id, req.lang.as_str())),
        };
        Prepared {
            run,
            record,
            cut_by_day,
            cpu_ms_per_day: quota.cpu_ms_per_day,
            cpu_day_left_ms: req.operator.is_none().then_some(cpu_left_ms.max(0.0)),
            reads,
            dry,
            workspace: req.workspace,
        }
    }

    /// A live log for the run `record` describes, `queued` or not.
    pub(crate) fn new_live(
        &self,
        record: &RunRecord,
        ws: WorkspaceId,
        queued: bool,
    ) -> Arc<LiveRun> {
        let (changed, _) = watch::channel(0);
        Arc::new(LiveRun {
            id: record.id.clone(),
            workspace: ws,
            block: record.block.clone(),
            trigger: record.trigger.clone(),
            request: record.request.clone(),
            provenance: Mutex::new(record.provenance.clone()),
            started_ms: record.started_ms,
            log: Mutex::new(Log::default()),
            store: self.store.clone(),
            changed,
            meter: watch::channel(None).0,
            canceller: Mutex::new(None),
            waiting: AtomicBool::new(queued),
            cancel_requested: AtomicBool::new(false),
            cancel_notify: tokio::sync::Notify::new(),
            recorded: AtomicBool::new(false),
            remote: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            announced: AtomicBool::new(false),
        })
    }

    /// Run `prepared` once `slot` lets it, feeding `live`; its history is
    /// written when it ends.
    pub(crate) fn launch(
        self: &Arc<Self>,
        live: Arc<LiveRun>,
        prepared: Prepared,
        slot: Slot,
        accepted_at: Instant,
    ) {
        let hub = self.clone();
        let span = tracing::info_span!("run", workspace = %live.workspace, run = %live.id);
        tokio::spawn(
            async move {
                let Prepared {
                    run,
                    mut record,
                    cut_by_day,
                    cpu_ms_per_day,
                    cpu_day_left_ms,
                    reads,
                    dry,
                    workspace,
                } = prepared;
                let held = match slot {
                    Slot::Local(turn) => match hub.wait_turn(turn, &live).await {
                        Some(p) => Slot::Held(p),
                        None => {
                            tracing::debug!("run cancelled while queued");
                            let waited = accepted_at.elapsed().as_secs_f64() * 1000.0;
                            live.push_all(live.cancelled_in_queue(waited));
                            hub.complete(live, record, None, "cancelled".into(), accepted_at)
                                .await;
                            return;
                        }
                    },
                    other => other,
                };
                tracing::debug!("run started");
                live.waiting.store(false, Ordering::SeqCst);
                let handle = hub.engine.run(run);
                live.admitted(handle.canceller());
                let events = handle.events().clone();
                let mut kind = String::new();
                let mut finished = None;
                loop {
                    let deadline = live.lock().store_deadline();
                    let next = match deadline {
                        Some(d) => {
                            let d = tokio::time::Instant::from_std(d);
                            match tokio::time::timeout_at(d, events.recv_async()).await {
                                Ok(next) => next,
                                Err(_) => {
                                    live.store_events().await;
                                    continue;
                                }
                            }
                        }
                        None => events.recv_async().await,
                    };
                    let Ok(mut ev) = next else { break };
                    if let (EventBody::Meter(m), Some(left)) = (&mut ev.body, cpu_day_left_ms) {
                        m.cpu_day_left_ms = Some((left - m.cpu_ms).max(0.0));
                    }
                    if let (EventBody::Error(e), Some(left)) = (&mut ev.body, cut_by_day) {
                        if e.kind == quire_engine::ErrorKind::CpuLimit {
                            e.message = format!(
                                "{}: only {left} ms were left of today's CPU quota ({cpu_ms_per_day} ms a day)",
                                e.message
                            );
                        }
                    }
                    if let EventBody::Error(e) = &ev.body {
                        kind = e.kind.as_str().to_string();
                    }
                    let fin = match &ev.body {
                        EventBody::Finished(f) => Some(f.clone()),
                        _ => None,
                    };
                    if let (Some(f), Some(dry)) = (&fin, &dry) {
                        // The diff is filed, then shown, before `finished`.
                        let diff = hub.file_diff(live.workspace, &live.id, dry, f).await;
                        let at = ev.seq;
                        ev.seq += 1;
                        let diff = RunEvent { run: ev.run.clone(), seq: at, body: EventBody::Diff(diff), t_ms: ev.t_ms };
                        if let (Ok((line, true)), Slot::Queue(q)) = (live.push(diff), &held) {
                            q.publish(&live, &line).await;
                        }
                    }
                    if fin.is_some() {
                        // Before `finished` is out: whoever sees the run
                        // ended sees what it read.
                        let upstream = serde_json::to_value(reads.reads()).unwrap_or_default();
                        if let Some(p) = record.provenance.as_object_mut() {
                            p.insert("upstream".into(), upstream);
                        }
                        *live.provenance.lock().unwrap_or_else(|e| e.into_inner()) =
                            record.provenance.clone();
                    }
                    match (live.push(ev), &held) {
                        (Ok((line, true)), Slot::Queue(q)) => q.publish(&live, &line).await,
                        (Ok(_), _) => {}
                        (Err(e), _) => tracing::error!(error = %e, "event dropped"),
                    }
                    if live.lock().store_due() {
                        live.store_events().await;
                    }
                    if fin.is_some() {
                        finished = fin;
                        break;
                    }
                }
                drop(handle);
                if finished.is_none() {
                    tracing::error!("the engine ended the run's stream without a finished event");
                }
                let id = live.id.clone();
                let rerun = dependents_of(&record, finished.as_ref(), &live);
                match held {
                    Slot::Queue(q) => {
                        // A lease that lapsed (renewals failing) may have
                        // been reaped and the run closed elsewhere.
                        if !q.still_held(&id).await {
                            live.lost.store(true, Ordering::SeqCst);
                        }
                        hub.complete(live, record, finished, kind, accepted_at).await;
                        q.release(&id).await;
                    }
                    Slot::Held(permit) => {
                        // The slot frees as the engine is done with it.
                        drop(permit);
                        hub.complete(live, record, finished, kind, accepted_at).await;
                    }
                    Slot::Local(_) => {
                        hub.complete(live, record, finished, kind, accepted_at).await;
                    }
                }
                if let Some((doc, block)) = rerun {
                    tokio::spawn(crate::dataflow::rerun_dependents(
                        hub.clone(),
                        workspace,
                        doc,
                        block,
                        id,
                    ));
                }
            }
            .instrument(span),
        );
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

    pub(crate) async fn complete(
        &self,
        live: Arc<LiveRun>,
        mut record: RunRecord,
        finished: Option<quire_engine::Finished>,
        kind: String,
        accepted_at: Instant,
    ) {
        if live.lost.load(Ordering::SeqCst) {
            // Its worker lost the lease: another process closed it, unless
            // this worker's own `running` record landed after that close
            // (a worker starved between starting the run and recording
            // it); then it closes it itself.
            tracing::warn!("the run's lease was lost; its history was closed elsewhere");
            let (store, ws, id) = (self.store.clone(), live.workspace, live.id.clone());
            let open = blocking(move || {
                Ok(store
                    .get_run_head(&ws, &id)?
                    .is_some_and(|h| h.status == "running" || h.status == "queued"))
            })
            .await;
            if matches!(open, Ok(true)) {
                let why = "this worker lost the run's lease (its renewals came too late) and stopped it; its output after the last event shown was lost";
                let (store, ws, id) = (self.store.clone(), live.workspace, live.id.clone());
                if let Err(e) = blocking(move || close_run(&store, ws, &id, why)).await {
                    tracing::error!(error = %e, "could not close a run whose lease was lost");
                }
            }
            self.active().remove(&live.id);
            live.recorded.store(true, Ordering::SeqCst);
            live.changed.send_modify(|_| {});
            return;
        }
        live.store_events().await;
        let (_, error, _) = live.outcome();
        record.error = error;
        record.status = if finished.is_some() {
            live.status()
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
        live.recorded.store(true, Ordering::SeqCst);
        live.changed.send_modify(|_| {});
    }

    pub(crate) async fn write_record(
        &self,
        ws: WorkspaceId,
        record: RunRecord,
    ) -> ServiceResult<()> {
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
    pub fn close_interrupted(&self) -> ServiceResult<usize> {
        if self.cluster.is_some() {
            // Other processes' runs are `running` too: their leases, not
            // a restart, say when one is lost (see `crate::cluster`).
            return Ok(0);
        }
        let runs = self.store.interrupted_runs()?;
        let n = runs.len();
        let message = "the server stopped while this run was in progress; its output after the last event shown was lost";
        for (ws, r) in runs {
            let run = r.id.clone();
            self.close_record(ws, r, message)?;
            tracing::warn!(workspace = %ws, run = %run, "closed a run the previous server process left running");
        }
        Ok(n)
    }

    /// Close run `run` of `ws` in history with an `internal` error saying
    /// `message` (a run its worker lost, or one that cannot run); a run
    /// with no record yet gets one.
    ///
    /// # Errors
    /// When the store fails.
    pub(crate) fn close_run(&self, ws: WorkspaceId, run: &str, message: &str) -> ServiceResult<()> {
        close_run(&self.store, ws, run, message)
    }

    fn close_record(&self, ws: WorkspaceId, r: RunRecord, message: &str) -> ServiceResult<()> {
        close_record(&self.store, ws, r, message)
    }
}

/// See [`RunHub::close_run`].
pub(crate) fn close_run(
    store: &Store,
    ws: WorkspaceId,
    run: &str,
    message: &str,
) -> ServiceResult<()> {
    let r = store
        .get_run_head(&ws, run)?
        .unwrap_or_else(|| RunRecord::queued(run.to_string(), None, Value::Null, now_ms()));
    close_record(store, ws, r, message)
}

/// Append an `internal` error saying `message` and a `finished` event
/// after what `r` recorded, and record it as `error`.
fn close_record(
    store: &Store,
    ws: WorkspaceId,
    mut r: RunRecord,
    message: &str,
) -> ServiceResult<()> {
    let run = r.id.clone();
    let mut next = store.run_event_totals(&ws, &run)?.events;
    let mut last = store.last_run_event(&ws, &run)?;
    // A record from before events were stored apart holds them.
    let legacy = match next {
        0 => store
            .get_run(&ws, &run)?
            .map(|f| f.events)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if !legacy.is_empty() {
        next = legacy.len() as u64;
        last = legacy.last().cloned();
    }
    if let Some(fin) = last.as_ref().filter(|e| e["type"] == "finished") {
        // It ended; only its record was not written (its worker died
        // between the two): record it as it ended, adding nothing.
        r.status = fin["status"].as_str().unwrap_or("error").to_string();
        r.cpu_ms = fin["cpu_ms"].as_f64().unwrap_or(0.0);
        r.wall_ms = fin["wall_ms"].as_f64().unwrap_or(0.0);
        r.peak_memory_bytes = fin["peak_memory_bytes"].as_u64().unwrap_or(0);
        if r.error.is_null() {
            let events = store.all_run_events(&ws, &run)?;
            r.error = quire_storage::error_of(&events);
        }
        store.finish_run(&ws, &r)?;
        return Ok(());
    }
    let t_ms = last
        .as_ref()
        .and_then(|e| e["t_ms"].as_f64())
        .unwrap_or(0.0);
    let closing = [
            serde_json::json!({
                "run": run, "seq": next, "type": "error", "kind": "internal",
                "message": message, "t_ms": t_ms,
            }),
            serde_json::json!({
                "run": run, "seq": next + 1, "type": "finished", "status": "error",
                "cpu_ms": r.cpu_ms, "wall_ms": t_ms, "peak_memory_bytes": r.peak_memory_bytes, "t_ms": t_ms,
            }),
        ]
        .map(|e| e.to_string());
    if legacy.is_empty() {
        store.append_run_events(&ws, &run, next, &closing)?;
    } else {
        // Written with its events, the record's move to chunks.
        r.events = legacy;
        r.events
            .extend(closing.iter().filter_map(|l| serde_json::from_str(l).ok()));
    }
    if r.error.is_null() {
        r.error = serde_json::json!({"kind": "internal", "message": message});
    }
    r.status = "error".into();
    store.put_run(&ws, &r)?;
    Ok(())
}

impl RunHub {
    /// The store runs are recorded in.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// `live` just started; announced to subscribers when dropped.
    pub(crate) fn started(self: &Arc<Self>, live: Arc<LiveRun>) -> Started {
        Started {
            live,
            hub: self.clone(),
        }
    }

    /// A run of another process ended (its history is final): followers
    /// are told, and the hub lets it go.
    pub(crate) fn forget(&self, live: &LiveRun) {
        self.active().remove(&live.id);
        live.recorded.store(true, Ordering::SeqCst);
        live.changed.send_modify(|_| {});
    }

    /// The live run `run` of workspace `ws`: in this process, or (in a
    /// cluster) queued or running in another, followed from its stored
    /// events. `None` when it is neither (finished, or not `ws`'s).
    ///
    /// # Errors
    /// When the store or the queue fails.
    pub async fn attach(
        self: &Arc<Self>,
        ws: WorkspaceId,
        run: &str,
    ) -> ServiceResult<Option<Arc<LiveRun>>> {
        if let Some(l) = self.get(&ws, run) {
            return Ok(Some(l));
        }
        match &self.cluster {
            Some(c) => crate::cluster::attach(self, c, ws, run).await,
            None => Ok(None),
        }
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

    /// Every run started from now on, as it starts (in a cluster with
    /// NATS, also runs of watched blocks started elsewhere; see
    /// [`RunHub::watch_block`]).
    pub fn announcements(&self) -> broadcast::Receiver<Arc<LiveRun>> {
        self.announce.subscribe()
    }

    /// Tell block subscribers about `live`, once.
    pub(crate) fn announce(&self, live: &Arc<LiveRun>) {
        if !live.announced.swap(true, Ordering::SeqCst) {
            let _ = self.announce.send(live.clone());
        }
    }

    /// Someone here subscribes to block `block` of `ws`: in a cluster with
    /// NATS, runs of it started through other processes are announced
    /// too, while the returned guard lives.
    pub async fn watch_block(
        self: &Arc<Self>,
        ws: WorkspaceId,
        block: &str,
    ) -> Option<crate::cluster::BlockWatch> {
        let c = self.cluster.as_ref()?;
        crate::cluster::watch_block(self, c, ws, block).await
    }

    /// What workspace `ws` has running and queued in admission now (in a
    /// cluster, in the shared queue; blocking).
    ///
    /// # Errors
    /// When the queue cannot be read.
    pub fn admission_stats(
        &self,
        ws: &WorkspaceId,
        now_ms: u64,
    ) -> ServiceResult<crate::admission::LaneStats> {
        Ok(match &self.cluster {
            Some(c) => {
                let n = c.queue().counts(ws)?;
                crate::admission::LaneStats {
                    running: n.running,
                    queued: n.queued,
                    last_minute: n.last_minute,
                }
            }
            None => self.admission.stats(ws, now_ms),
        })
    }

    /// Bytes of data workspace `ws` stores (measured now; blocking).
    ///
    /// # Errors
    /// When the store fails.
    pub fn stored_bytes(&self, ws: &WorkspaceId) -> ServiceResult<u64> {
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
        // Runs of other processes go on there; this one stops following.
        self.active()
            .retain(|_, l| !l.remote.load(Ordering::SeqCst));
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

/// The document and block whose dependents re-run after this run: a run
/// of a stored block, in a document, that finished `ok`, and was not
/// itself started by an upstream block (those re-runs are already in
/// order).
fn dependents_of(
    record: &RunRecord,
    finished: Option<&quire_engine::Finished>,
    live: &LiveRun,
) -> Option<(Option<String>, String)> {
    let ok = finished.is_some_and(|f| f.status == quire_engine::RunStatus::Ok)
        && !live.lost.load(Ordering::SeqCst)
        && record.request["mode"] != "dry_run";
    let by_upstream = record.trigger["kind"] == crate::dataflow::DATAFLOW_TRIGGER;
    let doc = record.provenance["doc"].as_str().map(String::from);
    (ok && !by_upstream).then(|| Some((doc, record.block.clone()?)))?
}
