//! `quire bench --only living` (issue 20): what live meters cost a
//! CPU-bound block, on both engines in runner processes (meters on and
//! off, interleaved), and how soon a dependent block shows output after
//! its upstream finishes when the document re-runs dependents (through
//! `quire serve`'s code, followed over a WebSocket).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use quire_engine::runner::RunnerConfig;
use quire_engine::{
    Engine, EngineConfig, EngineKind, EventBody, Isolation, Lang, Limits, RunRequest,
};
use quire_host_api::{HostApi, HostConfig};
use quire_storage::{DocBlock, Document, Quota, Store, StoreConfig};
use quire_web::{AppState, Auth, Role, ServerConfig};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::bench::percentile;
use crate::bench_fair::block;

/// About 300 ms of CPU on QuickJS, far less on V8 (so V8 gets more).
fn spin(kind: EngineKind) -> String {
    let n = if kind == EngineKind::V8 {
        150_000_000
    } else {
        12_000_000
    };
    format!("let x = 0; for (let i = 0; i < {n}; i++) x = (x + i) % 1000003; export default x;")
}

const ROUNDS: usize = 12;

/// Runs/s, mean CPU ms and live meters per run for `ROUNDS` runs each
/// with meters on and off, alternating so drift hits both alike.
fn meter_cost(engine: &Engine, kind: EngineKind) -> anyhow::Result<Value> {
    let src = spin(kind);
    let limits = |interval| Limits {
        cpu_time_ms: 20_000,
        wall_time_ms: 60_000,
        meter_interval_ms: interval,
        ..Limits::default()
    };
    let run = |interval| -> anyhow::Result<(f64, f64, usize)> {
        let t = Instant::now();
        let h = engine.run(
            RunRequest::new(&src, Lang::Js)
                .with_engine(kind)
                .with_limits(limits(interval)),
        );
        let meters = h
            .events()
            .iter()
            .filter(|e| matches!(&e.body, EventBody::Meter(m) if !m.last))
            .count();
        let out = h.wait();
        if let Some(e) = out.error {
            anyhow::bail!("{}: {}", kind.as_str(), e.message);
        }
        Ok((t.elapsed().as_secs_f64(), out.finished.cpu_ms, meters))
    };
    run(100)?;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        on.push(run(100)?);
        off.push(run(0)?);
    }
    let sum = |v: &[(f64, f64, usize)]| {
        let wall: f64 = v.iter().map(|r| r.0).sum();
        let cpu: f64 = v.iter().map(|r| r.1).sum();
        let meters: usize = v.iter().map(|r| r.2).sum();
        let n = v.len() as f64;
        json!({
            "runs_per_sec": n / wall,
            "cpu_ms_mean": cpu / n,
            "live_meters_per_run": meters as f64 / n,
        })
    };
    Ok(json!({ "meters_on": sum(&on), "meters_off": sum(&off), "runs": ROUNDS }))
}

pub fn run() -> anyhow::Result<Value> {
    let engine = crate::bench::runner_engine(4)?;
    let mut out = crate::bench::each_engine(&engine, |kind| meter_cost(&engine, kind))?;
    drop(engine);
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Runtime::new()?;
    out["dependent_rerun"] = rt.block_on(dependent_latency(dir.path()))?;
    Ok(out)
}

const LOAD: &str = "export default [{ v: 2 }, { v: 3 }];";
const SUM: &str = "import { results } from 'quire';\nconst rows = await results.get('load');\nconsole.log('rows', rows.length);\nexport default rows.length;";
const SAMPLES: usize = 40;

/// From the upstream's `finished` to the dependent's first log, both as a
/// subscribed WebSocket client receives them.
async fn dependent_latency(dir: &std::path::Path) -> anyhow::Result<Value> {
    let mut sc = StoreConfig::new(dir);
    sc.secret_key = Some(quire_storage::SecretKey::random()?);
    let store = Store::open(&sc).context("bench store")?;
    let ws = store.create_workspace("w")?;
    store.put_quota(
        &ws.id,
        &Quota {
            runs_per_minute: 100_000,
            ..Quota::default()
        },
    )?;
    store.put_block(&ws.id, block("load", LOAD))?;
    store.put_block(&ws.id, block("sum", SUM))?;
    let code = |b: &str| DocBlock::Code {
        lang: "js".into(),
        source: String::new(),
        block: Some(b.into()),
    };
    let mut properties = serde_json::Map::new();
    properties.insert("rerun_dependents".into(), json!(true));
    store.put_doc(
        &ws.id,
        Document {
            id: "flow".into(),
            title: "flow".into(),
            properties,
            blocks: vec![code("load"), code("sum")],
            updated_ms: 0,
        },
    )?;
    let token = Auth::mint(&store, Some(ws.id), Role::Editor, "bench")
        .map(|t| t.1)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let exe = std::env::current_exe()?;
    let engine = Engine::new(EngineConfig {
        isolation: Isolation::Runners(RunnerConfig::new(&exe, vec!["__runner".into()])),
        ..EngineConfig::default()
    })?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let config = ServerConfig {
        rate_per_sec: 1e9,
        rate_burst: 1e9,
        shutdown_grace_ms: 0,
        ..ServerConfig::default()
    };
    let state = AppState::new(store, Arc::new(engine), api, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quire_web::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    let url = format!("ws://{addr}/api/v1/workspaces/w/live?token={token}");
    let (mut sock, _) = tokio_tungstenite::connect_async(url).await?;
    for b in ["load", "sum"] {
        let op = json!({"op": "subscribe", "block": b}).to_string();
        sock.send(Message::Text(op.into())).await?;
    }
    let mut samples = Vec::new();
    for i in 0..SAMPLES + 5 {
        let op = json!({"op": "run", "block": "load", "doc": "flow"}).to_string();
        sock.send(Message::Text(op.into())).await?;
        let (mut load_run, mut upstream_done, mut got) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.is_none() {
            let m = tokio::time::timeout_at(deadline.into(), sock.next())
                .await
                .context("no event within 30 s")?;
            let Some(Ok(Message::Text(t))) = m else {
                anyhow::bail!("the socket closed");
            };
            let v: Value = serde_json::from_str(&t)?;
            if v["op"] == "accepted" {
                load_run = v["run"].as_str().map(String::from);
                continue;
            }
            let of_load = load_run.is_some() && v["run"].as_str() == load_run.as_deref();
            match (v["type"].as_str(), upstream_done) {
                (Some("finished"), None) if of_load => upstream_done = Some(Instant::now()),
                (Some("log"), Some(t0)) if !of_load => got = Some(t0.elapsed()),
                _ => {}
            }
        }
        // Let the dependent finish before the next round.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if i >= 5 {
            samples.push(got.map_or(0.0, |d| d.as_secs_f64() * 1000.0));
        }
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    samples.sort_by(f64::total_cmp);
    Ok(json!({
        "first_output_after_upstream_p50_ms": percentile(&samples, 0.5),
        "first_output_after_upstream_p99_ms": percentile(&samples, 0.99),
        "samples": samples.len(),
    }))
}
