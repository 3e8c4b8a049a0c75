//! Several `quire serve` processes on one PostgreSQL database (issue 18):
//! an api process enqueues, worker processes run, over HTTP, for real.
//! Needs `QUIRE_TEST_POSTGRES_URL` (set by `scripts/test.sh`, which
//! starts a throwaway cluster); without it the test says so and stops.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A `quire serve` child process, killed when dropped; its API as the
/// server admin through `Deref`.
struct Serve {
    child: Child,
    client: Client,
}

impl std::ops::Deref for Serve {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// One token's calls to one process.
struct Client {
    base: String,
    token: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(db: &str, key: &str, token: &str, roles: &str) -> Self {
        Self::start_with(db, key, token, roles, &["--shutdown-grace-s", "1"])
    }

    fn start_with(db: &str, key: &str, token: &str, roles: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quire"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--isolation",
                "in-process",
            ])
            .args(["--postgres", db, "--role", roles, "--lease-ms", "3000"])
            .args(["--token-rate-per-sec", "10000"])
            .args(extra)
            .env("QUIRE_SECRET_KEY", key)
            .env("QUIRE_ADMIN_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("quire serve starts");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("quire serving on ") {
                base = rest
                    .split_whitespace()
                    .next()
                    .map(|u| u.trim_end_matches('/').to_string());
                break;
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let base = base.unwrap_or_else(|| panic!("quire serve --role {roles} did not start"));
        Self {
            child,
            client: Client {
                base,
                token: token.into(),
            },
        }
    }
}

impl Client {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .timeout(Duration::from_secs(30));
        let resp = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let r = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = r.status();
        let text = r.into_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn run_source(&self, source: &str) -> String {
        let (code, v) = self.call(
            "POST",
            "/api/v1/workspaces/default/runs",
            Some(json!({"source": source, "lang": "js"})),
        );
        assert_eq!(code, 202, "{v}");
        v["run"].as_str().unwrap().to_string()
    }

    fn run(&self, run: &str) -> Value {
        let (code, v) = self.call(
            "GET",
            &format!("/api/v1/workspaces/default/runs/{run}"),
            None,
        );
        assert_eq!(code, 200, "{v}");
        v
    }

    /// Poll run `run` until `done` says so (or panic after `secs`).
    fn wait_for(&self, run: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            // A run filed straight into the queue has no record until a
            // worker closes it.
            let (code, v) = self.call(
                "GET",
                &format!("/api/v1/workspaces/default/runs/{run}"),
                None,
            );
            if code == 200 && done(&v) {
                return v;
            }
            assert!(Instant::now() < end, "run {run} never got there: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finished(&self, run: &str, secs: u64) -> Value {
        self.wait_for(run, secs, |v| {
            !matches!(v["status"].as_str(), Some("queued" | "running"))
        })
    }
}

fn logs(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "log")
        .filter_map(|e| e["text"].as_str().map(String::from))
        .collect()
}

/// A fresh database on the test cluster; its URL.
fn fresh_database(url: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("quire_cluster_{}_{n}_{nanos}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
    });
    format!("{}/{name}", url.rsplit_once('/').unwrap().0)
}

/// Run `statements` on database `db`, in order.
fn sql(db: &str, statements: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(db).await.unwrap();
        for s in statements {
            sqlx::query(s)
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    });
}

/// Wait until the runs of `block` (in `default`) all ended, then check
/// that every fire time from the first to the last ran exactly once (and
/// at least `min` did); the runs.
fn each_second_fired_once(c: &Client, block: &str, min: usize) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let (_, v) = c.call(
            "GET",
            &format!("/api/v1/workspaces/default/runs?block={block}&limit=500"),
            None,
        );
        let runs = v["runs"].as_array().unwrap().clone();
        if runs
            .iter()
            .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")))
        {
            break runs;
        }
        assert!(Instant::now() < end, "scheduled runs never ended: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut at: Vec<u64> = runs
        .iter()
        .map(|r| {
            r["trigger"]["scheduled_at_ms"]
                .as_u64()
                .unwrap_or_else(|| panic!("{r}"))
        })
        .collect();
    at.sort_unstable();
    let n = at.len();
    at.dedup();
    assert_eq!(at.len(), n, "a fire time ran twice: {runs:?}");
    assert!(n >= min, "only {n} fires");
    for w in at.windows(2) {
        assert_eq!(
            w[1] - w[0],
            1000,
            "a fire time between {} and {} never ran",
            w[0],
            w[1]
        );
    }
    runs
}

