//! One test per quota, through the routes and the hub, on an in-process
//! engine: each quota refuses or ends what it should, names itself, and
//! leaves other workspaces alone.

use std::time::Duration;

use axum::http::StatusCode;
use quire_storage::{now_ms, utc_day, BlockRecord, Quota, Workspace};
use serde_json::{json, Value};

use crate::auth::{Auth, Role};
use crate::hub::StartRun;
use crate::testkit::{call, fixture, Fixture};
use crate::{ApiError, ServerConfig};

fn setup() -> anyhow::Result<(Fixture, String, String)> {
    let f = fixture(ServerConfig {
        rate_burst: 1e9,
        ..ServerConfig::default()
    })?;
    let admin = Auth::mint(&f.state.store, Some(f.a.id), Role::Admin, "a")?.1;
    let server = Auth::mint(&f.state.store, None, Role::Admin, "s")?.1;
    Ok((f, admin, server))
}

fn set_quota(f: &Fixture, ws: &Workspace, q: Quota) -> anyhow::Result<()> {
    f.state.store.put_quota(&ws.id, &q)?;
    Ok(())
}

/// Run `source` as block `id` of `ws` with `grants`; its events once it
/// finished.
async fn run(
    f: &Fixture,
    ws: &Workspace,
    source: &str,
    grants: &[&str],
) -> anyhow::Result<Vec<Value>> {
    let block = BlockRecord {
        id: "q".into(),
        name: "q".into(),
        source: source.into(),
        lang: "js".into(),
        grants: grants.iter().map(|g| g.to_string()).collect(),
        grants_approved_for: None,
        engine: String::new(),
        updated_ms: 0,
    };
    let started = f
        .state
        .hub
        .start(StartRun::for_block(
            ws.clone(),
            block,
            Value::Null,
            json!({"kind": "manual"}),
        ))
        .await?;
    let live = started.live();
    drop(started);
    tokio::time::timeout(Duration::from_secs(30), live.finished()).await?;
    Ok(live.snapshot().0)
}

