//! Several quire processes serving one deployment on PostgreSQL (issue
//! 18), through the store's shared run queue ([`quire_storage::RunQueue`]).
//!
//! - **api** role: [`crate::RunHub::start`] files the run in history as
//!   `queued` and enqueues it (the quota check and the workspace's place
//!   in line commit together, in the queue). The caller gets a
//!   [`LiveRun`] that follows the run's *stored* events, wherever it runs;
//!   cancelling it dequeues the run or flags it for its worker.
//! - **worker** role: [`work`] claims runs while this process has room
//!   (`max_active_runs`), renews their leases, passes on cancels, and
//!   closes in history the runs of workers whose leases ran out.
//!   A run enqueued and claimed by the same process is followed from
//!   memory, as on one machine.
//! - **scheduler** role: the scheduler (see [`crate::scheduler`]), whose
//!   runs are enqueued like any other.
//!
//! Live following across processes: with NATS ([`ClusterConfig::bus`])
//! the worker publishes every event as it comes and the api process
//! relays them (see [`crate::bus`]); without it, or when NATS loses
//! some, a follower reads what the worker stored: events reach the store
//! in batches at least every [`crate::run_log::STORE_AFTER`], polled
//! every [`ClusterConfig::follow_poll`] and at once on every queue
//! notification (a run's end sends one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use quire_engine::{EngineKind, Lang, RunEvent};
use quire_host_api::Grants;
use quire_storage::{
    BlockRecord, Cancelled, Claimed, Enqueue, Lost, Refusal, RunQueue, RunRecord, Workspace,
    WorkspaceId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admission::QuotaRefusal;
use crate::error::{blocking, ServiceError, ServiceResult};
use crate::hub::{LiveRun, RunHub, Slot, StartRun, Started};

/// Bytes of stored events a remote follower reads at a time.
const FOLLOW_BATCH_BYTES: usize = 256 * 1024;

/// The roles a `quire serve` process takes (default: all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves the HTTP API, the app and the WebSocket; enqueues runs.
    pub api: bool,
    /// Runs what it claims from the queue.
    pub worker: bool,
    /// Fires schedules.
    pub scheduler: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Self {
            api: true,
            worker: true,
            scheduler: true,
        }
    }
}

impl Roles {
    /// Parse `api,worker,scheduler` (any non-empty subset, any order).
    ///
    /// # Errors
    /// An unknown or empty role, with the ones there are.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut r = Self {
            api: false,
            worker: false,
            scheduler: false,
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "api" => r.api = true,
                "worker" => r.worker = true,
                "scheduler" => r.scheduler = true,
                other => {
                    return Err(format!(
                        "unknown role '{other}': the roles are api, worker and scheduler, comma-separated"
                    ))
                }
            }
        }
        Ok(r)
    }
}

/// How a process takes part in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The shared queue ([`quire_storage::Store::run_queue`]).
    pub queue: RunQueue,
    /// This process's name in the queue: leases are held under it. Unique
    /// per process (the default: host name, process id and a random
    /// suffix).
    pub worker_id: String,
    /// How long a claim holds without renewal; renewed every third of
    /// it. A killed worker's runs are closed (or re-queued) this long
    /// after it stopped renewing. Default: 10 s.
    pub lease: Duration,
    /// How often a run followed from another process is polled for
    /// stored events. Default: 100 ms.
    pub follow_poll: Duration,
    /// Live events over NATS JetStream (see [`crate::bus`]); `None`
    /// follows other processes' runs from PostgreSQL alone.
    pub bus: Option<crate::bus::Bus>,
}

impl ClusterConfig {
    /// Defaults around `queue`, with a fresh worker id.
    pub fn new(queue: RunQueue) -> Self {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "quire".into());
        Self {
            queue,
            worker_id: format!(
                "{host}-{}-{:08x}",
                std::process::id(),
                u32::from_le_bytes(b)
            ),
            lease: Duration::from_secs(10),
            follow_poll: Duration::from_millis(100),
            bus: None,
        }
    }
}

