//! `quire bench`: start latency, throughput, memory per isolate and a CPU
//! kernel through the engine API, with Node.js (`vm` and `worker_threads`)
//! measured side by side in the same run.

use std::time::Instant;

use anyhow::Context as _;
use quire_engine::{idle_isolate_bytes, Engine, EngineConfig, EventBody, Lang, Limits, RunRequest};
use serde_json::{json, Value};

const START_SAMPLES: usize = 2000;
const THROUGHPUT_RUNS: usize = 20_000;

/// The CPU kernel both engines run (the same source).
pub(crate) const KERNEL: &str =
    "let s = 0;\nfor (let i = 0; i < 1e7; i++) { s = (s + i * i) % 1000003; }\n";

/// An engine that runs QuickJS and V8 in runner processes, as `quire
/// serve` does, with at most `v8_max_runners` V8 runner processes.
pub(crate) fn runner_engine(v8_max_runners: usize) -> anyhow::Result<Engine> {
    let exe = std::env::current_exe()?;
    let mut v8 = crate::v8paths::v8_config(None)?;
    v8.max_runners = v8_max_runners;
    Engine::new(EngineConfig {
        isolation: quire_engine::Isolation::Runners(quire_engine::runner::RunnerConfig::new(
            &exe,
            vec!["__runner".into()],
        )),
        v8: Some(v8),
        ..EngineConfig::default()
    })
    .context("could not start the engine")
}

/// `f` on QuickJS, then on V8, as `{"quickjs": …, "v8": …}`; V8 is
/// `{"skipped": why}` when its runners cannot start.
pub(crate) fn each_engine(
    engine: &Engine,
    mut f: impl FnMut(quire_engine::EngineKind) -> anyhow::Result<Value>,
) -> anyhow::Result<Value> {
    let mut out = json!({});
    for kind in [
        quire_engine::EngineKind::Quickjs,
        quire_engine::EngineKind::V8,
    ] {
        if kind == quire_engine::EngineKind::V8 {
            if let Err(why) = engine.v8_status() {
                out["v8"] = json!({ "skipped": why });
                continue;
            }
        }
        out[kind.as_str()] = f(kind)?;
    }
    Ok(out)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn start_latency(engine: &Engine) -> anyhow::Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(START_SAMPLES);
    for _ in 0..START_SAMPLES {
        let h = engine.run(RunRequest::new("console.log(1)", Lang::Js));
        for ev in h.events().iter() {
            if let EventBody::Log { .. } = ev.body {
                // t_ms counts from the moment a worker took the run: isolate
                // from the pool, block bytecode loaded, first instruction.
                samples.push(ev.t_ms * 1000.0);
            }
        }
        h.wait();
    }
    samples.sort_by(f64::total_cmp);
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

fn throughput(engine: &Engine) -> f64 {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..THROUGHPUT_RUNS)
        .map(|_| engine.run(RunRequest::new("export default 'hello'", Lang::Js)))
        .collect();
    let mut ok = 0usize;
    for h in handles {
        if h.wait().error.is_none() {
            ok += 1;
        }
    }
    ok as f64 / t0.elapsed().as_secs_f64()
}

fn cpu_kernel(engine: &Engine) -> anyhow::Result<f64> {
    // Function-local, as in the Node.js run (globals are slower in V8).
    let src = format!("export default (function () {{\n{KERNEL}return s;\n}})();");
    let out = engine
        .run(RunRequest::new(src, Lang::Js).with_limits(Limits {
            cpu_time_ms: 120_000,
            wall_time_ms: 120_000,
            ..Limits::default()
        }))
        .wait();
    if let Some(e) = out.error {
        anyhow::bail!("the CPU kernel failed: {}", e.message);
    }
    Ok(out.finished.cpu_ms)
}

