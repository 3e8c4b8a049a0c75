//! `quire bench --only engines`: QuickJS and V8 side by side in one run,
//! both in sandboxed runner processes (QuickJS runners; Node processes
//! with a fresh isolate per run for V8): first-output latency with a warm
//! pool, hello-world runs/s, the CPU kernel, and memory per idle runner
//! (and per QuickJS isolate). Then, in the same run, the isolate
//! measurements of `engine/runners/node/measure.mjs` with the runner's own
//! Node: the snapshot's size, a fresh isolate without the pool, memory per
//! idle isolate, Node's `vm.createContext` and the CPU kernel in Node.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use quire_engine::runner::RunnerConfig;
use quire_engine::{
    idle_isolate_bytes, Engine, EngineConfig, EngineKind, EventBody, Isolation, Lang, Limits,
    RunRequest,
};
use serde_json::{json, Value};

use crate::bench::{percentile, KERNEL};

/// Sequential first-output samples per engine.
const SAMPLES: usize = 200;
/// Pauses between samples: each run finds a ready isolate (the pool makes
/// the next one in ~2 ms meanwhile). After 10 ms the machine is still warm;
/// after 150 ms of idle the CPU caches are cold, which costs both engines
/// (V8 ~2-3x on its path), so both are reported.
const PAUSES: [(Duration, &str); 2] = [
    (Duration::from_millis(10), ""),
    (Duration::from_millis(150), "_after_idle"),
];
/// Hello-world runs submitted at once, per engine.
const RUNS: usize = 500;

fn req(src: &str, kind: EngineKind) -> RunRequest {
    RunRequest::new(src, Lang::Js).with_engine(kind)
}

fn first_output(engine: &Engine, kind: EngineKind, pause: Duration) -> anyhow::Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        std::thread::sleep(pause);
        let t = Instant::now();
        let h = engine.run(req("console.log(1)", kind));
        for ev in h.events().iter() {
            if let EventBody::Log { .. } = ev.body {
                samples.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        if let Some(e) = h.wait().error {
            anyhow::bail!("{}: {}", kind.as_str(), e.message);
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

fn runs_per_sec(engine: &Engine, kind: EngineKind) -> (f64, usize) {
    let t = Instant::now();
    let handles: Vec<_> = (0..RUNS)
        .map(|_| engine.run(req("export default 'hello'", kind)))
        .collect();
    let ok = handles
        .into_iter()
        .filter_map(|h| h.wait().error.is_none().then_some(()))
        .count();
    (ok as f64 / t.elapsed().as_secs_f64(), ok)
}

fn kernel(engine: &Engine, kind: EngineKind) -> anyhow::Result<(f64, f64)> {
    let src = format!("export default (function () {{\n{KERNEL}return s;\n}})();");
    let out = engine
        .run(req(&src, kind).with_limits(Limits {
            cpu_time_ms: 120_000,
            wall_time_ms: 120_000,
            ..Limits::default()
        }))
        .wait();
    if let Some(e) = out.error {
        anyhow::bail!("the CPU kernel failed on {}: {}", kind.as_str(), e.message);
    }
    Ok((out.finished.cpu_ms, out.finished.wall_ms))
}

/// Resident bytes of this process's children, by command name.
fn children_rss(comm: &str) -> Vec<u64> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let p = e.path();
        let Ok(stat) = std::fs::read_to_string(p.join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).unwrap_or("");
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if ppid != me || name.trim() != comm {
            continue;
        }
        let status = std::fs::read_to_string(p.join("status")).unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            out.push(kb * 1024);
        }
    }
    out
}

/// `measure.mjs` run by the runner's Node (200 runs per figure).
fn isolate_measure(node: &std::path::Path, script: &std::path::Path) -> anyhow::Result<Value> {
    let out = std::process::Command::new(node)
        .arg(script)
        .env("RUNS", "200")
        .output()
        .with_context(|| format!("could not run {}", script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("measure.mjs printed no JSON")
}

fn mean(v: &[u64]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v.iter().sum::<u64>() / v.len() as u64)
    }
}

pub fn run() -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let mut v8 = crate::v8paths::v8_config(None)?;
    v8.max_runners = 8;
    let (node, measure) = (
        v8.node.clone(),
        v8.runner_script.with_file_name("measure.mjs"),
    );
    let engine = Engine::new(EngineConfig {
        isolation: Isolation::Runners(RunnerConfig::new(&exe, vec!["__runner".into()])),
        v8: Some(v8),
        ..EngineConfig::default()
    })
    .context("could not start the engine")?;
    if let Err(why) = engine.v8_status() {
        anyhow::bail!("{why}");
    }
    let mut out = json!({});
    for kind in [EngineKind::Quickjs, EngineKind::V8] {
        for _ in 0..20 {
            engine.run(req("console.log(1)", kind)).wait();
        }
        std::thread::sleep(Duration::from_millis(500));
        let idle_rss = children_rss(match kind {
            EngineKind::Quickjs => "quire",
            // Node names its main thread, and so the process, MainThread.
            EngineKind::V8 => "MainThread",
        });
        let mut o = json!({});
        for (pause, suffix) in PAUSES {
            let (p50, p99) = first_output(&engine, kind, pause)?;
            o[format!("first_output{suffix}_p50_us")] = json!(p50);
            o[format!("first_output{suffix}_p99_us")] = json!(p99);
        }
        let (rps, ok) = runs_per_sec(&engine, kind);
        let (kernel_cpu, kernel_wall) = kernel(&engine, kind)?;
        let mut o2 = json!({
            "hello_runs_per_sec": rps,
            "hello_runs_ok": ok,
            "cpu_kernel_cpu_ms": kernel_cpu,
            "cpu_kernel_wall_ms": kernel_wall,
            "idle_runner_rss_bytes": mean(&idle_rss),
            "idle_runners_seen": idle_rss.len(),
        });
        if let (Some(a), Some(b)) = (o2.as_object_mut(), o.as_object()) {
            a.extend(b.clone());
        }
        out[kind.as_str()] = o2;
    }
    out["quickjs"]["idle_isolate_bytes"] = json!(idle_isolate_bytes()?);
    drop(engine);
    out["v8_isolates"] = isolate_measure(&node, &measure)?;
    Ok(out)
}