/// A hub's part of the cluster (shared with its runs' slots).
#[derive(Debug, Clone)]
pub(crate) struct Cluster(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    cfg: ClusterConfig,
    capacity: usize,
    running: AtomicUsize,
    freed: tokio::sync::Notify,
    /// When the last successful lease renewal was asked for.
    renewed: Mutex<Option<Instant>>,
    /// Runs this worker holds.
    mine: Mutex<HashMap<String, Arc<LiveRun>>>,
    /// Blocks watched for runs started elsewhere.
    watches: Arc<Mutex<HashMap<(WorkspaceId, String), Watch>>>,
    /// Lost runs reaped whose closing failed: tried again.
    unclosed: Mutex<Vec<Lost>>,
}

impl Cluster {
    pub(crate) fn new(cfg: ClusterConfig, capacity: usize) -> Self {
        Self(Arc::new(Inner {
            cfg,
            capacity: capacity.max(1),
            running: AtomicUsize::new(0),
            freed: tokio::sync::Notify::new(),
            renewed: Mutex::new(None),
            mine: Mutex::new(HashMap::new()),
            watches: Arc::default(),
            unclosed: Mutex::default(),
        }))
    }

    pub(crate) fn queue(&self) -> &RunQueue {
        &self.0.cfg.queue
    }

    pub(crate) fn bus(&self) -> Option<&crate::bus::Bus> {
        self.0.cfg.bus.as_ref()
    }

    fn mine(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
        self.0.mine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Give back one of this worker's slots.
    fn free(&self, run: Option<&str>) {
        if let Some(run) = run {
            self.mine().remove(run);
        }
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.freed.notify_one();
    }
}

/// A claimed run's place in the queue; [`QueueSlot::release`] once its
/// history is written.
#[derive(Debug)]
pub(crate) struct QueueSlot {
    cluster: Cluster,
    /// When the claim was asked for: its lease runs from no later.
    claimed: Instant,
}

impl QueueSlot {
    /// A slot for a run claimed at `claimed` (taken before the claim was
    /// asked for, so its lease ends no sooner than this thinks).
    fn new(cluster: &Cluster, claimed: Instant) -> Self {
        Self {
            cluster: cluster.clone(),
            claimed,
        }
    }

    /// Whether this worker surely still holds the run: less than nine
    /// tenths of a lease since the claim or the last renewal was asked
    /// for (the database's lease ends no sooner). Past that the run may be
    /// reaped and closed elsewhere, so it must say nothing more.
    pub(crate) fn surely_held(&self) -> bool {
        let renewed = *self
            .cluster
            .0
            .renewed
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let since = renewed.map_or(self.claimed, |r| r.max(self.claimed));
        since.elapsed() < self.cluster.0.cfg.lease.mul_f64(0.9)
    }

    /// Publish `line` of `live` over NATS, if there is NATS and the run is
    /// surely still held; a run no longer surely held is cancelled.
    pub(crate) async fn publish(&self, live: &LiveRun, line: &Arc<str>) {
        if !self.surely_held() {
            // It may be reaped and closed elsewhere at any moment: say
            // nothing more, and end it (its history says cancelled, unless
            // the reaper closed it first).
            if !live.cancel_was_requested() {
                tracing::error!(run = %live.id, "no lease renewal in time; cancelling the run");
                live.cancel();
            }
            return;
        }
        if let Some(bus) = self.cluster.bus() {
            bus.publish(&live.id, line).await;
        }
    }
    /// Whether this worker still holds `run` in the queue (asked of the
    /// database; an error counts as held: the history write then races
    /// a reaper at worst, as before this check).
    pub(crate) async fn still_held(&self, run: &str) -> bool {
        let (q, w, id) = (
            self.cluster.queue().clone(),
            self.cluster.0.cfg.worker_id.clone(),
            run.to_string(),
        );
        blocking(move || Ok(q.holds(&id, &w)?))
            .await
            .unwrap_or(true)
    }