/// The test cluster's URL, or `None` (said loudly) when it is not set.
fn postgres_url(test: &str) -> Option<String> {
    let url = std::env::var("QUIRE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("WARNING: QUIRE_TEST_POSTGRES_URL is not set: {test} is skipped (scripts/test.sh sets it)");
    }
    url
}

const TICKS: &str = "for (let i = 0; i < 30; i++) { console.log('tick ' + i); await new Promise(r => setTimeout(r, 50)); } export default 'done';";
const SLEEP_1S: &str = "await new Promise(r => setTimeout(r, 1000)); export default 1;";
const FOREVER: &str = "for (let i = 0; ; i++) { console.log('still ' + i); await new Promise(r => setTimeout(r, 100)); }";

#[test]
fn api_and_worker_processes_share_one_database() {
    let Some(url) = postgres_url("the cluster test") else {
        return;
    };
    let db = fresh_database(&url);
    let key = "ab".repeat(32);
    let token = format!("cluster-admin-{}", std::process::id());
    let api = Serve::start(&db, &key, &token, "api");
    let mut worker = Serve::start(&db, &key, &token, "worker,scheduler");

    // A worker-only process has no API.
    let (code, v) = worker.call("GET", "/api/v1/workspaces", None);
    assert_eq!(code, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no api role"), "{v}");

    // 1. A sample block through the api process runs on the worker.
    let (code, v) = api.call(
        "POST",
        "/api/v1/workspaces/default/blocks/tasks-summary/runs",
        Some(json!({})),
    );
    assert_eq!(code, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    let done = api.finished(&run, 60);
    assert_eq!(done["status"], "ok", "{done}");
    assert!(done.to_string().contains("\"total\":320"), "{done}");

    // A webhook through the api process, waiting for the worker's result.
    let (code, hook) = api.call(
        "POST",
        "/api/v1/workspaces/default/blocks/tasks-summary/webhooks",
        Some(json!({})),
    );
    assert_eq!(code, 201, "{hook}");
    let (code, v) = api.call(
        "POST",
        &format!("{}?wait=true", hook["path"].as_str().unwrap()),
        Some(json!({})),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["result"]["total"], 320, "{v}");

    // A dry-run through the api process runs on the worker: its write is
    // staged, its diff comes back before `finished`, and the api applies it.
    let dry_src = "import { kv } from 'quire';\nawait kv.set('cluster-dry', 7);\nexport default await kv.get('cluster-dry');";
    let (code, v) = api.call(
        "POST",
        "/api/v1/workspaces/default/blocks",
        Some(json!({"id": "dry", "source": dry_src, "lang": "js", "grants": ["kv:read", "kv:write"]})),
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = api.call(
        "POST",
        "/api/v1/workspaces/default/blocks/dry/runs",
        Some(json!({"mode": "dry_run"})),
    );
    assert_eq!(code, 202, "{v}");
    let run = v["run"].as_str().unwrap().to_string();
    let done = api.finished(&run, 60);
    assert_eq!(
        (&done["status"], &done["mode"]),
        (&json!("ok"), &json!("dry_run")),
        "{done}"
    );
    let events = done["events"].as_array().unwrap();
    crate::server::check_events(events);
    let diff = &events[events.len() - 2];
    assert_eq!(
        (&diff["type"], &diff["changes"][0]["key"]),
        (&json!("diff"), &json!("cluster-dry")),
        "{done}"
    );
    let apply = |digest: &Value| {
        api.call(
            "POST",
            &format!("/api/v1/workspaces/default/runs/{run}/apply"),
            Some(json!({"digest": digest})),
        )
    };
    let (code, v) = apply(&diff["digest"]);
    assert_eq!((code, &v["applied"]), (200, &json!(1)), "{v}");
    assert_eq!(apply(&diff["digest"]).0, 409);
    let (code, v) = api.call(
        "POST",
        "/api/v1/workspaces/default/runs",
        Some(json!({"source": "import { kv } from 'quire';\nexport default await kv.get('cluster-dry');", "lang": "js", "block": "dry"})),
    );
    assert_eq!(code, 202, "{v}");
    let read = api.finished(v["run"].as_str().unwrap(), 60);
    assert!(read.to_string().contains("\"value\":7"), "{read}");

    // 2. Followed live from another process: events show while it runs.
    let run = api.run_source(TICKS);
    let seen = api.wait_for(&run, 60, |v| {
        v["status"] == "running" && !logs(v).is_empty()
    });
    assert!(logs(&seen).len() < 30, "seen while running: {seen}");
    let done = api.finished(&run, 60);
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(logs(&done).len(), 30, "{done}");

    // 3. Cancelled through the api process while the worker runs it.
    let run = api.run_source(FOREVER);
    api.wait_for(&run, 60, |v| !logs(v).is_empty());
    let (code, v) = api.call(
        "POST",
        &format!("/api/v1/workspaces/default/runs/{run}/cancel"),
        None,
    );
    assert_eq!(code, 202, "{v}");
    let done = api.finished(&run, 30);
    assert_eq!(done["error"]["kind"], "cancelled", "{done}");

    // 4. kill -9 of the worker mid-run: the run is closed as internal by
    //    the next worker once the lease runs out; a run queued while no
    //    worker was up runs on the new one.
    let lost = api.run_source(FOREVER);
    api.wait_for(&lost, 60, |v| !logs(v).is_empty());
    worker.child.kill().unwrap();
    worker.child.wait().unwrap();
    let waiting = api.run_source("export default 'after the crash';");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(api.run(&waiting)["status"], "queued");
    worker = Serve::start(&db, &key, &token, "worker");
    let done = api.finished(&lost, 60);
    assert_eq!(done["status"], "error", "{done}");
    assert_eq!(done["error"]["kind"], "internal", "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lease ran out"),
        "{done}"
    );
    let done = api.finished(&waiting, 60);
    assert_eq!(done["status"], "ok", "{done}");

    // Hostile: another workspace's token cannot follow or cancel it.
    let (code, v) = api.call("POST", "/api/v1/workspaces", Some(json!({"name": "other"})));
    assert_eq!(code, 201, "{v}");
    let other = Client {
        base: api.base.clone(),
        token: v["admin_token"].as_str().unwrap().to_string(),
    };
    let victim = api.run_source(FOREVER);
    api.wait_for(&victim, 60, |v| !logs(v).is_empty());
    for (method, path) in [
        (
            "POST",
            format!("/api/v1/workspaces/other/runs/{victim}/cancel"),
        ),
        ("GET", format!("/api/v1/workspaces/other/runs/{victim}")),
        (
            "POST",
            format!("/api/v1/workspaces/default/runs/{victim}/cancel"),
        ),
    ] {
        let (code, v) = other.call(method, &path, None);
        assert_eq!(code, 404, "{method} {path}: {v}");
    }
    let (code, v) = api.call(
        "POST",
        &format!("/api/v1/workspaces/default/runs/{victim}/cancel"),
        None,
    );
    assert_eq!(code, 202, "{v}");
    assert_eq!(api.finished(&victim, 30)["error"]["kind"], "cancelled");

    // Hostile: jobs written straight into the queue that do not parse, or
    // name another workspace than their row, are closed, never run.
    let (_, ws) = api.call("GET", "/api/v1/workspaces/default", None);
    let (_, other_ws) = api.call("GET", "/api/v1/workspaces/other", None);
    let (ws, other_ws) = (
        ws["id"].as_str().unwrap().to_string(),
        other_ws["id"].as_str().unwrap().to_string(),
    );
    let smuggled = json!({"workspace": {"id": other_ws, "name": "other", "created_ms": 0, "default_engine": ""},
        "block": null, "source": "export default 1", "lang": "js", "input": null,
        "trigger": {"kind": "manual"}, "engine": null, "admin_caller": true});
    sql(&db, &[
        format!("INSERT INTO run_queue_lanes (workspace, max_concurrent) VALUES ('{ws}', 4) ON CONFLICT DO NOTHING"),
        format!("INSERT INTO run_queue (run_id, workspace, state, job) VALUES ('garbled', '{ws}', 'queued', '{{\"nope\": [1]}}')"),
        format!("INSERT INTO run_queue (run_id, workspace, state, job) VALUES ('smuggled', '{ws}', 'queued', '{smuggled}')"),
        "SELECT pg_notify('quire_queue', 'enqueued')".into(),
    ]);
    for (run, says) in [
        ("garbled", "could not be read"),
        ("smuggled", "another workspace"),
    ] {
        let done = api.finished(run, 30);
        assert_eq!(done["error"]["kind"], "internal", "{done}");
        assert!(
            done["error"]["message"].as_str().unwrap().contains(says),
            "{done}"
        );
        assert!(!done.to_string().contains("\"type\":\"result\""), "{done}");
    }
    let (code, _) = api.call("GET", "/api/v1/workspaces/other/runs/smuggled", None);
    assert_eq!(code, 404, "nothing was filed in the other workspace");

    // 5. Two workers, max_concurrent_runs 2: never three at once.
    let _second = Serve::start(&db, &key, &token, "worker");
    let (code, v) = api.call(
        "PUT",
        "/api/v1/workspaces/default/quota",
        Some(json!({"max_concurrent_runs": 2})),
    );
    assert_eq!(code, 200, "{v}");
    let runs: Vec<String> = (0..6).map(|_| api.run_source(SLEEP_1S)).collect();
    let mut most = 0;
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, quota) = api.call("GET", "/api/v1/workspaces/default/quota", None);
        let running = quota["usage"]["running"]
            .as_u64()
            .unwrap_or_else(|| panic!("{quota}"));
        most = most.max(running);
        let left = runs
            .iter()
            .filter(|r| matches!(api.run(r)["status"].as_str(), Some("queued" | "running")))
            .count();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < end, "runs did not finish");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(
        most <= 2,
        "{most} runs of a workspace limited to 2 ran at once"
    );
    assert_eq!(most, 2, "two workers ran two at once");
    for r in &runs {
        assert_eq!(api.run(r)["status"], "ok");
    }
    drop(worker);
}