const NODE_SCRIPT: &str = r#"
const vm = require('vm');
const { Worker } = require('worker_threads');
const { performance } = require('perf_hooks');
const pct = (a, p) => { a.sort((x, y) => x - y); return a[Math.min(a.length - 1, Math.round((a.length - 1) * p))]; };
const vmS = [];
for (let i = 0; i < 2000; i++) {
  const t = performance.now();
  const c = vm.createContext({});
  vm.runInContext('1 + 1', c);
  vmS.push((performance.now() - t) * 1000);
}
const kernel = process.argv[1];
const t0 = process.cpuUsage();
vm.runInNewContext("(function () {\n" + kernel + "})()");
const k = process.cpuUsage(t0);
(async () => {
  const wS = [];
  for (let i = 0; i < 100; i++) {
    const t = performance.now();
    await new Promise((res) => {
      const w = new Worker("require('worker_threads').parentPort.postMessage(1)", { eval: true });
      w.once('message', () => { wS.push((performance.now() - t) * 1000); w.terminate().then(res); });
    });
  }
  console.log(JSON.stringify({ node_version: process.version, node_vm_start_p50_us: pct(vmS, 0.5), node_vm_start_p99_us: pct(vmS, 0.99), node_worker_start_p50_us: pct(wS, 0.5), node_cpu_kernel_ms: (k.user + k.system) / 1000 }));
})();
"#;

fn node() -> Value {
    let out = std::process::Command::new("node")
        .args(["-e", NODE_SCRIPT, KERNEL])
        .output();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| json!({"node_error": e.to_string()})),
        Ok(o) => json!({"node_error": String::from_utf8_lossy(&o.stderr).trim().to_string()}),
        Err(e) => json!({"node_error": format!("node not runnable: {e}")}),
    }
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    json!({ "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "cpu": model })
}

/// Which parts to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Engine start, throughput, memory, CPU (with Node.js).
    Engine,
    /// Host calls, db.query over 100,000 rows, kv rates.
    Host,
    /// Start latency in sandboxed runner processes beside in-process.
    Runner,
    /// 500 WebSocket clients running blocks through `quire serve`'s code.
    Server,
    /// Workspace B's hello-world latency while workspace A floods 1,000
    /// CPU-bound runs (admission fairness).
    Fairness,
    /// QuickJS and V8 side by side, both in runner processes.
    Engines,
    /// 80 log-heavy runs (16 MB each): server memory and disk over time.
    Soak,
    /// Several `quire serve` processes on one PostgreSQL (`--postgres`):
    /// HTTP runs/s with 1, 2 and 3 workers beside one process on sled,
    /// and the queue's claim latency.
    Cluster,
    /// Random `kill -9`s of three `quire serve` processes for a few
    /// minutes (`--postgres`, `--nats`): fires, runs and events counted.
    Chaos,
    /// Live meters' cost on a CPU-bound block (both engines, on and off)
    /// and a dependent block's first output after its upstream finishes.
    Living,
    /// A dry-run of a block doing 100 row updates beside the same block
    /// run for real.
    DryRun,
    /// What the lazily loaded web globals (URL's extras, Blob/FormData,
    /// the streams module) cost a run's first touch, on both engines.
    Web,
}

