//! `quire bench --only fairness`: while workspace A floods the server with
//! 1,000 CPU-bound runs, how long does workspace B wait for hello-world?
//!
//! The server is `quire serve`'s code (sled store, sandboxed runner
//! processes) in this process, driven over WebSocket. B runs hello-world
//! one after another: first on an idle server, then while A's 1,000 runs
//! are queued and running. Latency is from sending `run` to receiving the
//! run's `finished` event. Reported: p50/p99 idle and loaded, and their
//! ratio, in the same run. Three settings are compared: A under the
//! default quota (4 runs at once, the rest queued in admission) with the
//! default one JavaScript thread per runner; the same with two threads per
//! runner (A's runs can then take both cores); and A allowed 1,000 runs at
//! once (admission waves them all through to the runner pool), which shows
//! what admission is for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use quire_engine::runner::RunnerConfig;
use quire_engine::{Engine, EngineConfig, Isolation};
use quire_host_api::{HostApi, HostConfig};
use quire_storage::{BlockRecord, Quota, Store, StoreConfig};
use quire_web::{AppState, Auth, Role, ServerConfig};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::bench::percentile;

/// Runs A submits.
const FLOOD: usize = 1000;
/// Hello-world runs B times in each phase.
const SAMPLES: usize = 1000;
/// A's block: about 120 ms of CPU in QuickJS.
const SPIN: &str =
    "let x = 0; for (let i = 0; i < 2e6; i++) x = (x + i * 7) % 1000003; export default x";
const HELLO: &str = "export default 'hello'";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The three settings, one after the other.
pub fn run() -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut out = json!({});
    let fair = Quota {
        max_queued_runs: 2 * FLOOD as u32,
        runs_per_minute: 100_000,
        ..Quota::default()
    };
    let unfair = Quota {
        max_concurrent_runs: FLOOD as u32,
        ..fair
    };
    let settings = [
        ("default_quota", fair, 1),
        ("default_quota_two_threads", fair, 2),
        ("a_unlimited", unfair, 1),
    ];
    for (name, quota_a, threads) in settings {
        let dir =
            std::env::temp_dir().join(format!("quire-bench-fair-{}-{name}", std::process::id()));
        let r = rt.block_on(measure(&dir, quota_a, threads));
        let _ = std::fs::remove_dir_all(&dir);
        out[name] = r?;
    }
    Ok(out)
}

/// A JavaScript block with no grants (for the benchmarks' stores).
pub(crate) fn block(id: &str, source: &str) -> BlockRecord {
    BlockRecord {
        id: id.into(),
        name: id.into(),
        source: source.into(),
        lang: "js".into(),
        grants: vec![],
        grants_approved_for: None,
        engine: String::new(),
        updated_ms: 0,
    }
}

async fn connect(url: &str) -> anyhow::Result<Ws> {
    Ok(tokio_tungstenite::connect_async(url).await?.0)
}