    /// The run `run` ended and is in history: leave the queue.
    pub(crate) async fn release(self, run: &str) {
        let (q, w, id) = (
            self.cluster.queue().clone(),
            self.cluster.0.cfg.worker_id.clone(),
            run.to_string(),
        );
        if let Err(e) = blocking(move || Ok(q.finish(&id, &w)?)).await {
            // Its lease runs out and the reaper takes it: its history
            // is final, so closing it again changes nothing visible.
            tracing::error!(error = %e, run, "could not take a finished run off the queue");
        }
        self.cluster.free(Some(run));
    }
}

/// What a worker needs to run an enqueued run: the [`StartRun`] as the api
/// process saw it (the block and its grants as they were when it was
/// accepted).
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    workspace: Workspace,
    block: Option<BlockRecord>,
    source: String,
    lang: Lang,
    input: Value,
    trigger: Value,
    engine: Option<EngineKind>,
    admin_caller: bool,
    #[serde(default)]
    agent: bool,
    #[serde(default)]
    doc: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

impl Job {
    fn of(r: &StartRun) -> Self {
        Self {
            workspace: r.workspace.clone(),
            block: r.block.clone(),
            source: r.source.clone(),
            lang: r.lang,
            input: r.input.clone(),
            trigger: r.trigger.clone(),
            engine: r.engine,
            admin_caller: r.admin_caller,
            agent: r.agent,
            doc: r.doc.clone(),
            dry_run: r.dry_run,
        }
    }

