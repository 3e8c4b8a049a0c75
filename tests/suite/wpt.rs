//! web-platform-tests data suites (tests/wpt/): the same harness runs in a
//! block on each engine and in Node, the reference. Each engine must fail
//! exactly the cases `expected_failures.json` lists (each with its cause);
//! a harness run that ends without a result fails the test. The table of
//! counts is printed (`cargo test --test suite wpt -- --nocapture`).

use std::collections::BTreeMap;
use std::path::Path;

use quire_engine::{Lang, Limits};
use serde_json::Value;

use crate::common::{current_engine, on_each_engine, run_with};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wpt/url");

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(DIR).join(name))
        .unwrap_or_else(|e| panic!("tests/wpt/url/{name}: {e}"))
}

/// The harness with the vendored data, ending with `tail(call)`.
fn program(tail: impl Fn(&str) -> String) -> String {
    let call = format!(
        "runUrlSuites({}, {})",
        read("urltestdata.json"),
        read("setters_tests.json")
    );
    format!("{}\n{}\n", read("harness.js"), tail(&call))
}

/// Per suite: (cases, passed, failed case names).
type Counts = BTreeMap<String, (u64, u64, Vec<String>)>;

fn counts(v: &Value) -> Counts {
    let mut out = Counts::new();
    for (suite, s) in v.as_object().expect("suites") {
        let failed = s["failed"]
            .as_array()
            .expect("failed")
            .iter()
            .map(|f| f[0].as_str().expect("a case name").to_string())
            .collect();
        out.insert(
            suite.clone(),
            (
                s["cases"].as_u64().expect("cases"),
                s["passed"].as_u64().expect("passed"),
                failed,
            ),
        );
    }
    out
}

/// Node's counts, from `node` on PATH (what CI and the README install).
fn node_counts() -> Counts {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("wpt_url.js");
    std::fs::write(
        &file,
        program(|call| format!("console.log(JSON.stringify({call}));")),
    )
    .expect("write");
    let out = std::process::Command::new("node")
        .arg(&file)
        .output()
        .expect("node runs (the reference for the WPT suites)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    counts(&serde_json::from_slice(&out.stdout).expect("Node printed the counts"))
}

#[test]
fn url_suites_pass_on_both_engines_but_for_the_listed_failures() {
    let expected: Value = serde_json::from_str(&read("expected_failures.json")).expect("JSON");
    let src = program(|call| format!("export default {call};"));
    let limits = Limits {
        cpu_time_ms: 60_000,
        wall_time_ms: 180_000,
        ..Limits::default()
    };
    let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (suite, (cases, passed, _)) in node_counts() {
        table.insert(suite, vec![cases.to_string(), passed.to_string()]);
    }
    on_each_engine(|_| {
        let engine = current_engine().as_str();
        let r = run_with(&src, Lang::Js, limits.clone());
        let v = r.result().unwrap_or_else(|| {
            panic!(
                "{engine}: the harness ended without a result: {}",
                r.message()
            )
        });
        for (suite, (cases, passed, failed)) in counts(v) {
            let listed: Vec<&String> = expected[&suite]
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            let new: Vec<&String> = failed.iter().filter(|f| !listed.contains(f)).collect();
            let fixed: Vec<&&String> = listed.iter().filter(|l| !failed.contains(l)).collect();
            assert!(
                new.is_empty(),
                "{engine}, {suite}: failures not listed in expected_failures.json: {new:#?}"
            );
            assert!(
                fixed.is_empty(),
                "{engine}, {suite}: listed failures that pass now (delete them): {fixed:#?}"
            );
            assert_eq!(cases, passed + failed.len() as u64, "{engine}, {suite}");
            // on_each_engine runs QuickJS, then V8: the table's columns.
            table.entry(suite).or_default().push(passed.to_string());
        }
    });
    eprintln!("| suite | cases | Node | QuickJS | V8 |\n| --- | --- | --- | --- | --- |");
    for (suite, row) in &table {
        eprintln!("| {suite} | {} |", row.join(" | "));
    }
}