/// The pid of the process leading the scheduler on `db` (its holder name
/// is its worker id, `host-pid-random`).
fn leader_pid(db: &str) -> Option<u32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let holder: Option<String> = rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut c = sqlx::PgConnection::connect(db).await.unwrap();
        sqlx::query("SELECT holder FROM schedule_leader WHERE id = 1")
            .fetch_optional(&mut c)
            .await
            .unwrap()
            .map(|r| r.get(0))
    });
    holder?.rsplit('-').nth(1)?.parse().ok()
}

#[test]
fn a_per_second_schedule_fires_each_second_once_across_a_leader_kill() {
    let Some(url) = postgres_url("the scheduler failover test") else {
        return;
    };
    let db = fresh_database(&url);
    let key = "cd".repeat(32);
    let token = format!("sched-admin-{}", std::process::id());
    let api = Serve::start(&db, &key, &token, "api");
    let mut procs: Vec<Serve> = (0..2)
        .map(|_| Serve::start(&db, &key, &token, "worker,scheduler"))
        .collect();
    let (code, v) = api.call(
        "POST",
        "/api/v1/workspaces/default/blocks",
        Some(json!({"name": "every second", "source": "export default 1;", "lang": "js"})),
    );
    assert_eq!(code, 201, "{v}");
    let block = v["id"].as_str().unwrap().to_string();
    let (code, v) = api.call(
        "POST",
        &format!("/api/v1/workspaces/default/blocks/{block}/schedules"),
        Some(json!({"cron": "* * * * * *"})),
    );
    assert_eq!(code, 201, "{v}");
    let schedule = v["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(3));
    // kill -9 the leader (whichever it is), mid-stream.
    let pid = leader_pid(&db).expect("a scheduler leads");
    let i = procs
        .iter()
        .position(|p| p.child.id() == pid)
        .expect("the leader is one of ours");
    let mut dead = procs.remove(i);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    // The other takes over within seconds and fires what was missed.
    let end = Instant::now() + Duration::from_secs(20);
    while leader_pid(&db) == Some(pid) {
        assert!(Instant::now() < end, "no new leader");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (code, v) = api.call(
        "PATCH",
        &format!("/api/v1/workspaces/default/schedules/{schedule}"),
        Some(json!({"paused": true})),
    );
    assert_eq!(code, 200, "{v}");
    // Let filed runs end (runs on the killed process end `internal` once
    // their lease runs out).
    let runs = each_second_fired_once(&api, &block, 6);
    for r in &runs {
        assert!(matches!(r["status"].as_str(), Some("ok" | "error")), "{r}");
    }
}

#[test]
fn a_worker_stopped_with_sigterm_finishes_its_runs_and_claims_no_more() {
    let Some(url) = postgres_url("the worker shutdown test") else {
        return;
    };
    let db = fresh_database(&url);
    let key = "ef".repeat(32);
    let token = format!("term-admin-{}", std::process::id());
    let api = Serve::start(&db, &key, &token, "api");
    let mut stopping =
        Serve::start_with(&db, &key, &token, "worker", &["--shutdown-grace-s", "20"]);
    let going = api.run_source(TICKS);
    api.wait_for(&going, 60, |v| !logs(v).is_empty());
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(stopping.child.id() as i32, libc::SIGTERM) },
        0
    );
    std::thread::sleep(Duration::from_millis(300));
    // Enqueued while it drains: it waits for another worker.
    let later = api.run_source("export default 'later';");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        api.run(&later)["status"],
        "queued",
        "a stopping worker claimed a new run"
    );
    let _other = Serve::start(&db, &key, &token, "worker");
    let done = api.finished(&going, 60);
    assert_eq!(
        done["status"], "ok",
        "the run going at SIGTERM finished: {done}"
    );
    assert_eq!(logs(&done).len(), 30, "{done}");
    assert_eq!(api.finished(&later, 60)["status"], "ok");
    let status = stopping.child.wait().unwrap();
    assert!(status.success(), "the worker exits cleanly: {status}");
}