    fn into_start(self, run_id: String) -> StartRun {
        StartRun {
            workspace: self.workspace,
            block: self.block,
            source: self.source,
            lang: self.lang,
            input: self.input,
            trigger: self.trigger,
            run_id: Some(run_id),
            engine: self.engine,
            admin_caller: self.admin_caller,
            agent: self.agent,
            doc: self.doc,
            dry_run: self.dry_run,
            operator: None,
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// The api role's start: check, enqueue, and follow (see the module docs).
pub(crate) async fn enqueue(
    hub: &Arc<RunHub>,
    cluster: &Cluster,
    req: StartRun,
    grants: Grants,
) -> ServiceResult<Started> {
    let ws = req.workspace.id;
    let (quota, cpu_left_ms) = hub.day_check(ws, false).await?;
    let id = match req.run_id.clone() {
        Some(id) => id,
        None => hub.new_run_id().await?,
    };
    let job = serde_json::to_value(Job::of(&req)).map_err(internal)?;
    let record = hub
        .prepare(
            req,
            (grants, None),
            &quota,
            cpu_left_ms,
            id.clone(),
            "queued",
        )
        .record;
    let e = Enqueue {
        workspace: ws,
        run_id: id.clone(),
        job,
        max_concurrent: quota.max_concurrent_runs,
        max_queued: quota.max_queued_runs,
        runs_per_minute: quota.runs_per_minute,
    };
    let (q, store, rec) = (cluster.queue().clone(), hub.store().clone(), record.clone());
    let refused = blocking(move || match q.enqueue(e)? {
        Ok(()) => {
            // A worker that already started it wrote its own record; and
            // once enqueued the run runs whatever this write does, so its
            // failure is logged, not answered as the run's failure.
            if let Err(err) = store.put_run_if_new(&ws, &rec) {
                tracing::error!(error = %err, run = %rec.id, "the queued run's record was not written; its worker writes one");
            }
            Ok(None)
        }
        Err(r) => Ok(Some(r)),
    })
    .await?;
    if let Some(r) = refused {
        return Err(hub.refused(match r {
            Refusal::Duplicate => return Err(ServiceError::AlreadyQueued(id)),
            Refusal::RunsPerMinute { resets_at_ms } => {
                QuotaRefusal::runs_per_minute(&quota, resets_at_ms)
            }
            Refusal::MaxQueued { running, queued } => {
                let free = quota.max_concurrent_runs.saturating_sub(running);
                QuotaRefusal::max_queued(&quota, running, u64::from(queued.saturating_sub(free)))
            }
        }));
    }
    let live = hub.new_live(&record, ws, true);
    let live = follow_elsewhere(hub, cluster, live);
    if let (Some(bus), Some(block)) = (cluster.bus(), &live.block) {
        bus.announce(&ws.to_string(), block, &live.id).await;
    }
    Ok(hub.started(live))
}

/// Interest in one block's runs started elsewhere (see
/// [`RunHub::watch_block`]); the NATS subscription ends with the last
/// guard.
#[derive(Debug)]
pub struct BlockWatch {
    watches: Arc<Mutex<HashMap<(WorkspaceId, String), Watch>>>,
    key: (WorkspaceId, String),
}

#[derive(Debug)]
pub(crate) struct Watch {
    guards: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlockWatch {
    fn drop(&mut self) {
        let mut w = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watch) = w.get_mut(&self.key) {
            watch.guards -= 1;
            if watch.guards == 0 {
                watch.task.abort();
                w.remove(&self.key);
            }
        }
    }
}

pub(crate) async fn watch_block(
    hub: &Arc<RunHub>,
    cluster: &Cluster,
    ws: WorkspaceId,
    block: &str,
) -> Option<BlockWatch> {
    let bus = cluster.bus()?.clone();
    let key = (ws, block.to_string());
    let watches = cluster.0.watches.clone();
    let guard = || BlockWatch {
        watches: watches.clone(),
        key: key.clone(),
    };
    if let Some(w) = watches
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(&key)
    {
        w.guards += 1;
        return Some(guard());
    }
    // Subscribed before this returns, so no run started after it is missed.
    let mut starts = match bus.starts(&ws.to_string(), block).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch a block's runs");
            return None;
        }
    };
    let mut w = watches.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(watch) = w.get_mut(&key) {
        // Another subscriber of this process got there meanwhile.
        watch.guards += 1;
        return Some(guard());
    }
    let (hub, cluster, block) = (hub.clone(), cluster.clone(), block.to_string());
    let task = tokio::spawn(async move {
        while let Some(run) = starts.next().await {
            match attach(&hub, &cluster, ws, &run).await {
                Ok(Some(live)) if live.block.as_deref() == Some(block.as_str()) => {
                    hub.announce(&live);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, run, "cannot follow an announced run"),
            }
        }
    });
    w.insert(key.clone(), Watch { guards: 1, task });
    drop(w);
    Some(guard())
}

/// Track `live` as running in another process: insert it in the hub and
/// poll its stored events until its history is final. A run already in
/// the hub is returned as it is.
fn follow_elsewhere(hub: &Arc<RunHub>, cluster: &Cluster, live: Arc<LiveRun>) -> Arc<LiveRun> {
    live.remote.store(true, Ordering::SeqCst);
    {
        let mut active = hub.active();
        if let Some(l) = active.get(&live.id) {
            return l.clone();
        }
        active.insert(live.id.clone(), live.clone());
    }
    let (hub, cluster, l) = (hub.clone(), cluster.clone(), live.clone());
    let span = tracing::info_span!("follow", workspace = %l.workspace, run = %l.id);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            match cluster.bus().cloned() {
                Some(bus) => relay(hub, cluster, l, bus).await,
                None => poll_stored(hub, cluster, l, 0).await,
            }
        },
        span,
    ));
    live
}

/// A run of another process in workspace `ws`, if the queue still has it:
/// a live run following its stored events (see [`RunHub::attach`]).
pub(crate) async fn attach(
    hub: &Arc<RunHub>,
    cluster: &Cluster,
    ws: WorkspaceId,
    run: &str,
) -> ServiceResult<Option<Arc<LiveRun>>> {
    let (q, store, id) = (
        cluster.queue().clone(),
        hub.store().clone(),
        run.to_string(),
    );
    let head = blocking(move || {
        // The record first: it is what proves the run is `ws`'s.
        let Some(head) = store.get_run_head(&ws, &id)? else {
            return Ok(None);
        };
        Ok(q.state(&id)?.map(|_| head))
    })
    .await?;
    Ok(head.map(|h| {
        let queued = h.status == "queued";
        follow_elsewhere(hub, cluster, hub.new_live(&h, ws, queued))
    }))
}

