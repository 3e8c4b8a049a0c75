//! `quire bench --only web` (issue 22): what quire's lazily loaded web
//! globals cost a run once the process is warm, on both engines in runner
//! processes. A block times, with `performance.now()`, its first touch of
//! an extras global (`URL`), of Blob/FormData, of the streams module
//! (`ReadableStream`) and a Response body read through a stream; each
//! run is a fresh isolate.

use anyhow::Context as _;
use quire_engine::{Engine, EngineKind, Lang, RunRequest};
use serde_json::{json, Value};

use crate::bench::percentile;

const BLOCK: &str = r#"
const t0 = performance.now();
new URL("https://example.com/a?b=c");
const t1 = performance.now();
new FormData().append("a", new Blob(["x"]));
const t2 = performance.now();
new ReadableStream();
const t3 = performance.now();
await new Response(new Response("body").body).text();
const t4 = performance.now();
export default [t1 - t0, t2 - t1, t3 - t2, t4 - t3];
"#;

const NAMES: [&str; 4] = ["extras_ms", "blob_ms", "streams_ms", "stream_body_ms"];
const RUNS: usize = 200;

fn section(engine: &Engine, kind: EngineKind) -> anyhow::Result<Value> {
    let run = || -> anyhow::Result<Vec<f64>> {
        let h = engine.run(RunRequest::new(BLOCK, Lang::Js).with_engine(kind));
        let out = h.wait();
        if let Some(e) = out.error {
            anyhow::bail!("{}: {}", kind.as_str(), e.message);
        }
        let v = out.result.context("the block returned no result")?;
        let xs: Option<Vec<f64>> = v
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect());
        xs.filter(|x| x.len() == NAMES.len())
            .context("the block's result is not four numbers")
    };
    // Warm up: the modules are compiled once per process.
    for _ in 0..20 {
        run()?;
    }
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); NAMES.len()];
    for _ in 0..RUNS {
        for (c, x) in cols.iter_mut().zip(run()?) {
            c.push(x);
        }
    }
    let mut out = json!({ "runs": RUNS });
    for (name, mut c) in NAMES.iter().zip(cols) {
        c.sort_by(f64::total_cmp);
        out[*name] = json!({ "p50": percentile(&c, 0.5), "p99": percentile(&c, 0.99) });
    }
    Ok(out)
}

pub fn run() -> anyhow::Result<Value> {
    let engine = crate::bench::runner_engine(8)?;
    crate::bench::each_engine(&engine, |kind| section(&engine, kind))
}
