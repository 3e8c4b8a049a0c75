//! Workspaces, tokens and the grant vocabulary.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, in_workspace, Body};
use crate::auth::{Auth, Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces", get(list).post(create))
        .route("/workspaces/{ws}", get(one))
        .route("/workspaces/{ws}/settings", axum::routing::put(settings))
        .route(
            "/workspaces/{ws}/agent-grants",
            get(agent_grants).put(set_agent_grants),
        )
        .route(
            "/workspaces/{ws}/tokens",
            get(list_tokens).post(create_token),
        )
        .route("/workspaces/{ws}/tokens/{id}", delete(delete_token))
        .route("/grants", get(grant_vocabulary))
        .route("/me", get(me))
}

async fn list(State(s): State<AppState>, who: Principal) -> ApiResult<Json<Value>> {
    let store = s.store.clone();
    let all = blocking(move || Ok(store.list_workspaces()?)).await?;
    let visible: Vec<_> = all
        .into_iter()
        .filter(|w| who.workspace.is_none_or(|own| own == w.id))
        .collect();
    Ok(Json(json!({ "workspaces": visible })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWorkspace {
    name: String,
}

async fn create(
    State(s): State<AppState>,
    who: Principal,
    Body(req): Body<NewWorkspace>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !who.is_server_admin() {
        return Err(ApiError::ServerAdminOnly("create workspaces"));
    }
    let store = s.store.clone();
    let (ws, token) = blocking(move || {
        let ws = store.create_workspace(&req.name).map_err(|e| match e {
            quire_storage::StorageError::Invalid { reason, .. } => ApiError::field("name", reason),
            other => other.into(),
        })?;
        let (_, token) = Auth::mint(
            &store,
            Some(ws.id),
            Role::Admin,
            "created with the workspace",
        )?;
        Ok((ws, token))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": ws.id, "name": ws.name, "admin_token": token})),
    ))
}

async fn one(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = s.store.clone();
    let w = blocking(move || who.enter(&store, &ws, Role::Viewer).map(|w| (w, who.role))).await?;
    Ok(Json(
        json!({"id": w.0.id, "name": w.0.name, "created_ms": w.0.created_ms, "role": w.1, "default_engine": engine_name(&w.0.default_engine)}),
    ))
}

fn engine_name(stored: &str) -> &'static str {
    crate::hub::block_engine(stored).as_str()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `quickjs` or `v8`: the engine of blocks that do not choose one.
    default_engine: String,
}

/// `PUT /workspaces/{ws}/settings {default_engine}` (admin).
async fn settings(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    Body(req): Body<Settings>,
) -> ApiResult<Json<Value>> {
    crate::routes::blocks::check_engine("default_engine", &req.default_engine)?;
    let w = in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        Ok(store.set_default_engine(&w.id, &req.default_engine)?)
    })
    .await?;
    Ok(Json(
        json!({"name": w.name, "default_engine": engine_name(&w.default_engine)}),
    ))
}

/// The most agent grants a workspace holds.
const MAX_AGENT_GRANTS: usize = 64;

/// `GET /workspaces/{ws}/agent-grants` (viewer): what code an AI agent
/// runs here may do.
async fn agent_grants(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let w = in_workspace(&s, who, ws, Role::Viewer, |_, w| Ok(w.clone())).await?;
    Ok(Json(json!({"grants": w.agent_grants})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentGrants {
    grants: Vec<String>,
}

/// `PUT /workspaces/{ws}/agent-grants {grants}` (admin): the grants of
/// agent-written code (MCP `run_code`), read-only ones only.
async fn set_agent_grants(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    Body(req): Body<AgentGrants>,
) -> ApiResult<Json<Value>> {
    if req.grants.len() > MAX_AGENT_GRANTS {
        return Err(ApiError::field(
            "grants",
            format!(
                "{} grants; the limit is {MAX_AGENT_GRANTS}",
                req.grants.len()
            ),
        ));
    }
    let grants = quire_host_api::check_agent_grants(&req.grants)
        .map_err(|e| ApiError::field("grants", e))?
        .to_strings();
    let w = in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        Ok(store.set_agent_grants(&w.id, &grants)?)
    })
    .await?;
    Ok(Json(json!({"grants": w.agent_grants})))
}

async fn me(who: Principal) -> Json<Value> {
    Json(
        json!({"token": who.token_id, "workspace": who.workspace, "role": who.role, "server_admin": who.is_server_admin()}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    role: String,
    #[serde(default)]
    label: String,
}

async fn create_token(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    Body(req): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let role = Role::parse(&req.role, "role")?;
    if req.label.len() > 200 {
        return Err(ApiError::field("label", "at most 200 bytes"));
    }
    let (rec, token) = in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        Auth::mint(store, Some(w.id), role, &req.label)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": rec.id, "role": rec.role, "label": rec.label, "token": token})),
    ))
}

async fn list_tokens(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let tokens = in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        Ok(store.list_tokens(Some(&w.id))?)
    })
    .await?;
    let list: Vec<Value> = tokens
        .into_iter()
        .map(|t| json!({"id": t.id, "role": t.role, "label": t.label, "created_ms": t.created_ms}))
        .collect();
    Ok(Json(json!({ "tokens": list })))
}

async fn delete_token(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        match store.get_token(&id)? {
            Some(t) if t.workspace == Some(w.id) => {
                store.delete_token(&id)?;
                Ok(StatusCode::NO_CONTENT)
            }
            _ => Err(ApiError::not_found("token", id)),
        }
    })
    .await
}

/// Every grant form, with what it allows in plain words.
async fn grant_vocabulary(_who: Principal) -> Json<Value> {
    Json(json!({"grants": [
        {"grant": "doc:read", "allows": "Read every document of the workspace (list and get)."},
        {"grant": "doc:write", "allows": "Change documents of the workspace (titles, properties, bodies)."},
        {"grant": "db:read:<collection>", "allows": "Query the rows of one database collection; db:read:* allows every collection."},
        {"grant": "db:write:<collection>", "allows": "Insert, update and delete rows of one collection; db:write:* allows every collection."},
        {"grant": "kv:read", "allows": "Read the workspace's key-value store."},
        {"grant": "kv:write", "allows": "Write and delete keys in the workspace's key-value store."},
        {"grant": "secret:<NAME>", "allows": "Read the secret NAME, or send it in fetch headers to the hosts it is bound to."},
        {"grant": "net:<host>[:port]", "allows": "fetch() from this host (any port, or only the one given). Private and loopback addresses need the exact host and port."}
    ]}))
}
