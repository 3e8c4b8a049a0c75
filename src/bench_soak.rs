//! `quire bench --only soak`: history-heavy load, the case where server
//! memory and disk used to grow without bound. One workspace whose admin
//! raised the output quota to its 16 MiB ceiling runs log-heavy blocks
//! (~16 MB of logs each) one after another through the server's run hub
//! (sled store, runner processes); every few runs the server's resident
//! memory, the data directory's size on disk and the workspace's run
//! history are sampled. The history quota (256 MiB by default) is what
//! bounds the disk; a run's output quota what bounds memory per run.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use quire_engine::runner::RunnerConfig;
use quire_engine::{Engine, EngineConfig, Isolation};
use quire_host_api::{HostApi, HostConfig};
use quire_storage::{BlockRecord, Quota, Store, StoreConfig};
use quire_web::{AppState, ServerConfig, StartRun};
use serde_json::{json, Value};

/// Runs made.
const RUNS: usize = 80;
/// Readers paging through the newest run at once, over HTTP.
const READERS: usize = 8;
/// Samples taken every this many runs.
const EVERY: usize = 10;
/// ~16 MB of logs: 16,000 lines of 1,000 bytes.
const BLOCK: &str =
    "const line = 'x'.repeat(1000); for (let i = 0; i < 16000; i++) console.log(line);";
const MIB: f64 = 1024.0 * 1024.0;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Run the soak; figures as JSON.
pub fn run() -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("quire-bench-soak-{}", std::process::id()));
    let r = rt.block_on(soak(&dir));
    // QUIRE_SOAK_KEEP=1 keeps the data directory to look at.
    if std::env::var_os("QUIRE_SOAK_KEEP").is_some() {
        tracing::warn!(dir = %dir.display(), "soak data directory kept");
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    r
}

async fn soak(dir: &std::path::Path) -> anyhow::Result<Value> {
    let mut sc = StoreConfig::new(dir);
    sc.secret_key = Some(quire_storage::SecretKey::random()?);
    let store = Store::open(&sc).context("soak store")?;
    let ws = store.create_workspace("soak")?;
    let ceilings = Quota::default_ceilings();
    let quota = Quota {
        output_bytes_per_run: ceilings.output_bytes_per_run,
        cpu_ms_per_run: ceilings.cpu_ms_per_run,
        wall_ms_per_run: 60_000,
        ..Quota::default()
    };
    store.put_quota(&ws.id, &quota)?;
    let block = BlockRecord {
        id: "logs".into(),
        name: "logs".into(),
        source: BLOCK.into(),
        lang: "js".into(),
        grants: vec![],
        grants_approved_for: None,
        engine: String::new(),
        updated_ms: 0,
    };
    store.put_block(&ws.id, block.clone())?;
    let runner = RunnerConfig::new(std::env::current_exe()?, vec!["__runner".into()]);
    let engine = Engine::new(EngineConfig {
        isolation: Isolation::Runners(runner),
        ..EngineConfig::default()
    })?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let state = AppState::new(
        store.clone(),
        Arc::new(engine),
        api,
        ServerConfig::default(),
    );
    let rss_start = rss_mib();
    let mut samples = Vec::new();
    let (mut peak_rss, mut peak_disk) = (rss_start, 0u64);
    let t = Instant::now();
    for i in 1..=RUNS {
        let started = state
            .hub
            .start(StartRun::for_block(
                ws.clone(),
                block.clone(),
                Value::Null,
                json!({"kind": "manual"}),
            ))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let live = started.live();
        drop(started);
        live.finished().await;
        let status = live.status();
        anyhow::ensure!(status == "ok", "soak run {i} ended {status}");
        while state.hub.active_count() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        peak_rss = peak_rss.max(rss_mib());
        let disk = dir_bytes(dir);
        peak_disk = peak_disk.max(disk);
        if i % EVERY == 0 {
            samples.push(json!({
                "runs": i,
                "server_rss_mib": rss_mib(),
                "data_dir_mib": disk as f64 / MIB,
                "history_mib": store.history_bytes(&ws.id)? as f64 / MIB,
                "runs_kept": store.recent_runs(&ws.id, None, 1000, None)?.len(),
            }));
        }
    }
    let reads = parallel_reads(&state, &ws).await?;
    Ok(json!({
        "parallel_reads": reads,
        "runs": RUNS,
        "output_mib_per_run": 16,
        "history_quota_mib": quota.history_bytes as f64 / MIB,
        "server_rss_start_mib": rss_start,
        "server_rss_peak_mib": peak_rss,
        "data_dir_peak_mib": peak_disk as f64 / MIB,
        "wall_s": t.elapsed().as_secs_f64(),
        "samples": samples,
    }))
}

/// [`READERS`] clients page through the newest run's events at once over
/// HTTP (`GET .../runs/{run}?from_seq=`) while the server's resident
/// memory is sampled.
async fn parallel_reads(state: &AppState, ws: &quire_storage::Workspace) -> anyhow::Result<Value> {
    let run = state
        .store
        .recent_runs(&ws.id, None, 1, None)?
        .pop()
        .context("no run to read")?
        .id;
    let token = quire_web::Auth::mint(&state.store, Some(ws.id), quire_web::Role::Viewer, "soak")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quire_web::serve(listener, state.clone(), async move {
        let _ = stop_rx.await;
    }));
    let rss_before = rss_mib();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let sampler = tokio::task::spawn_blocking(move || {
        let mut peak = 0f64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(rss_mib());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        peak
    });
    let t = Instant::now();
    let path = format!("/api/v1/workspaces/{}/runs/{run}", ws.name);
    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(read_all(addr, path.clone(), token.clone())))
        .collect();
    let mut events = 0;
    for r in readers {
        events += r.await??;
    }
    let wall_s = t.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap_or(0.0);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
    Ok(json!({
        "readers": READERS,
        "events_read": events,
        "wall_s": wall_s,
        "server_rss_before_mib": rss_before,
        "server_rss_peak_mib": peak,
    }))
}

/// Every event of the run at `path`, page by page; how many.
async fn read_all(
    addr: std::net::SocketAddr,
    path: String,
    token: String,
) -> anyhow::Result<usize> {
    let mut from = 0u64;
    let mut n = 0;
    loop {
        let v = http_get(addr, &format!("{path}?from_seq={from}"), &token).await?;
        n += v["events"].as_array().map_or(0, Vec::len);
        match v["next_seq"].as_u64() {
            Some(next) => from = next,
            None => return Ok(n),
        }
    }
}

/// One HTTP/1.1 GET with `Connection: close`; its JSON body.
async fn http_get(addr: std::net::SocketAddr, path: &str, token: &str) -> anyhow::Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&buf[..at]);
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    Ok(serde_json::from_slice(&buf[at + 4..])?)
}
