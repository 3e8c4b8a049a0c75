//! The server on a real loopback socket, with runs in sandboxed runner
//! processes: the HTTP API end to end and graceful shutdown. Shared
//! helpers for the WebSocket tests in `server_live`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_engine::runner::RunnerConfig;
use quire_engine::{Engine, EngineConfig, Isolation};
use quire_host_api::{HostApi, HostConfig};
use quire_storage::Store;
use quire_web::{AppState, Auth, Role, ServerConfig, ShutdownReport};
use serde_json::{json, Value};

pub struct TestServer {
    pub root: String,
    pub base: String,
    pub ws_base: String,
    /// A server-admin token.
    pub admin: String,
    pub store: Store,
    pub rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<ShutdownReport>>>,
}

impl TestServer {
    pub fn start(config: ServerConfig) -> Self {
        Self::start_with(Store::memory().unwrap(), config)
    }

    pub fn start_with(store: Store, config: ServerConfig) -> Self {
        Self::start_full(store, config, HostConfig::default())
    }

    pub fn start_full(store: Store, config: ServerConfig, host: HostConfig) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let engine = Engine::new(EngineConfig {
            worker_threads: 2,
            isolation: Isolation::Runners(RunnerConfig::new(
                env!("CARGO_BIN_EXE_quire"),
                vec!["__runner".into()],
            )),
            v8: Some(crate::common::v8_config()),
            ..EngineConfig::default()
        })
        .unwrap();
        let api = HostApi::new(store.clone(), host).unwrap();
        let state = AppState::new(store.clone(), Arc::new(engine), api, config);
        let admin = Auth::mint(&store, None, Role::Admin, "test").unwrap().1;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = rt.spawn(quire_web::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Self {
            root: format!("http://{addr}"),
            base: format!("http://{addr}/api/v1"),
            ws_base: format!("ws://{addr}/api/v1"),
            admin,
            store,
            rt,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// Ask the server to stop (as SIGTERM does) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Wait for the server to finish shutting down.
    pub fn wait_stopped(&mut self) -> ShutdownReport {
        self.begin_shutdown();
        let done = self.done.take().unwrap();
        self.rt.block_on(done).unwrap().unwrap()
    }

    /// `(status, json body)` of a request.
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {token}"))
            .timeout(Duration::from_secs(30));
        let resp = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A new workspace and tokens of each role for it.
    pub fn workspace(&self, name: &str) -> Tokens {
        let (s, v) = self.call(
            "POST",
            "/workspaces",
            &self.admin,
            Some(json!({"name": name})),
        );
        assert_eq!(s, 201, "{v}");
        let admin = v["admin_token"].as_str().unwrap().to_string();
        let mint = |role: &str| {
            let (s, v) = self.call(
                "POST",
                &format!("/workspaces/{name}/tokens"),
                &admin,
                Some(json!({"role": role})),
            );
            assert_eq!(s, 201, "{v}");
            v["token"].as_str().unwrap().to_string()
        };
        Tokens {
            editor: mint("editor"),
            viewer: mint("viewer"),
            admin,
        }
    }

    /// Poll a run's record until it is no longer running.
    pub fn wait_run(&self, ws: &str, run: &str, token: &str) -> Value {
        let start = Instant::now();
        loop {
            let (s, v) = self.call("GET", &format!("/workspaces/{ws}/runs/{run}"), token, None);
            assert_eq!(s, 200, "{v}");
            if v["status"] != "running" && v["status"] != "queued" {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "run {run} never ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

pub struct Tokens {
    pub admin: String,
    pub editor: String,
    pub viewer: String,
}

/// The numbered events of a run as a client got them (live meters left
/// out: each client gets the meters of the moments it followed).
pub fn numbered(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| !(e["type"] == "meter" && e["final"] == false))
        .cloned()
        .collect()
}

/// The run-event contract over the wire; live meters (which repeat the
/// seq of an event before them) are checked and skipped.
pub fn check_events(events: &[Value]) {
    let live = |e: &Value| e["type"] == "meter" && e["final"] == false;
    let mut last = None;
    for e in events {
        if live(e) {
            let seq = e["seq"].as_u64();
            assert!(
                seq.is_some() && seq <= last,
                "a live meter ahead of the events: {e}"
            );
        } else {
            last = e["seq"].as_u64();
        }
    }
    let numbered: Vec<&Value> = events.iter().filter(|e| !live(e)).collect();
    for (i, e) in numbered.iter().enumerate() {
        assert_eq!(e["seq"], i as u64, "gap or reorder at {i}: {events:?}");
    }
    assert_eq!(
        numbered.first().map(|e| &e["type"]),
        Some(&json!("started"))
    );
    assert_eq!(events.last().map(|e| &e["type"]), Some(&json!("finished")));
}

#[test]
fn the_http_api_end_to_end_over_loopback() {
    let srv = TestServer::start(ServerConfig::default());
    let t = srv.workspace("team");
    let other = srv.workspace("rival");
    let src = "import { kv } from 'quire';\nexport default async function (ctx) {\n  await kv.set('seen', ctx.input);\n  console.log('got', JSON.stringify(ctx.input), ctx.trigger.kind);\n  return { doubled: ctx.input.n * 2, block: ctx.block.id };\n}";
    // Grants are an admin's: an editor's granted block is refused.
    let (s, v) = srv.call(
        "POST",
        "/workspaces/team/blocks",
        &t.editor,
        Some(json!({"id": "double", "source": src, "lang": "ts", "grants": ["kv:write"]})),
    );
    assert_eq!(s, 403, "{v}");
    let (s, v) = srv.call(
        "POST",
        "/workspaces/team/blocks",
        &t.admin,
        Some(json!({"id": "double", "source": src, "lang": "ts", "grants": ["kv:write"]})),
    );
    assert_eq!(s, 201, "{v}");
    // Viewers read but do not run; the rival workspace sees nothing.
    assert_eq!(
        srv.call(
            "POST",
            "/workspaces/team/blocks/double/runs",
            &t.viewer,
            Some(json!({"input": {}}))
        )
        .0,
        403
    );
    assert_eq!(
        srv.call("GET", "/workspaces/team/blocks/double", &other.admin, None)
            .0,
        404
    );
    let (s, v) = srv.call(
        "POST",
        "/workspaces/team/blocks/double/runs",
        &t.editor,
        Some(json!({"input": {"n": 21}})),
    );
    assert_eq!(s, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    let rec = srv.wait_run("team", &run, &t.viewer);
    assert_eq!(rec["status"], "ok", "{rec}");
    let events = rec["events"].as_array().unwrap();
    check_events(events);
    assert_eq!(events[1]["text"], "got {\"n\":21} manual");
    let result = events.iter().find(|e| e["type"] == "result").unwrap();
    assert_eq!(result["value"], json!({"doubled": 42, "block": "double"}));
    assert!(rec["cpu_ms"].as_f64().unwrap() > 0.0);
    // The grant was used against this workspace's data only.
    assert_eq!(
        srv.call(
            "GET",
            &format!("/workspaces/rival/runs/{run}"),
            &other.admin,
            None
        )
        .0,
        404
    );
    // History by block, newest first, paged.
    for n in 0..3 {
        let (s, _) = srv.call(
            "POST",
            "/workspaces/team/blocks/double/runs",
            &t.editor,
            Some(json!({"input": {"n": n}})),
        );
        assert_eq!(s, 202);
    }
    let (s, v) = srv.call(
        "GET",
        "/workspaces/team/runs?block=double&limit=2",
        &t.viewer,
        None,
    );
    assert_eq!(s, 200, "{v}");
    let page = v["runs"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    let next = v["next_before"].as_str().unwrap();
    let (_, v2) = srv.call(
        "GET",
        &format!("/workspaces/team/runs?block=double&limit=10&before={next}"),
        &t.viewer,
        None,
    );
    let rest = v2["runs"].as_array().unwrap();
    assert_eq!(rest.len(), 2, "{v2}");
    assert_eq!(
        rest.last().unwrap()["run"],
        run.as_str(),
        "the first run is the oldest"
    );
    // A capability error is recorded with its kind.
    let (_, v) = srv.call(
        "POST",
        "/workspaces/team/runs",
        &t.editor,
        Some(json!({"source": "import { kv } from 'quire'; await kv.get('seen');", "lang": "js"})),
    );
    let rec = srv.wait_run("team", v["run"].as_str().unwrap(), &t.viewer);
    assert_eq!(rec["status"], "error");
    assert_eq!(rec["error"]["kind"], "capability_denied", "{rec}");
    // Grants change only with the admin role.
    assert_eq!(
        srv.call(
            "PUT",
            "/workspaces/team/blocks/double/grants",
            &t.editor,
            Some(json!({"grants": []}))
        )
        .0,
        403
    );
    let (s, v) = srv.call(
        "PUT",
        "/workspaces/team/blocks/double/grants",
        &t.admin,
        Some(json!({"grants": ["kv:read", "kv:write"]})),
    );
    assert_eq!(
        (s, v["grants"].clone()),
        (200, json!(["kv:read", "kv:write"]))
    );
}

#[test]
fn a_run_can_be_read_while_it_runs_and_cancelled_over_http() {
    let srv = TestServer::start(ServerConfig::default());
    let t = srv.workspace("w");
    let src =
        "console.log('first'); await new Promise(r => setTimeout(r, 4000)); console.log('never');";
    let (_, v) = srv.call(
        "POST",
        "/workspaces/w/runs",
        &t.editor,
        Some(json!({"source": src, "lang": "js"})),
    );
    let run = v["run"].as_str().unwrap().to_string();
    // Mid-run, the record has the events so far.
    let start = Instant::now();
    loop {
        let (_, v) = srv.call("GET", &format!("/workspaces/w/runs/{run}"), &t.viewer, None);
        assert_eq!(v["status"], "running", "{v}");
        if v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"] == "first")
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        srv.call(
            "POST",
            &format!("/workspaces/w/runs/{run}/cancel"),
            &t.viewer,
            None
        )
        .0,
        403
    );
    assert_eq!(
        srv.call(
            "POST",
            &format!("/workspaces/w/runs/{run}/cancel"),
            &t.editor,
            None
        )
        .0,
        202
    );
    let rec = srv.wait_run("w", &run, &t.viewer);
    assert_eq!(rec["error"]["kind"], "cancelled", "{rec}");
    check_events(rec["events"].as_array().unwrap());
    assert_eq!(
        srv.call(
            "POST",
            &format!("/workspaces/w/runs/{run}/cancel"),
            &t.editor,
            None
        )
        .0,
        409
    );
}

#[test]
fn shutdown_stops_new_runs_then_cancels_what_outlives_the_grace() {
    let mut srv = TestServer::start(ServerConfig {
        shutdown_grace_ms: 1500,
        ..ServerConfig::default()
    });
    let t = srv.workspace("w");
    let start = |src: &str| {
        let (s, v) = srv.call(
            "POST",
            "/workspaces/w/runs",
            &t.editor,
            Some(json!({"source": src, "lang": "js"})),
        );
        assert_eq!(s, 202, "{v}");
        v["run"].as_str().unwrap().to_string()
    };
    let long = start("console.log('long'); await new Promise(r => setTimeout(r, 4500));");
    let short = start("await new Promise(r => setTimeout(r, 300)); export default 'made it';");
    let health = format!("{}/healthz", srv.root);
    srv.begin_shutdown();
    // During the grace period: unhealthy, and no new runs.
    let begun = Instant::now();
    loop {
        let code = match ureq::get(&health).call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("{e}"),
        };
        if code == 503 {
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let (s, v) = srv.call(
        "POST",
        "/workspaces/w/runs",
        &t.editor,
        Some(json!({"source": "1", "lang": "js"})),
    );
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"], "shutting_down");
    let report = srv.wait_stopped();
    assert_eq!(report.cancelled, 1, "{report:?}");
    assert_eq!(report.finished, 1, "{report:?}");
    // History is complete for both.
    let ws = srv.store.workspace_by_name("w").unwrap().unwrap().id;
    let long_rec = srv.store.get_run(&ws, &long).unwrap().unwrap();
    assert_eq!(long_rec.status, "error");
    let kinds: Vec<_> = long_rec
        .events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("finished"));
    assert!(
        long_rec.events.iter().any(|e| e["kind"] == "cancelled"),
        "{:?}",
        long_rec.events
    );
    let short_rec = srv.store.get_run(&ws, &short).unwrap().unwrap();
    assert_eq!(short_rec.status, "ok");
    check_events(&short_rec.events);
}

#[test]
fn runs_a_crashed_server_left_running_are_closed_at_start() {
    let store = Store::memory().unwrap();
    let ws = store.create_workspace("w").unwrap();
    let events = vec![
        json!({"run": "r1", "seq": 0, "type": "started", "t_ms": 0.0}),
        json!({"run": "r1", "seq": 1, "type": "log", "level": "log", "text": "halfway", "t_ms": 3.5}),
    ];
    store
        .put_run(
            &ws.id,
            &quire_storage::RunRecord {
                id: "r1".into(),
                block: None,
                trigger: json!({"kind": "manual"}),
                request: Value::Null,
                status: "running".into(),
                events,
                error: Value::Null,
                cpu_ms: 0.0,
                wall_ms: 0.0,
                peak_memory_bytes: 0,
                started_ms: 1,
                provenance: serde_json::Value::Null,
            },
        )
        .unwrap();
    let srv = TestServer::start_with(store, ServerConfig::default());
    // serve() closes them before it answers.
    let (s, v) = loop {
        let r = srv.call("GET", "/workspaces/w/runs/r1", &srv.admin, None);
        if r.1["status"] != "running" {
            break r;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(s, 200);
    assert_eq!(v["status"], "error");
    assert_eq!(v["error"]["kind"], "internal", "{v}");
    let events = v["events"].as_array().unwrap();
    check_events(events);
    assert_eq!(events[1]["text"], "halfway");
    assert!(srv.store.interrupted_runs().unwrap().is_empty());
}

#[test]
fn a_block_chooses_its_engine_and_runs_there() {
    let srv = TestServer::start(ServerConfig::default());
    let t = srv.workspace("engines");
    // Which engine ran it: V8 has Intl, QuickJS does not.
    let src = "export default typeof Intl";
    let (s, v) = srv.call(
        "POST",
        "/workspaces/engines/blocks",
        &t.editor,
        Some(json!({"source": src, "lang": "js", "engine": "spidermonkey"})),
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("engine")), "{v}");
    let mut ids = Vec::new();
    for engine in [None, Some("v8"), Some("quickjs")] {
        let mut body = json!({"source": src, "lang": "js"});
        if let Some(e) = engine {
            body["engine"] = json!(e);
        }
        let (s, v) = srv.call("POST", "/workspaces/engines/blocks", &t.editor, Some(body));
        assert_eq!(s, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let mut got = Vec::new();
    for id in &ids {
        let (s, v) = srv.call(
            "POST",
            &format!("/workspaces/engines/blocks/{id}/runs"),
            &t.editor,
            Some(json!({})),
        );
        assert_eq!(s, 202, "{v}");
        let run = srv.wait_run("engines", v["run"].as_str().unwrap(), &t.viewer);
        let result = run["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "result")
            .map(|e| e["value"].clone());
        got.push(result);
    }
    assert_eq!(
        got,
        [
            Some(json!("undefined")),
            Some(json!("object")),
            Some(json!("undefined"))
        ]
    );
    // An edit switches it; unsaved source may choose too.
    let (s, _) = srv.call(
        "PUT",
        &format!("/workspaces/engines/blocks/{}", ids[0]),
        &t.editor,
        Some(json!({"engine": "v8"})),
    );
    assert_eq!(s, 200);
    let (_, b) = srv.call(
        "GET",
        &format!("/workspaces/engines/blocks/{}", ids[0]),
        &t.viewer,
        None,
    );
    assert_eq!(b["engine"], "v8");
    let (s, v) = srv.call(
        "POST",
        "/workspaces/engines/runs",
        &t.editor,
        Some(json!({"source": src, "lang": "js", "engine": "v8"})),
    );
    assert_eq!(s, 202, "{v}");
    let run = srv.wait_run("engines", v["run"].as_str().unwrap(), &t.viewer);
    assert!(
        run["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["value"] == "object"),
        "{run}"
    );
    // The workspace default: admins only, validated; a block without an
    // engine of its own follows it, one with its own keeps it.
    let body = Some(json!({"default_engine": "v8"}));
    let (s, _) = srv.call(
        "PUT",
        "/workspaces/engines/settings",
        &t.editor,
        body.clone(),
    );
    assert_eq!(s, 403);
    let (s, v) = srv.call(
        "PUT",
        "/workspaces/engines/settings",
        &t.admin,
        Some(json!({"default_engine": "rhino"})),
    );
    assert_eq!(
        (s, v["field"].as_str()),
        (400, Some("default_engine")),
        "{v}"
    );
    let (s, _) = srv.call("PUT", "/workspaces/engines/settings", &t.admin, body);
    assert_eq!(s, 200);
    let (_, w) = srv.call("GET", "/workspaces/engines", &t.viewer, None);
    assert_eq!(w["default_engine"], "v8");
    let result_of = |path: String, body: Value| {
        let (s, v) = srv.call("POST", &path, &t.editor, Some(body));
        assert_eq!(s, 202, "{v}");
        let run = srv.wait_run("engines", v["run"].as_str().unwrap(), &t.viewer);
        run["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "result")
            .map(|e| e["value"].clone())
    };
    let unsaved = result_of(
        "/workspaces/engines/runs".into(),
        json!({"source": src, "lang": "js"}),
    );
    assert_eq!(unsaved, Some(json!("object")), "follows the default");
    let own = result_of(
        format!("/workspaces/engines/blocks/{}/runs", ids[2]),
        json!({}),
    );
    assert_eq!(own, Some(json!("undefined")), "a block's own engine wins");
}

/// `quire serve` itself: with `QUIRE_METRICS_TOKEN`, `/metrics` on the main
/// address takes that token (and server-admin tokens) and opens nothing
/// else; `--metrics-addr` serves `/metrics` without a token and 404s every
/// other path; SIGTERM still stops the server.
#[test]
fn serve_takes_a_metrics_token_and_a_metrics_addr() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let metrics_token = "metrics-0c4f2a9e8b7d6c5f4e3a2b1c0d9e8f7a";
    let admin = "admin-5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b";
    let dir = tempfile::tempdir().unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_quire"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(["--isolation", "in-process", "--data"])
            .arg(dir.path().join("data"))
            .env("QUIRE_METRICS_TOKEN", metrics_token)
            .env("QUIRE_ADMIN_TOKEN", admin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel::<String>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url_after = |line: &str, prefix: &str| -> Option<String> {
        let rest = line.strip_prefix(prefix)?;
        Some(rest.split(['/', ' ']).take(3).collect::<Vec<_>>().join("/"))
    };
    let (mut root, mut metrics_root, mut log) = (None, None, vec![]);
    while root.is_none() || metrics_root.is_none() {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("quire serve printed no addresses: {log:?}"));
        root = root.or_else(|| url_after(&line, "quire serving on "));
        metrics_root = metrics_root.or_else(|| url_after(&line, "metrics also on "));
        log.push(line);
    }
    let (root, metrics_root) = (root.unwrap(), metrics_root.unwrap());
    let get = |url: &str, token: Option<&str>| -> (u16, String) {
        let mut req = ureq::get(url).timeout(Duration::from_secs(30));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.call() {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
            Err(e) => panic!("GET {url}: {e}"),
        }
    };
    // A workspace admin, to show it is refused.
    let created = ureq::post(&format!("{root}/api/v1/workspaces"))
        .set("Authorization", &format!("Bearer {admin}"))
        .set("Content-Type", "application/json")
        .send_string(&json!({"name": "tenant"}).to_string())
        .unwrap()
        .into_string()
        .unwrap();
    let created: Value = serde_json::from_str(&created).unwrap();
    let ws_admin = created["admin_token"].as_str().unwrap().to_string();

    assert_eq!(get(&format!("{root}/healthz"), None).0, 200);
    let main = format!("{root}/metrics");
    for token in [None, Some("wrong"), Some(&metrics_token[1..])] {
        let (s, body) = get(&main, token);
        assert_eq!(s, 401, "{token:?}: {body}");
    }
    assert_eq!(get(&main, Some(&ws_admin)).0, 403);
    for token in [metrics_token, admin] {
        let (s, body) = get(&main, Some(token));
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("quire_runs_total"), "{body}");
    }
    let (s, body) = get(&format!("{root}/api/v1/workspaces"), Some(metrics_token));
    assert_eq!(s, 401, "the metrics token opened the API: {body}");

    let (s, body) = get(&format!("{metrics_root}/metrics"), None);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("quire_active_runs"), "{body}");
    for path in [
        "/api/v1/workspaces",
        "/api/v1/workspaces/tenant/runs",
        "/healthz",
        "/",
    ] {
        let (s, body) = get(&format!("{metrics_root}{path}"), Some(admin));
        assert_eq!(s, 404, "{path}: {body}");
    }

    // SIGTERM: the second listener does not hold the server up.
    let pid = i32::try_from(child.0.id()).unwrap();
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        log.push(line);
    }
    assert!(
        log.iter().any(|l| l.starts_with("quire stopped")),
        "{log:?}"
    );
}
