//! A fixed pool of threads for host-call work that may block (storage
//! flushes, network). Worker threads of the engine never block on it.

/// Work for the pool.
pub(crate) type Task = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of named threads fed by one queue.
pub(crate) struct Pool {
    tx: flume::Sender<Task>,
}

impl Pool {
    pub(crate) fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = flume::unbounded::<Task>();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    while let Ok(task) = rx.recv() {
                        // A panic in one task must not take the thread.
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).is_err() {
                            tracing::error!("a host-call task panicked");
                        }
                    }
                })?;
        }
        Ok(Self { tx })
    }

    /// Queue `task`. (A dropped task drops its reply, which settles the
    /// call with an error, so nothing waits forever.)
    pub(crate) fn spawn(&self, task: Task) {
        let _ = self.tx.send(task);
    }
}

/// One run's share of a pool: at most `limit` of its tasks run at once;
/// the rest wait in the run's own queue, so a block that fires a thousand
/// calls at once cannot fill the pool ahead of other runs.
pub(crate) struct Lane {
    limit: usize,
    state: std::sync::Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    running: usize,
    waiting: std::collections::VecDeque<Task>,
}

impl Lane {
    pub(crate) fn new(limit: usize) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            limit: limit.max(1),
            state: std::sync::Mutex::new(LaneState::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `task` on `pool` now if the lane has room, else after the
    /// lane's earlier tasks.
    pub(crate) fn submit(self: &std::sync::Arc<Self>, pool: &std::sync::Arc<Pool>, task: Task) {
        let mut st = self.lock();
        if st.running >= self.limit {
            st.waiting.push_back(task);
            return;
        }
        st.running += 1;
        drop(st);
        self.launch(pool, task);
    }

    fn launch(self: &std::sync::Arc<Self>, pool: &std::sync::Arc<Pool>, task: Task) {
        let lane = self.clone();
        let p = pool.clone();
        pool.spawn(Box::new(move || {
            // Even if the task panics, the lane moves on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
            let next = {
                let mut st = lane.lock();
                match st.waiting.pop_front() {
                    Some(t) => Some(t),
                    None => {
                        st.running -= 1;
                        None
                    }
                }
            };
            if let Some(t) = next {
                lane.launch(&p, t);
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_lane_never_runs_more_than_its_limit_and_runs_everything() {
        let pool = Arc::new(Pool::new("test", 8).unwrap());
        let lane = Lane::new(2);
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..40 {
            let (now, peak, done) = (now.clone(), peak.clone(), done.clone());
            lane.submit(
                &pool,
                Box::new(move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    now.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                }),
            );
        }
        while done.load(Ordering::SeqCst) < 40 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }
}
