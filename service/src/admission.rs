//! Admission: which run starts next, and which is refused at the door.
//!
//! Every run asks [`Admission::request`] before it is recorded. A request
//! is refused at once when its workspace is over `runs_per_minute` or has
//! `max_queued_runs` waiting; otherwise it joins its workspace's queue and
//! gets a [`Ticket`]. Runs start ([`Permit`]s are handed out) while the
//! server has fewer than `max_active_runs` running and the workspace fewer
//! than its `max_concurrent_runs`.
//!
//! Fairness: when a slot frees, the waiting workspace with the fewest runs
//! going gets it, ties broken round robin (the workspace that started one
//! last goes to the back). So a workspace that queued 1,000 runs gets the
//! next free slot only after every other waiting workspace has had one,
//! and a newcomer with nothing running goes before a workspace with runs
//! in flight. A dropped
//! permit (the run finished) frees its slot and hands out the next turn.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use quire_storage::{Quota, WorkspaceId};
use tokio::sync::oneshot;

/// Which quota refused a run, its limit, and when it resets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaRefusal {
    /// The quota's field name (`runs_per_minute`, `max_queued_runs`,
    /// `cpu_ms_per_day`).
    pub quota: &'static str,
    /// Its value.
    pub limit: u64,
    /// When a run will be accepted again, milliseconds since the Unix
    /// epoch; `None` when that depends on running runs finishing.
    pub resets_at_ms: Option<u64>,
    /// What happened, for people.
    pub message: String,
}

impl QuotaRefusal {
    /// `runs_per_minute` is used up until `resets_at_ms`.
    pub fn runs_per_minute(quota: &Quota, resets_at_ms: u64) -> Self {
        Self {
            quota: "runs_per_minute",
            limit: u64::from(quota.runs_per_minute),
            resets_at_ms: Some(resets_at_ms),
            message: format!(
                "the workspace's quota of {} runs per minute is used up; retry after the oldest run of the last minute leaves the window",
                quota.runs_per_minute
            ),
        }
    }

    /// `running` runs go and `waiting` wait: `max_queued_runs` is reached.
    pub fn max_queued(quota: &Quota, running: u32, waiting: u64) -> Self {
        Self {
            quota: "max_queued_runs",
            limit: u64::from(quota.max_queued_runs),
            resets_at_ms: None,
            message: format!(
                "the workspace has {running} runs running (max_concurrent_runs {}) and {waiting} waiting, its max_queued_runs; retry when one finishes",
                quota.max_concurrent_runs
            ),
        }
    }
}

/// The right to run: holds one slot of the server and one of its
/// workspace until dropped.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    ws: WorkspaceId,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.release(&self.ws);
    }
}

/// A place in a workspace's queue; resolves to a [`Permit`].
#[derive(Debug)]
pub struct Ticket {
    rx: oneshot::Receiver<Permit>,
}

impl Ticket {
    /// The permit, if the run may start now.
    pub fn try_now(&mut self) -> Option<Permit> {
        self.rx.try_recv().ok()
    }

    /// Wait for the permit. `None` only if the admission was dropped.
    pub async fn wait(self) -> Option<Permit> {
        self.rx.await.ok()
    }
}

#[derive(Debug, Default)]
struct Lane {
    running: u32,
    limit: u32,
    waiting: VecDeque<oneshot::Sender<Permit>>,
    /// Acceptance times in the last minute, milliseconds, oldest first.
    accepted_ms: VecDeque<u64>,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    lanes: HashMap<WorkspaceId, Lane>,
    /// Workspaces with waiting runs, in turn order.
    turns: VecDeque<WorkspaceId>,
}

/// How many runs a workspace has in admission, for showing usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Runs holding a permit.
    pub running: u32,
    /// Runs waiting for one.
    pub queued: u32,
    /// Runs accepted in the last 60 s.
    pub last_minute: u32,
}

/// Fair, quota-checked admission of runs (see the module docs).
#[derive(Debug)]
pub struct Admission {
    max_active_runs: usize,
    state: Mutex<State>,
}

