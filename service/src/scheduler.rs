//! The scheduler: fires blocks' cron schedules.
//!
//! Each schedule's next fire time is stored. A tick looks at every schedule
//! whose time has come and, in one atomic write per occurrence, moves the
//! time on (compare-and-set) and files the run as `queued`; it then starts
//! queued runs through the [`RunHub`]. So an occurrence fires once: a second
//! scheduler, or a tick after a restart, finds the time already moved; and
//! a crash between filing and starting loses nothing, because startup
//! starts what is queued.
//!
//! In a cluster one scheduler process leads at a time
//! ([`Scheduler::with_leadership`]); a fire is claimed under the leader's
//! epoch before it is filed, and its run id is derived from the schedule
//! and the time, so even two processes that both believe they lead run
//! it once (the queue enqueues an id once).
//!
//! Occurrences missed while the server was down (found by the first tick)
//! run once at start or are skipped, per the schedule's `catch_up`. Time
//! comes from a [`Clock`], so tests move it by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use quire_storage::{now_ms, FireClaim, Leadership, RunRecord, ScheduleRecord, Store, WorkspaceId};
use serde_json::{json, Value};

use crate::error::{blocking, ServiceError, ServiceResult};
use crate::hub::{RunHub, StartRun};

/// Where the scheduler reads the time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `ms`.
    pub fn at(ms: u64) -> Self {
        Self(AtomicU64::new(ms))
    }

    /// Set the time.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Most occurrences of one schedule a single tick fires; the rest are
/// skipped (a schedule every second after a long stall).
pub const MAX_FIRES_PER_TICK: usize = 10;

/// A parsed cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct CronSpec {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

impl CronSpec {
    /// Parse a 5-field (minute first) or 6-field (seconds first) cron
    /// expression, or a nickname such as `@hourly`, read in IANA time
    /// zone `tz`.
    ///
    /// # Errors
    /// A 400 naming `cron` or `timezone`.
    pub fn parse(expr: &str, tz: &str) -> ServiceResult<Self> {
        let fields = expr.split_whitespace().count();
        if !(expr.trim_start().starts_with('@') || fields == 5 || fields == 6) {
            return Err(ServiceError::field(
                "cron",
                format!("'{expr}' has {fields} fields; use 5 (minute hour day month weekday) or 6 (seconds first)"),
            ));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| ServiceError::field("cron", format!("'{expr}': {e}")))?;
        let tz: chrono_tz::Tz = tz.parse().map_err(|_| {
            ServiceError::field(
                "timezone",
                format!("'{tz}' is not an IANA time zone (for example UTC or Europe/Lisbon)"),
            )
        })?;
        Ok(Self { cron, tz })
    }

    /// The first occurrence strictly after `after_ms`.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let t = self
            .tz
            .timestamp_millis_opt(i64::try_from(after_ms).ok()?)
            .single()?;
        let next = self.cron.find_next_occurrence(&t, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }

    /// The expression in words, e.g. "At 09:00 on Monday" (without a
    /// closing period: croner ends some descriptions with one or two).
    pub fn describe(&self) -> String {
        self.cron
            .describe()
            .trim_end_matches(['.', ' '])
            .to_string()
    }
}

/// What one schedule does at one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Occurrences to fire, oldest first.
    pub fire: Vec<u64>,
    /// Due occurrences not fired (paused, skipped, over the cap).
    pub skipped: usize,
    /// The next fire time to store.
    pub next: Option<u64>,
}

/// Decide what schedule `s` does at `now_ms`. `startup`: this is the
/// first tick since the server started, so what is due was missed while
/// it was down.
pub fn plan(s: &ScheduleRecord, spec: &CronSpec, now_ms: u64, startup: bool) -> Option<Plan> {
    let first = s.next_fire_ms?;
    if first > now_ms {
        return None;
    }
    let mut due = vec![first];
    let mut skipped = 0;
    let mut t = first;
    while let Some(n) = spec.next_after(t) {
        if n > now_ms {
            break;
        }
        if due.len() < MAX_FIRES_PER_TICK {
            due.push(n);
        } else {
            skipped += 1;
            if skipped > 100_000 {
                break;
            }
        }
        t = n;
    }
    let next = spec.next_after(now_ms);
    let fire = if s.paused {
        skipped += due.len();
        vec![]
    } else if startup {
        // Missed while down: at most once, as the latest occurrence.
        skipped += due.len() - 1;
        if s.catch_up {
            due.last().copied().into_iter().collect()
        } else {
            skipped += 1;
            vec![]
        }
    } else {
        due
    };
    Some(Plan {
        fire,
        skipped,
        next,
    })
}