/// From `Engine::run` to the block's first log line arriving at the
/// caller, in µs (p50, p99): what an embedder waits.
fn first_output_latency(engine: &Engine) -> (f64, f64) {
    let mut samples = Vec::with_capacity(START_SAMPLES);
    for _ in 0..START_SAMPLES {
        let t = Instant::now();
        let h = engine.run(RunRequest::new("console.log(1)", Lang::Js));
        for ev in h.events().iter() {
            if let EventBody::Log { .. } = ev.body {
                samples.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        h.wait();
    }
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// In-process and runner-process start latency, side by side.
fn runner_section() -> anyhow::Result<Value> {
    let mut out = json!({});
    for (name, isolation) in [
        ("in_process", quire_engine::Isolation::InProcess),
        (
            "runner",
            quire_engine::Isolation::Runners(quire_engine::runner::RunnerConfig::new(
                std::env::current_exe()?,
                vec!["__runner".into()],
            )),
        ),
    ] {
        let engine = Engine::new(EngineConfig {
            isolation,
            ..EngineConfig::default()
        })?;
        let t = Instant::now();
        let first = engine
            .run(RunRequest::new("export default 1", Lang::Js))
            .wait();
        let cold_ms = t.elapsed().as_secs_f64() * 1000.0;
        if let Some(e) = first.error {
            anyhow::bail!("{name}: {}", e.message);
        }
        for _ in 0..200 {
            engine
                .run(RunRequest::new("console.log(1)", Lang::Js))
                .wait();
        }
        let (p50, p99) = start_latency(&engine)?;
        let (e50, e99) = first_output_latency(&engine);
        let rps = throughput(&engine);
        out[name] = json!({
            "start_p50_us": p50, "start_p99_us": p99,
            "first_output_p50_us": e50, "first_output_p99_us": e99,
            "runs_per_sec": rps, "first_run_ms": cold_ms,
        });
    }
    Ok(out)
}

fn print(out: &Value, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(out)?);
    }
    Ok(())
}

/// Run the benchmark and print the results.
pub fn run(
    as_json: bool,
    only: Option<Only>,
    postgres: Option<String>,
    nats: Option<String>,
) -> anyhow::Result<()> {
    let engine = Engine::new(EngineConfig::default()).context("could not start the engine")?;
    match only {
        Some(Only::Runner) => {
            return print(
                &json!({ "runner": runner_section()?, "machine": machine() }),
                as_json,
            )
        }
        Some(Only::Server) => {
            let server = crate::bench_server::run()?;
            return print(&json!({ "server": server, "machine": machine() }), as_json);
        }
        Some(Only::Fairness) => {
            let fairness = crate::bench_fair::run()?;
            return print(
                &json!({ "fairness": fairness, "machine": machine() }),
                as_json,
            );
        }
        Some(Only::Engines) => {
            let engines = crate::bench_v8::run()?;
            return print(
                &json!({ "engines": engines, "machine": machine() }),
                as_json,
            );
        }
        Some(Only::Soak) => {
            let soak = crate::bench_soak::run()?;
            return print(&json!({ "soak": soak, "machine": machine() }), as_json);
        }
        Some(Only::Cluster) => {
            let cluster = crate::bench_cluster::run(postgres.as_deref(), nats.as_deref())?;
            return print(
                &json!({ "cluster": cluster, "machine": machine() }),
                as_json,
            );
        }
        Some(Only::Chaos) => {
            let chaos = crate::bench_cluster::chaos(postgres.as_deref(), nats.as_deref())?;
            return print(&json!({ "chaos": chaos, "machine": machine() }), as_json);
        }
        Some(Only::Living) => {
            let living = crate::bench_living::run()?;
            return print(&json!({ "living": living, "machine": machine() }), as_json);
        }
        Some(Only::DryRun) => {
            let dry = crate::bench_dry_run::run(&engine)?;
            return print(&json!({ "dry_run": dry, "machine": machine() }), as_json);
        }
        Some(Only::Web) => {
            let web = crate::bench_web::run()?;
            return print(&json!({ "web": web, "machine": machine() }), as_json);
        }
        Some(Only::Host) => {
            let host = crate::bench_host::run(&engine)?;
            return print(&json!({ "host": host, "machine": machine() }), as_json);
        }
        _ => {}
    }
    // Warm up: compile the prelude and the blocks, fill the pools.
    for _ in 0..200 {
        engine
            .run(RunRequest::new("console.log(1)", Lang::Js))
            .wait();
    }
    let (p50, p99) = start_latency(&engine)?;
    let rps = throughput(&engine);
    let iso = idle_isolate_bytes().context("could not measure an idle isolate")?;
    let kernel = cpu_kernel(&engine)?;
    let mut out = json!({
        "start_p50_us": p50,
        "start_p99_us": p99,
        "runs_per_sec": rps,
        "isolate_bytes": iso,
        "cpu_kernel_ms": kernel,
        "workers": engine.config().worker_threads,
        "machine": machine(),
    });
    if let (Some(o), Value::Object(n)) = (out.as_object_mut(), node()) {
        o.extend(n);
    }
    if only.is_none() {
        out["host"] = crate::bench_host::run(&engine)?;
        out["runner"] = runner_section()?;
        out["server"] = crate::bench_server::run()?;
        out["fairness"] = crate::bench_fair::run()?;
    }
    print(&out, as_json)
}
