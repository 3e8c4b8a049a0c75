//! The host API end to end: every host call granted and denied, isolation
//! between workspaces whatever names a block passes, per-run host limits,
//! and fetch against a local server (address filtering, redirects, bound
//! secrets).

use std::net::IpAddr;
use std::sync::Arc;

use quire_engine::{ErrorKind, Lang, Limits, RunRequest};
use quire_host_api::{Grants, HostApi, HostConfig, Resolve};
use quire_storage::{Store, Workspace};
use serde_json::{json, Value};

use crate::common::{engine, run_req, Ran};
use crate::http::Server;

/// Names that resolve where a test wants them.
struct TestResolver;

impl Resolve for TestResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        match host {
            "evil.test" => Ok(vec!["127.0.0.1".parse().unwrap()]),
            "mixed.test" => Ok(vec![
                "93.184.216.34".parse().unwrap(),
                "10.0.0.7".parse().unwrap(),
            ]),
            "metadata.test" => Ok(vec!["169.254.169.254".parse().unwrap()]),
            other => quire_host_api::SystemResolver.resolve(other, port),
        }
    }
}

pub struct Fx {
    pub store: Store,
    pub api: HostApi,
    pub a: Workspace,
    pub b: Workspace,
}

pub fn fixture() -> Fx {
    fixture_with(HostConfig::default())
}

pub fn fixture_with(config: HostConfig) -> Fx {
    let store = Store::memory().unwrap();
    let a = store.create_workspace("alpha").unwrap();
    let b = store.create_workspace("beta").unwrap();
    for (ws, tag) in [(&a, "A"), (&b, "B")] {
        store
            .insert_rows(
                &ws.id,
                "tasks",
                &[
                    json!({"id": "t1", "owner": tag, "n": 1}),
                    json!({"id": "t2", "owner": tag, "n": 2}),
                ],
            )
            .unwrap();
        store
            .put_doc(
                &ws.id,
                serde_json::from_value(json!({"id": "d1", "title": format!("doc {tag}")})).unwrap(),
            )
            .unwrap();
        store
            .kv_set(&ws.id, "k", &json!(format!("kv {tag}")))
            .unwrap();
        store
            .put_secret(&ws.id, "TOKEN", &format!("secret-{tag}-value"), &[])
            .unwrap();
    }
    let config = HostConfig {
        resolver: Arc::new(TestResolver),
        ..config
    };
    let api = HostApi::new(store.clone(), config).unwrap();
    Fx { store, api, a, b }
}

pub fn run_in(fx: &Fx, ws: &Workspace, grants: &[&str], src: &str) -> Ran {
    run_limited(fx, ws, grants, src, Limits::default())
}

/// Start a run without waiting for it.
pub fn start_in(fx: &Fx, ws: &Workspace, grants: &[&str], src: &str) -> quire_engine::RunHandle {
    let host = fx.api.session(ws.id, Grants::parse(grants).unwrap());
    engine().run(RunRequest::new(src, Lang::Js).with_host(host))
}

fn run_limited(fx: &Fx, ws: &Workspace, grants: &[&str], src: &str, limits: Limits) -> Ran {
    let host = fx.api.session(ws.id, Grants::parse(grants).unwrap());
    run_req(
        engine(),
        RunRequest::new(src, Lang::Js)
            .with_host(host)
            .with_limits(limits),
    )
}

/// A block that makes one call and reports how it went.
fn probe(call: &str) -> String {
    format!(
        r#"import {{ doc, db, kv, secrets }} from "quire";
export default async () => {{
  try {{ const v = await {call}; return {{ ok: true, v }}; }}
  catch (e) {{ return {{ ok: false, name: e.name, message: e.message }}; }}
}};"#
    )
}