fn error_of(events: &[Value]) -> Value {
    events
        .iter()
        .find(|e| e["type"] == "error")
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn quota_routes_merge_changes_and_hold_them_to_the_ceilings() -> anyhow::Result<()> {
    let (f, admin, server) = setup()?;
    let (st, v) = call(
        &f.state,
        "PUT",
        "/api/v1/workspaces/alpha/quota",
        Some(&admin),
        Some(json!({"max_concurrent_runs": 2, "cpu_ms_per_run": 250})),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["quota"]["max_concurrent_runs"], 2);
    assert_eq!(v["quota"]["cpu_ms_per_run"], 250);
    assert_eq!(
        v["quota"]["wall_ms_per_run"], 5000,
        "fields not given keep their values"
    );
    assert_eq!(v["usage"]["today"]["runs"], 0);
    // Over the ceiling, below the minimum, unknown: 400 naming the field.
    for (body, field, says) in [
        (
            json!({"cpu_ms_per_run": 999_999}),
            "cpu_ms_per_run",
            "ceiling of 30000",
        ),
        (
            json!({"max_concurrent_runs": 0}),
            "max_concurrent_runs",
            "minimum of 1",
        ),
        (
            json!({"cpu_ms_per_runs": 1}),
            "cpu_ms_per_runs",
            "unknown field",
        ),
        (
            json!({"storage_bytes": -1}),
            "storage_bytes",
            "invalid value",
        ),
        (
            json!({"history_bytes": 11u64 * 1024 * 1024 * 1024}),
            "history_bytes",
            "ceiling of 10737418240",
        ),
        (
            json!({"history_days": 4000}),
            "history_days",
            "ceiling of 3650",
        ),
        (
            json!({"history_days": "30"}),
            "history_days",
            "invalid type",
        ),
    ] {
        let (st, v) = call(
            &f.state,
            "PUT",
            "/api/v1/workspaces/alpha/quota",
            Some(&admin),
            Some(body.clone()),
        )
        .await?;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
        assert!(
            v["message"].as_str().unwrap_or("").contains(says),
            "{body}: {v}"
        );
    }
    // Ceilings: only a server admin; lowering one lowers the effective
    // quota of a workspace that set more, without rewriting what it set.
    let (st, _) = call(
        &f.state,
        "PUT",
        "/api/v1/quota/ceilings",
        Some(&admin),
        Some(json!({"cpu_ms_per_run": 100})),
    )
    .await?;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = call(
        &f.state,
        "PUT",
        "/api/v1/quota/ceilings",
        Some(&server),
        Some(json!({"cpu_ms_per_run": 100})),
    )
    .await?;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/quota",
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(v["quota"]["cpu_ms_per_run"], 100);
    assert_eq!(v["set"]["cpu_ms_per_run"], 250);
    assert_eq!(v["ceilings"]["cpu_ms_per_run"], 100);
    let (_, v) = call(
        &f.state,
        "GET",
        "/api/v1/quota/ceilings",
        Some(&server),
        None,
    )
    .await?;
    assert_eq!(v["ceilings"]["cpu_ms_per_run"], 100);
    Ok(())
}

#[tokio::test]
async fn runs_per_minute_answers_429_with_the_quota_and_reset() -> anyhow::Result<()> {
    let (f, admin, _) = setup()?;
    set_quota(
        &f,
        &f.a,
        Quota {
            runs_per_minute: 2,
            ..Quota::default()
        },
    )?;
    let path = "/api/v1/workspaces/alpha/blocks/b1/runs";
    for _ in 0..2 {
        let (st, v) = call(&f.state, "POST", path, Some(&admin), Some(json!({}))).await?;
        assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    }
    let (st, v) = call(&f.state, "POST", path, Some(&admin), Some(json!({}))).await?;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"], "quota_exceeded");
    assert_eq!(v["quota"], "runs_per_minute");
    assert_eq!(v["limit"], 2);
    let resets = v["resets_at_ms"].as_u64().unwrap_or(0);
    assert!(resets > now_ms() && resets <= now_ms() + 60_000, "{v}");
    // Another workspace is not affected.
    let beta = Auth::mint(&f.state.store, Some(f.b.id), Role::Editor, "b")?.1;
    let (st, _) = call(
        &f.state,
        "POST",
        "/api/v1/workspaces/beta/blocks/b1/runs",
        Some(&beta),
        Some(json!({})),
    )
    .await?;
    assert_eq!(st, StatusCode::ACCEPTED);
    Ok(())
}

#[tokio::test]
async fn cpu_is_metered_per_day_and_the_day_quota_refuses_then_caps() -> anyhow::Result<()> {
    let (f, admin, _) = setup()?;
    let events = run(
        &f,
        &f.a,
        "let x = 0; for (let i = 0; i < 2e5; i++) x += i; export default x",
        &[],
    )
    .await?;
    let fin = events.last().cloned().unwrap_or_default();
    let (_, v) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/quota",
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(v["usage"]["today"]["runs"], 1, "{v}");
    // The same measurement, through a Duration and back (float rounding).
    let metered = v["usage"]["today"]["cpu_ms"].as_f64().unwrap_or(-1.0);
    let measured = fin["cpu_ms"].as_f64().unwrap_or(-2.0);
    assert!(
        (metered - measured).abs() < 1e-6,
        "metered from the run's measured CPU: {metered} vs {measured}"
    );
    let (_, v) = call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/usage?days=3",
        Some(&admin),
        None,
    )
    .await?;
    assert_eq!(v["days"].as_array().map(Vec::len), Some(1), "{v}");

    // 20 ms left today: the next run's CPU limit is 20 ms, not 1000.
    let today = utc_day(now_ms());
    set_quota(
        &f,
        &f.a,
        Quota {
            cpu_ms_per_day: 1000,
            ..Quota::default()
        },
    )?;
    let used = f.state.store.usage_day(&f.a.id, today)?.cpu_ms;
    f.state.store.add_usage(&f.a.id, today, 980.0 - used, 0.0)?;
    let events = run(&f, &f.a, "for (;;) {}", &[]).await?;
    assert_eq!(error_of(&events)["kind"], "cpu_limit", "{events:?}");
    let said = error_of(&events)["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        said.contains("CPU time limit of 20 ms exceeded")
            && said.contains("20 ms were left of today's CPU quota (1000 ms a day)"),
        "{said}"
    );
    let spent = events
        .last()
        .and_then(|e| e["cpu_ms"].as_f64())
        .unwrap_or(0.0);
    assert!(spent < 200.0, "capped near the 20 ms left, used {spent}");
    // The day is used up: refused before it starts, resetting at midnight.
    let err = f
        .state
        .hub
        .start(StartRun::for_block(
            f.a.clone(),
            block("b1"),
            Value::Null,
            Value::Null,
        ))
        .await
        .err()
        .map(|e| ApiError::from(e).body())
        .unwrap_or_default();
    assert_eq!(err["quota"], "cpu_ms_per_day", "{err}");
    assert_eq!(err["resets_at_ms"], (u64::from(today) + 1) * 86_400_000);
    // The operator (`quire run`) is not held to a workspace's quota: its
    // run starts, with the grants and limits it brings.
    let mut op = StartRun::for_block(f.a.clone(), block("b1"), Value::Null, Value::Null);
    op.block = None;
    op.source = "import { kv } from 'quire'; export default await kv.get('k');".into();
    op.operator = Some(quire_service::OperatorRun {
        grants: quire_host_api::Grants::parse(&["kv:read".to_string()])?,
        limits: quire_engine::Limits::default(),
        filename: Some("op.js".into()),
    });
    let live = f.state.hub.start(op).await.map_err(ApiError::from)?.live();
    live.finished().await;
    let (events, status) = live.snapshot();
    assert_eq!(status, "ok", "{events:?}");
    // The other workspace runs.
    assert!(run(&f, &f.b, "export default 1", &[])
        .await?
        .iter()
        .any(|e| e["type"] == "result"));
    Ok(())
}