/// Follow `live` from its stored events from seq `cursor` until its
/// history is final.
async fn poll_stored(hub: Arc<RunHub>, cluster: Cluster, live: Arc<LiveRun>, mut cursor: u64) {
    let mut cancel_sent = false;
    // A run's end notifies the queue (`freed`): a follower looks at once.
    let mut wake = cluster.queue().wakeups();
    loop {
        if !live.remote.load(Ordering::SeqCst) || !hub.accepting() {
            return; // a worker of this process took it over, or shutting down
        }
        if live.cancel_was_requested() && !cancel_sent {
            cancel_sent = true;
            if pass_cancel(&hub, &cluster, &live).await {
                return;
            }
        }
        let Some((more, done)) = read_stored(&hub, &live, &mut cursor).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if done && !more {
            hub.forget(&live);
            return;
        }
        if !more {
            tokio::select! {
                () = tokio::time::sleep(cluster.0.cfg.follow_poll) => {}
                () = live.cancel_notified() => {}
                _ = wake.changed() => {}
            }
        }
    }
}

/// Read a page of `live`'s stored events from `cursor` into its log;
/// whether there are more, and whether its history is final. `None` when
/// the store failed.
async fn read_stored(
    hub: &Arc<RunHub>,
    live: &Arc<LiveRun>,
    cursor: &mut u64,
) -> Option<(bool, bool)> {
    let (store, ws, run, from) = (
        hub.store().clone(),
        live.workspace,
        live.id.clone(),
        *cursor,
    );
    // The head first: a head already final before the page was read
    // means the page holds every event left (the worker stores its
    // events before its final record).
    let read = blocking(move || {
        let head = store.get_run_head(&ws, &run)?;
        let page = store.run_events(&ws, &run, from, FOLLOW_BATCH_BYTES)?;
        Ok((page, head))
    })
    .await;
    let (page, head) = match read {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "reading a run of another process");
            return None;
        }
    };
    let more = page.next.is_some();
    for line in page.lines {
        match serde_json::from_str::<RunEvent>(&line) {
            Ok(ev) => live.push_stored(line.into(), &ev.body),
            Err(e) => tracing::error!(error = %e, "a stored event does not parse"),
        }
        *cursor += 1;
    }
    if *cursor > 0 {
        live.set_waiting(false);
    }
    let done = head.is_none_or(|h| h.status != "running" && h.status != "queued");
    Some((more, done))
}

/// Pass a cancel of `live` to the queue; `true` when that ended it (it
/// was still queued: this process closes it).
async fn pass_cancel(hub: &Arc<RunHub>, cluster: &Cluster, live: &Arc<LiveRun>) -> bool {
    let (q, ws, run) = (cluster.queue().clone(), live.workspace, live.id.clone());
    match blocking(move || Ok(q.cancel(&ws, &run)?)).await {
        Ok(Cancelled::Dequeued) => {
            live.push_all(live.cancelled_in_queue(0.0));
            let record = record_of(live);
            hub.complete(
                live.clone(),
                record,
                None,
                "cancelled".into(),
                Instant::now(),
            )
            .await;
            true
        }
        Ok(_) => false,
        Err(e) => {
            tracing::error!(error = %e, "cancel not passed to the queue");
            false
        }
    }
}