#[test]
fn capability_matrix_every_call_granted_and_denied() {
    let fx = fixture();
    let server = Server::start();
    let net = format!("net:127.0.0.1:{}", server.port);
    let fetch = format!("fetch('{}').then(r => r.text())", server.url("/hello"));
    // (call, the grant it needs, a grant that is close but not enough)
    let cases: Vec<(&str, String, &str)> = vec![
        ("doc.list()", "doc:read".into(), "doc:write"),
        ("doc.get('d1')", "doc:read".into(), "doc:write"),
        (
            "doc.update('d1', {title: 'new'})",
            "doc:write".into(),
            "doc:read",
        ),
        (
            "db.query('tasks')",
            "db:read:tasks".into(),
            "db:write:tasks",
        ),
        (
            "db.insert('tasks', {n: 3})",
            "db:write:tasks".into(),
            "db:read:tasks",
        ),
        (
            "db.update('tasks', 't1', {n: 9})",
            "db:write:tasks".into(),
            "db:write:other",
        ),
        (
            "db.delete('tasks', 't2')",
            "db:write:tasks".into(),
            "db:read:*",
        ),
        ("kv.get('k')", "kv:read".into(), "kv:write"),
        ("kv.set('k', 1)", "kv:write".into(), "kv:read"),
        ("kv.delete('k')", "kv:write".into(), "kv:read"),
        (
            "secrets.get('TOKEN')",
            "secret:TOKEN".into(),
            "secret:OTHER",
        ),
        (fetch.as_str(), net.clone(), "net:127.0.0.1"),
    ];
    for (call, needed, near) in &cases {
        for grants in [vec![], vec![*near]] {
            let before = snapshot(&fx);
            let r = run_in(&fx, &fx.a, &grants, &probe(call));
            let v = r
                .result()
                .unwrap_or_else(|| panic!("{call}: {:?}", r.outcome.error));
            assert_eq!(v["ok"], false, "{call} with {grants:?} must be denied: {v}");
            assert_eq!(v["name"], "CapabilityDenied", "{call}: {v}");
            let msg = v["message"].as_str().unwrap();
            assert!(
                msg.contains(needed.as_str()),
                "{call}: the message must name {needed}: {msg}"
            );
            assert_eq!(before, snapshot(&fx), "{call}: a denied call changed data");
        }
        let r = run_in(&fx, &fx.a, &[needed.as_str()], &probe(call));
        let v = r.result().unwrap();
        assert_eq!(v["ok"], true, "{call} with {needed} must pass: {v}");
    }
    // Wildcard collection grants cover every collection.
    let r = run_in(&fx, &fx.a, &["db:read:*"], &probe("db.query('tasks')"));
    assert_eq!(r.result().unwrap()["ok"], true);
}

/// Everything stored, for "nothing changed" checks.
fn snapshot(fx: &Fx) -> Value {
    let mut out = Vec::new();
    for ws in [&fx.a, &fx.b] {
        let rows = fx
            .store
            .query_rows(
                &ws.id,
                "tasks",
                &quire_storage::RowQuery {
                    limit: 1000,
                    ..Default::default()
                },
            )
            .unwrap();
        out.push(json!({
            "rows": rows,
            "docs": fx.store.get_doc(&ws.id, "d1").unwrap().map(|d| d.title),
            "kv": fx.store.kv_get(&ws.id, "k").unwrap(),
        }));
    }
    Value::Array(out)
}

#[test]
fn an_uncaught_denial_ends_the_run_with_capability_denied() {
    let fx = fixture();
    let r = run_in(
        &fx,
        &fx.a,
        &[],
        "import { db } from 'quire'; export default await db.query('tasks');",
    );
    assert_eq!(r.kind(), Some(ErrorKind::CapabilityDenied));
    assert!(r.message().contains("db:read:tasks"), "{}", r.message());
    // Calling the raw host function directly gains nothing.
    let r = run_in(
        &fx,
        &fx.a,
        &[],
        "export default await globalThis.__quire_host('kv.get', ['k']);",
    );
    assert_eq!(r.kind(), Some(ErrorKind::CapabilityDenied));
    let r = run_in(&fx, &fx.a, &["kv:read"], "try { globalThis.__quire_host = () => 'forged'; } catch {} try { Object.defineProperty(globalThis, '__quire_host', { value: () => 'forged' }); } catch {} import { kv } from 'quire'; export default [await kv.get('k'), await globalThis.__quire_host('kv.get', ['k'])];");
    assert_eq!(
        r.result(),
        Some(&json!(["kv A", "kv A"])),
        "{:?}",
        r.outcome.error
    );
}