impl Admission {
    /// Admission for a server running at most `max_active_runs` runs at
    /// once (at least 1).
    pub fn new(max_active_runs: usize) -> Arc<Self> {
        Arc::new(Self {
            max_active_runs: max_active_runs.max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ask to run in `ws` under `quota` at `now_ms` (milliseconds since
    /// the Unix epoch).
    ///
    /// # Errors
    /// [`QuotaRefusal`] for `runs_per_minute` (with when the oldest run of
    /// the window leaves it) and `max_queued_runs`.
    pub fn request(
        self: &Arc<Self>,
        ws: WorkspaceId,
        quota: &Quota,
        now_ms: u64,
    ) -> Result<Ticket, QuotaRefusal> {
        let (tx, rx) = oneshot::channel();
        let grants = {
            let mut st = self.lock();
            let st = &mut *st;
            let lane = st.lanes.entry(ws).or_default();
            lane.limit = quota.max_concurrent_runs;
            while lane
                .accepted_ms
                .front()
                .is_some_and(|t| now_ms.saturating_sub(*t) >= 60_000)
            {
                lane.accepted_ms.pop_front();
            }
            if lane.accepted_ms.len() as u64 >= u64::from(quota.runs_per_minute) {
                let resets = lane.accepted_ms.front().map(|t| t + 60_000);
                return Err(QuotaRefusal::runs_per_minute(
                    quota,
                    resets.unwrap_or(now_ms + 60_000),
                ));
            }
            lane.waiting.retain(|w| !w.is_closed());
            let can_start_now = lane.running < lane.limit && st.running < self.max_active_runs;
            if !can_start_now && lane.waiting.len() as u64 >= u64::from(quota.max_queued_runs) {
                return Err(QuotaRefusal::max_queued(
                    quota,
                    lane.running,
                    lane.waiting.len() as u64,
                ));
            }
            lane.accepted_ms.push_back(now_ms);
            lane.waiting.push_back(tx);
            if !st.turns.contains(&ws) {
                st.turns.push_back(ws);
            }
            self.dispatch(st)
        };
        self.hand_out(grants);
        Ok(Ticket { rx })
    }

    /// Pick who starts next while there is room; the senders and permits
    /// are handed out after the lock is released.
    fn dispatch(self: &Arc<Self>, st: &mut State) -> Vec<(oneshot::Sender<Permit>, Permit)> {
        let mut out = Vec::new();
        while st.running < self.max_active_runs {
            // The waiting workspace with the fewest runs going goes next;
            // ties go by turn order.
            st.turns.retain(|ws| {
                st.lanes.get_mut(ws).is_some_and(|l| {
                    l.waiting.retain(|w| !w.is_closed());
                    !l.waiting.is_empty()
                })
            });
            let chosen = st
                .turns
                .iter()
                .enumerate()
                .filter_map(|(i, ws)| {
                    let l = st.lanes.get(ws)?;
                    (l.running < l.limit).then_some((l.running, i, *ws))
                })
                .min()
                .map(|(_, i, ws)| (i, ws));
            if let Some((i, _)) = chosen {
                st.turns.remove(i);
            }
            let chosen = chosen.map(|(_, ws)| ws);
            let Some(ws) = chosen else { break };
            let Some(lane) = st.lanes.get_mut(&ws) else {
                break;
            };
            let Some(tx) = lane.waiting.pop_front() else {
                break;
            };
            lane.running += 1;
            st.running += 1;
            if !lane.waiting.is_empty() {
                st.turns.push_back(ws);
            }
            out.push((
                tx,
                Permit {
                    admission: self.clone(),
                    ws,
                },
            ));
        }
        out
    }

    fn hand_out(&self, grants: Vec<(oneshot::Sender<Permit>, Permit)>) {
        for (tx, permit) in grants {
            // A ticket dropped meanwhile returns its permit, and dropping
            // that frees the slot again.
            drop(tx.send(permit));
        }
    }

    fn release(self: &Arc<Self>, ws: &WorkspaceId) {
        let grants = {
            let mut st = self.lock();
            let st = &mut *st;
            st.running = st.running.saturating_sub(1);
            if let Some(lane) = st.lanes.get_mut(ws) {
                lane.running = lane.running.saturating_sub(1);
            }
            let out = self.dispatch(st);
            st.lanes
                .retain(|_, l| l.running > 0 || !l.waiting.is_empty() || !l.accepted_ms.is_empty());
            out
        };
        self.hand_out(grants);
    }

    /// What `ws` has in admission now.
    pub fn stats(&self, ws: &WorkspaceId, now_ms: u64) -> LaneStats {
        let st = self.lock();
        st.lanes
            .get(ws)
            .map_or_else(LaneStats::default, |l| LaneStats {
                running: l.running,
                queued: l.waiting.iter().filter(|w| !w.is_closed()).count() as u32,
                last_minute: l
                    .accepted_ms
                    .iter()
                    .filter(|t| now_ms.saturating_sub(**t) < 60_000)
                    .count() as u32,
            })
    }

    /// Runs holding a permit, server-wide.
    pub fn running(&self) -> usize {
        self.lock().running
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
