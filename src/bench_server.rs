//! `quire bench --only server`: 500 WebSocket clients at once (and, for
//! comparison, 10), each running a block that logs 100 lines, through the same server code as
//! `quire serve` (sled store, sandboxed runner processes), in this process.
//!
//! Latency is from `console.log` in the runner to the client task reading
//! the event, both timed on CLOCK_MONOTONIC (the runners start with test
//! hooks, which give blocks `__quire_test_clock_us()`).

use std::sync::Arc;
use std::time::Instant;

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

async fn client(url: String) -> anyhow::Result<ClientResult> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    ws.send(Message::Text(
        json!({"op": "run_source", "source": BLOCK, "lang": "js"})
            .to_string()
            .into(),
    ))
    .await?;
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
                break;
            }
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    Ok(r)
}

/// Run the server benchmark; numbers as JSON.
pub fn run() -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut out = json!({});
    for (name, clients) in [("load", CLIENTS), ("light", LIGHT_CLIENTS)] {
        let dir =
            std::env::temp_dir().join(format!("quire-bench-server-{}-{name}", std::process::id()));
        let r = rt.block_on(measure(&dir, clients));
        let _ = std::fs::remove_dir_all(&dir);
        out[name] = r?;
    }
    Ok(out)
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
    let state = AppState::new(store, Arc::new(engine), api, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "ws://{}/api/v1/workspaces/bench/live?token={token}",
        listener.local_addr()?
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quire_web::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    // Warm up: start the runner pool, compile the block.
    for _ in 0..20 {
        client(url.clone()).await?;
    }
    let (rss_before, _) = rss_kib("self");
    let t = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(url.clone())))
        .collect();
    let mut peak_runners = (0, 0);
    let sampler = {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        let h = tokio::task::spawn_blocking(move || {
            let mut peak = (0, 0);
            while !d.load(std::sync::atomic::Ordering::Relaxed) {
                let r = runners_rss_kib();
                if r.1 > peak.1 {
                    peak = r;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            peak
        });
        (done, h)
    };
    let mut lat = Vec::with_capacity(clients * LINES);
    let (mut logs, mut out_of_order, mut failed) = (0, 0, 0);
    for task in tasks {
        let r = task.await??;
        logs += r.logs;
        out_of_order += usize::from(!r.in_order);
        failed += usize::from(!r.finished);
        lat.extend(r.latencies_us);
    }
    let elapsed = t.elapsed().as_secs_f64();
    sampler.0.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Ok(p) = sampler.1.await {
        peak_runners = p;
    }
    let (rss_after, hwm) = rss_kib("self");
    let _ = stop_tx.send(());
    let _ = server.await;
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