#[test]
fn the_host_module_works_only_with_a_host_attached() {
    let r = run_req(
        engine(),
        RunRequest::new("import { kv } from 'quire'; export default 1;", Lang::Js),
    );
    assert_eq!(r.kind(), Some(ErrorKind::Exception));
    assert!(
        r.message().contains("no host API is attached"),
        "{}",
        r.message()
    );
    let r = run_req(
        engine(),
        RunRequest::new(
            "export default await fetch('http://example.com/');",
            Lang::Js,
        ),
    );
    assert_eq!(r.kind(), Some(ErrorKind::CapabilityDenied));
}

#[test]
fn data_calls_read_and_write_the_runs_workspace() {
    let fx = fixture();
    let all = [
        "doc:read",
        "doc:write",
        "db:read:*",
        "db:write:*",
        "kv:read",
        "kv:write",
        "secret:TOKEN",
    ];
    let src = r#"import { doc, db, kv, secrets } from "quire";
export default async () => {
  const inserted = await db.insert("tasks", { title: "new", n: 5 });
  const updated = await db.update("tasks", "t1", { n: 10, extra: { deep: true } });
  const gone = await db.delete("tasks", "t2");
  const big = await db.query("tasks", { where: { n: { $gte: 5 } } });
  await kv.set("counter", { n: 1 });
  const d = await doc.update("d1", { title: "renamed", properties: { owner: "me" } });
  let missing;
  try { await db.update("tasks", "nope", { n: 1 }); } catch (e) { missing = e.name + ": " + e.message; }
  let badWhere;
  try { await db.query("tasks", { where: { n: { $regex: "x" } } }); } catch (e) { badWhere = e.message; }
  return { id: typeof inserted.id, updated, gone, big: big.map(r => r.n), kv: await kv.get("counter"), none: await kv.get("absent"),
           title: d.title, owner: d.properties.owner, list: (await doc.list()).length, secret: await secrets.get("TOKEN"), missing, badWhere };
};"#;
    let r = run_in(&fx, &fx.a, &all, src);
    let v = r
        .result()
        .unwrap_or_else(|| panic!("{:?}", r.outcome.error));
    assert_eq!(v["id"], "string");
    assert_eq!(
        v["updated"],
        json!({"id": "t1", "owner": "A", "n": 10, "extra": {"deep": true}})
    );
    assert_eq!(v["gone"], true);
    let mut big: Vec<i64> = v["big"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_i64().unwrap())
        .collect();
    big.sort();
    assert_eq!(big, vec![5, 10]);
    assert_eq!(v["kv"], json!({"n": 1}));
    assert_eq!(v["none"], Value::Null);
    assert_eq!(v["title"], "renamed");
    assert_eq!(v["owner"], "me");
    assert_eq!(v["list"], 1);
    assert_eq!(v["secret"], "secret-A-value");
    assert!(
        v["missing"].as_str().unwrap().starts_with("NotFound:"),
        "{v}"
    );
    assert!(
        v["badWhere"]
            .as_str()
            .unwrap()
            .contains("unknown operator $regex"),
        "{v}"
    );
    // Workspace B is untouched.
    assert_eq!(fx.store.kv_get(&fx.b.id, "counter").unwrap(), None);
    assert_eq!(fx.store.count_rows(&fx.b.id, "tasks").unwrap(), 2);
    assert_eq!(
        fx.store.get_doc(&fx.b.id, "d1").unwrap().unwrap().title,
        "doc B"
    );
}

