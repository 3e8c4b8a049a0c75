//! `quire bench --only dry-run` (issue 21): what a dry-run costs beside
//! the same block run for real. The block updates 100 rows; the real run
//! commits 100 writes, the dry-run stages them and its diff (100 rows'
//! before and after) is sealed and filed as the run service files it.
//! Rounds alternate so drift hits both alike; in-memory and sled stores.

use std::time::Instant;

use anyhow::bail;
use quire_engine::{Engine, Lang, Limits, RunRequest};
use quire_host_api::{Grants, HostApi, HostConfig};
use quire_storage::{DiffStatus, StagedDiff, Store, StoreConfig};
use serde_json::{json, Value};

use crate::bench::percentile;

const ROUNDS: usize = 40;
const ROWS: usize = 100;

const BLOCK: &str = r#"import { db } from "quire";
export default async (ctx) => {
  for (let i = 0; i < 100; i++) await db.update("tasks", "t" + i, { n: ctx.input, done: i % 2 === 0 });
  return 100;
};"#;

fn limits() -> Limits {
    Limits {
        cpu_time_ms: 60_000,
        wall_time_ms: 120_000,
        ..Limits::default()
    }
}

/// One run of the block, dry or not; its wall time in ms (filing the
/// diff included for a dry-run).
fn once(engine: &Engine, api: &HostApi, store: &Store, dry: bool, n: usize) -> anyhow::Result<f64> {
    let ws = store.ensure_workspace("bench")?.id;
    let grants = Grants::parse(&["db:read:tasks", "db:write:tasks"])?;
    let t = Instant::now();
    let (host, staged) = if dry {
        let (host, _, d) = api.dry_run_session(ws, grants, Default::default(), None);
        (host, Some(d))
    } else {
        (api.session(ws, grants), None)
    };
    let out = engine
        .run(
            RunRequest::new(BLOCK, Lang::Js)
                .with_input(json!(n))
                .with_host(host)
                .with_limits(limits()),
        )
        .wait();
    if let Some(e) = out.error {
        bail!("the benchmark block failed: {}: {}", e.kind, e.message);
    }
    if let Some(d) = staged {
        let sealed = d.seal();
        if sealed.changes.len() != ROWS {
            bail!(
                "the dry-run staged {} changes, not {ROWS}",
                sealed.changes.len()
            );
        }
        store.put_diff(
            &ws,
            &StagedDiff {
                run: format!("bench{n}"),
                digest: quire_storage::digest(&sealed.changes),
                count: sealed.changes.len(),
                changes: sealed.changes,
                bytes: sealed.bytes,
                created_ms: 0,
                expires_ms: u64::MAX,
                run_ok: true,
                status: DiffStatus::Pending,
                decided_ms: None,
            },
        )?;
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

fn section(engine: &Engine, store: Store) -> anyhow::Result<Value> {
    let ws = store.ensure_workspace("bench")?.id;
    let rows: Vec<Value> = (0..ROWS)
        .map(|i| json!({"id": format!("t{i}"), "title": format!("task {i}"), "n": 0}))
        .collect();
    store.insert_rows(&ws, "tasks", &rows)?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let (mut real, mut dry) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS + 4 {
        let r = once(engine, &api, &store, false, i)?;
        // A value the real run never wrote, so every row changes.
        let d = once(engine, &api, &store, true, i + 1_000_000)?;
        if i >= 4 {
            real.push(r);
            dry.push(d);
        }
    }
    let stats = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        json!({"p50_ms": percentile(&v, 0.5), "p99_ms": percentile(&v, 0.99), "mean_ms": v.iter().sum::<f64>() / v.len() as f64})
    };
    let ratio = percentile(&sorted(&dry), 0.5) / percentile(&sorted(&real), 0.5);
    Ok(
        json!({"real": stats(real), "dry_run": stats(dry), "dry_over_real_p50": ratio, "rounds": ROUNDS}),
    )
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The dry-run numbers on the in-memory store and on sled (flushing every
/// write, the default durability).
pub fn run(engine: &Engine) -> anyhow::Result<Value> {
    let memory = section(engine, Store::memory()?)?;
    let dir = std::env::temp_dir().join(format!("quire-bench-dry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sled = section(engine, Store::open(&StoreConfig::new(&dir))?);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({"memory": memory, "sled": sled?, "block": "100 db.update calls, one per row"}))
}