/// Follow `live` over NATS: events as its worker publishes them, in seq
/// order (a gap filled from the store); the store decides when it ended
/// (also for a run closed without its worker).
async fn relay(hub: Arc<RunHub>, cluster: Cluster, live: Arc<LiveRun>, bus: crate::bus::Bus) {
    let mut events = match bus.follow(&live.id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "following over NATS failed; reading the store instead");
            return poll_stored(hub, cluster, live, 0).await;
        }
    };
    let mut cursor = 0u64;
    let mut cancel_sent = false;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        if !live.remote.load(Ordering::SeqCst) || !hub.accepting() {
            return;
        }
        tokio::select! {
            line = events.next() => {
                let Some(line) = line else {
                    return poll_stored(hub, cluster, live, cursor).await;
                };
                let Ok(ev) = serde_json::from_str::<RunEvent>(&line) else { continue };
                if ev.seq < cursor {
                    continue; // seen (a consumer that restarted)
                }
                if ev.seq > cursor {
                    // The stream lost some: the store has them, or soon will.
                    return poll_stored(hub, cluster, live, cursor).await;
                }
                let finished = matches!(ev.body, quire_engine::EventBody::Finished(_));
                live.push_relayed(line, &ev.body);
                live.set_waiting(false);
                cursor += 1;
                if finished {
                    return wait_recorded(&hub, &live).await;
                }
            }
            () = live.cancel_notified(), if !cancel_sent => {
                cancel_sent = true;
                if pass_cancel(&hub, &cluster, &live).await {
                    return;
                }
            }
            _ = check.tick() => {
                // Closed without its worker (a lost lease, a queued cancel
                // elsewhere): only the store has the last events.
                // And what its worker stored, the log may let go of.
                let (store, ws, run) = (hub.store().clone(), live.workspace, live.id.clone());
                let read = blocking(move || {
                    Ok((store.get_run_head(&ws, &run)?, store.run_event_totals(&ws, &run)?.events))
                })
                .await;
                if let Ok((h, stored)) = read {
                    if h.is_none_or(|h| h.status != "running" && h.status != "queued") {
                        return poll_stored(hub, cluster, live, cursor).await;
                    }
                    live.stored_elsewhere(usize::try_from(stored.min(cursor)).unwrap_or(0));
                }
            }
        }
    }
}