#[test]
fn no_name_or_id_reaches_another_workspace() {
    let fx = fixture();
    let all = [
        "doc:read",
        "doc:write",
        "db:read:*",
        "db:write:*",
        "kv:read",
        "kv:write",
        "secret:TOKEN",
    ];
    let b_id = fx.b.id.to_string();
    let long = "x".repeat(1024);
    let too_long = "x".repeat(1025);
    let names = vec![
        "tasks".to_string(),
        "".into(),
        "*".into(),
        "../beta/tasks".into(),
        "beta/tasks".into(),
        "beta:tasks".into(),
        format!("{b_id}"),
        format!("{b_id}/tasks"),
        "tasks\u{0}".into(),
        "\u{0}\u{0}\u{0}\u{5}tasks".into(),
        "tâsks".into(),
        "タスク".into(),
        "tasks\u{202e}".into(),
        "%2e%2e/tasks".into(),
        long,
        too_long,
    ];
    let before_b = snapshot(&fx)[1].clone();
    for name in &names {
        let n = serde_json::to_string(name).unwrap();
        let src = format!(
            r#"import {{ doc, db, kv }} from "quire";
const seen = [];
const attempt = async (f) => {{ try {{ seen.push(JSON.stringify(await f())); }} catch (e) {{ seen.push(e.name); }} }};
export default async () => {{
  await attempt(() => db.query({n}));
  await attempt(() => db.query("tasks", {{ after: {n} }}));
  await attempt(() => db.update({n}, "t1", {{ owner: "X" }}));
  await attempt(() => db.update("tasks", {n}, {{ owner: "X" }}));
  await attempt(() => db.delete({n}, "t2"));
  await attempt(() => db.insert({n}, {{ id: "t1", owner: "X" }}));
  await attempt(() => doc.get({n}));
  await attempt(() => doc.update({n}, {{ title: "X" }}));
  await attempt(() => kv.get({n}));
  await attempt(() => kv.set({n}, "X"));
  return seen.join("\n");
}};"#
        );
        let r = run_in(&fx, &fx.a, &all, &src);
        let text = r
            .result()
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{name:?}: {:?}", r.outcome.error))
            .to_string();
        assert!(
            !text.contains("\"B\"") && !text.contains("doc B") && !text.contains("kv B"),
            "{name:?} leaked workspace B: {text}"
        );
        assert_eq!(snapshot(&fx)[1], before_b, "{name:?} changed workspace B");
    }
    // Every crafted name that A wrote stays A's: B still sees only its own.
    assert_eq!(fx.store.count_rows(&fx.b.id, "tasks").unwrap(), 2);
    // Secrets: the same name in two workspaces gives each its own value.
    let r = run_in(
        &fx,
        &fx.b,
        &["secret:TOKEN"],
        &probe("secrets.get('TOKEN')"),
    );
    assert_eq!(r.result().unwrap()["v"], "secret-B-value");
}

