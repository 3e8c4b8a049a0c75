//! `quire bench --only server`: 500 WebSocket clients at once (and, for
//! comparison, 10), each running a block that logs 100 lines, through the same server code as
//! `quire serve` (sled store, sandboxed runner processes), in this process.
//!
//! Latency is from `console.log` in the runner to the client task reading
//! the event, both timed on CLOCK_MONOTONIC (the runners start with test
//! hooks, which give blocks `__quire_test_clock_us()`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use quire_engine::runner::RunnerConfig;
use quire_engine::{Engine, EngineConfig, Isolation};
use quire_host_api::{HostApi, HostConfig};
use quire_storage::{Store, StoreConfig};
use quire_web::{AppState, Auth, Role, ServerConfig};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::bench::percentile;

/// Concurrent WebSocket clients under load, and in the light case.
const CLIENTS: usize = 500;
const LIGHT_CLIENTS: usize = 10;
/// Lines each client's run logs.
const LINES: usize = 100;

/// How long one phase's clients may take in all before the bench gives
/// up and reports which did not finish (a healthy phase takes seconds).
const DEADLINE: Duration = Duration::from_secs(120);

const BLOCK: &str = "for (let i = 0; i < 100; i++) console.log(String(__quire_test_clock_us()));";

fn clock_us() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

/// Resident and peak memory of a process, in KiB, from /proc.
fn rss_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resident memory of this process's runner children, in KiB.
fn runners_rss_kib() -> (usize, u64) {
    let me = std::process::id().to_string();
    let mut n = 0;
    let mut total = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the ")" that ends the command name: state, ppid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1));
        if ppid == Some(me.as_str()) {
            n += 1;
            total += rss_kib(&pid).0;
        }
    }
    (n, total)
}

struct ClientResult {
    latencies_us: Vec<f64>,
    logs: usize,
    in_order: bool,
    finished: bool,
}

/// What a client has seen so far, kept outside its task so a client that
/// never finishes can still be described.
#[derive(Debug, Default)]
struct Progress {
    /// Where it is: connecting, sent, accepted, events, finished, closed.
    stage: &'static str,
    run: Option<String>,
    events: usize,
    /// The last message it received (cut short).
    last: String,
}

fn note(p: &Mutex<Progress>, f: impl FnOnce(&mut Progress)) {
    f(&mut p.lock().unwrap_or_else(|e| e.into_inner()));
}

async fn client(url: String, progress: Arc<Mutex<Progress>>) -> anyhow::Result<ClientResult> {
    note(&progress, |p| p.stage = "connecting");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    ws.send(Message::Text(
        json!({"op": "run_source", "source": BLOCK, "lang": "js"})
            .to_string()
            .into(),
    ))
    .await?;
    note(&progress, |p| p.stage = "sent run_source");
    let mut r = ClientResult {
        latencies_us: Vec::with_capacity(LINES),
        logs: 0,
        in_order: true,
        finished: false,
    };
    let mut next_seq = 0;
    while let Some(m) = ws.next().await {
        let Message::Text(t) = m? else { continue };
        let now = clock_us();
        let v: Value = serde_json::from_str(&t)?;
        note(&progress, |p| {
            p.last = t.chars().take(160).collect();
            if v["op"] == "accepted" {
                p.stage = "accepted";
                p.run = v["run"].as_str().map(str::to_string);
            } else if v.get("op").is_none() {
                p.stage = "receiving events";
                p.events += 1;
            }
        });
        if v.get("op").is_some() {
            if v["op"] == "rejected" {
                anyhow::bail!("run rejected: {}", v["reason"]);
            }
            continue;
        }
        r.in_order &= v["seq"] == next_seq;
        next_seq += 1;
        match v["type"].as_str() {
            Some("log") => {
                r.logs += 1;
                if let Some(at) = v["text"].as_str().and_then(|s| s.parse::<f64>().ok()) {
                    r.latencies_us.push(now - at);
                }
            }
            Some("finished") => {
                r.finished = v["status"] == "ok";
                note(&progress, |p| p.stage = "finished");
                break;
            }
            _ => {}
        }
    }
    if !r.finished {
        note(&progress, |p| p.stage = "connection ended before finished");
    }
    let _ = ws.close(None).await;
    Ok(r)
}