fn block(id: &str) -> BlockRecord {
    BlockRecord {
        id: id.into(),
        name: id.into(),
        source: "export default 1".into(),
        lang: "js".into(),
        grants: vec![],
        grants_approved_for: None,
        engine: String::new(),
        updated_ms: 0,
    }
}

#[tokio::test]
async fn per_run_limits_come_from_the_quota() -> anyhow::Result<()> {
    let (f, _, _) = setup()?;
    set_quota(
        &f,
        &f.a,
        Quota {
            cpu_ms_per_run: 50,
            wall_ms_per_run: 300,
            memory_bytes_per_run: 8 << 20,
            output_bytes_per_run: 2048,
            ..Quota::default()
        },
    )?;
    for (source, kind) in [
        ("for (;;) {}", "cpu_limit"),
        ("await new Promise(r => setTimeout(r, 10000))", "wall_limit"),
        (
            "const s = 'x'.repeat(16 << 20); export default s.length",
            "memory_limit",
        ),
        ("console.log('x'.repeat(5000))", "output_limit"),
    ] {
        let events = run(&f, &f.a, source, &[]).await?;
        assert_eq!(error_of(&events)["kind"], kind, "{source}: {events:?}");
        // The same block in the other workspace (default quota) is not cut
        // short by alpha's quota.
        if kind == "output_limit" {
            let other = run(&f, &f.b, source, &[]).await?;
            assert_eq!(error_of(&other), Value::Null, "{other:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn max_concurrent_runs_queues_the_next_run_and_a_queued_run_can_be_cancelled(
) -> anyhow::Result<()> {
    let (f, _, _) = setup()?;
    set_quota(
        &f,
        &f.a,
        Quota {
            max_concurrent_runs: 1,
            max_queued_runs: 1,
            ..Quota::default()
        },
    )?;
    let slow = BlockRecord {
        source: "await new Promise(r => setTimeout(r, 300)); export default 'slow'".into(),
        ..block("slow")
    };
    let first = f
        .state
        .hub
        .start(StartRun::for_block(
            f.a.clone(),
            slow.clone(),
            Value::Null,
            Value::Null,
        ))
        .await?
        .live();
    let second = f
        .state
        .hub
        .start(StartRun::for_block(
            f.a.clone(),
            block("b1"),
            Value::Null,
            Value::Null,
        ))
        .await?
        .live();
    assert!(second.is_queued());
    assert_eq!(second.snapshot().1, "queued");
    // The queue is full: refused, naming the quota.
    let err = f
        .state
        .hub
        .start(StartRun::for_block(
            f.a.clone(),
            block("b1"),
            Value::Null,
            Value::Null,
        ))
        .await
        .err()
        .map(|e| ApiError::from(e).body())
        .unwrap_or_default();
    assert_eq!(err["quota"], "max_queued_runs", "{err}");
    // Beta is not held up by alpha's limit.
    assert!(run(&f, &f.b, "export default 2", &[])
        .await?
        .iter()
        .any(|e| e["type"] == "result"));
    assert!(second.is_queued(), "still waiting for alpha's running run");
    // The queued run starts once the first finishes.
    tokio::time::timeout(Duration::from_secs(30), second.finished()).await?;
    let (events, status) = second.snapshot();
    assert_eq!(status, "ok", "{events:?}");
    assert_eq!(first.snapshot().1, "ok");
    // A queued run that is cancelled ends with the contract's events.
    let third = f
        .state
        .hub
        .start(StartRun::for_block(
            f.a.clone(),
            slow.clone(),
            Value::Null,
            Value::Null,
        ))
        .await?
        .live();
    let fourth = f
        .state
        .hub
        .start(StartRun::for_block(
            f.a.clone(),
            block("b1"),
            Value::Null,
            Value::Null,
        ))
        .await?
        .live();
    assert!(fourth.is_queued());
    fourth.cancel();
    tokio::time::timeout(Duration::from_secs(30), fourth.finished()).await?;
    let (events, _) = fourth.snapshot();
    let types: Vec<_> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["started", "error", "finished"], "{events:?}");
    assert_eq!(error_of(&events)["kind"], "cancelled");
    assert!(third.is_queued() || third.snapshot().1 == "running" || third.snapshot().1 == "ok");
    tokio::time::timeout(Duration::from_secs(30), third.finished()).await?;
    assert_eq!(third.snapshot().1, "ok");
    Ok(())
}

#[tokio::test]
async fn storage_bytes_refuses_growing_writes_but_not_deletes() -> anyhow::Result<()> {
    let (f, _, _) = setup()?;
    let stored = f.state.hub.stored_bytes(&f.a.id)?;
    set_quota(
        &f,
        &f.a,
        Quota {
            storage_bytes: stored + 4000,
            ..Quota::default()
        },
    )?;
    let src = "import { kv } from 'quire';
        await kv.set('small', 'x'.repeat(1000));
        try { await kv.set('big', 'x'.repeat(5000)); console.log('wrote big'); }
        catch (e) { console.log(e.name + ': ' + e.message); }
        await kv.delete('small');
        await kv.set('big', 'x'.repeat(5000));";
    let events = run(&f, &f.a, src, &["kv:read", "kv:write"]).await?;
    let logs: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "log")
        .map(|e| e["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(logs.len(), 1, "{events:?}");
    assert!(
        logs[0].starts_with("QuotaExceeded: kv.set: the workspace's storage quota of"),
        "{logs:?}"
    );
    // Uncaught, it ends the run as quota_exceeded (deletes do not count
    // down until the meter measures again).
    assert_eq!(error_of(&events)["kind"], "quota_exceeded", "{events:?}");
    assert_eq!(
        f.state.store.kv_get(&f.a.id, "small")?,
        None,
        "the delete went through"
    );
    // Beta has room.
    let events = run(
        &f,
        &f.b,
        "import { kv } from 'quire'; await kv.set('big', 'x'.repeat(5000));",
        &["kv:write"],
    )
    .await?;
    assert_eq!(error_of(&events), Value::Null, "{events:?}");
    Ok(())
}

#[tokio::test]
async fn history_bytes_keeps_the_newest_runs_within_the_quota() -> anyhow::Result<()> {
    let (f, _, _) = setup()?;
    set_quota(
        &f,
        &f.a,
        Quota {
            history_bytes: 20_000,
            ..Quota::default()
        },
    )?;
    let b_before = f.state.store.recent_runs(&f.b.id, None, 1000, None)?.len();
    let src = "console.log('x'.repeat(5000)); export default 1";
    for _ in 0..10 {
        run(&f, &f.a, src, &[]).await?;
    }
    run(&f, &f.b, src, &[]).await?;
    // History is written (and pruned) just after a run's last event.
    for _ in 0..500 {
        if f.state.hub.active_count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let kept = f.state.store.recent_runs(&f.a.id, None, 1000, None)?;
    let bytes = f.state.store.history_bytes(&f.a.id)?;
    assert!(bytes <= 20_000, "history is {bytes} bytes");
    assert!(
        (1..10).contains(&kept.len()),
        "{} runs kept of 10",
        kept.len()
    );
    assert!(kept.iter().all(|r| r.status == "ok"));
    let (status, v) = crate::testkit::call(
        &f.state,
        "GET",
        "/api/v1/workspaces/alpha/quota",
        Some(&admin_token(&f)?),
        None,
    )
    .await?;
    assert_eq!(status, axum::http::StatusCode::OK, "{v}");
    assert_eq!(v["usage"]["history_bytes"], bytes);
    assert_eq!(v["quota"]["history_bytes"], 20_000);
    // The other workspace keeps its new run; its fixture run from 1970 is
    // past the default 30 days and went when beta's run finished.
    let beta = f.state.store.recent_runs(&f.b.id, None, 1000, None)?;
    assert_eq!(b_before, 1);
    assert_eq!(beta.len(), 1, "{beta:?}");
    assert_ne!(beta[0].id, f.b_run);
    Ok(())
}

fn admin_token(f: &Fixture) -> anyhow::Result<String> {
    Ok(crate::auth::Auth::mint(
        &f.state.store,
        Some(f.a.id),
        crate::auth::Role::Admin,
        "adm",
    )?
    .1)
}