#[test]
fn per_run_host_limits_fail_clearly() {
    let fx = fixture();
    let limits = Limits {
        host_calls: 5,
        host_value_bytes: 1000,
        host_rows_per_query: 10,
        ..Limits::default()
    };
    let src = r#"import { kv, db } from "quire";
const err = async (f) => { try { await f(); return "no error"; } catch (e) { return e.name + ": " + e.message; } };
export default async () => {
  const tooBig = await err(() => kv.set("k", "x".repeat(5000)));
  const tooMany = await err(() => db.query("tasks", { limit: 11 }));
  const ok = (await db.query("tasks", { limit: 10 })).length;
  await kv.get("k"); await kv.get("k");
  const overCount = await err(() => kv.get("k"));
  return { tooBig, tooMany, ok, overCount };
};"#;
    let r = run_limited(
        &fx,
        &fx.a,
        &["kv:read", "kv:write", "db:read:tasks"],
        src,
        limits.clone(),
    );
    let v = r
        .result()
        .unwrap_or_else(|| panic!("{:?}", r.outcome.error));
    assert!(
        v["tooBig"]
            .as_str()
            .unwrap()
            .contains("host value limit of 1000 bytes"),
        "{v}"
    );
    assert!(
        v["tooMany"]
            .as_str()
            .unwrap()
            .contains("limit of 10 rows per query"),
        "{v}"
    );
    assert_eq!(v["ok"], 2);
    assert!(
        v["overCount"]
            .as_str()
            .unwrap()
            .starts_with("QuotaExceeded: host call limit of 5 calls"),
        "{v}"
    );
    // A query with no limit that matches more rows than allowed says so.
    fx.store
        .insert_rows(
            &fx.a.id,
            "many",
            &(0..25).map(|i| json!({"i": i})).collect::<Vec<_>>(),
        )
        .unwrap();
    let r = run_limited(
        &fx,
        &fx.a,
        &["db:read:many"],
        "import { db } from 'quire'; export default await db.query('many');",
        limits.clone(),
    );
    assert!(
        r.message().contains("more than the limit of 10 rows"),
        "{}",
        r.message()
    );
    // An uncaught call-count overrun ends the run with quota_exceeded.
    let r = run_limited(
        &fx,
        &fx.a,
        &["kv:read"],
        "import { kv } from 'quire'; for (let i = 0; i < 10; i++) await kv.get('k');",
        limits,
    );
    assert_eq!(r.kind(), Some(ErrorKind::QuotaExceeded));
}

#[test]
fn a_run_waiting_on_a_host_call_does_not_hold_its_worker() {
    // One worker: a run blocked on a slow fetch must not stop another run.
    let e = crate::spec::engine_with(1);
    let fx = fixture();
    let server = Server::start();
    let grants = Grants::parse(&[format!("net:127.0.0.1:{}", server.port)]).unwrap();
    let slow = RunRequest::new(
        format!(
            "export default await (await fetch('{}')).text();",
            server.url("/hold")
        ),
        Lang::Js,
    )
    .with_host(fx.api.session(fx.a.id, grants));
    let held = e.run(slow);
    // Wait until the server has the request, so the first run is parked.
    while server.requests().is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let quick = run_req(&e, RunRequest::new("export default 1 + 1", Lang::Js));
    assert_eq!(quick.result(), Some(&json!(2)));
    server.release_held();
    let out = held.wait();
    assert_eq!(out.result, Some(json!("released")), "{:?}", out.error);
}

#[test]
fn pending_host_calls_keep_the_run_alive_after_the_result() {
    let fx = fixture();
    // The write is not awaited; the run still waits for it before finishing.
    let r = run_in(
        &fx,
        &fx.a,
        &["kv:write"],
        "import { kv } from 'quire'; kv.set('late', 42); export default 'done';",
    );
    assert_eq!(r.result(), Some(&json!("done")));
    assert_eq!(fx.store.kv_get(&fx.a.id, "late").unwrap(), Some(json!(42)));
}

#[test]
fn an_uncaught_denial_points_at_the_line_that_made_the_call() {
    let fx = fixture();
    let src = "// no grants\nimport { kv } from 'quire';\n\nconst v = await kv.get('k');\nexport default v;";
    let r = run_in(&fx, &fx.a, &[], src);
    let e = r.outcome.error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::CapabilityDenied);
    assert_eq!((e.line, e.column), (Some(4), Some(20)), "{e:?}");
    // fetch too, and a caught-then-rethrown error keeps the call site.
    let src =
        "const a = 1;\ntry {\n  await fetch('http://example.com/');\n} catch (e) { throw e; }";
    let r = run_in(&fx, &fx.a, &[], src);
    let e = r.outcome.error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::CapabilityDenied);
    assert_eq!(e.line, Some(3), "{e:?}");
    // The stack shows the module's frame and the block's, not the wrapper.
    assert!(
        !e.stack.as_deref().unwrap_or("").contains("hostWithSite"),
        "{e:?}"
    );
}
