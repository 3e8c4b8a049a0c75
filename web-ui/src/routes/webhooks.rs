//! Webhooks: a secret URL per block; a POST runs the block with the body
//! as `ctx.input`, and with `?wait=true` answers with the result.
//!
//! The URL is `/hooks/{id}/{secret}`. Only SHA-256 of the secret is kept,
//! compared in constant time; an unknown id and a wrong secret both answer
//! 404. Each webhook has its own rate bucket.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use quire_storage::{now_ms, WebhookRecord};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{blocking, in_workspace};
use crate::auth::{random_hex, sha256_hex, Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::hub::StartRun;
use crate::AppState;

pub(super) fn api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/workspaces/{ws}/blocks/{block}/webhooks",
            post(create).get(list),
        )
        .route("/workspaces/{ws}/webhooks/{id}", delete(remove))
}

/// The public hook route, outside `/api/v1` and its bearer tokens.
pub(super) fn hook_routes() -> Router<AppState> {
    Router::new().route("/hooks/{id}/{secret}", post(hook))
}

async fn create(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, block)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (rec, secret) = in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        if store.get_block(&w.id, &block)?.is_none() {
            return Err(ApiError::not_found("block", block));
        }
        let secret = random_hex(32)?;
        let rec = WebhookRecord {
            id: random_hex(8)?,
            workspace: w.id,
            block,
            secret_sha256: sha256_hex(secret.as_bytes()),
            created_ms: now_ms(),
        };
        store.put_webhook(&rec)?;
        Ok((rec, secret))
    })
    .await?;
    let path = format!("/hooks/{}/{secret}", rec.id);
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": rec.id, "block": rec.block, "path": path})),
    ))
}

async fn list(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, block)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let hooks = in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        Ok(store.list_webhooks(&w.id, &block)?)
    })
    .await?;
    let list: Vec<Value> = hooks
        .iter()
        .map(|h| json!({"id": h.id, "block": h.block, "created_ms": h.created_ms}))
        .collect();
    Ok(Json(json!({ "webhooks": list })))
}

async fn remove(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        match store.get_webhook(&id)? {
            Some(h) if h.workspace == w.id => {
                store.delete_webhook(&id)?;
                Ok(StatusCode::NO_CONTENT)
            }
            _ => Err(ApiError::not_found("webhook", id)),
        }
    })
    .await
}

#[derive(Deserialize, Default)]
struct HookQuery {
    #[serde(default)]
    wait: Option<String>,
}

async fn hook(
    State(s): State<AppState>,
    Path((id, secret)): Path<(String, String)>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let store = s.store.clone();
    let hid = id.clone();
    let found = blocking(move || {
        let Some(h) = store.get_webhook(&hid).ok().flatten() else {
            return Ok(None);
        };
        let ok = bool::from(
            sha256_hex(secret.as_bytes())
                .as_bytes()
                .ct_eq(h.secret_sha256.as_bytes()),
        );
        if !ok {
            return Ok(None);
        }
        let w = store.workspace(&h.workspace)?;
        let b = store.get_block(&h.workspace, &h.block)?;
        Ok(w.zip(b))
    })
    .await?;
    let (w, block) = found.ok_or_else(|| ApiError::not_found("webhook", &id))?;
    s.auth.take(&format!("hook:{id}"))?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let input = if body.is_empty() {
        Value::Null
    } else if is_json {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::field("body", format!("not valid JSON: {e}")))?
    } else {
        Value::String(String::from_utf8_lossy(&body).into_owned())
    };
    let started = s
        .hub
        .start(StartRun::for_block(
            w,
            block,
            input,
            json!({"kind": "webhook", "webhook": id}),
        ))
        .await?;
    let live = started.live();
    drop(started);
    if !matches!(q.wait.as_deref(), Some("true" | "1")) {
        return Ok((StatusCode::ACCEPTED, Json(json!({"run": live.id}))));
    }
    live.finished().await;
    let (result, error, _) = live.outcome();
    let status = live.status();
    let error = (!error.is_null()).then_some(error);
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        code,
        Json(json!({"run": live.id, "status": status, "result": result, "error": error})),
    ))
}
