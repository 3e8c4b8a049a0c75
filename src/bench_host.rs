//! `quire bench` host-API section: host-call round trip, `db.query` over
//! 100,000 rows, and kv get/set throughput, each measured from inside a
//! block (what a block author sees), on the in-memory and the sled store.

use anyhow::{bail, Context as _};
use quire_engine::{Engine, Lang, Limits, RunRequest};
use quire_host_api::{Grants, HostApi, HostConfig};
use quire_storage::{Store, StoreConfig, Workspace};
use serde_json::{json, Value};

use crate::bench::percentile;

const ROUND_TRIPS: usize = 2000;
const QUERY_ROWS: usize = 100_000;

fn run_block(
    engine: &Engine,
    api: &HostApi,
    ws: &Workspace,
    grants: &[&str],
    src: &str,
) -> anyhow::Result<Value> {
    let host = api.session(ws.id, Grants::parse(grants)?);
    let out = engine
        .run(
            RunRequest::new(src, Lang::Js)
                .with_host(host)
                .with_limits(Limits {
                    cpu_time_ms: 60_000,
                    wall_time_ms: 120_000,
                    host_calls: 1_000_000,
                    host_rows_per_query: 1000,
                    ..Limits::default()
                }),
        )
        .wait();
    match (out.result, out.error) {
        (Some(v), None) => Ok(v),
        (_, Some(e)) => bail!("benchmark block failed: {}: {}", e.kind, e.message),
        (None, None) => bail!("benchmark block returned nothing"),
    }
}

fn round_trip(engine: &Engine, api: &HostApi, ws: &Workspace) -> anyhow::Result<(f64, f64)> {
    let src = format!(
        r#"import {{ kv }} from "quire";
export default async () => {{
  const t = [];
  for (let i = 0; i < {ROUND_TRIPS}; i++) {{ const s = performance.now(); await kv.get("k"); t.push((performance.now() - s) * 1000); }}
  return t;
}};"#
    );
    let v = run_block(engine, api, ws, &["kv:read"], &src)?;
    let mut t: Vec<f64> = v
        .as_array()
        .context("samples")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    // The first calls warm the pool threads and the module.
    t.drain(..t.len().min(100));
    t.sort_by(f64::total_cmp);
    Ok((percentile(&t, 0.5), percentile(&t, 0.99)))
}

fn seed_rows(store: &Store, ws: &Workspace) -> anyhow::Result<()> {
    let statuses = ["open", "in_progress", "done", "blocked"];
    for chunk in 0..QUERY_ROWS / 1000 {
        let rows: Vec<Value> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| json!({"id": format!("r{i:07}"), "n": i, "status": statuses[i % 4], "points": i % 13, "title": format!("task number {i}")}))
            .collect();
        store.insert_rows(&ws.id, "big", &rows)?;
    }
    Ok(())
}

fn query(engine: &Engine, api: &HostApi, ws: &Workspace) -> anyhow::Result<Value> {
    let src = r#"import { db } from "quire";
const time = async (f) => { const s = performance.now(); const r = await f(); return [performance.now() - s, r.length]; };
export default async () => {
  await db.query("big", { limit: 1 });
  const [scan_ms, none] = await time(() => db.query("big", { where: { n: -1 } }));
  const [filter_ms, some] = await time(() => db.query("big", { where: { status: "blocked", points: { $gte: 12 } }, limit: 1000 }));
  const [first_ms, first] = await time(() => db.query("big", { limit: 100 }));
  return { full_scan_ms: scan_ms, full_scan_matched: none, filter_1000_ms: filter_ms, filter_matched: some, first_100_ms: first_ms, first_rows: first };
};"#;
    run_block(engine, api, ws, &["db:read:big"], src)
}

fn kv_rates(engine: &Engine, api: &HostApi, ws: &Workspace, n: usize) -> anyhow::Result<Value> {
    let src = format!(
        r#"import {{ kv }} from "quire";
export default async () => {{
  let s = performance.now();
  for (let i = 0; i < {n}; i++) await kv.set("key" + i, {{ i }});
  const set_seq = {n} / ((performance.now() - s) / 1000);
  s = performance.now();
  for (let i = 0; i < {n}; i++) await kv.get("key" + i);
  const get_seq = {n} / ((performance.now() - s) / 1000);
  s = performance.now();
  await Promise.all(Array.from({{ length: {n} }}, (_, i) => kv.set("p" + i, i)));
  const set_par = {n} / ((performance.now() - s) / 1000);
  s = performance.now();
  await Promise.all(Array.from({{ length: {n} }}, (_, i) => kv.get("p" + i)));
  const get_par = {n} / ((performance.now() - s) / 1000);
  return {{ kv_set_per_sec: set_seq, kv_get_per_sec: get_seq, kv_set_per_sec_concurrent: set_par, kv_get_per_sec_concurrent: get_par }};
}};"#
    );
    run_block(engine, api, ws, &["kv:read", "kv:write"], &src)
}

fn section(engine: &Engine, store: Store, kv_n: usize) -> anyhow::Result<Value> {
    let ws = store.ensure_workspace("bench")?;
    store.kv_set(&ws.id, "k", &json!({"hello": "world"}))?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let (p50, p99) = round_trip(engine, &api, &ws)?;
    let t = std::time::Instant::now();
    seed_rows(&store, &ws)?;
    let seed_s = t.elapsed().as_secs_f64();
    let q = query(engine, &api, &ws)?;
    let kv = kv_rates(engine, &api, &ws, kv_n)?;
    let mut out = json!({ "host_call_p50_us": p50, "host_call_p99_us": p99, "insert_100k_rows_s": seed_s, "db_query_100k": q });
    if let (Some(o), Value::Object(k)) = (out.as_object_mut(), kv) {
        o.extend(k);
    }
    Ok(out)
}

/// The host-API numbers, for the in-memory store and for sled (flushing
/// every write, the default durability).
pub fn run(engine: &Engine) -> anyhow::Result<Value> {
    let memory = section(engine, Store::memory()?, 5000)?;
    let dir = std::env::temp_dir().join(format!("quire-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sled = section(engine, Store::open(&StoreConfig::new(&dir))?, 500);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({ "memory_store": memory, "sled_store": sled? }))
}