/// Run `clients` clients at once against `url`, all within `deadline`.
/// Clients that fail or do not finish in time are an error that names
/// each with what it last saw, and what the server had going then.
async fn run_clients(
    url: &str,
    clients: usize,
    deadline: tokio::time::Instant,
    state: &AppState,
    engine: &Engine,
) -> anyhow::Result<Vec<ClientResult>> {
    let board: Arc<Vec<Arc<Mutex<Progress>>>> = Arc::new(
        (0..clients)
            .map(|_| Arc::new(Mutex::new(Progress::default())))
            .collect(),
    );
    // The deadline below runs on the runtime; if the runtime itself
    // stalls (its threads blocked in a store call), a plain thread still
    // says what the clients last saw, and ends the process.
    let (_alive, alive_rx) = std::sync::mpsc::channel::<()>();
    let (b, hub) = (board.clone(), state.hub.clone());
    let late = deadline.into_std() + Duration::from_secs(30);
    std::thread::Builder::new()
        .name("bench-watchdog".into())
        .spawn(move || {
            let wait = late.saturating_duration_since(Instant::now());
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = alive_rx.recv_timeout(wait) {
                eprintln!(
                    "quire bench: the server bench is stuck (its async runtime does not answer): {} runs active in the hub; {}",
                    hub.active_count(),
                    summarize(&b)
                );
                std::process::exit(3);
            }
        })?;
    let tasks: Vec<_> = board
        .iter()
        .map(|p| (tokio::spawn(client(url.to_string(), p.clone())), p.clone()))
        .collect();
    let mut results = Vec::with_capacity(clients);
    let mut problems = Vec::new();
    for (i, (mut task, progress)) in tasks.into_iter().enumerate() {
        let outcome = tokio::time::timeout_at(deadline, &mut task).await;
        let p = progress.lock().unwrap_or_else(|e| e.into_inner());
        let seen = format!(
            "stage {}, run {}, {} events, last message {:?}",
            p.stage,
            p.run.as_deref().unwrap_or("-"),
            p.events,
            p.last
        );
        match outcome {
            Ok(Ok(Ok(r))) => results.push(r),
            Ok(Ok(Err(e))) => problems.push(format!("client {i} failed: {e:#} ({seen})")),
            Ok(Err(e)) => problems.push(format!("client {i} panicked: {e} ({seen})")),
            Err(_) => {
                task.abort();
                problems.push(format!("client {i} did not finish in time ({seen})"));
            }
        }
    }
    if problems.is_empty() {
        return Ok(results);
    }
    let s = engine.stats();
    let mut msg = format!(
        "{} of {clients} clients failed or did not finish within {} s; server then: {} runs active in the hub, {} queued in the engine, {} runners ({} lost), {} WebSocket clients",
        problems.len(),
        DEADLINE.as_secs(),
        state.hub.active_count(),
        s.queued_runs,
        s.runners,
        s.runners_lost,
        state.metrics.ws_clients.load(Ordering::Relaxed),
    );
    for p in problems.iter().take(20) {
        msg.push_str("\n  ");
        msg.push_str(p);
    }
    if problems.len() > 20 {
        msg.push_str(&format!("\n  ... and {} more", problems.len() - 20));
    }
    anyhow::bail!(msg)
}

/// Clients by stage, and the first unfinished ones with what they saw.
fn summarize(board: &[Arc<Mutex<Progress>>]) -> String {
    let mut stages = std::collections::BTreeMap::<&str, usize>::new();
    let mut unfinished = Vec::new();
    for (i, p) in board.iter().enumerate() {
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        *stages.entry(p.stage).or_default() += 1;
        if p.stage != "finished" && unfinished.len() < 20 {
            unfinished.push(format!(
                "client {i}: stage {}, run {}, {} events, last message {:?}",
                p.stage,
                p.run.as_deref().unwrap_or("-"),
                p.events,
                p.last
            ));
        }
    }
    let mut out = format!("clients by stage: {stages:?}");
    for u in unfinished {
        out.push_str("\n  ");
        out.push_str(&u);
    }
    out
}

/// Sets its flag when dropped: stops the memory sampler on every way out
/// of a phase (a blocking task that never ends would hold the runtime's
/// shutdown, and the process, for ever).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Run the server benchmark; numbers as JSON.
pub fn run() -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let phases = || -> anyhow::Result<Value> {
        let mut out = json!({});
        for (name, clients) in [("load", CLIENTS), ("light", LIGHT_CLIENTS)] {
            let dir = std::env::temp_dir()
                .join(format!("quire-bench-server-{}-{name}", std::process::id()));
            let r = rt.block_on(measure(&dir, clients));
            let _ = std::fs::remove_dir_all(&dir);
            out[name] = r.with_context(|| format!("the {name} phase ({clients} clients)"))?;
        }
        Ok(out)
    };
    let out = phases();
    // Do not wait for ever on blocking threads that are stuck (a wedged
    // store): the result, or the error saying what did not finish, is
    // what matters now.
    rt.shutdown_timeout(Duration::from_secs(10));
    out
}

