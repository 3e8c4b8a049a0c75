//! web-platform-tests testharness.js suites (`tests/wpt/suites.json`):
//! each `.any.js` file runs with WPT's own `testharness.js` in a block on
//! each engine and in Node, the reference (`tests/wpt/anyjs.mjs` composes
//! the program once for all three). Every failure of an engine must be
//! listed in `tests/wpt/expected_failures.json` with its cause (a key
//! `FILE :: NAME`, where `*` stands for any text, for a group with one
//! cause), and
//! every key must still match a failure of some engine; a file whose run
//! ends without a result is one failure (`FILE :: (the run failed)`) and
//! counts none of its subtests as passed. The table of counts is printed
//! (`cargo test --test suite wpt_any -- --nocapture`).
//! `QUIRE_WPT_PRINT_FAILURES=1` prints each engine's failures as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use quire_engine::{Lang, Limits};
use serde_json::Value;

use crate::common::{current_engine, on_each_engine, run_with};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wpt");

/// The name a failing whole run is listed under.
const RUN_FAILED: &str = "(the run failed)";

fn node(args: &[&str]) -> String {
    let out = Command::new("node")
        .current_dir(DIR)
        .arg("anyjs.mjs")
        .args(args)
        .output()
        .expect("node runs (it composes the WPT programs and is the reference)");
    assert!(
        out.status.success(),
        "node anyjs.mjs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Subtest name → passed, from a harness result (a name met again gets
/// ` #2`, ` #3`...).
fn outcomes(v: &Value) -> Option<BTreeMap<String, bool>> {
    let list = v.get("results")?.as_array()?;
    let mut out = BTreeMap::new();
    for r in list {
        let (Some(name), Some(ok)) = (r[0].as_str(), r[1].as_bool()) else {
            continue;
        };
        let mut key = name.to_string();
        let mut n = 1;
        while out.contains_key(&key) {
            n += 1;
            key = format!("{name} #{n}");
        }
        out.insert(key, ok);
    }
    Some(out)
}

/// Whether expected-failure key `key` covers failure `f`: `*` in a key
/// stands for any text.
fn covers(key: &str, f: &str) -> bool {
    let mut parts = key.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = f.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[test]
fn keys_cover_names_with_stars_as_any_text() {
    assert!(covers("a :: b", "a :: b"));
    assert!(!covers("a :: b", "a :: bc"));
    assert!(covers("a :: *", "a :: anything"));
    assert!(covers(
        "a :: *SharedArrayBuffer*",
        "a :: x, backed by: SharedArrayBuffer"
    ));
    assert!(covers("a :: *(SAB)", "a :: window (SAB)"));
    assert!(!covers("a :: *(SAB)", "a :: window (SAB) more"));
    assert!(!covers("b :: *", "a :: x"));
}

/// What one file gave on one engine: passed subtests, and failures as
/// `FILE :: NAME` (Node's subtests it did not pass, or never ran).
fn judge(
    file: &str,
    got: Option<&BTreeMap<String, bool>>,
    node: &BTreeMap<String, bool>,
) -> (u64, BTreeSet<String>) {
    let Some(got) = got else {
        return (0, BTreeSet::from([format!("{file} :: {RUN_FAILED}")]));
    };
    let mut failed: BTreeSet<String> = got
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(n, _)| format!("{file} :: {n}"))
        .collect();
    failed.extend(
        node.keys()
            .filter(|n| !got.contains_key(*n))
            .map(|n| format!("{file} :: {n} (never ran)")),
    );
    (got.values().filter(|ok| **ok).count() as u64, failed)
}

#[test]
fn any_js_suites_pass_on_both_engines_but_for_the_listed_failures() {
    let suites: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(DIR).join("suites.json")).expect("suites.json"),
    )
    .expect("JSON");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(DIR).join("expected_failures.json"))
            .expect("expected_failures.json"),
    )
    .expect("JSON");
    let limits = Limits {
        cpu_time_ms: 60_000,
        wall_time_ms: 120_000,
        memory_bytes: 256 * 1024 * 1024,
        output_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let print = std::env::var("QUIRE_WPT_PRINT_FAILURES").is_ok();
    let mut table = Vec::new();
    let mut problems = Vec::new();
    for (suite, files) in suites["suites"].as_object().expect("suites") {
        let files: Vec<&str> = files
            .as_array()
            .expect("files")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let listed: BTreeSet<String> = expected[suite]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let mut used: BTreeSet<String> = BTreeSet::new();
        let (mut cases, mut node_passed) = (0u64, 0u64);
        let mut programs = Vec::new();
        for file in &files {
            let reference: Value =
                serde_json::from_str(&node(&["run", file])).expect("Node's results");
            let reference = outcomes(&reference).unwrap_or_default();
            cases += reference.len() as u64;
            node_passed += reference.values().filter(|ok| **ok).count() as u64;
            let src = format!(
                "const P = {};\n(0, eval)(P);\nexport default await globalThis.__wpt_result;\n",
                serde_json::to_string(&node(&["compose", file])).expect("JSON")
            );
            programs.push((*file, src, reference));
        }
        let mut row = vec![suite.clone(), cases.to_string(), node_passed.to_string()];
        on_each_engine(|_| {
            let engine = current_engine().as_str();
            let (mut passed, mut failed) = (0u64, BTreeSet::new());
            for (file, src, reference) in &programs {
                let r = run_with(src, Lang::Js, limits.clone());
                let got = r.result().and_then(outcomes);
                let (p, f) = judge(file, got.as_ref(), reference);
                passed += p;
                failed.extend(f);
            }
            if print {
                eprintln!(
                    "{engine} {suite}: {}",
                    serde_json::to_string_pretty(&failed).unwrap_or_default()
                );
            }
            let mut new = Vec::new();
            for f in &failed {
                match listed.iter().find(|k| covers(k, f)) {
                    Some(k) => {
                        used.insert(k.clone());
                    }
                    None => new.push(f.clone()),
                }
            }
            if !new.is_empty() {
                problems.push(format!(
                    "{engine}, {suite}: failures not listed in expected_failures.json: {new:#?}"
                ));
            }
            row.push(passed.to_string());
        });
        let stale: Vec<&String> = listed.iter().filter(|k| !used.contains(*k)).collect();
        if !stale.is_empty() {
            problems.push(format!(
                "{suite}: listed failures that no engine has now (delete them): {stale:#?}"
            ));
        }
        table.push(row);
    }
    eprintln!("| suite | cases (Node's) | Node | QuickJS | V8 |\n| --- | --- | --- | --- | --- |");
    for row in &table {
        eprintln!("| {} |", row.join(" | "));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
