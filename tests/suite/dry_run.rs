//! Dry-runs over the HTTP server: staged writes that the run's own reads
//! see, the `diff` event, applying it (all or nothing, only if nothing it
//! touched changed), and every way an apply is refused. Both engines.

use std::collections::BTreeMap;
use std::sync::Arc;

use quire_engine::EngineKind;
use quire_host_api::{DryRunLimits, HostConfig};
use quire_storage::{Backend, MemoryBackend, SecretKey, Store, Table, WorkspaceId};
use quire_web::ServerConfig;
use serde_json::{json, Value};

use crate::server::{check_events, TestServer, Tokens};

/// What a dry-run writes: run history and its diff, nothing else.
const HISTORY: [Table; 9] = [
    Table::Runs,
    Table::RunsByBlock,
    Table::RunsActive,
    Table::RunsQueued,
    Table::RunEvents,
    Table::HistoryBytes,
    Table::Usage,
    Table::Diffs,
    Table::DiffHeads,
];

type Dump = BTreeMap<&'static str, Vec<(Vec<u8>, Vec<u8>)>>;

/// Every table but run history, entry by entry.
fn dump(b: &MemoryBackend) -> Dump {
    let mut out = Dump::new();
    for t in Table::ALL.into_iter().filter(|t| !HISTORY.contains(t)) {
        let mut rows = Vec::new();
        b.scan(t, b"", None, &mut |k, v| {
            rows.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
        out.insert(t.name(), rows);
    }
    out
}

struct Fixture {
    srv: TestServer,
    backend: Arc<MemoryBackend>,
    t: Tokens,
    ws: WorkspaceId,
}

const SOURCE: &str = r#"import { db, kv, doc } from "quire";
const seen = {};
await db.update("tasks", "r1", { done: true });
await db.insert("tasks", { id: "r9", title: "new" });
await db.delete("tasks", "r2");
seen.rows = (await db.query("tasks")).map((r) => `${r.id}:${r.done ?? "-"}`);
seen.done = (await db.query("tasks", { where: { done: true } })).map((r) => r.id);
await kv.set("count", 2);
seen.count = await kv.get("count");
seen.gone = await kv.delete("gone");
seen.goneAfter = await kv.get("gone");
seen.missing = await kv.delete("never");
await doc.update("d1", { title: "Renamed", properties: { owner: "ana" } });
seen.title = (await doc.get("d1")).title;
seen.listed = (await doc.list()).map((d) => d.title);
try {
  await fetch("http://127.0.0.1:9/", { method: "POST", body: "x" });
  seen.post = "sent";
} catch (e) {
  seen.post = String(e.message);
}
export default seen;
"#;

fn fixture(host: HostConfig) -> Fixture {
    let backend = Arc::new(MemoryBackend::new());
    let store = Store::with_backend(backend.clone(), SecretKey::random().unwrap()).unwrap();
    let srv = TestServer::start_full(store, ServerConfig::default(), host);
    let t = srv.workspace("w");
    let ws = srv.store.workspace_by_name("w").unwrap().unwrap().id;
    let (s, v) = srv.call(
        "POST",
        "/workspaces/w/db/tasks/rows",
        &t.editor,
        Some(json!({"rows": [{"id": "r1", "done": false}, {"id": "r2"}, {"id": "r3"}]})),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.call(
        "POST",
        "/workspaces/w/docs",
        &t.editor,
        Some(json!({"id": "d1", "title": "Plan", "blocks": []})),
    );
    assert_eq!(s, 201, "{v}");
    srv.store.kv_set(&ws, "count", &json!(1)).unwrap();
    srv.store.kv_set(&ws, "gone", &json!("bye")).unwrap();
    let grants = json!([
        "db:read:tasks",
        "db:write:tasks",
        "kv:read",
        "kv:write",
        "doc:read",
        "doc:write",
        "net:127.0.0.1"
    ]);
    let (s, v) = srv.call(
        "POST",
        "/workspaces/w/blocks",
        &t.admin,
        Some(json!({"id": "edit", "source": SOURCE, "lang": "js", "grants": grants})),
    );
    assert_eq!(s, 201, "{v}");
    Fixture {
        srv,
        backend,
        t,
        ws,
    }
}

/// Dry-run `source` as block `edit` on `engine`; its finished record.
fn dry_run(f: &Fixture, source: &str, engine: EngineKind) -> Value {
    let (s, v) = f.srv.call(
        "POST",
        "/workspaces/w/runs",
        &f.t.admin,
        Some(json!({"source": source, "lang": "js", "block": "edit", "engine": engine.as_str(), "mode": "dry_run"})),
    );
    assert_eq!(s, 202, "{v}");
    f.srv
        .wait_run("w", v["run"].as_str().unwrap_or_default(), &f.t.viewer)
}

fn event<'a>(rec: &'a Value, kind: &str) -> &'a Value {
    rec["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn apply(f: &Fixture, run: &str, digest: &Value, token: &str) -> (u16, Value) {
    f.srv.call(
        "POST",
        &format!("/workspaces/w/runs/{run}/apply"),
        token,
        Some(json!({"digest": digest})),
    )
}

#[test]
fn a_dry_run_sees_its_own_writes_writes_nothing_and_applies_exactly_its_diff() {
    for engine in [EngineKind::Quickjs, EngineKind::V8] {
        let f = fixture(HostConfig::default());
        let before = dump(&f.backend);
        let rec = dry_run(&f, SOURCE, engine);
        assert_eq!(rec["status"], "ok", "{engine:?}: {rec}");
        assert_eq!(rec["mode"], "dry_run");
        let events = rec["events"].as_array().unwrap();
        check_events(events);
        // The diff comes last but for `finished`.
        assert_eq!(events[events.len() - 2]["type"], "diff", "{rec}");
        let seen = &event(&rec, "result")["value"];
        assert_eq!(seen["rows"], json!(["r1:true", "r3:-", "r9:-"]), "{seen}");
        assert_eq!(seen["done"], json!(["r1"]));
        assert_eq!(seen["count"], 2);
        assert_eq!(
            (&seen["gone"], &seen["goneAfter"], &seen["missing"]),
            (&json!(true), &Value::Null, &json!(false))
        );
        assert_eq!(seen["title"], "Renamed");
        assert_eq!(seen["listed"], json!(["Renamed"]));
        let post = seen["post"].as_str().unwrap_or_default();
        assert!(post.contains("dry-run allows only GET and HEAD"), "{post}");
        // Nothing outside run history changed.
        assert!(
            dump(&f.backend) == before,
            "{engine:?}: a dry-run wrote data"
        );
        let diff = event(&rec, "diff");
        let changes: Vec<(String, String)> = diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let id = c["id"].as_str().or(c["key"].as_str()).unwrap_or_default();
                (
                    format!("{}:{id}", c["kind"].as_str().unwrap_or_default()),
                    c["op"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let want = [
            ("row:r1", "update"),
            ("row:r9", "insert"),
            ("row:r2", "delete"),
            ("kv:count", "update"),
            ("kv:gone", "delete"),
            ("doc:d1", "update"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(changes, want, "{diff}");
        let c0 = &diff["changes"][0];
        assert_eq!(
            (&c0["before"]["done"], &c0["after"]["done"]),
            (&json!(false), &json!(true))
        );
        assert_eq!(rec["preview"]["status"], "pending", "{rec}");
        // A viewer may not apply; the editor applies all six at once.
        let run = rec["run"].as_str().unwrap();
        assert_eq!(apply(&f, run, &diff["digest"], &f.t.viewer).0, 403);
        let (s, v) = apply(&f, run, &diff["digest"], &f.t.editor);
        assert_eq!((s, &v["applied"]), (200, &json!(6)), "{v}");
        let rec = |id: &str| {
            f.srv
                .store
                .get_record(
                    &f.ws,
                    &quire_storage::Target::Row {
                        collection: "tasks".into(),
                        id: id.into(),
                    },
                )
                .unwrap()
        };
        assert_eq!(rec("r1"), Some(json!({"id": "r1", "done": true})));
        assert_eq!(
            (rec("r2"), rec("r9")),
            (None, Some(json!({"id": "r9", "title": "new"})))
        );
        assert_eq!(f.srv.store.kv_get(&f.ws, "count").unwrap(), Some(json!(2)));
        assert_eq!(f.srv.store.kv_get(&f.ws, "gone").unwrap(), None);
        let d1 = f.srv.store.get_doc(&f.ws, "d1").unwrap().unwrap();
        assert_eq!(
            (d1.title.as_str(), &d1.properties["owner"]),
            ("Renamed", &json!("ana"))
        );
        // Once only; the history says so.
        let (s, v) = apply(&f, run, &diff["digest"], &f.t.editor);
        assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");
        let (_, list) = f
            .srv
            .call("GET", "/workspaces/w/runs?block=edit", &f.t.viewer, None);
        assert_eq!(list["runs"][0]["preview"]["status"], "applied", "{list}");
        assert_eq!(list["runs"][0]["mode"], "dry_run");
    }
}

#[test]
fn an_apply_is_refused_when_records_changed_tampered_expired_or_elsewhere() {
    let f = fixture(HostConfig::default());
    let src = "import { db, kv } from 'quire';\nawait db.update('tasks', 'r1', { done: true });\nawait db.update('tasks', 'r3', { n: 1 });\nawait kv.set('fresh', 1);";
    let rec = dry_run(&f, src, EngineKind::Quickjs);
    let run = rec["run"].as_str().unwrap().to_string();
    let digest = event(&rec, "diff")["digest"].clone();
    // Someone changes r3 and creates the key the dry-run would insert.
    f.srv
        .store
        .update_row(&f.ws, "tasks", "r3", &json!({"n": 7}))
        .unwrap();
    f.srv
        .store
        .kv_set(&f.ws, "fresh", &json!("theirs"))
        .unwrap();
    let before = dump(&f.backend);
    let (s, v) = apply(&f, &run, &digest, &f.t.editor);
    assert_eq!(s, 409, "{v}");
    assert_eq!(
        v["conflicts"],
        json!([{"kind": "row", "collection": "tasks", "id": "r3"}, {"kind": "kv", "key": "fresh"}])
    );
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("row 'r3' of 'tasks'") && msg.contains("kv key 'fresh'"),
        "{msg}"
    );
    assert!(dump(&f.backend) == before, "a refused apply wrote");
    // A digest that is not the diff's, another workspace, a run that is no dry-run.
    let other = f.srv.workspace("other");
    let (s, _) = apply(&f, &run, &json!("0".repeat(64)), &f.t.editor);
    assert_eq!(s, 409);
    let (s, _) = f.srv.call(
        "POST",
        &format!("/workspaces/other/runs/{run}/apply"),
        &other.editor,
        Some(json!({"digest": digest})),
    );
    assert_eq!(s, 404);
    let (s, _) = f.srv.call(
        "POST",
        &format!("/workspaces/w/runs/{run}/apply"),
        &other.editor,
        Some(json!({"digest": digest})),
    );
    assert_eq!(s, 404);
    // Malformed bodies.
    for body in [
        json!({}),
        json!({"digest": 5}),
        json!({"digest": "x".repeat(200)}),
        json!({"digest": "a", "more": 1}),
    ] {
        let (s, v) = f.srv.call(
            "POST",
            &format!("/workspaces/w/runs/{run}/apply"),
            &f.t.editor,
            Some(body),
        );
        assert!(s == 400 || s == 422, "{s} {v}");
    }
    // A viewer may not discard; an editor may, and then it cannot be applied.
    let discard = |token: &str| {
        f.srv
            .call(
                "POST",
                &format!("/workspaces/w/runs/{run}/discard"),
                token,
                None,
            )
            .0
    };
    assert_eq!(discard(&f.t.viewer), 403);
    assert_eq!(discard(&f.t.editor), 200);
    assert_eq!(discard(&f.t.editor), 409);
    assert_eq!(apply(&f, &run, &digest, &f.t.editor).0, 409);
    let (_, one) = f.srv.call(
        "GET",
        &format!("/workspaces/w/runs/{run}"),
        &f.t.viewer,
        None,
    );
    assert_eq!(one["preview"]["status"], "discarded", "{one}");
    // A normal run is not a dry-run.
    let (s, v) = f.srv.call(
        "POST",
        "/workspaces/w/runs",
        &f.t.editor,
        Some(json!({"source": "export default 1", "lang": "js"})),
    );
    assert_eq!(s, 202);
    let plain = v["run"].as_str().unwrap().to_string();
    f.srv.wait_run("w", &plain, &f.t.viewer);
    assert_eq!(apply(&f, &plain, &digest, &f.t.editor).0, 404);
    // A failed dry-run's diff is shown, never applied.
    let rec = dry_run(
        &f,
        "import { kv } from 'quire';\nawait kv.set('x', 1);\nthrow new Error('no');",
        EngineKind::Quickjs,
    );
    let diff = event(&rec, "diff");
    assert_eq!(diff["changes"].as_array().map(Vec::len), Some(1), "{rec}");
    let (s, v) = apply(
        &f,
        rec["run"].as_str().unwrap(),
        &diff["digest"],
        &f.t.editor,
    );
    assert_eq!(s, 409, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ended with an error"),
        "{v}"
    );
    assert_eq!(f.srv.store.kv_get(&f.ws, "x").unwrap(), None);
}

#[test]
fn a_diff_expires_and_its_size_and_the_quota_are_held_at_dry_run_time() {
    let host = HostConfig {
        dry_run: DryRunLimits {
            max_diff_bytes: 2048,
            keep_ms: 0,
            ..DryRunLimits::default()
        },
        ..HostConfig::default()
    };
    let f = fixture(host);
    let rec = dry_run(
        &f,
        "import { kv } from 'quire';\nawait kv.set('k', 1);",
        EngineKind::Quickjs,
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    let (s, v) = apply(
        &f,
        rec["run"].as_str().unwrap(),
        &event(&rec, "diff")["digest"],
        &f.t.editor,
    );
    assert_eq!((s, v["error"].as_str()), (410, Some("expired")), "{v}");
    assert_eq!(f.srv.store.kv_get(&f.ws, "k").unwrap(), None);
    // Past the diff's size: the write rejects inside the run.
    let big = "import { kv } from 'quire';\nfor (let i = 0; i < 10; i++) await kv.set('k' + i, 'x'.repeat(400));";
    let rec = dry_run(&f, big, EngineKind::Quickjs);
    assert_eq!(rec["status"], "error");
    let msg = rec["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("over the limit of 2048 bytes a dry-run may stage"),
        "{rec}"
    );
    // A staged write over the storage quota is refused now, not at apply.
    let (s, v) = f.srv.call(
        "PUT",
        "/workspaces/w/quota",
        &f.t.admin,
        Some(json!({"storage_bytes": 1500})),
    );
    assert_eq!(s, 200, "{v}");
    let rec = dry_run(&f, "import { kv } from 'quire';\nawait kv.set('a', 'x'.repeat(600));\nawait kv.set('b', 'x'.repeat(600));\nawait kv.set('c', 'x'.repeat(600));", EngineKind::Quickjs);
    assert_eq!(rec["status"], "error", "{rec}");
    assert_eq!(rec["error"]["kind"], "quota_exceeded", "{rec}");
}

#[test]
fn a_write_grant_alone_does_not_reveal_what_a_write_replaced_and_a_get_carries_no_body() {
    let f = fixture(HostConfig::default());
    let src = "import { kv } from 'quire';\nawait kv.set('count', 5);\nawait kv.delete('gone');\nawait kv.set('brand-new', 1);\nlet body;\ntry { await fetch('http://127.0.0.1:9/', { method: 'GET', body: 'x' }); } catch (e) { body = e.message; }\nexport default body;";
    let (s, v) = f.srv.call(
        "POST",
        "/workspaces/w/blocks",
        &f.t.admin,
        Some(json!({"id": "writer", "source": src, "lang": "js", "grants": ["kv:write", "net:127.0.0.1"]})),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = f.srv.call(
        "POST",
        "/workspaces/w/blocks/writer/runs",
        &f.t.editor,
        Some(json!({"mode": "dry_run"})),
    );
    assert_eq!(s, 202, "{v}");
    let rec = f.srv.wait_run("w", v["run"].as_str().unwrap(), &f.t.viewer);
    assert_eq!(rec["status"], "ok", "{rec}");
    let body = event(&rec, "result")["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(body.contains("cannot have a body"), "{body}");
    let changes = event(&rec, "diff")["changes"].clone();
    assert_eq!(
        changes,
        json!([
            {"kind": "kv", "key": "count", "op": "update", "before": null, "before_hidden": true, "after": 5},
            {"kind": "kv", "key": "gone", "op": "delete", "before": null, "before_hidden": true, "after": null},
            {"kind": "kv", "key": "brand-new", "op": "insert", "before": null, "after": 1},
        ]),
        "{rec}"
    );
    assert!(
        !rec.to_string().contains("bye"),
        "the deleted value leaked: {rec}"
    );
    // What is filed still holds them: the apply compares and writes.
    let (s, v) = apply(
        &f,
        rec["run"].as_str().unwrap(),
        &event(&rec, "diff")["digest"],
        &f.t.editor,
    );
    assert_eq!((s, &v["applied"]), (200, &json!(3)), "{v}");
    assert_eq!(f.srv.store.kv_get(&f.ws, "count").unwrap(), Some(json!(5)));
}
