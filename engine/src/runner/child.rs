//! The runner process: sandbox itself, run an in-process engine, and relay
//! events and host calls to the server over stdin/stdout.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::protocol::{read_frame, write_frame, FromRunner, ToRunner, DEFAULT_MAX_FRAME_BYTES};
use super::sandbox::{self, SandboxLimits};
use crate::host::{CallContext, Host, HostCall, HostReply};
use crate::{Canceller, Engine, EngineConfig, Lang, RunRequest};

/// How a runner process runs (parsed by the binary from its arguments).
#[derive(Debug, Clone, Default)]
pub struct RunnerArgs {
    /// Enable the test-only natives (a CPU spin that ignores interrupts,
    /// a forbidden system call). Never in production.
    pub test_hooks: bool,
    /// The process limits.
    pub limits: SandboxLimits,
    /// JavaScript worker threads (0 means 1).
    pub threads: usize,
}

/// Messages to the server, written by one writer thread: the block's
/// threads never pay for pipe writes (or wait on a full pipe), and frames
/// that queue up go out in one write.
type Out = flume::Sender<FromRunner>;

fn send(out: &Out, msg: FromRunner) -> bool {
    out.send(msg).is_ok()
}

fn writer(rx: flume::Receiver<FromRunner>) {
    let stdout = std::io::stdout();
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Ok(first) = rx.recv() {
        buf.clear();
        let _ = write_frame(&mut buf, &first);
        while buf.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(m) => {
                    let _ = write_frame(&mut buf, &m);
                }
                Err(_) => break,
            }
        }
        let mut o = stdout.lock();
        if o.write_all(&buf).and_then(|_| o.flush()).is_err() {
            // The server is gone: nothing left to do.
            std::process::exit(0);
        }
    }
}

/// Replies the server owes this runner, by (run, call id).
type Pending = Arc<Mutex<HashMap<(String, u32), HostReply>>>;

struct ProxyHost {
    run: String,
    /// The host module; `None` for a run with no host API, whose calls
    /// (`fetch`) still go to the server, which refuses and records them.
    module: Option<&'static str>,
    out: Out,
    pending: Pending,
    next: AtomicU32,
}

impl Host for ProxyHost {
    fn module_source(&self) -> &'static str {
        self.module.unwrap_or("")
    }

    fn provides_module(&self) -> bool {
        self.module.is_some()
    }

    fn call(&self, _cx: &CallContext, call: HostCall, reply: HostReply) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((self.run.clone(), id), reply);
        send(
            &self.out,
            FromRunner::Call {
                run: self.run.clone(),
                call: id,
                op: call.op,
                args: call.args,
            },
        );
    }
}

/// Host module sources, leaked once each (the server sends one or two).
fn leak_module(src: String, cache: &mut HashMap<[u8; 32], &'static str>) -> Option<&'static str> {
    let key = *blake3::hash(src.as_bytes()).as_bytes();
    if let Some(s) = cache.get(&key) {
        return Some(s);
    }
    if cache.len() >= 8 {
        return None;
    }
    let s: &'static str = Box::leak(src.into_boxed_str());
    cache.insert(key, s);
    Some(s)
}

/// The runner's main loop. Returns the process exit code.
pub fn runner_main(args: RunnerArgs) -> i32 {
    let mut report = sandbox::restrict_process(&args.limits);
    let engine = match Engine::new(EngineConfig {
        worker_threads: args.threads.max(1),
        isolate_pool_per_worker: 2,
        test_native_spin: args.test_hooks,
        ..EngineConfig::default()
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln_safe(&format!("quire runner: engine failed to start: {e}"));
            return 3;
        }
    };
    // Warm up everything lazily initialised, before the allowlist (the
    // C library's time zone, from TZ=UTC0 set by the server, included).
    let warm = engine
        .run(RunRequest::new(
            "export default [new Date(0).toString(), new URL('http://a/').href, structuredClone(1)]",
            Lang::Js,
        ))
        .wait();
    if warm.error.is_some() {
        eprintln_safe(&format!("quire runner: warm-up failed: {:?}", warm.error));
        return 3;
    }
    if let Err(e) = sandbox::install_seccomp() {
        eprintln_safe(&format!("quire runner: refusing to run unsandboxed: {e}"));
        return 3;
    }
    report.seccomp = true;
    let (out, rx) = flume::unbounded::<FromRunner>();
    if std::thread::Builder::new()
        .name("quire-runner-out".into())
        .spawn(move || writer(rx))
        .is_err()
    {
        return 3;
    }
    if !send(
        &out,
        FromRunner::Ready {
            pid: std::process::id(),
            sandbox: report,
        },
    ) {
        return 0;
    }
    serve(&engine, &out);
    0
}

fn eprintln_safe(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn serve(engine: &Engine, out: &Out) {
    let pending: Pending = Arc::default();
    let runs: Arc<Mutex<HashMap<String, Option<Canceller>>>> = Arc::default();
    let mut modules = HashMap::new();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    loop {
        let msg: ToRunner = match read_frame(&mut input, DEFAULT_MAX_FRAME_BYTES) {
            Ok(Some(m)) => m,
            // The server closed the pipe (or broke the protocol): exit.
            Ok(None) | Err(_) => return,
        };
        match msg {
            ToRunner::Prelude { .. } => {}
            ToRunner::Start {
                run,
                request,
                host_module,
                ..
            } => {
                let mut request = *request;
                request.run_id = Some(run.clone());
                // The server counts and refuses host calls (and records
                // its refusals, which decide a run's error kind), so the
                // runner passes every call on.
                if let Some(l) = request.limits.as_mut() {
                    l.host_calls = u32::MAX;
                }
                let module = host_module.and_then(|src| leak_module(src, &mut modules));
                request = request.with_host(Arc::new(ProxyHost {
                    run: run.clone(),
                    module,
                    out: out.clone(),
                    pending: pending.clone(),
                    next: AtomicU32::new(1),
                }));
                // Events go to the server from the thread that emits them
                // (no relay thread: one hand-off fewer per event).
                let (o, r2, p2, id) = (out.clone(), runs.clone(), pending.clone(), run.clone());
                let request = request.with_event_tap(move |ev| {
                    send(
                        &o,
                        FromRunner::Event {
                            run: id.clone(),
                            body: ev.body.clone(),
                        },
                    );
                    if matches!(ev.body, crate::EventBody::Finished(_)) {
                        r2.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                        p2.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .retain(|(r, _), _| r != &id);
                    }
                });
                // Listed before it starts, so a run that finishes at once
                // (its tap removes it, on this thread) is not left behind;
                // the lock is not held across `engine.run`, which the tap
                // of such a run needs. Cancels are read by this same loop,
                // so none can arrive before the canceller is set.
                runs.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(run.clone(), None);
                let handle = engine.run(request);
                if let Some(slot) = runs.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&run) {
                    *slot = Some(handle.canceller());
                }
                drop(handle);
            }
            ToRunner::Cancel { run } => {
                if let Some(Some(c)) = runs.lock().unwrap_or_else(|e| e.into_inner()).get(&run) {
                    c.cancel();
                }
            }
            ToRunner::Reply { run, call, result } => {
                let reply = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(run, call));
                if let Some(r) = reply {
                    r.send(result);
                }
            }
        }
    }
}