async fn measure(dir: &std::path::Path, clients: usize) -> anyhow::Result<Value> {
    let mut sc = StoreConfig::new(dir);
    sc.secret_key = Some(quire_storage::SecretKey::random()?);
    let store = Store::open(&sc).context("bench store")?;
    let ws = store.create_workspace("bench")?;
    // Every client runs in this one workspace: lift its quotas (and the
    // ceilings over them) so admission does not queue the load.
    let open = quire_storage::Quota {
        max_concurrent_runs: 1024,
        max_queued_runs: 100_000,
        runs_per_minute: 1_000_000,
        ..quire_storage::Quota::default()
    };
    store.put_quota_ceilings(&quire_storage::Quota {
        max_concurrent_runs: 1024,
        max_queued_runs: 100_000,
        runs_per_minute: 1_000_000,
        ..quire_storage::Quota::default_ceilings()
    })?;
    store.put_quota(&ws.id, &open)?;
    let token = Auth::mint(&store, Some(ws.id), Role::Editor, "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .1;
    let runner = RunnerConfig::new(
        std::env::current_exe()?,
        vec!["__runner".into(), "--test-hooks".into()],
    );
    let engine = Engine::new(EngineConfig {
        isolation: Isolation::Runners(runner),
        ..EngineConfig::default()
    })?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let config = ServerConfig {
        rate_per_sec: 1e9,
        rate_burst: 1e9,
        max_active_runs: 1024,
        ..ServerConfig::default()
    };
    let engine = Arc::new(engine);
    let state = AppState::new(store, engine.clone(), api, config);
    let watch = state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "ws://{}/api/v1/workspaces/bench/live?token={token}",
        listener.local_addr()?
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quire_web::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    let measured = async {
        // Warm up: start the runner pool, compile the block.
        let warm_deadline = tokio::time::Instant::now() + DEADLINE;
        for _ in 0..20 {
            run_clients(&url, 1, warm_deadline, &watch, &engine)
                .await
                .context("warm-up")?;
        }
        let (rss_before, _) = rss_kib("self");
        let t = Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        let stop_sampler = StopOnDrop(done.clone());
        let sampler = tokio::task::spawn_blocking(move || {
            let mut peak = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let r = runners_rss_kib();
                if r.1 > peak.1 {
                    peak = r;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        let results = run_clients(
            &url,
            clients,
            tokio::time::Instant::now() + DEADLINE,
            &watch,
            &engine,
        )
        .await?;
        let elapsed = t.elapsed().as_secs_f64();
        drop(stop_sampler);
        let peak_runners = sampler.await.unwrap_or((0, 0));
        anyhow::Ok((results, elapsed, rss_before, peak_runners))
    }
    .await;
    let (rss_after, hwm) = rss_kib("self");
    let _ = stop_tx.send(());
    // Shutdown waits for the runs still going (bounded by the hub's grace
    // and kill timeouts); do not hang here on a server that wedged.
    if tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .is_err()
    {
        tracing::warn!("the bench server did not shut down within 60 s");
    }
    let (results, elapsed, rss_before, peak_runners) = measured?;
    let mut lat = Vec::with_capacity(clients * LINES);
    let (mut logs, mut out_of_order, mut failed) = (0, 0, 0);
    for r in results {
        logs += r.logs;
        out_of_order += usize::from(!r.in_order);
        failed += usize::from(!r.finished);
        lat.extend(r.latencies_us);
    }
    lat.sort_by(f64::total_cmp);
    if logs != clients * LINES || out_of_order > 0 || failed > 0 {
        anyhow::bail!(
            "lost or reordered events: {logs} of {} log lines, {out_of_order} clients out of order, {failed} runs not ok",
            clients * LINES
        );
    }
    Ok(json!({
        "clients": clients,
        "lines_per_run": LINES,
        "events_delivered": logs,
        "events_lost": 0,
        "log_to_client_p50_ms": percentile(&lat, 0.5) / 1000.0,
        "log_to_client_p99_ms": percentile(&lat, 0.99) / 1000.0,
        "log_to_client_max_ms": lat.last().copied().unwrap_or(0.0) / 1000.0,
        "runs_per_sec": clients as f64 / elapsed,
        "wall_s": elapsed,
        "server_rss_before_mib": rss_before as f64 / 1024.0,
        "server_rss_after_mib": rss_after as f64 / 1024.0,
        "server_peak_rss_mib": hwm as f64 / 1024.0,
        "runners_at_peak": peak_runners.0,
        "runners_peak_rss_mib": peak_runners.1 as f64 / 1024.0,
    }))
}