/// A `nats-server -js` on a free loopback port in a temp dir, killed when
/// dropped; `None` (loudly) when the binary is not installed.
struct Nats {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nats() -> Option<Nats> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = match Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("WARNING: nats-server cannot start ({e}): the NATS test is skipped (scripts/test.sh installs it)");
            return None;
        }
    };
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some((_, addr)) = line.split_once("Listening for client connections on ") {
            url = Some(format!("nats://{}", addr.trim()));
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Some(Nats {
        child,
        url: url.expect("nats-server did not say where it listens"),
        _dir: dir,
    })
}

/// Messages the run-events stream holds.
fn stream_messages(url: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let mut s = js.get_stream("QUIRE_RUN_EVENTS").await.unwrap();
        s.info().await.unwrap().state.messages
    })
}

#[test]
fn a_websocket_on_one_process_follows_a_run_on_another_over_nats() {
    let Some(url) = postgres_url("the NATS test") else {
        return;
    };
    let Some(nats) = start_nats() else { return };
    let db = fresh_database(&url);
    let key = "aa".repeat(32);
    let token = format!("nats-admin-{}", std::process::id());
    let with_nats = ["--nats", nats.url.as_str(), "--shutdown-grace-s", "1"];
    let api = Serve::start_with(&db, &key, &token, "api", &with_nats);
    let _worker = Serve::start_with(&db, &key, &token, "worker", &with_nats);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ws_url = format!(
        "{}/api/v1/workspaces/default/live?token={token}",
        api.base.replacen("http://", "ws://", 1)
    );
    // Two runs at once, one followed from its start, one joined late.
    let first = api.run_source(TICKS);
    let events = rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let (mut sock, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
        let follow = json!({"op": "follow", "run": first, "from_seq": 0}).to_string();
        sock.send(Message::Text(follow.into())).await.unwrap();
        let mut out: Vec<Value> = Vec::new();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), sock.next())
                .await
                .expect("no event within 60 s")
                .expect("the socket closed")
                .unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v.get("op").is_some() {
                assert_ne!(v["op"], "rejected", "{v}");
                continue;
            }
            if v["type"] == "meter" && v["final"] == false {
                continue; // live meters are not relayed across processes anyway
            }
            let done = v["type"] == "finished";
            out.push(v);
            if done {
                return out;
            }
        }
    });
    // Every event, in order, no gap, the same as history.
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|e| e["type"] == "log").count(), 30);
    let stored = api.finished(&first, 30);
    assert_eq!(
        stored["events"].as_array().unwrap(),
        &events,
        "relayed and stored events differ"
    );
    // They went through NATS: the stream holds the run's events.
    assert!(stream_messages(&nats.url) >= events.len() as u64);
    // A run of the worker's, followed by a late HTTP reader, still ends.
    let second = api.run_source("console.log('late'); export default 2;");
    assert_eq!(api.finished(&second, 30)["status"], "ok");

    // `subscribe` on a second api process announces a block's runs
    // started through the first one, and follows them.
    let api2 = Serve::start_with(&db, &key, &token, "api", &with_nats);
    let ws2 = format!(
        "{}/api/v1/workspaces/default/live?token={token}",
        api2.base.replacen("http://", "ws://", 1)
    );
    let (announced, events) = rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let (mut sock, _) = tokio_tungstenite::connect_async(&ws2).await.unwrap();
        let sub = json!({"op": "subscribe", "block": "tasks-summary"}).to_string();
        sock.send(Message::Text(sub.into())).await.unwrap();
        let mut run = None;
        let mut events = Vec::new();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), sock.next())
                .await
                .expect("nothing within 60 s")
                .expect("the socket closed")
                .unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["op"].as_str() {
                Some("subscribed") => {
                    let (code, r) = api.call(
                        "POST",
                        "/api/v1/workspaces/default/blocks/tasks-summary/runs",
                        Some(json!({})),
                    );
                    assert_eq!(code, 202, "{r}");
                }
                Some("run") => run = v["run"].as_str().map(String::from),
                Some(other) => assert_ne!(other, "rejected", "{v}"),
                None if v["type"] == "meter" && v["final"] == false => {}
                None => {
                    let done = v["type"] == "finished";
                    events.push(v);
                    if done {
                        return (run, events);
                    }
                }
            }
        }
    });
    let run = announced.expect("the run was announced");
    assert!(events.iter().all(|e| e["run"] == run.as_str()));
    assert_eq!(
        api.finished(&run, 30)["events"].as_array().unwrap(),
        &events
    );
}

