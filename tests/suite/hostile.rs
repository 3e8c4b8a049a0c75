//! The hostile-code suite: every program under tests/hostile/ must end with
//! its expected outcome (its `// expect:` line), near its limits, and the
//! engine must run a normal block correctly afterwards.

use std::path::Path;

use quire_engine::{Lang, Limits, RunRequest, RunStatus};
use quire_host_api::{Grants, HostApi, HostConfig};
use quire_storage::{RowQuery, Store, Workspace};
use serde_json::json;

use crate::common::{assert_healthy, engine, run_req};

struct Case {
    name: String,
    source: String,
    expect: Vec<String>,
    result: Option<serde_json::Value>,
    limits: Limits,
    /// `// grants:` (possibly empty): run with a host API attached.
    grants: Option<Vec<String>>,
}

fn parse(path: &Path) -> Case {
    let source = std::fs::read_to_string(path).expect("readable");
    let mut expect = Vec::new();
    let mut result = None;
    let mut limits = Limits::default();
    let mut grants = None;
    let mut v8_expect: Option<Vec<String>> = None;
    let mut v8_result = None;
    for line in source.lines().take_while(|l| l.starts_with("//")) {
        let line = line.trim_start_matches("//").trim();
        if let Some(r) = line.strip_prefix("v8-result:") {
            v8_result = Some(serde_json::from_str(r.trim()).expect("v8-result is JSON"));
        } else if let Some(e) = line.strip_prefix("v8-expect:") {
            v8_expect = Some(e.trim().split('|').map(str::to_string).collect());
        } else if let Some(e) = line.strip_prefix("expect:") {
            expect = e.trim().split('|').map(str::to_string).collect();
        } else if let Some(g) = line.strip_prefix("grants:") {
            grants = Some(g.split_whitespace().map(str::to_string).collect());
        } else if let Some(r) = line.strip_prefix("result:") {
            result = Some(serde_json::from_str(r.trim()).expect("result is JSON"));
        } else if let Some(l) = line.strip_prefix("limits:") {
            for kv in l.split_whitespace() {
                let (k, v) = kv.split_once('=').expect("k=v");
                let v: u64 = v.parse().expect("number");
                match k {
                    "cpu_ms" => limits.cpu_time_ms = v,
                    "wall_ms" => limits.wall_time_ms = v,
                    "memory_mb" => limits.memory_bytes = v * 1024 * 1024,
                    "output_bytes" => limits.output_bytes = v,
                    "output_events" => limits.output_events = v,
                    "host_calls" => limits.host_calls = v as u32,
                    "host_value_bytes" => limits.host_value_bytes = v,
                    "rows" => limits.host_rows_per_query = v as u32,
                    other => panic!("unknown limit {other}"),
                }
            }
        }
    }
    assert!(
        !expect.is_empty(),
        "{} has no // expect: line",
        path.display()
    );
    // `// v8-expect:` names an outcome V8 reaches instead (an engine
    // difference, justified in the file).
    if crate::common::current_engine() == quire_engine::EngineKind::V8 {
        if let Some(v) = v8_expect {
            expect = v;
        }
        if v8_result.is_some() {
            result = v8_result;
        }
    }
    Case {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        source,
        expect,
        result,
        limits,
        grants,
    }
}

/// A store with the workspace hostile programs run in and a victim
/// workspace whose data they must never reach.
struct Host {
    store: Store,
    api: HostApi,
    own: Workspace,
    victim: Workspace,
}

impl Host {
    fn new() -> Self {
        let store = Store::memory().unwrap();
        let own = store.create_workspace("hostile").unwrap();
        let victim = store.create_workspace("victim").unwrap();
        store
            .insert_rows(
                &victim.id,
                "tasks",
                &[json!({"id": "v1", "text": "VICTIM"})],
            )
            .unwrap();
        store.kv_set(&victim.id, "k", &json!("VICTIM")).unwrap();
        store
            .put_secret(&victim.id, "TOKEN", "VICTIM-SECRET", &[])
            .unwrap();
        store
            .put_doc(
                &victim.id,
                serde_json::from_value(json!({"id": "tasks", "title": "VICTIM"})).unwrap(),
            )
            .unwrap();
        store.kv_set(&own.id, "k", &json!("own")).unwrap();
        let api = HostApi::new(store.clone(), HostConfig::default()).unwrap();
        Self {
            store,
            api,
            own,
            victim,
        }
    }

    fn victim_state(&self) -> serde_json::Value {
        let v = &self.victim.id;
        json!([
            self.store
                .query_rows(
                    v,
                    "tasks",
                    &RowQuery {
                        limit: 100,
                        ..Default::default()
                    }
                )
                .unwrap(),
            self.store.kv_keys(v, "", 100).unwrap(),
            self.store.kv_get(v, "k").unwrap(),
            self.store.list_docs(v).unwrap().len(),
        ])
    }
}

#[test]
fn hostile_programs_end_with_the_expected_outcome() {
    suite(engine());
}

#[test]
fn hostile_programs_end_the_same_way_in_v8() {
    crate::common::on_each_engine(|k| {
        if k == quire_engine::EngineKind::V8 {
            suite(engine());
        }
    });
}

#[test]
fn hostile_programs_end_the_same_way_in_runner_processes() {
    // Its own runners: a CPU-starved hostile program can cost its runner
    // a worker thread (the watchdog), which must not touch other tests.
    suite(&crate::runner::fresh_runner_engine());
}

fn suite(engine: &quire_engine::Engine) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 30, "the suite needs at least 30 programs");
    // `HOSTILE_ONLY=name` runs the programs whose file name contains it.
    if let Ok(only) = std::env::var("HOSTILE_ONLY") {
        paths.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(&only))
        });
    }
    let host = Host::new();
    let victim_before = host.victim_state();
    let mut failures = Vec::new();
    for path in paths {
        let case = parse(&path);
        eprintln!("hostile: {}", case.name);
        let mut req = RunRequest::new(case.source.clone(), Lang::from_path(&case.name))
            .with_limits(case.limits.clone());
        req.filename = Some(case.name.clone());
        if let Some(g) = &case.grants {
            req = req.with_host(host.api.session(host.own.id, Grants::parse(g).unwrap()));
        }
        let ran = run_req(engine, req);
        let got = match &ran.outcome.error {
            None => "ok".to_string(),
            Some(e) => e.kind.as_str().to_string(),
        };
        if !case.expect.contains(&got) {
            failures.push(format!(
                "{}: expected {:?}, got {got} ({})",
                case.name,
                case.expect,
                ran.message()
            ));
        }
        if let Some(want) = &case.result {
            if ran.result() != Some(want) {
                failures.push(format!(
                    "{}: expected result {want}, got {:?}",
                    case.name,
                    ran.result()
                ));
            }
        }
        // Ended near its limit, not after a hang (generous: this is a hang
        // check, not a timing assertion).
        let budget = case.limits.wall_time_ms as f64 + 3000.0;
        if ran.outcome.finished.wall_ms > budget {
            failures.push(format!(
                "{}: took {} ms",
                case.name, ran.outcome.finished.wall_ms
            ));
        }
        if got == "cpu_limit" && ran.outcome.status != RunStatus::Error {
            failures.push(format!("{}: status should be error", case.name));
        }
        assert_healthy(engine);
        if host.victim_state() != victim_before {
            failures.push(format!("{}: changed the victim workspace", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "hostile failures:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        engine.stats().isolate_bytes_leaked,
        0,
        "isolates leaked their runtimes"
    );
}
