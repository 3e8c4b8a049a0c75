//! A run's events page by seq over HTTP, while it runs and after, and each
//! answer stays near `run_page_bytes` however long the run is.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::auth::{Auth, Role};
use crate::testkit::{call, fixture, Fixture};
use crate::ServerConfig;

const BASE: &str = "/api/v1/workspaces/alpha";
const PAGE: usize = 64 * 1024;

/// About 2.5 MB of logs, then a pause, then one more line.
const LONG: &str = "const line = 'x'.repeat(1000);
for (let i = 0; i < 2500; i++) console.log(i, line);
await new Promise((r) => setTimeout(r, 300));
console.log('end');
export default 'done';";

async fn long_run_fixture() -> anyhow::Result<(Fixture, String)> {
    let f = fixture(ServerConfig {
        rate_burst: 1e9,
        run_page_bytes: PAGE,
        ..ServerConfig::default()
    })?;
    crate::testkit::allow_long_runs(&f.state.store, &f.a)?;
    let token = Auth::mint(&f.state.store, Some(f.a.id), Role::Editor, "e")?.1;
    Ok((f, token))
}

async fn get(f: &Fixture, token: &str, path: &str) -> anyhow::Result<(StatusCode, Value)> {
    call(&f.state, "GET", path, Some(token), None).await
}

/// Every page of run `run` from seq 0, checking each page's size.
async fn all_pages(f: &Fixture, token: &str, run: &str) -> anyhow::Result<(Vec<Value>, Value)> {
    let mut events = Vec::new();
    let mut from = 0u64;
    let mut pages = 0;
    loop {
        let (status, v) = get(f, token, &format!("{BASE}/runs/{run}?from_seq={from}")).await?;
        assert_eq!(status, StatusCode::OK, "{v}");
        let page = v["events"].as_array().cloned().unwrap_or_default();
        let bytes: usize = page.iter().map(|e| e.to_string().len()).sum();
        let last = page.last().map_or(0, |e| e.to_string().len());
        assert!(bytes <= PAGE + last, "a page of {bytes} bytes");
        pages += 1;
        events.extend(page);
        match v["next_seq"].as_u64() {
            Some(n) => {
                assert_eq!(n as usize, events.len(), "next_seq is the next event's seq");
                from = n;
            }
            None => return Ok((events, v)),
        }
        assert!(pages < 10_000, "paging does not end");
    }
}

fn assert_contiguous(events: &[Value]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64, "event {i} of {}", events.len());
    }
}

#[tokio::test]
async fn a_long_runs_events_page_by_seq_while_it_runs_and_after() -> anyhow::Result<()> {
    let (f, token) = long_run_fixture().await?;
    let (status, v) = call(
        &f.state,
        "POST",
        &format!("{BASE}/runs"),
        Some(&token),
        Some(json!({"source": LONG, "lang": "js"})),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let run = v["run"].as_str().unwrap_or_default().to_string();
    // While it runs: pages of what there is so far.
    let mut saw_live = false;
    for _ in 0..3000 {
        // Past the events a live log keeps in memory (1 MiB).
        let (_, v) = get(&f, &token, &format!("{BASE}/runs/{run}?from_seq=2000")).await?;
        if v["status"] != "running" && v["status"] != "queued" {
            assert!(saw_live, "finished before output was seen: {}", v["error"]);
            break;
        }
        if v["events"].as_array().is_some_and(|e| !e.is_empty()) {
            saw_live = true;
            let (events, _) = all_pages(&f, &token, &run).await?;
            assert_contiguous(&events);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(saw_live, "the run was never seen running with output");
    // Wait for history, then page it whole.
    let live = f.state.hub.get(&f.a.id, &run);
    if let Some(live) = live {
        tokio::time::timeout(std::time::Duration::from_secs(30), live.finished()).await?;
    }
    let (events, last) = all_pages(&f, &token, &run).await?;
    assert_contiguous(&events);
    assert_eq!(last["status"], "ok", "{}", last["error"]);
    // A run that sent live meters ends with one final meter, stored.
    let finals = events.iter().filter(|e| e["type"] == "meter").count();
    assert!(
        finals <= 1
            && events
                .iter()
                .all(|e| e["type"] != "meter" || e["final"] == true)
    );
    assert_eq!(
        events.len(),
        2500 + 4 + finals,
        "started, 2500 logs, end, result, (final meter), finished"
    );
    assert_eq!(events[2501]["text"], "end");
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("finished"))
    );
    let stored = f.state.store.run_event_totals(&f.a.id, &run)?;
    assert_eq!(stored.events, events.len() as u64);
    // The history listing carries no events, only the summary.
    let (_, list) = get(&f, &token, &format!("{BASE}/runs")).await?;
    assert_eq!(list["runs"][0]["run"], run.as_str());
    assert!(
        list["runs"][0].get("events").is_none(),
        "{}",
        list["runs"][0]
    );
    Ok(())
}

#[tokio::test]
async fn bad_or_foreign_event_pages_are_refused_or_empty() -> anyhow::Result<()> {
    let f = fixture(ServerConfig::default())?;
    let viewer = Auth::mint(&f.state.store, Some(f.a.id), Role::Viewer, "v")?.1;
    let b_token = Auth::mint(&f.state.store, Some(f.b.id), Role::Admin, "b")?.1;
    let b_run = f.b_run.clone();
    let mine = |q: &str| format!("/api/v1/workspaces/beta/runs/{b_run}{q}");
    for q in [
        "?from_seq=abc",
        "?from_seq=-1",
        "?from_seq=1.5",
        "?limit=3",
        "?from_seq=99999999999999999999999",
    ] {
        let (status, v) = get(&f, &b_token, &mine(q)).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert_eq!(v["field"], "query", "{q}: {v}");
    }
    let (status, v) = get(&f, &b_token, &mine("?from_seq=0")).await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["events"][0]["text"], "beta's secret output");
    assert_eq!(v["next_seq"], Value::Null);
    let (status, v) = get(&f, &b_token, &mine("?from_seq=18446744073709551615")).await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["events"], json!([]));
    // Another workspace's run, by its id, through this workspace or that.
    let (status, v) = get(&f, &viewer, &format!("{BASE}/runs/{b_run}?from_seq=0")).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(!v.to_string().contains("secret output"));
    let (status, _) = get(&f, &viewer, &mine("?from_seq=0")).await?;
    assert!(status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND);
    Ok(())
}
