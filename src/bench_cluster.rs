//! `quire bench --only cluster --postgres URL`: quire as several processes
//! on one PostgreSQL database (issue 18), beside one process on sled.
//!
//! - **Throughput through the HTTP API**: one `quire serve --role api`
//!   process and 1, 2 or 3 `--role worker` processes (runs in sandboxed
//!   runner processes, as `quire serve` runs them); [`CLIENTS`] client
//!   threads each start a hello-world run over HTTP and poll it until it
//!   finished, again and again, for [`RUNS`] runs. The same clients
//!   against one `quire serve` on sled give the single-machine figure.
//! - **Queue claim latency**: from an enqueue's commit to a waiting
//!   claimer holding the run (woken by LISTEN/NOTIFY), with 1 and 3
//!   claimers in separate connection pools, runs enqueued every 2 ms.
//!
//! - **Live output across processes**: `console.log` to a WebSocket
//!   client of an api process while a worker process runs the block, over
//!   NATS (`--nats`) and from PostgreSQL alone, beside one process on
//!   sled.
//! - **Scheduler failover**: three scheduler processes and a per-second
//!   schedule; the leader killed ten times: kill to the next leader, and
//!   to the next fire in history.
//!
//! Each case gets a fresh database on the server at `URL` (the role needs
//! CREATEDB).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use quire_storage::{Enqueue, PgConfig, SecretKey, Store, WorkspaceId};
use serde_json::{json, Value};

use crate::bench::percentile;

/// Concurrent HTTP clients.
const CLIENTS: usize = 16;
/// Runs per throughput case.
const RUNS: usize = 600;
/// Runs enqueued per claim-latency case.
const CLAIMS: usize = 400;

const HELLO: &str = "export default 'hello';";
const ADMIN: &str = "bench-cluster-admin-token-0123456789";

/// A `quire serve` child, killed when dropped.
struct Proc {
    child: Child,
    base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str], key: &str) -> anyhow::Result<Proc> {
    let mut child = Command::new(std::env::current_exe()?)
        // The per-token rate limit is not what is measured.
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--token-rate-per-sec",
            "100000",
        ])
        .args(args)
        .env("QUIRE_SECRET_KEY", key)
        .env("QUIRE_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting quire serve")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut base = None;
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("quire serving on ") {
            base = rest
                .split_whitespace()
                .next()
                .map(|u| u.trim_end_matches('/').to_string());
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let base = base.with_context(|| format!("quire serve {args:?} did not start"))?;
    Ok(Proc { child, base })
}

fn call(base: &str, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let req = ureq::request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .timeout(Duration::from_secs(60));
    let r = match body {
        Some(b) => req
            .set("content-type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match r {
        Ok(r) => Ok(serde_json::from_str(&r.into_string()?)?),
        Err(ureq::Error::Status(code, r)) => {
            bail!(
                "{method} {path}: {code} {}",
                r.into_string().unwrap_or_default()
            )
        }
        Err(e) => bail!("{method} {path}: {e}"),
    }
}

/// Lift the default workspace's quota out of the way of the measurement.
fn open_quota(base: &str) -> anyhow::Result<()> {
    let big = json!({
        "runs_per_minute": 1_000_000, "max_concurrent_runs": 64,
        "max_queued_runs": 100_000, "cpu_ms_per_day": 1_000_000_000u64,
    });
    call(base, "PUT", "/api/v1/quota/ceilings", Some(&big))?;
    call(base, "PUT", "/api/v1/workspaces/default/quota", Some(&big))?;
    Ok(())
}

/// [`RUNS`] hello-world runs through `base`'s HTTP API from [`CLIENTS`]
/// threads: runs per second, and start-to-finished p50/p99 in ms.
fn http_throughput(base: &str) -> anyhow::Result<Value> {
    // Warm up: the runner pools, the connection pools.
    for _ in 0..20 {
        one_run(base)?;
    }
    let left = Arc::new(AtomicUsize::new(RUNS));
    let times = Arc::new(Mutex::new(Vec::with_capacity(RUNS)));
    let t0 = Instant::now();
    let errors: Vec<anyhow::Error> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (left, times) = (left.clone(), times.clone());
                s.spawn(move || -> anyhow::Result<()> {
                    while left
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let ms = one_run(base)?;
                        times.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| h.join().ok().and_then(Result::err))
            .collect()
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut t = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
    t.sort_by(f64::total_cmp);
    Ok(json!({
        "runs": RUNS, "clients": CLIENTS,
        "runs_per_sec": (RUNS as f64 / secs * 10.0).round() / 10.0,
        "run_p50_ms": percentile(&t, 0.5), "run_p99_ms": percentile(&t, 0.99),
    }))
}

/// One run, started and polled until it finished ok; its time in ms.
fn one_run(base: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let body = json!({"source": HELLO, "lang": "js"});
    let started = call(base, "POST", "/api/v1/workspaces/default/runs", Some(&body))?;
    let run = started["run"].as_str().context("no run id")?.to_string();
    loop {
        let v = call(
            base,
            "GET",
            &format!("/api/v1/workspaces/default/runs/{run}"),
            None,
        )?;
        match v["status"].as_str() {
            Some("ok") => return Ok(t.elapsed().as_secs_f64() * 1000.0),
            Some("queued" | "running") => std::thread::sleep(Duration::from_millis(2)),
            _ => bail!("run {run} did not finish ok: {v}"),
        }
    }
}

/// A fresh database on the server at `url`; its URL.
fn fresh_database(url: &str, name: &str) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut c)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await?;
        anyhow::Ok(())
    })?;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