/// What a tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Occurrences filed as runs.
    pub fired: usize,
    /// Due occurrences not run (paused, missed and skipped, over the cap).
    pub skipped: usize,
    /// Queued runs started.
    pub started: usize,
}

/// Fires schedules (see the module docs).
pub struct Scheduler {
    store: Store,
    hub: Arc<RunHub>,
    clock: Arc<dyn Clock>,
    /// In a cluster: fire only while this process leads (see
    /// [`quire_storage::Leadership`]).
    leadership: Option<Leadership>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scheduler")
    }
}

fn iso(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|m| Utc.timestamp_millis_opt(m).single())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl Scheduler {
    /// A scheduler over `store`'s schedules, starting runs on `hub`.
    pub fn new(store: Store, hub: Arc<RunHub>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            hub,
            clock,
            leadership: None,
        }
    }

    /// Fire only while `leadership` says this process leads: each fire is
    /// claimed under the leader's epoch first (a deposed leader fires
    /// nothing), and its run id is derived from the schedule and the fire
    /// time, so a fire filed twice still runs once.
    #[must_use]
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = Some(leadership);
        self
    }

    /// File every due occurrence as a queued run, moving each schedule on.
    /// Blocking (store writes): call from a blocking thread.
    ///
    /// # Errors
    /// When the store fails.
    pub fn file_due(&self, startup: bool) -> ServiceResult<TickReport> {
        self.file_due_as(startup, None)
    }

    /// [`Scheduler::file_due`] as the leader of `epoch` (with a
    /// leadership): stops at the first fire it is fenced from.
    fn file_due_as(&self, startup: bool, epoch: Option<i64>) -> ServiceResult<TickReport> {
        let now = self.clock.now_ms();
        let mut report = TickReport::default();
        for (ws, s) in self.store.all_schedules()? {
            let spec = match CronSpec::parse(&s.cron, &s.timezone) {
                Ok(spec) => spec,
                Err(e) => {
                    tracing::error!(workspace = %ws, schedule = %s.id, error = %e, "stored schedule does not parse");
                    continue;
                }
            };
            let Some(p) = plan(&s, &spec, now, startup) else {
                continue;
            };
            report.skipped += p.skipped;
            let mut from = s.next_fire_ms;
            let mut fires = p.fire.iter().peekable();
            if fires.peek().is_none() {
                self.store
                    .advance_schedule(&ws, &s.id, from, p.next, None)?;
                continue;
            }
            while let Some(&at) = fires.next() {
                let to = fires.peek().map(|n| **n).or(p.next);
                let id = match (&self.leadership, epoch) {
                    (Some(l), Some(epoch)) => {
                        if l.claim_fire(&ws, &s.id, at, epoch)? == FireClaim::Fenced {
                            tracing::warn!(
                                epoch,
                                "fenced: another process leads the scheduler now"
                            );
                            return Ok(report);
                        }
                        self.store.fire_id(&ws, &s.id, at)
                    }
                    _ => self.store.new_id()?,
                };
                let trigger = json!({"kind": "schedule", "schedule": s.id, "scheduled_at": iso(at), "scheduled_at_ms": at});
                let run = RunRecord::queued(id, Some(s.block.clone()), trigger, at);
                if !self
                    .store
                    .advance_schedule(&ws, &s.id, from, to, Some(&run))?
                {
                    // Someone else fired it (or it was edited): leave it.
                    break;
                }
                report.fired += 1;
                from = to;
            }
        }
        Ok(report)
    }

    /// Start every queued run. A run whose block is gone is recorded as
    /// failed instead.
    ///
    /// # Errors
    /// When the store fails or the server is shutting down.
    pub async fn start_queued(&self) -> ServiceResult<usize> {
        let store = self.store.clone();
        let queued = blocking(move || Ok(store.queued_runs()?)).await?;
        let mut started = 0;
        for (ws, run) in queued {
            let store = self.store.clone();
            let block_id = run.block.clone().unwrap_or_default();
            let (w, block) =
                blocking(move || Ok((store.workspace(&ws)?, store.get_block(&ws, &block_id)?)))
                    .await?;
            let (Some(w), Some(block)) = (w, block) else {
                self.fail_queued(ws, run).await?;
                continue;
            };
            let mut req = StartRun::for_block(w, block, Value::Null, run.trigger.clone());
            req.run_id = Some(run.id.clone());
            match self.hub.start(req).await {
                Ok(started_run) => {
                    drop(started_run);
                    started += 1;
                }
                // In a cluster: enqueued by an earlier tick, not yet
                // started by a worker.
                Err(ServiceError::AlreadyQueued(_)) => {}
                Err(ServiceError::ShuttingDown) => return Err(ServiceError::ShuttingDown),
                // One run's refusal (a quota) does not hold up the rest.
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, "a scheduled run did not start")
                }
            }
        }
        Ok(started)
    }

    async fn fail_queued(&self, ws: WorkspaceId, mut run: RunRecord) -> ServiceResult<()> {
        let id = run.id.clone();
        run.status = "error".into();
        run.events = vec![
            json!({"run": id, "seq": 0, "type": "started", "t_ms": 0.0}),
            json!({"run": id, "seq": 1, "type": "error", "kind": "internal", "message": "the scheduled block no longer exists", "t_ms": 0.0}),
            json!({"run": id, "seq": 2, "type": "finished", "status": "error", "cpu_ms": 0.0, "wall_ms": 0.0, "peak_memory_bytes": 0, "t_ms": 0.0}),
        ];
        let store = self.store.clone();
        blocking(move || Ok(store.put_run(&ws, &run)?)).await
    }

    /// One tick: file what is due, then start what is queued.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn tick(self: &Arc<Self>, startup: bool) -> ServiceResult<TickReport> {
        self.tick_as(startup, None).await
    }

    async fn tick_as(
        self: &Arc<Self>,
        startup: bool,
        epoch: Option<i64>,
    ) -> ServiceResult<TickReport> {
        let me = self.clone();
        let mut report = blocking(move || me.file_due_as(startup, epoch)).await?;
        report.started = self.start_queued().await?;
        Ok(report)
    }

    /// With a leadership: whether to tick now, as the leader of which
    /// epoch, and whether this is the term's first tick (a new term that
    /// is not a takeover applies the catch-up rules, like a start).
    async fn lead(&self, led: &mut Option<i64>, startup: &mut bool) -> Option<Option<i64>> {
        let Some(l) = &self.leadership else {
            return Some(None);
        };
        let Some(term) = l.term() else {
            *led = None;
            return None;
        };
        if *led != Some(term.epoch) {
            *led = Some(term.epoch);
            *startup = !term.takeover;
        }
        let l = l.clone();
        match blocking(move || Ok(l.heartbeat(term.epoch)?)).await {
            Ok(true) => Some(Some(term.epoch)),
            Ok(false) => {
                tracing::warn!(
                    epoch = term.epoch,
                    "fenced: another process leads the scheduler now"
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler heartbeat failed");
                None
            }
        }
    }

    /// Tick every `interval` until the hub stops taking runs.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut startup = true;
        let mut led = None;
        while self.hub.accepting() {
            let Some(epoch) = self.lead(&mut led, &mut startup).await else {
                tokio::time::sleep(interval).await;
                continue;
            };
            match self.tick_as(startup, epoch).await {
                Ok(r) if r.fired + r.started + r.skipped > 0 => {
                    tracing::info!(
                        fired = r.fired,
                        started = r.started,
                        skipped = r.skipped,
                        "scheduler tick"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "scheduler tick failed"),
            }
            startup = false;
            tokio::time::sleep(interval).await;
        }
    }
}
