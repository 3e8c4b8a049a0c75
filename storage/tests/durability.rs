#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
//! Durability and isolation of the on-disk store.
//!
//! The crash test runs a writer in a child process (this same test binary,
//! re-executed on the ignored `crash_child_writer` test), kills it with
//! SIGKILL in the middle of its loop, reopens the database and checks that
//! every write the child saw acknowledged is there and that no transaction
//! landed half.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use quire_storage::{RowQuery, Store, StoreConfig};
use serde_json::json;

const CHILD_ENV: &str = "QUIRE_CRASH_CHILD_DIR";

/// Open a store, waiting while an earlier handle in this process still
/// holds sled's file lock (sled's flusher thread lets go of a dropped
/// database a moment later).
fn reopen(config: &StoreConfig) -> Store {
    for _ in 0..500 {
        match Store::open(config) {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other.unwrap(),
        }
    }
    panic!("the store stayed locked");
}

fn reopen_err(config: &StoreConfig) -> quire_storage::StorageError {
    for _ in 0..500 {
        match Store::open(config) {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => return e,
            Ok(_) => panic!("the store opened"),
        }
    }
    panic!("the store stayed locked");
}

/// The child: write pairs of rows (one transaction each) plus a kv value,
/// printing each acknowledged index.
#[test]
#[ignore = "run by kill_9_loses_no_acknowledged_write as a child process"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = reopen(&StoreConfig::new(&dir));
    let ws = store.ensure_workspace("crash").unwrap();
    let mut out = std::io::stdout().lock();
    // Continue after what an earlier (killed) child wrote. It may have been
    // killed between a pair and its kv value (that index was never
    // acknowledged): finish that one first, as the later checks cover it.
    let start = store.count_rows(&ws.id, "pairs").unwrap() / 2;
    if let Some(prev) = start.checked_sub(1) {
        store
            .kv_set(&ws.id, &format!("k{prev:08}"), &json!(prev))
            .unwrap();
    }
    for i in start.. {
        let pad = "p".repeat(200);
        store
            .insert_rows(
                &ws.id,
                "pairs",
                &[
                    json!({"id": format!("a{i:08}"), "i": i, "pad": pad}),
                    json!({"id": format!("b{i:08}"), "i": i}),
                ],
            )
            .unwrap();
        store
            .kv_set(&ws.id, &format!("k{i:08}"), &json!(i))
            .unwrap();
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut last_round_end = 0;
    for round in 0..2 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut last = None;
        let target = last_round_end + 100;
        while let Some(Ok(l)) = lines.next() {
            // The harness may print "test crash_child_writer ... " first.
            if let Some((_, n)) = l.split_once("ack ") {
                let n: u64 = n.trim().parse().unwrap();
                last = Some(n);
                if n >= target {
                    break;
                }
            }
        }
        // SIGKILL mid-loop: the child is writing its next transaction.
        child.kill().unwrap();
        let _ = child.wait();
        let acked = last.expect("the child acknowledged writes");

        let store = reopen(&StoreConfig::new(dir.path()));
        let ws = store.workspace_by_name("crash").unwrap().unwrap();
        let rows = store
            .query_rows(
                &ws.id,
                "pairs",
                &RowQuery {
                    limit: usize::MAX,
                    ..Default::default()
                },
            )
            .unwrap();
        let a: Vec<u64> = rows
            .iter()
            .filter(|r| r["id"].as_str().unwrap().starts_with('a'))
            .map(|r| r["i"].as_u64().unwrap())
            .collect();
        let b: Vec<u64> = rows
            .iter()
            .filter(|r| r["id"].as_str().unwrap().starts_with('b'))
            .map(|r| r["i"].as_u64().unwrap())
            .collect();
        assert_eq!(a, b, "a transaction landed half (round {round})");
        // Every acknowledged index is present, and nothing past the one
        // being written when the kill came.
        assert!(
            a.len() as u64 > acked && a.len() as u64 <= acked + 2,
            "{} pairs after acking {acked}",
            a.len()
        );
        for i in 0..=acked {
            assert!(
                a.binary_search(&i).is_ok(),
                "acknowledged write {i} lost (round {round}, acked {acked})"
            );
            assert_eq!(
                store.kv_get(&ws.id, &format!("k{i:08}")).unwrap(),
                Some(json!(i)),
                "kv {i} lost"
            );
        }
        drop(store);
        last_round_end = acked;
    }
}