fn hex_key() -> anyhow::Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Throughput with `workers` worker processes on a fresh database.
fn cluster_case(url: &str, workers: usize) -> anyhow::Result<Value> {
    let db = fresh_database(url, &format!("quire_bench_w{workers}"))?;
    let key = hex_key()?;
    let api = serve(&["--postgres", &db, "--role", "api,scheduler"], &key)?;
    let _workers = (0..workers)
        .map(|_| serve(&["--postgres", &db, "--role", "worker"], &key))
        .collect::<anyhow::Result<Vec<_>>>()?;
    open_quota(&api.base)?;
    let mut v = http_throughput(&api.base)?;
    v["worker_processes"] = json!(workers);
    Ok(v)
}

/// The single-machine figure: one `quire serve` on sled, every role.
fn sled_case() -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let data = data.to_str().context("temp path")?;
    let p = serve(&["--data", data], &hex_key()?)?;
    open_quota(&p.base)?;
    http_throughput(&p.base)
}

/// Enqueue-to-claim latency with `claimers` waiting claimers.
fn claim_latency(url: &str, claimers: usize) -> anyhow::Result<Value> {
    let db = fresh_database(url, &format!("quire_bench_claim{claimers}"))?;
    let key = SecretKey::random()?;
    let open = || Store::open_postgres(&PgConfig::new(&db), key.clone());
    let producer = open()?;
    let t0 = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(CLAIMS)));
    let stores = (0..claimers)
        .map(|_| open())
        .collect::<Result<Vec<_>, _>>()?;
    std::thread::scope(|s| -> anyhow::Result<()> {
        for (i, st) in stores.iter().enumerate() {
            let (done, lat) = (done.clone(), lat.clone());
            s.spawn(move || -> anyhow::Result<()> {
                let q = st.run_queue().context("no queue")?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let mut wake = q.wakeups();
                let me = format!("claimer{i}");
                while done.load(Ordering::SeqCst) < CLAIMS {
                    match q.claim(&me, Duration::from_secs(30))? {
                        Some(c) => {
                            let sent = c.job["t_us"].as_f64().unwrap_or(0.0);
                            let now = t0.elapsed().as_secs_f64() * 1e6;
                            lat.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((now - sent) / 1000.0);
                            q.finish(&c.run_id, &me)?;
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        None => {
                            let _ = rt.block_on(async {
                                tokio::time::timeout(Duration::from_millis(200), wake.changed())
                                    .await
                            });
                        }
                    }
                }
                Ok(())
            });
        }
        let q = producer.run_queue().context("no queue")?;
        let ws = WorkspaceId::random();
        for i in 0..CLAIMS {
            let t_us = t0.elapsed().as_secs_f64() * 1e6;
            let e = Enqueue {
                workspace: ws,
                run_id: format!("r{i:05}"),
                job: json!({"t_us": t_us}),
                max_concurrent: 64,
                max_queued: 100_000,
                runs_per_minute: 1_000_000,
            };
            if q.enqueue(e)?.is_err() {
                bail!("the queue refused a bench run");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    })?;
    let mut l = lat.lock().unwrap_or_else(|e| e.into_inner()).clone();
    l.sort_by(f64::total_cmp);
    Ok(json!({
        "claimers": claimers, "runs": CLAIMS,
        "claim_p50_ms": percentile(&l, 0.5), "claim_p99_ms": percentile(&l, 0.99),
    }))
}

const TIMED_LOGS: &str = "for (let i = 0; i < 20; i++) { console.log(String(Date.now())); await new Promise(r => setTimeout(r, 20)); }";

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `console.log` (the block's `Date.now()`) to a WebSocket client of
/// `base` reading it, over `runs` runs of 20 lines each: p50/p99 in ms
/// (millisecond resolution: the block's clock is `Date.now()`).
fn follow_latency(base: &str, runs: usize) -> anyhow::Result<Value> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = format!(
        "{}/api/v1/workspaces/default/live?token={ADMIN}",
        base.replacen("http://", "ws://", 1)
    );
    let mut lat = rt.block_on(async {
        let (mut sock, _) = tokio_tungstenite::connect_async(&url).await?;
        let mut lat = Vec::new();
        for _ in 0..runs {
            let body = json!({"source": TIMED_LOGS, "lang": "js"});
            let v = call(base, "POST", "/api/v1/workspaces/default/runs", Some(&body))?;
            let run = v["run"].as_str().context("no run id")?.to_string();
            let op = json!({"op": "follow", "run": run, "from_seq": 0}).to_string();
            sock.send(Message::Text(op.into())).await?;
            loop {
                let m = tokio::time::timeout(Duration::from_secs(60), sock.next())
                    .await
                    .context("no event within 60 s")?
                    .context("the socket closed")??;
                let Message::Text(t) = m else { continue };
                let got = now_ms();
                let e: Value = serde_json::from_str(&t)?;
                if e["run"] != run.as_str() {
                    continue;
                }
                if e["type"] == "log" {
                    if let Some(sent) = e["text"].as_str().and_then(|t| t.parse::<f64>().ok()) {
                        lat.push(got - sent);
                    }
                }
                if e["type"] == "finished" {
                    break;
                }
            }
        }
        anyhow::Ok(lat)
    })?;
    lat.sort_by(f64::total_cmp);
    Ok(
        json!({"logs": lat.len(), "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99)}),
    )
}

/// Live-output latency with the client's api process apart from the
/// run's worker (with NATS, and from PostgreSQL alone), beside one
/// process on sled.
fn latency_cases(url: &str, nats: Option<&str>) -> anyhow::Result<Value> {
    let mut out = json!({});
    let key = hex_key()?;
    {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let p = serve(&["--data", data.to_str().context("temp path")?], &key)?;
        out["sled_one_process"] = follow_latency(&p.base, 20)?;
    }
    let mut cases = vec![("postgres_only", None)];
    if let Some(n) = nats {
        cases.push(("nats", Some(n)));
    }
    for (name, nats) in cases {
        let db = fresh_database(url, &format!("quire_bench_lat_{name}"))?;
        let mut args = vec!["--postgres", db.as_str()];
        if let Some(n) = nats {
            args.extend(["--nats", n]);
        }
        let api = serve(&[args.as_slice(), &["--role", "api"]].concat(), &key)?;
        let _worker = serve(&[args.as_slice(), &["--role", "worker"]].concat(), &key)?;
        out[name] = follow_latency(&api.base, 20)?;
    }
    Ok(out)
}

/// The pid of the process leading the scheduler on `db`.
fn leader_pid(db: &str) -> anyhow::Result<Option<u32>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let holder: Option<String> = rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut c = sqlx::PgConnection::connect(db).await?;
        let r = sqlx::query("SELECT holder FROM schedule_leader WHERE id = 1")
            .fetch_optional(&mut c)
            .await?;
        anyhow::Ok(r.map(|r| r.get(0)))
    })?;
    Ok(holder.and_then(|h| h.rsplit('-').nth(1)?.parse().ok()))
}

/// Kill the scheduler leader `kills` times (three scheduler processes, a
/// per-second schedule): from the kill to the next fire in history, and
/// to the next leader, in ms.
fn failover(url: &str, kills: usize) -> anyhow::Result<Value> {
    let db = fresh_database(url, "quire_bench_failover")?;
    let key = hex_key()?;
    let pg = ["--postgres", db.as_str()];
    let api = serve(&[pg.as_slice(), &["--role", "api"]].concat(), &key)?;
    let start = || {
        serve(
            &[pg.as_slice(), &["--role", "scheduler,worker"]].concat(),
            &key,
        )
    };
    let mut procs = vec![start()?, start()?, start()?];
    let body = json!({"name": "tick", "source": "export default 1;", "lang": "js"});
    let b = call(
        &api.base,
        "POST",
        "/api/v1/workspaces/default/blocks",
        Some(&body),
    )?;
    let block = b["id"].as_str().context("no block id")?.to_string();
    let path = format!("/api/v1/workspaces/default/blocks/{block}/schedules");
    call(
        &api.base,
        "POST",
        &path,
        Some(&json!({"cron": "* * * * * *"})),
    )?;
    let (mut to_fire, mut to_leader) = (Vec::new(), Vec::new());
    for _ in 0..kills {
        let t = Instant::now();
        let pid = loop {
            if let Some(p) = leader_pid(&db)? {
                break p;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("no scheduler leader");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(1500));
        let i = procs
            .iter()
            .position(|p| p.child.id() == pid)
            .context("the leader is not one of the bench's processes")?;
        let killed_ms = now_ms();
        let killed = Instant::now();
        drop(procs.remove(i)); // SIGKILL
        let (mut fire, mut led) = (None, None);
        while fire.is_none() || led.is_none() {
            if killed.elapsed() > Duration::from_secs(60) {
                bail!("no fire or no leader within 60 s of a kill");
            }
            if led.is_none() && leader_pid(&db)?.is_some_and(|p| p != pid) {
                led = Some(killed.elapsed().as_secs_f64() * 1000.0);
            }
            if fire.is_none() {
                let v = call(
                    &api.base,
                    "GET",
                    &format!("/api/v1/workspaces/default/runs?block={block}&limit=3"),
                    None,
                )?;
                let after = v["runs"].as_array().into_iter().flatten().any(|r| {
                    r["trigger"]["scheduled_at_ms"]
                        .as_f64()
                        .is_some_and(|at| at >= killed_ms)
                });
                if after {
                    fire = Some(killed.elapsed().as_secs_f64() * 1000.0);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        to_fire.extend(fire);
        to_leader.extend(led);
        procs.push(start()?);
    }
    to_fire.sort_by(f64::total_cmp);
    to_leader.sort_by(f64::total_cmp);
    Ok(json!({
        "kills": kills,
        "kill_to_next_fire_p50_ms": percentile(&to_fire, 0.5),
        "kill_to_next_fire_max_ms": to_fire.last(),
        "kill_to_new_leader_p50_ms": percentile(&to_leader, 0.5),
        "kill_to_new_leader_max_ms": to_leader.last(),
    }))
}

/// Every case, in one run.
pub fn run(postgres: Option<&str>, nats: Option<&str>) -> anyhow::Result<Value> {
    let Some(url) = postgres else {
        bail!("--only cluster needs a PostgreSQL server: --postgres URL (or QUIRE_POSTGRES_URL), a role that may create databases");
    };
    let mut workers = Vec::new();
    for n in 1..=3 {
        eprintln!("cluster: {n} worker process(es)");
        workers.push(cluster_case(url, n)?);
    }
    eprintln!("cluster: one process on sled");
    let sled = sled_case()?;
    let claims = [1, 3]
        .into_iter()
        .map(|n| claim_latency(url, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    eprintln!("cluster: live output latency");
    let latency = latency_cases(url, nats)?;
    eprintln!("cluster: scheduler leader kills");
    let failover = failover(url, 10)?;
    Ok(json!({
        "http_hello_world": {"postgres": workers, "sled_one_process": sled},
        "queue_claim": claims,
        "log_to_client_other_process": latency,
        "scheduler_failover": failover,
    }))
}

/// How long the chaos run lasts.
const CHAOS_SECS: u64 = 150;

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) % n.max(1)
}

/// Follow every run id sent on `ids` over one WebSocket to `base` until
/// `ids` closes and each followed run finished (or `deadline` passes);
/// the events seen per run.
async fn follow_runs(
    base: String,
    mut ids: tokio::sync::mpsc::UnboundedReceiver<String>,
    deadline: Duration,
) -> anyhow::Result<std::collections::HashMap<String, Vec<Value>>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!(
        "{}/api/v1/workspaces/default/live?token={ADMIN}",
        base.replacen("http://", "ws://", 1)
    );
    let (mut sock, _) = tokio_tungstenite::connect_async(&url).await?;
    let mut seen: std::collections::HashMap<String, Vec<Value>> = Default::default();
    let (mut open, mut more) = (0usize, true);
    let end = tokio::time::Instant::now() + deadline;
    while more || open > 0 {
        tokio::select! {
            id = ids.recv(), if more => match id {
                Some(id) => {
                    let op = json!({"op": "follow", "run": id, "from_seq": 0}).to_string();
                    sock.send(Message::Text(op.into())).await?;
                    seen.insert(id, Vec::new());
                    open += 1;
                }
                None => more = false,
            },
            m = sock.next() => {
                let Some(m) = m else { break };
                let Message::Text(t) = m? else { continue };
                let v: Value = serde_json::from_str(&t)?;
                let Some(run) = v["run"].as_str().map(String::from) else { continue };
                if v.get("op").is_some() {
                    continue;
                }
                if v["type"] == "finished" {
                    open = open.saturating_sub(1);
                }
                seen.entry(run).or_default().push(v);
            }
            () = tokio::time::sleep_until(end) => break,
        }
    }
    Ok(seen)
}

/// `quire bench --only chaos`: [`CHAOS_SECS`] of random `kill -9`s of
/// three processes with every role (each restarted two seconds later)
/// under a per-second schedule and a stream of HTTP runs, with a fourth
/// (api only, never killed) holding a WebSocket that follows every run
/// of one workspace. Counts what ran, what was lost, what was delivered.
pub fn chaos(postgres: Option<&str>, nats: Option<&str>) -> anyhow::Result<Value> {
    let (Some(url), Some(nats)) = (postgres, nats) else {
        bail!("--only chaos needs --postgres URL and --nats URL (or QUIRE_POSTGRES_URL, QUIRE_NATS_URL)");
    };
    let db = fresh_database(url, "quire_bench_chaos")?;
    let key = hex_key()?;
    let common = [
        "--postgres",
        db.as_str(),
        "--nats",
        nats,
        "--lease-ms",
        "3000",
    ];
    let anchor = serve(&[common.as_slice(), &["--role", "api"]].concat(), &key)?;
    let start = || {
        serve(
            &[common.as_slice(), &["--role", "api,worker,scheduler"]].concat(),
            &key,
        )
    };
    let mut procs: Vec<Option<Proc>> = vec![Some(start()?), Some(start()?), Some(start()?)];
    call(
        &anchor.base,
        "POST",
        "/api/v1/workspaces",
        Some(&json!({"name": "second"})),
    )?;
    let big = json!({"max_concurrent_runs": 16, "runs_per_minute": 6000, "max_queued_runs": 1000});
    for w in ["default", "second"] {
        call(
            &anchor.base,
            "PUT",
            &format!("/api/v1/workspaces/{w}/quota"),
            Some(&big),
        )?;
    }
    let b = call(
        &anchor.base,
        "POST",
        "/api/v1/workspaces/default/blocks",
        Some(&json!({"name": "tick", "source": "export default 1;", "lang": "js"})),
    )?;
    let block = b["id"].as_str().context("no block id")?.to_string();
    let sch = call(
        &anchor.base,
        "POST",
        &format!("/api/v1/workspaces/default/blocks/{block}/schedules"),
        Some(&json!({"cron": "* * * * * *"})),
    )?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let base = anchor.base.clone();
    let follower = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| {
                rt.block_on(follow_runs(base, rx, Duration::from_secs(CHAOS_SECS + 240)))
            })
    });
    let slow = "for (let i = 0; i < 10; i++) { console.log('step ' + i); await new Promise(r => setTimeout(r, 100)); } export default 1;";
    let (mut accepted, mut kills) = (Vec::new(), 0u32);
    let t0 = Instant::now();
    let mut next_kill = Duration::from_secs(5 + random_below(8));
    let mut restart: Option<(usize, Instant)> = None;
    while t0.elapsed() < Duration::from_secs(CHAOS_SECS) {
        for w in ["default", "second"] {
            let body = json!({"source": slow, "lang": "js"});
            let v = call(
                &anchor.base,
                "POST",
                &format!("/api/v1/workspaces/{w}/runs"),
                Some(&body),
            )?;
            let run = v["run"].as_str().context("no run id")?.to_string();
            if w == "default" {
                let _ = tx.send(run.clone());
            }
            accepted.push((w, run));
        }
        if let Some((i, at)) = restart {
            if at.elapsed() > Duration::from_secs(2) {
                procs[i] = Some(start()?);
                restart = None;
            }
        }
        if restart.is_none() && t0.elapsed() > next_kill {
            let i = random_below(3) as usize;
            drop(procs[i].take()); // SIGKILL
            kills += 1;
            restart = Some((i, Instant::now()));
            next_kill = t0.elapsed() + Duration::from_secs(5 + random_below(8));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(tx);
    if let Some((i, _)) = restart {
        procs[i] = Some(start()?);
    }
    let id = sch["id"].as_str().context("no schedule id")?;
    call(
        &anchor.base,
        "PATCH",
        &format!("/api/v1/workspaces/default/schedules/{id}"),
        Some(&json!({"paused": true})),
    )?;
    // Outcomes.
    let (mut finished, mut lost, mut unended) = (0, 0, 0);
    let mut stored: std::collections::HashMap<String, Value> = Default::default();
    for (w, run) in &accepted {
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let v = call(
                &anchor.base,
                "GET",
                &format!("/api/v1/workspaces/{w}/runs/{run}"),
                None,
            )?;
            if !matches!(v["status"].as_str(), Some("queued" | "running")) {
                finished += 1;
                if v["status"] != "ok" {
                    lost += 1;
                }
                if *w == "default" {
                    stored.insert(run.clone(), v["events"].clone());
                }
                break;
            }
            if Instant::now() > end {
                unended += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let seen = follower
        .join()
        .map_err(|_| anyhow::anyhow!("the follower panicked"))??;
    let (mut expected, mut delivered, mut differing) = (0usize, 0usize, 0usize);
    for (run, events) in &stored {
        let want = events.as_array().map_or(0, Vec::len);
        expected += want;
        let got = seen.get(run).cloned().unwrap_or_default();
        if Value::Array(got.clone()) == *events {
            delivered += want;
        } else {
            differing += 1;
        }
    }
    let v = call(
        &anchor.base,
        "GET",
        &format!("/api/v1/workspaces/default/runs?block={block}&limit=500"),
        None,
    )?;
    let mut at: Vec<u64> = v["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["trigger"]["scheduled_at_ms"].as_u64())
        .collect();
    at.sort_unstable();
    let ran = at.len();
    at.dedup();
    let expected_fires = match (at.first(), at.last()) {
        (Some(a), Some(b)) => (b - a) / 1000 + 1,
        _ => 0,
    };
    Ok(json!({
        "seconds": CHAOS_SECS, "kills": kills,
        "fires": {"expected": expected_fires, "ran": at.len(), "duplicated": ran - at.len()},
        "runs": {"accepted": accepted.len(), "finished": finished, "closed_internal_after_a_kill": lost, "never_ended": unended},
        "events_of_followed_runs": {"runs": stored.len(), "expected": expected, "delivered_exactly": delivered, "runs_differing": differing},
    }))
}