/// The finished event is in: wait (briefly) for the worker's history
/// write, then let the run go.
async fn wait_recorded(hub: &Arc<RunHub>, live: &Arc<LiveRun>) {
    for _ in 0..200 {
        let (store, ws, run) = (hub.store().clone(), live.workspace, live.id.clone());
        match blocking(move || Ok(store.get_run_head(&ws, &run)?)).await {
            Ok(Some(h)) if h.status != "running" && h.status != "queued" => break,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    hub.forget(live);
}

/// The history record a queued run was filed with (its live copy).
fn record_of(live: &LiveRun) -> RunRecord {
    RunRecord {
        request: live.request.clone(),
        ..RunRecord::queued(
            live.id.clone(),
            live.block.clone(),
            live.trigger.clone(),
            live.started_ms,
        )
    }
}

/// The worker role: claim, run, renew, reap, until the hub has shut down
/// (claiming stops when it starts to).
pub async fn work(hub: Arc<RunHub>) {
    let Some(cluster) = hub.cluster.clone() else {
        return;
    };
    let cfg = &cluster.0.cfg;
    let mut wake = cfg.queue.wakeups();
    // Renewing and reaping each on a task of its own: a slow reap (many
    // lost runs) or a burst of claims never delays a renewal.
    for job in [Chore::Renew, Chore::Reap] {
        tokio::spawn(chore(hub.clone(), cluster.clone(), job));
    }
    let mut poll = tokio::time::interval(cfg.lease / 3);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(worker = %cfg.worker_id, capacity = cluster.0.capacity, "worker claiming runs");
    loop {
        // Shutting down: claim nothing more, but keep renewing the leases
        // of the runs going until they end (the hub's grace, then its
        // cancels), so none is taken for lost while it still runs.
        while hub.accepting() && cluster.0.running.load(Ordering::SeqCst) < cluster.0.capacity {
            let (q, w, lease) = (cfg.queue.clone(), cfg.worker_id.clone(), cfg.lease);
            let asked = Instant::now();
            match blocking(move || Ok(q.claim(&w, lease)?)).await {
                Ok(Some(c)) => {
                    cluster.0.running.fetch_add(1, Ordering::SeqCst);
                    run_claimed(&hub, &cluster, c, asked).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming from the queue failed");
                    break;
                }
            }
        }
        tokio::select! {
            r = wake.changed() => {
                if r.is_err() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            _ = poll.tick() => {}
            () = cluster.0.freed.notified() => {}
            () = hub.stopped() => return,
        }
    }
}

/// Start claimed run `c`, or close it in history when it cannot run.
async fn run_claimed(hub: &Arc<RunHub>, cluster: &Cluster, c: Claimed, claimed_at: Instant) {
    let cfg = &cluster.0.cfg;
    let (ws, id) = (c.workspace, c.run_id.clone());
    let job = match serde_json::from_value::<Job>(c.job) {
        Ok(j) if j.workspace.id == ws => j,
        Ok(_) => {
            return close_unrun(
                hub,
                cluster,
                ws,
                id,
                "the queued run names another workspace; it was not run",
            )
            .await
        }
        Err(e) => {
            let why = format!("the queued run could not be read ({e}); it was not run");
            return close_unrun(hub, cluster, ws, id, &why).await;
        }
    };
    let (q, w, run, lease) = (
        cfg.queue.clone(),
        cfg.worker_id.clone(),
        id.clone(),
        cfg.lease,
    );
    match blocking(move || Ok(q.start(&run, &w, lease)?)).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(run = %id, "the claim ran out before the run started; another worker takes it");
            return cluster.free(None);
        }
        Err(e) => {
            tracing::error!(error = %e, run = %id, "could not mark a claimed run as started");
            return cluster.free(None);
        }
    }
    let req = job.into_start(id.clone());
    let grants = match hub.grants_for(&req) {
        Ok(g) => g,
        Err(e) => return close_unrun(hub, cluster, ws, id, &e.to_string()).await,
    };
    // Accepted already: the day's CPU sets its limit, never refuses it.
    let (quota, cpu_left_ms) = match hub.day_check(ws, true).await {
        Ok(q) => q,
        Err(e) => return close_unrun(hub, cluster, ws, id, &e.to_string()).await,
    };
    let scope = match crate::dataflow::doc_scope(hub.store(), &req).await {
        Ok(s) => s,
        Err(e) => return close_unrun(hub, cluster, ws, id, &e.to_string()).await,
    };
    let prepared = hub.prepare(
        req,
        (grants, scope),
        &quota,
        cpu_left_ms,
        id.clone(),
        "running",
    );
    if let Err(e) = hub.write_record(ws, prepared.record.clone()).await {
        tracing::error!(error = %e, "the run's record was not written; running it anyway");
    }
    // Enqueued by this process: its followers already hold the live run.
    let existing = hub.active().get(&id).cloned();
    let live = match existing {
        Some(l) => {
            l.take_over();
            l
        }
        None => {
            let l = hub.new_live(&prepared.record, ws, false);
            hub.active().insert(id.clone(), l.clone());
            l
        }
    };
    cluster.mine().insert(id, live.clone());
    hub.launch(
        live,
        prepared,
        Slot::Queue(QueueSlot::new(cluster, claimed_at)),
        Instant::now(),
    );
}

/// Store what the lost worker of run `run` had published over NATS but
/// not stored yet, so its history (and the closing events after it) match
/// what followers were shown.
async fn keep_published(hub: &Arc<RunHub>, bus: &crate::bus::Bus, ws: WorkspaceId, run: &str) {
    let (store, id) = (hub.store().clone(), run.to_string());
    let stored = match blocking(move || Ok(store.run_event_totals(&ws, &id)?.events)).await {
        Ok(n) => n,
        Err(e) => return tracing::error!(error = %e, run, "cannot count a lost run's events"),
    };
    let lines = match bus.published_from(run, stored).await {
        Ok(l) if !l.is_empty() => l,
        Ok(_) => return,
        Err(e) => {
            return tracing::warn!(error = %e, run, "cannot read a lost run's events from NATS")
        }
    };
    let n = lines.len();
    let (store, id) = (hub.store().clone(), run.to_string());
    match blocking(move || Ok(store.append_run_events(&ws, &id, stored, &lines)?)).await {
        Ok(_) => tracing::info!(run, events = n, "stored a lost run's published events"),
        Err(e) => tracing::error!(error = %e, run, "cannot store a lost run's published events"),
    }
}

/// Close run `id`, claimed but not runnable, as `internal` with `why`.
async fn close_unrun(hub: &Arc<RunHub>, cluster: &Cluster, ws: WorkspaceId, id: String, why: &str) {
    let (h, run, why) = (hub.clone(), id.clone(), why.to_string());
    if let Err(e) = blocking(move || h.close_run(ws, &run, &why)).await {
        tracing::error!(error = %e, run = %id, "could not close a run that cannot run");
    }
    QueueSlot::new(cluster, Instant::now()).release(&id).await;
}

/// A worker's periodic jobs.
#[derive(Debug, Clone, Copy)]
enum Chore {
    /// [`renew`].
    Renew,
    /// [`reap`].
    Reap,
}

/// Do `job` every third of a lease until the hub has shut down.
async fn chore(hub: Arc<RunHub>, cluster: Cluster, job: Chore) {
    let mut tick = tokio::time::interval(cluster.0.cfg.lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = hub.stopped() => return,
        }
        match job {
            Chore::Renew => renew(&cluster).await,
            Chore::Reap => reap(&hub, &cluster).await,
        }
    }
}

