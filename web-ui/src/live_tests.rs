//! The live protocol driven through channels instead of sockets.

use std::time::Duration;

use futures_channel::mpsc;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::auth::{Principal, Role};
use crate::hub::StartRun;
use crate::live::{serve, Outgoing, CLOSE_TOO_SLOW};
use crate::testkit::fixture;
use crate::{AppState, ServerConfig};

struct Client {
    to_server: mpsc::UnboundedSender<String>,
    from_server: mpsc::UnboundedReceiver<Outgoing>,
    task: tokio::task::JoinHandle<()>,
}

fn who(ws: &quire_storage::Workspace, role: Role) -> Principal {
    Principal {
        token_id: format!("test-{role}"),
        workspace: Some(ws.id),
        role,
    }
}

fn connect(state: &AppState, ws: &quire_storage::Workspace, role: Role) -> Client {
    let (to_server, incoming) = mpsc::unbounded::<String>();
    let (sink, from_server) = mpsc::unbounded::<Outgoing>();
    let task = tokio::spawn(serve(
        state.clone(),
        who(ws, role),
        ws.clone(),
        sink,
        incoming,
    ));
    Client {
        to_server,
        from_server,
        task,
    }
}

impl Client {
    fn send(&self, v: Value) {
        let _ = self.to_server.unbounded_send(v.to_string());
    }

    async fn next(&mut self) -> Value {
        let m = tokio::time::timeout(Duration::from_secs(30), self.from_server.next()).await;
        match m {
            Ok(Some(Outgoing::Text(t))) => serde_json::from_str(&t).unwrap_or(Value::Null),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Messages until the `finished` event of `run`.
    async fn until_finished(&mut self, run: &str) -> Vec<Value> {
        let mut out = vec![];
        loop {
            let v = self.next().await;
            let done = v["run"] == run && v["type"] == "finished";
            out.push(v);
            if done {
                return out;
            }
        }
    }
}

/// The numbered events of `run` among `msgs` (live meters, which repeat
/// the seq before them, left out).
fn events_of<'a>(msgs: &'a [Value], run: &str) -> Vec<&'a Value> {
    msgs.iter()
        .filter(|m| m["run"] == run && m.get("op").is_none())
        .filter(|m| !(m["type"] == "meter" && m["final"] == false))
        .collect()
}

