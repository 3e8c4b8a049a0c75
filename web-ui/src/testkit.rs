//! Test fixtures shared by the crate's tests.

use std::sync::Arc;

use quire_engine::{Engine, EngineConfig};
use quire_host_api::{HostApi, HostConfig};
use quire_storage::{BlockRecord, Document, Store, Workspace};
use serde_json::{json, Value};

use axum::body::Body as AxBody;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{app, AppState, ServerConfig};

pub(crate) struct Fixture {
    pub(crate) state: AppState,
    pub(crate) a: Workspace,
    pub(crate) b: Workspace,
    pub(crate) b_run: String,
}

pub(crate) fn fixture(config: ServerConfig) -> anyhow::Result<Fixture> {
    let store = Store::memory()?;
    let a = store.create_workspace("alpha")?;
    let b = store.create_workspace("beta")?;
    for ws in [&a, &b] {
        store.put_block(
            &ws.id,
            BlockRecord {
                id: "b1".into(),
                name: "one".into(),
                source: "export default 1".into(),
                lang: "js".into(),
                grants: vec![],
                grants_approved_for: None,
                engine: String::new(),
                updated_ms: 0,
            },
        )?;
        store.put_doc(
            &ws.id,
            Document {
                id: "d1".into(),
                title: "doc".into(),
                properties: Default::default(),
                blocks: vec![],
                updated_ms: 0,
            },
        )?;
    }
    let b_run = store.new_id()?;
    store.put_run(
        &b.id,
        &quire_storage::RunRecord {
            id: b_run.clone(),
            block: Some("b1".into()),
            trigger: Value::Null,
            request: Value::Null,
            status: "ok".into(),
            events: vec![json!({"type": "log", "text": "beta's secret output"})],
            error: serde_json::Value::Null,
            cpu_ms: 0.0,
            wall_ms: 0.0,
            peak_memory_bytes: 0,
            started_ms: 1,
            provenance: serde_json::Value::Null,
        },
    )?;
    let engine = Engine::new(EngineConfig {
        worker_threads: 1,
        ..EngineConfig::default()
    })?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let state = AppState::new(store, Arc::new(engine), api, config);
    Ok(Fixture { state, a, b, b_run })
}

/// Raise workspace `ws`'s quota for runs with megabytes of output (8 MiB
/// of output, 10 s of CPU, 20 s of wall clock).
pub(crate) fn allow_long_runs(store: &Store, ws: &Workspace) -> anyhow::Result<()> {
    let q = quire_storage::Quota {
        output_bytes_per_run: 8 * 1024 * 1024,
        cpu_ms_per_run: 10_000,
        wall_ms_per_run: 20_000,
        ..quire_storage::Quota::default()
    };
    Ok(store.put_quota(&ws.id, &q)?)
}

/// One request through the router: its status and JSON body (`null` if
/// not JSON).
pub(crate) async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(AxBody::from(b.to_string()))?,
        None => req.body(AxBody::empty())?,
    };
    let resp = app(state.clone()).oneshot(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, v))
}
