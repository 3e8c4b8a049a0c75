//! The hostile-code suite: every program under tests/hostile/ must end with
//! its expected outcome (its `// expect:` line), near its limits, and the
//! engine must run a normal block correctly afterwards.

use std::path::Path;

use quire_engine::{Lang, Limits, RunRequest, RunStatus};

use crate::common::{assert_healthy, engine, run_req};

struct Case {
    name: String,
    source: String,
    expect: Vec<String>,
    result: Option<serde_json::Value>,
    limits: Limits,
}

fn parse(path: &Path) -> Case {
    let source = std::fs::read_to_string(path).expect("readable");
    let mut expect = Vec::new();
    let mut result = None;
    let mut limits = Limits::default();
    for line in source.lines().take_while(|l| l.starts_with("//")) {
        let line = line.trim_start_matches("//").trim();
        if let Some(e) = line.strip_prefix("expect:") {
            expect = e.trim().split('|').map(str::to_string).collect();
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
    Case {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        source,
        expect,
        result,
        limits,
    }
}

#[test]
fn hostile_programs_end_with_the_expected_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 30, "the suite needs at least 30 programs");
    let engine = engine();
    let mut failures = Vec::new();
    for path in paths {
        let case = parse(&path);
        eprintln!("hostile: {}", case.name);
        let mut req = RunRequest::new(case.source.clone(), Lang::from_path(&case.name))
            .with_limits(case.limits.clone());
        req.filename = Some(case.name.clone());
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
    }
    assert!(
        failures.is_empty(),
        "hostile failures:\n{}",
        failures.join("\n")
    );
}