/// Renew this worker's leases, passing on cancels; a run whose lease was
/// taken is cancelled and left to whoever took it.
async fn renew(cluster: &Cluster) {
    let cfg = &cluster.0.cfg;
    let (q, w, lease) = (cfg.queue.clone(), cfg.worker_id.clone(), cfg.lease);
    let asked = Instant::now();
    match blocking(move || Ok(q.renew(&w, lease)?)).await {
        Ok(held) => {
            *cluster.0.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Some(asked);
            let held: HashMap<String, bool> = held.into_iter().collect();
            let mine: Vec<Arc<LiveRun>> = cluster.mine().values().cloned().collect();
            for live in mine {
                match held.get(&live.id) {
                    Some(true) => live.cancel(),
                    Some(false) => {}
                    None => {
                        tracing::error!(run = %live.id, "this worker lost the run's lease; cancelling it");
                        live.lost.store(true, Ordering::SeqCst);
                        live.cancel();
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
    }
}

/// Close the runs of workers that stopped (see [`RunQueue::reap`]).
async fn reap(hub: &Arc<RunHub>, cluster: &Cluster) {
    let cfg = &cluster.0.cfg;
    let q = cfg.queue.clone();
    let lost = match blocking(move || Ok(q.reap()?)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "reaping lost runs failed");
            return;
        }
    };
    let retry: Vec<Lost> =
        std::mem::take(&mut *cluster.0.unclosed.lock().unwrap_or_else(|e| e.into_inner()));
    for l in retry.into_iter().chain(lost) {
        let why = if l.started {
            format!("the worker running this run ({}) stopped: its lease ran out; its output after the last event shown was lost", l.worker)
        } else {
            format!(
                "workers claimed this run {} times and each stopped before starting it; it was not run",
                quire_storage::MAX_CLAIMS
            )
        };
        if let Some(bus) = cluster.bus() {
            keep_published(hub, bus, l.workspace, &l.run_id).await;
        }
        let (h, ws, run) = (hub.clone(), l.workspace, l.run_id.clone());
        match blocking(move || h.close_run(ws, &run, &why)).await {
            Ok(()) => {
                tracing::warn!(workspace = %l.workspace, run = %l.run_id, worker = %l.worker, "closed a run its worker lost")
            }
            Err(e) => {
                // Out of the queue already: retried on the next tick.
                tracing::error!(error = %e, run = %l.run_id, "could not close a lost run; will retry");
                cluster
                    .0
                    .unclosed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(l);
            }
        }
    }
}