/// Follow every run id that arrives on `ids` over a WebSocket to the
/// first of `ws_urls`; when that process dies, reconnect to the next and
/// resume every unfinished run from the seq after the last one seen (as a
/// browser does). Returns the events seen per run once `ids` closed and
/// every followed run finished.
async fn follow_all(
    ws_urls: Vec<String>,
    mut ids: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> HashMap<String, Vec<Value>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut urls = ws_urls.into_iter();
    let (mut sock, _) = tokio_tungstenite::connect_async(urls.next().unwrap())
        .await
        .unwrap();
    let mut seen: HashMap<String, Vec<Value>> = HashMap::new();
    let mut done: std::collections::HashSet<String> = Default::default();
    let mut more = true;
    while more || done.len() < seen.len() {
        tokio::select! {
            id = ids.recv(), if more => match id {
                Some(id) => {
                    let op = json!({"op": "follow", "run": id, "from_seq": 0}).to_string();
                    sock.send(Message::Text(op.into())).await.unwrap();
                    seen.insert(id, Vec::new());
                }
                None => more = false,
            },
            m = tokio::time::timeout(Duration::from_secs(90), sock.next()) => {
                let m = m.expect("no event within 90 s");
                let Some(Ok(m)) = m else {
                    // Its process died: the next one, from where each run was.
                    let url = urls.next().expect("no api process left to reconnect to");
                    sock = tokio_tungstenite::connect_async(url).await.unwrap().0;
                    for (run, events) in seen.iter().filter(|(r, _)| !done.contains(*r)) {
                        let op = json!({"op": "follow", "run": run, "from_seq": events.len()});
                        sock.send(Message::Text(op.to_string().into())).await.unwrap();
                    }
                    continue;
                };
                let Message::Text(t) = m else { continue };
                let v: Value = serde_json::from_str(&t).unwrap();
                if v.get("op").is_some() {
                    assert_ne!(v["op"], "rejected", "{v}");
                    continue;
                }
                if v["type"] == "meter" && v["final"] == false {
                    continue; // a live meter: not in the numbered stream
                }
                let run = v["run"].as_str().unwrap().to_string();
                if v["type"] == "finished" {
                    done.insert(run.clone());
                }
                seen.entry(run).or_default().push(v);
            }
        }
    }
    seen
}