#[test]
fn workspaces_never_see_each_other_through_crafted_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreConfig::new(dir.path())).unwrap();
    let a = store.create_workspace("a").unwrap();
    let b = store.create_workspace("b").unwrap();
    store
        .insert_rows(&b.id, "tasks", &[json!({"id": "1", "secret": "B"})])
        .unwrap();
    store.kv_set(&b.id, "key", &json!("B")).unwrap();
    let b_hex = b.id.to_string();
    let crafted = [
        "tasks".to_string(),
        format!("{b_hex}tasks"),
        "\0\0\0\x05tasks".into(),
        "tasks\0".into(),
        "t".into(),
        "ta".into(),
        "🙂".into(),
        "x".repeat(1024),
        b_hex.clone(),
        String::from_utf8_lossy(b.id.as_bytes()).into_owned(),
    ];
    for name in &crafted {
        let q = RowQuery {
            limit: 100,
            ..Default::default()
        };
        if let Ok(rows) = store.query_rows(&a.id, name, &q) {
            assert!(
                !rows.iter().any(|r| r["secret"] == "B"),
                "{name:?} listed another workspace's rows: {rows:?}"
            );
        }
        if let Ok(v) = store.kv_get(&a.id, name) {
            assert_ne!(v, Some(json!("B")), "{name:?}");
        }
        let keys = store.kv_keys(&a.id, name, 100).unwrap();
        assert!(
            !keys.contains(&"key".to_string()),
            "{name:?} listed B's keys: {keys:?}"
        );
        let _ = store.insert_rows(&a.id, name, &[json!({"id": "1", "secret": "A"})]);
        let _ = store.kv_set(&a.id, name, &json!("A"));
    }
    assert_eq!(
        store
            .query_rows(
                &b.id,
                "tasks",
                &RowQuery {
                    limit: 10,
                    ..Default::default()
                }
            )
            .unwrap(),
        vec![json!({"id": "1", "secret": "B"})]
    );
    assert_eq!(store.kv_get(&b.id, "key").unwrap(), Some(json!("B")));
    assert_eq!(
        store.kv_keys(&b.id, "", 100).unwrap(),
        vec!["key".to_string()]
    );
    // Too-long and empty names are refused, not truncated into a collision.
    assert!(store.kv_get(&a.id, &"x".repeat(1025)).is_err());
    assert!(store.kv_get(&a.id, "").is_err());
}

#[test]
fn secrets_are_encrypted_at_rest_and_bound_to_their_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(&StoreConfig::new(dir.path())).unwrap();
        let ws = store.create_workspace("s").unwrap();
        store
            .put_secret(
                &ws.id,
                "API_KEY",
                "plaintext-marker-4242",
                &["api.example.com".into()],
            )
            .unwrap();
        store.flush().unwrap();
    }
    // The plaintext is nowhere in the database files.
    for entry in walk(&dir.path().join("db")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(21).any(|w| w == b"plaintext-marker-4242"),
            "plaintext in {}",
            entry.display()
        );
    }
    // Reopened with the same key file, it decrypts; with another key, it fails clearly.
    let store = reopen(&StoreConfig::new(dir.path()));
    let ws = store.workspace_by_name("s").unwrap().unwrap();
    assert_eq!(
        store.get_secret(&ws.id, "API_KEY").unwrap().unwrap().value,
        "plaintext-marker-4242"
    );
    drop(store);
    let mut cfg = StoreConfig::new(dir.path());
    cfg.secret_key = Some(quire_storage::SecretKey::from_bytes([9; 32]));
    let store = reopen(&cfg);
    let e = store.get_secret(&ws.id, "API_KEY").unwrap_err();
    assert!(e.to_string().contains("could not be decrypted"), "{e}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(&StoreConfig::new(dir.path())).unwrap());
    {
        let db = (0..500)
            .find_map(|_| match sled::open(dir.path().join("db")) {
                Ok(db) => Some(db),
                Err(_) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                }
            })
            .expect("sled reopens");
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let e = reopen_err(&StoreConfig::new(dir.path()));
    assert!(e.to_string().contains("schema version 99"), "{e}");
}