/// Run block `id` and wait for its `finished` event; milliseconds taken.
async fn timed_run(ws: &mut Ws, id: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    ws.send(Message::Text(
        json!({"op": "run", "block": id}).to_string().into(),
    ))
    .await?;
    while let Some(m) = ws.next().await {
        let Message::Text(t2) = m? else { continue };
        let v: Value = serde_json::from_str(&t2)?;
        if v["op"] == "rejected" {
            anyhow::bail!("hello rejected: {}", v["reason"]);
        }
        if v["type"] == "finished" {
            return Ok(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    anyhow::bail!("the connection closed mid-run")
}

/// `n` hello-world runs one after another (stopping early after `budget`).
async fn samples(ws: &mut Ws, n: usize, budget: Duration) -> anyhow::Result<Vec<f64>> {
    let start = Instant::now();
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(timed_run(ws, "hello").await?);
        if start.elapsed() > budget {
            break;
        }
    }
    v.sort_by(f64::total_cmp);
    Ok(v)
}

fn summary(v: &[f64]) -> Value {
    json!({
        "runs": v.len(),
        "p50_ms": percentile(v, 0.5),
        "p99_ms": percentile(v, 0.99),
        "max_ms": v.last().copied().unwrap_or(0.0),
    })
}

async fn measure(dir: &std::path::Path, quota_a: Quota, threads: usize) -> anyhow::Result<Value> {
    let mut sc = StoreConfig::new(dir);
    sc.secret_key = Some(quire_storage::SecretKey::random()?);
    let store = Store::open(&sc).context("bench store")?;
    store.put_quota_ceilings(&Quota {
        max_concurrent_runs: FLOOD as u32,
        max_queued_runs: 100_000,
        runs_per_minute: 1_000_000,
        ..Quota::default_ceilings()
    })?;
    let a = store.create_workspace("a")?;
    let b = store.create_workspace("b")?;
    store.put_quota(&a.id, &quota_a)?;
    // B's own rate quota is not what is measured: lift it.
    store.put_quota(
        &b.id,
        &Quota {
            runs_per_minute: 100_000,
            ..Quota::default()
        },
    )?;
    store.put_block(&a.id, block("spin", SPIN))?;
    store.put_block(&b.id, block("hello", HELLO))?;
    let token = |ws| {
        Auth::mint(&store, Some(ws), Role::Editor, "bench")
            .map(|t| t.1)
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let (ta, tb) = (token(a.id)?, token(b.id)?);
    let mut runner = RunnerConfig::new(std::env::current_exe()?, vec!["__runner".into()]);
    runner.threads_per_runner = threads;
    let engine = Engine::new(EngineConfig {
        isolation: Isolation::Runners(runner),
        ..EngineConfig::default()
    })?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let config = ServerConfig {
        rate_per_sec: 1e9,
        rate_burst: 1e9,
        ws_max_followed_runs: 2 * FLOOD,
        max_active_runs: 2 * FLOOD,
        shutdown_grace_ms: 0,
        ..ServerConfig::default()
    };
    let state = AppState::new(store, Arc::new(engine), api, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = |ws: &str, t: &str| format!("ws://{addr}/api/v1/workspaces/{ws}/live?token={t}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quire_web::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));

    let mut hb = connect(&url("b", &tb)).await?;
    let mut ha = connect(&url("a", &ta)).await?;
    // Warm up: runners started, both blocks compiled.
    for _ in 0..20 {
        timed_run(&mut hb, "hello").await?;
    }
    for _ in 0..4 {
        timed_run(&mut ha, "spin").await?;
    }
    // Let the pool settle (it starts warm runners to replace the two the
    // workspaces took) before measuring the idle baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = samples(&mut hb, SAMPLES, Duration::from_secs(60)).await?;

    // A's flood: every run sent at once on one connection; a reader counts
    // acceptances and finished runs.
    let (accepted, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (mut a_tx, mut a_rx) = ha.split();
    let reader = {
        let (acc, fin) = (accepted.clone(), finished.clone());
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = a_rx.next().await {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if v["op"] == "accepted" {
                    acc.fetch_add(1, Ordering::Relaxed);
                } else if v["type"] == "finished" {
                    fin.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let flood_start = Instant::now();
    for _ in 0..FLOOD {
        a_tx.send(Message::Text(
            json!({"op": "run", "block": "spin"}).to_string().into(),
        ))
        .await?;
    }
    while accepted.load(Ordering::Relaxed) < FLOOD
        && flood_start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let accepted_all_s = flood_start.elapsed().as_secs_f64();
    let a_done_before = finished.load(Ordering::Relaxed);
    let phase = Instant::now();
    let loaded = samples(&mut hb, SAMPLES, Duration::from_secs(30)).await?;
    let phase_s = phase.elapsed().as_secs_f64();
    let a_done_during = finished.load(Ordering::Relaxed) - a_done_before;
    let a_left = FLOOD - finished.load(Ordering::Relaxed);
    let _ = stop_tx.send(());
    let _ = server.await;
    reader.abort();
    let ratio = percentile(&loaded, 0.99) / percentile(&idle, 0.99).max(1e-9);
    Ok(json!({
        "a_max_concurrent_runs": quota_a.max_concurrent_runs,
        "threads_per_runner": threads,
        "a_runs_submitted": FLOOD,
        "a_runs_accepted": accepted.load(Ordering::Relaxed),
        "a_all_accepted_after_s": accepted_all_s,
        "a_runs_finished_while_b_measured": a_done_during,
        "a_runs_per_sec_while_b_measured": a_done_during as f64 / phase_s,
        "b_loaded_phase_s": phase_s,
        "a_runs_still_queued_or_running_after": a_left,
        "b_idle": summary(&idle),
        "b_loaded": summary(&loaded),
        "b_p99_ratio": ratio,
    }))
}