fn assert_contract_order(events: &[&Value]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64, "gap or reorder at {i}: {e}");
    }
    assert_eq!(
        events.first().map(|e| e["type"].clone()),
        Some(json!("started"))
    );
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("finished"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_comes_first_then_every_event_in_order() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let mut c = connect(&f.state, &f.a, Role::Editor);
    c.send(json!({"op": "run_source", "source": "for (let i = 0; i < 200; i++) console.log('line', i); export default 'done'", "lang": "js", "ref": 7}));
    let first = c.next().await;
    assert_eq!(first["op"], "accepted", "{first}");
    assert_eq!(first["ref"], 7);
    let run = first["run"].as_str().unwrap_or_default().to_string();
    let msgs = c.until_finished(&run).await;
    let events = events_of(&msgs, &run);
    assert_contract_order(&events);
    assert_eq!(events.len(), 1 + 200 + 2);
    assert_eq!(events[5]["text"], "line 4");
    c.task.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_over_the_socket_ends_with_its_diff_and_writes_nothing() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let mut c = connect(&f.state, &f.a, Role::Admin);
    let src = "import { kv } from 'quire'; await kv.set('k', 1); export default await kv.get('k');";
    let mut b = f
        .state
        .store
        .get_block(&f.a.id, "b1")?
        .ok_or_else(|| anyhow::anyhow!("b1"))?;
    b.grants = vec!["kv:read".into(), "kv:write".into()];
    f.state.store.put_block(&f.a.id, b)?;
    c.send(
        json!({"op": "run_source", "source": src, "lang": "js", "block": "b1", "mode": "dry_run"}),
    );
    let first = c.next().await;
    assert_eq!(first["op"], "accepted", "{first}");
    let run = first["run"].as_str().unwrap_or_default().to_string();
    let msgs = c.until_finished(&run).await;
    let events = events_of(&msgs, &run);
    assert_contract_order(&events);
    let n = events.len();
    assert_eq!(events[n - 2]["type"], "diff", "{events:?}");
    assert_eq!(events[n - 2]["changes"][0]["key"], "k");
    assert_eq!(events[n - 2]["applicable"], true);
    assert!(events
        .iter()
        .any(|e| e["type"] == "result" && e["value"] == 1));
    assert_eq!(f.state.store.kv_get(&f.a.id, "k")?, None);
    c.task.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_bad_messages_are_rejected_with_reasons() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let mut viewer = connect(&f.state, &f.a, Role::Viewer);
    viewer.send(json!({"op": "run", "block": "b1"}));
    let r = viewer.next().await;
    assert_eq!(
        (r["op"].clone(), r["for"].clone()),
        (json!("rejected"), json!("run"))
    );
    assert!(
        r["reason"].as_str().is_some_and(|m| m.contains("editor")),
        "{r}"
    );
    viewer.send(json!({"op": "cancel", "run": "x"}));
    assert_eq!(viewer.next().await["op"], "rejected");
    for bad in [
        json!({"op": "explode"}),
        json!({"op": "run"}),
        json!([1, 2]),
        json!({"op": "run", "block": "b1", "extra": 1}),
        json!({"op": "run", "block": "b1", "mode": "commit"}),
        json!({"op": "run_source", "source": "1", "lang": "js", "mode": 1}),
    ] {
        viewer.send(bad.clone());
        let r = viewer.next().await;
        assert_eq!(r["op"], "rejected", "{bad}: {r}");
        assert!(
            r["reason"]
                .as_str()
                .is_some_and(|m| m.starts_with("bad message")),
            "{bad}: {r}"
        );
    }
    let mut editor = connect(&f.state, &f.a, Role::Editor);
    // A block of the other workspace, or none at all: not found.
    editor.send(json!({"op": "run", "block": "nope"}));
    let r = editor.next().await;
    assert!(
        r["reason"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "{r}"
    );
    editor.send(json!({"op": "follow", "run": f.b_run}));
    let r = editor.next().await;
    assert_eq!(
        r["op"], "rejected",
        "another workspace's run must not be followed: {r}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_run_with_cancelled() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let mut c = connect(&f.state, &f.a, Role::Editor);
    c.send(json!({"op": "run_source", "source": "console.log('waiting'); await new Promise(r => setTimeout(r, 4000));", "lang": "js"}));
    let run = c.next().await["run"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Wait for the first log so the run is really executing.
    loop {
        if c.next().await["type"] == "log" {
            break;
        }
    }
    c.send(json!({"op": "cancel", "run": run}));
    let msgs = c.until_finished(&run).await;
    assert!(msgs.iter().any(|m| m["op"] == "cancelling"));
    let err = msgs
        .iter()
        .find(|m| m["type"] == "error")
        .cloned()
        .unwrap_or_default();
    assert_eq!(err["kind"], "cancelled", "{msgs:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_runs_started_elsewhere_and_can_follow_later() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let mut watcher = connect(&f.state, &f.a, Role::Viewer);
    watcher.send(json!({"op": "subscribe", "block": "b1"}));
    assert_eq!(watcher.next().await["op"], "subscribed");
    let block = f.state.store.get_block(&f.a.id, "b1")?;
    let started = f
        .state
        .hub
        .start(StartRun {
            workspace: f.a.clone(),
            source: "console.log('from a schedule'); export default 5".into(),
            block,
            lang: quire_engine::Lang::Js,
            input: Value::Null,
            trigger: json!({"kind": "schedule"}),
            run_id: None,
            engine: None,
            admin_caller: false,
            agent: false,
            doc: None,
            dry_run: false,
            operator: None,
        })
        .await?;
    let run = started.id.clone();
    drop(started);
    let announce = watcher.next().await;
    assert_eq!(
        (announce["op"].clone(), announce["run"].clone()),
        (json!("run"), json!(run))
    );
    assert_eq!(announce["trigger"]["kind"], "schedule");
    let msgs = watcher.until_finished(&run).await;
    assert_contract_order(&events_of(&msgs, &run));
    // Once it is history, `follow` with from_seq replays the rest.
    while f.state.hub.get(&f.a.id, &run).is_some() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    watcher.send(json!({"op": "follow", "run": run, "from_seq": 2}));
    assert_eq!(watcher.next().await["op"], "following");
    let rest = watcher.until_finished(&run).await;
    assert_eq!(rest.first().map(|e| e["seq"].clone()), Some(json!(2)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_delays_nothing() -> anyhow::Result<()> {
    let f = fixture(ServerConfig {
        ws_send_timeout_ms: 300,
        ws_queue_messages: 8,
        ..ServerConfig::default()
    })?;
    // A sink with no room that nobody drains: every send blocks.
    let (sink, mut never_read) = mpsc::channel::<Outgoing>(0);
    let (to_server, incoming) = mpsc::unbounded::<String>();
    let p = who(&f.a, Role::Editor);
    let slow = tokio::spawn(serve(f.state.clone(), p, f.a.clone(), sink, incoming));
    let _ = to_server.unbounded_send(json!({"op": "run_source", "source": "for (let i = 0; i < 5000; i++) console.log(i)", "lang": "js"}).to_string());
    // Meanwhile a normal client runs to completion.
    let mut fast = connect(&f.state, &f.a, Role::Editor);
    fast.send(json!({"op": "run", "block": "b1"}));
    let run = fast.next().await["run"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let msgs = fast.until_finished(&run).await;
    assert_contract_order(&events_of(&msgs, &run));
    // The slow connection ends on its own (send timeout), not by us.
    tokio::time::timeout(Duration::from_secs(30), slow).await??;
    assert_eq!(
        f.state
            .metrics
            .ws_slow_closes
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The slow client's run was not held back: it finished and is history.
    let mut stored = None;
    for _ in 0..600 {
        stored = f
            .state
            .store
            .recent_runs(&f.a.id, None, 5, None)?
            .into_iter()
            .find(|r| {
                let stored = f.state.store.run_event_totals(&f.a.id, &r.id);
                r.status != "running" && stored.is_ok_and(|t| t.events > 5000)
            });
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = stored.ok_or_else(|| anyhow::anyhow!("the slow client's run never finished"))?;
    assert_eq!(stored.status, "ok");
    // What was queued for it is bounded: the one message in the channel.
    let mut got = 0;
    while let Ok(m) = never_read.try_recv() {
        got += 1;
        if let Outgoing::Close(code, _) = m {
            assert_eq!(code, CLOSE_TOO_SLOW);
        }
    }
    assert!(
        got <= 2,
        "{got} messages were buffered for a client that never read"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_quota_is_rejected_naming_the_quota_and_its_reset() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let q = quire_storage::Quota {
        runs_per_minute: 1,
        ..quire_storage::Quota::default()
    };
    f.state.store.put_quota(&f.a.id, &q)?;
    let mut c = connect(&f.state, &f.a, Role::Editor);
    c.send(json!({"op": "run", "block": "b1", "ref": 1}));
    let first = c.next().await;
    assert_eq!(first["op"], "accepted", "{first}");
    c.send(json!({"op": "run", "block": "b1", "ref": 2}));
    let second = loop {
        let m = c.next().await;
        if m["ref"] == 2 {
            break m;
        }
    };
    assert_eq!(second["op"], "rejected", "{second}");
    assert_eq!(second["error"], "quota_exceeded");
    assert_eq!(second["quota"], "runs_per_minute");
    assert_eq!(second["limit"], 1);
    assert!(second["resets_at_ms"].as_u64().is_some(), "{second}");
    assert!(
        second["reason"]
            .as_str()
            .is_some_and(|r| r.contains("1 runs per minute")),
        "{second}"
    );
    c.task.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_past_the_depth_limit_are_rejected_naming_it() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let mut c = connect(&f.state, &f.a, Role::Editor);
    let mut deep = json!(1);
    for _ in 0..65 {
        deep = json!([deep]);
    }
    for msg in [
        json!({"op": "run", "block": "b1", "input": deep.clone()}),
        json!({"op": "run_source", "source": "export default 1", "lang": "js", "input": deep}),
    ] {
        c.send(msg.clone());
        let r = c.next().await;
        assert_eq!(r["op"], "rejected", "{msg}: {r}");
        assert!(
            r["reason"]
                .as_str()
                .is_some_and(|m| m.contains("input is nested deeper than the limit of 64")),
            "{r}"
        );
    }
    // The connection still works.
    c.send(json!({"op": "run", "block": "b1", "input": 1}));
    assert_eq!(c.next().await["op"], "accepted");
    c.task.abort();
    Ok(())
}

/// A follower that joins a long run late, and one that follows it after
/// it finished, get every event once, in order: what the live log no
/// longer holds comes from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_followers_of_a_long_run_get_every_event_in_order() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    crate::testkit::allow_long_runs(&f.state.store, &f.a)?;
    let source = "const line = 'y'.repeat(1000);
        for (let i = 0; i < 3000; i++) console.log(i, line);
        await new Promise((r) => setTimeout(r, 300));
        export default 'done';";
    let mut first = connect(&f.state, &f.a, Role::Editor);
    first.send(json!({"op": "run_source", "source": source, "lang": "js"}));
    let run = first.next().await["run"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Wait until well past the 1 MiB a live log keeps.
    loop {
        let v = first.next().await;
        if v["run"] == run.as_str() && v["seq"].as_u64().is_some_and(|s| s >= 2999) {
            break;
        }
    }
    let check = |msgs: &[Value]| {
        let evs = events_of(msgs, &run);
        let finals = evs.iter().filter(|e| e["type"] == "meter").count();
        assert!(finals <= 1);
        assert_eq!(
            evs.len(),
            3000 + 3 + finals,
            "started, logs, result, (final meter), finished"
        );
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e["seq"], i as u64);
        }
    };
    let mut late = connect(&f.state, &f.a, Role::Viewer);
    late.send(json!({"op": "follow", "run": run, "from_seq": 0}));
    check(&late.until_finished(&run).await);
    let live = f.state.hub.get(&f.a.id, &run);
    if let Some(live) = live {
        tokio::time::timeout(Duration::from_secs(30), live.finished()).await?;
    }
    let mut after = connect(&f.state, &f.a, Role::Viewer);
    after.send(json!({"op": "follow", "run": run, "from_seq": 0}));
    check(&after.until_finished(&run).await);
    Ok(())
}
