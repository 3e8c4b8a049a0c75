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