/// Issue 19's failover proof: three processes with every role, NATS and
/// PostgreSQL; a per-second schedule, a stream of HTTP runs in two
/// workspaces, a WebSocket following runs; then `kill -9` of the
/// scheduler leader and of another process mid-run.
#[test]
fn failover_proof_fires_runs_and_followers_survive_kills() {
    let Some(url) = postgres_url("the failover proof") else {
        return;
    };
    let Some(nats) = start_nats() else { return };
    let db = fresh_database(&url);
    let key = "bb".repeat(32);
    let token = format!("proof-admin-{}", std::process::id());
    let args = ["--nats", nats.url.as_str(), "--shutdown-grace-s", "1"];
    let mut procs: Vec<Option<Serve>> = (0..3)
        .map(|_| {
            Some(Serve::start_with(
                &db,
                &key,
                &token,
                "api,worker,scheduler",
                &args,
            ))
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        if let Some(pid) = leader_pid(&db) {
            break pid;
        }
        assert!(Instant::now() < end, "no scheduler leader");
        std::thread::sleep(Duration::from_millis(100));
    };
    let li = procs
        .iter()
        .position(|p| p.as_ref().unwrap().child.id() == leader)
        .unwrap();
    let (si, vi) = ((li + 1) % 3, (li + 2) % 3);
    let s = Client {
        base: procs[si].as_ref().unwrap().base.clone(),
        token: token.clone(),
    };
    let (code, v) = s.call(
        "POST",
        "/api/v1/workspaces",
        Some(json!({"name": "second"})),
    );
    assert_eq!(code, 201, "{v}");
    for w in ["default", "second"] {
        let q =
            json!({"max_concurrent_runs": 16, "runs_per_minute": 6000, "max_queued_runs": 1000});
        let (code, v) = s.call("PUT", &format!("/api/v1/workspaces/{w}/quota"), Some(q));
        assert_eq!(code, 200, "{v}");
    }
    let (_, b) = s.call(
        "POST",
        "/api/v1/workspaces/default/blocks",
        Some(json!({"name": "tick", "source": "export default 1;", "lang": "js"})),
    );
    let block = b["id"].as_str().unwrap().to_string();
    let (code, sch) = s.call(
        "POST",
        &format!("/api/v1/workspaces/default/blocks/{block}/schedules"),
        Some(json!({"cron": "* * * * * *"})),
    );
    assert_eq!(code, 201, "{sch}");

    // WebSockets on two api processes: the survivor follows every run of
    // `default`; the process killed second follows every run of `second`
    // and, when it dies, its client resumes them on the survivor.
    let ws_url = |base: &str, w: &str| {
        format!(
            "{}/api/v1/workspaces/{w}/live?token={token}",
            base.replacen("http://", "ws://", 1)
        )
    };
    let v_base = procs[vi].as_ref().unwrap().base.clone();
    let mut followers = Vec::new();
    let mut senders = HashMap::new();
    for (w, urls) in [
        ("default", vec![ws_url(&s.base, "default")]),
        (
            "second",
            vec![ws_url(&v_base, "second"), ws_url(&s.base, "second")],
        ),
    ] {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        senders.insert(w, tx);
        followers.push(std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(follow_all(urls, rx))
        }));
    }
    // Runs in both workspaces, some long enough to be mid-run at a kill.
    let slow = "for (let i = 0; i < 12; i++) { console.log('step ' + i); await new Promise(r => setTimeout(r, 100)); } export default 'slow';";
    let mut accepted: Vec<(&str, String)> = Vec::new();
    let started = Instant::now();
    let mut killed = 0;
    while started.elapsed() < Duration::from_secs(9) {
        for (w, src) in [
            ("default", slow),
            ("second", TICKS),
            ("default", "export default 3;"),
        ] {
            let (code, v) = s.call(
                "POST",
                &format!("/api/v1/workspaces/{w}/runs"),
                Some(json!({"source": src, "lang": "js"})),
            );
            assert_eq!(code, 202, "{v}");
            let run = v["run"].as_str().unwrap().to_string();
            senders[w].send(run.clone()).unwrap();
            accepted.push((w, run));
        }
        std::thread::sleep(Duration::from_millis(150));
        let t = started.elapsed();
        if (killed == 0 && t > Duration::from_secs(3))
            || (killed == 1 && t > Duration::from_secs(5))
        {
            let victim = procs[if killed == 0 { li } else { vi }].take().unwrap();
            drop(victim); // kill -9 (SIGKILL), then reaped
            killed += 1;
        }
    }
    drop(senders);
    let (code, v) = s.call(
        "PATCH",
        &format!(
            "/api/v1/workspaces/default/schedules/{}",
            sch["id"].as_str().unwrap()
        ),
        Some(json!({"paused": true})),
    );
    assert_eq!(code, 200, "{v}");

    // Every accepted run ended once, with an outcome.
    let mut lost = 0;
    for (w, run) in &accepted {
        let end = Instant::now() + Duration::from_secs(90);
        let done = loop {
            let (code, v) = s.call("GET", &format!("/api/v1/workspaces/{w}/runs/{run}"), None);
            assert_eq!(code, 200, "run {run} vanished: {v}");
            if !matches!(v["status"].as_str(), Some("queued" | "running")) {
                break v;
            }
            assert!(Instant::now() < end, "run {run} never ended: {v}");
            std::thread::sleep(Duration::from_millis(100));
        };
        if done["status"] != "ok" {
            assert_eq!(done["error"]["kind"], "internal", "{done}");
            lost += 1;
        }
    }
    eprintln!(
        "failover proof: {} runs accepted, {lost} closed as internal after a kill",
        accepted.len()
    );

    // The followers saw every event of every run, in order, as stored
    // (the one whose process died, across its reconnect).
    let seen: HashMap<String, Vec<Value>> = followers
        .into_iter()
        .flat_map(|f| f.join().unwrap())
        .collect();
    for (w, run) in &accepted {
        let events = &seen[run];
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (0..seqs.len() as u64).collect::<Vec<_>>(),
            "run {run}: {events:?}"
        );
        let (_, stored) = s.call("GET", &format!("/api/v1/workspaces/{w}/runs/{run}"), None);
        assert_eq!(
            stored["events"].as_array().unwrap(),
            events,
            "run {run}: followed and stored differ"
        );
    }

    // Every fire time from the first to the last ran exactly once.
    each_second_fired_once(&s, &block, 7);
}
