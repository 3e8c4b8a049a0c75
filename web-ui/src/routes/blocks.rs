//! Stored blocks: source, language, grants; starting their runs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use quire_engine::Lang;
use quire_host_api::Grants;
use quire_storage::{BlockRecord, MAX_NAME_BYTES};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{in_workspace, Body};
use crate::approval;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::hub::StartRun;
use crate::AppState;

/// Longest block source accepted, in bytes.
pub(crate) const MAX_SOURCE_BYTES: usize = 512 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{ws}/blocks", get(list).post(create))
        .route(
            "/workspaces/{ws}/blocks/{block}",
            get(one).put(update).delete(remove),
        )
        .route("/workspaces/{ws}/blocks/{block}/grants", put(set_grants))
        .route("/workspaces/{ws}/blocks/{block}/runs", post(run_block))
}

pub(crate) fn check_lang(lang: &str) -> ApiResult<Lang> {
    match lang {
        "js" => Ok(Lang::Js),
        "ts" => Ok(Lang::Ts),
        other => Err(ApiError::field(
            "lang",
            format!("'{other}' is not a language; use \"js\" or \"ts\""),
        )),
    }
}

/// `engine` parsed, or a 400 naming `field`.
pub(crate) fn check_engine(field: &str, engine: &str) -> ApiResult<quire_engine::EngineKind> {
    quire_engine::EngineKind::parse(engine).ok_or_else(|| {
        ApiError::field(
            field,
            format!("'{engine}' is not an engine; use \"quickjs\" or \"v8\""),
        )
    })
}

pub(crate) fn check_source(source: &str) -> ApiResult<()> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(ApiError::field(
            "source",
            format!(
                "it is {} bytes; the limit is {MAX_SOURCE_BYTES} bytes",
                source.len()
            ),
        ));
    }
    Ok(())
}

fn check_grants(grants: &[String]) -> ApiResult<Vec<String>> {
    for (i, g) in grants.iter().enumerate() {
        Grants::parse(std::slice::from_ref(g))
            .map_err(|e| ApiError::field(format!("grants[{i}]"), e.to_string()))?;
    }
    Ok(Grants::parse(grants)
        .map_err(|e| ApiError::field("grants", e.to_string()))?
        .to_strings())
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.len() > 200 {
        return Err(ApiError::field("name", "at most 200 bytes"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBlock {
    source: String,
    lang: String,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    id: Option<String>,
    /// `quickjs` (default) or `v8`.
    #[serde(default)]
    engine: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    Body(req): Body<NewBlock>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_lang(&req.lang)?;
    check_source(&req.source)?;
    check_name(&req.name)?;
    // Empty: follow the workspace's default engine.
    if let Some(e) = req.engine.as_deref().filter(|e| !e.is_empty()) {
        check_engine("engine", e)?;
    }
    let grants = check_grants(&req.grants)?;
    if let Some(id) = &req.id {
        if id.is_empty() || id.len() > MAX_NAME_BYTES || id.contains('/') {
            return Err(ApiError::field(
                "id",
                format!("1-{MAX_NAME_BYTES} bytes without '/'"),
            ));
        }
    }
    let b = in_workspace(&s, who.clone(), ws, Role::Editor, move |store, w| {
        // Grants are an admin's decision, also on a new block.
        if !grants.is_empty() {
            who.check_part(w, Role::Admin, "creating a block with grants")?;
        }
        let rec = BlockRecord {
            id: req.id.clone().unwrap_or_default(),
            name: req.name,
            source: req.source,
            lang: req.lang,
            grants,
            grants_approved_for: None,
            engine: req.engine.unwrap_or_default(),
            updated_ms: 0,
        };
        // A new block must not replace an existing one.
        let expect = if req.id.is_some() { Some(0) } else { None };
        Ok(store.put_block_if(&w.id, rec, expect)?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": b.id, "updated_ms": b.updated_ms})),
    ))
}

async fn list(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
) -> ApiResult<Json<Value>> {
    let blocks = in_workspace(&s, who, ws, Role::Viewer, move |store, w| {
        Ok(store
            .list_blocks(&w.id)?
            .iter()
            .map(approval::shown)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "blocks": blocks })))
}

async fn one(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, block)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    in_workspace(&s, who, ws, Role::Viewer, move |store, w| {
        store
            .get_block(&w.id, &block)?
            .map(|b| Json(approval::shown(&b)))
            .ok_or_else(|| ApiError::not_found("block", block))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockEdit {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// `quickjs` or `v8`.
    #[serde(default)]
    engine: Option<String>,
    /// The `updated_ms` the edit is based on; a newer stored version
    /// answers 409 instead of overwriting someone else's save.
    #[serde(default)]
    base_updated_ms: Option<u64>,
}

async fn update(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, block)): Path<(String, String)>,
    Body(req): Body<BlockEdit>,
) -> ApiResult<Json<Value>> {
    if let Some(l) = &req.lang {
        check_lang(l)?;
    }
    if let Some(src) = &req.source {
        check_source(src)?;
    }
    if let Some(n) = &req.name {
        check_name(n)?;
    }
    // Empty: follow the workspace's default engine.
    if let Some(e) = req.engine.as_deref().filter(|e| !e.is_empty()) {
        check_engine("engine", e)?;
    }
    let b = in_workspace(&s, who.clone(), ws, Role::Editor, move |store, w| {
        let mut b = store
            .get_block(&w.id, &block)?
            .ok_or_else(|| ApiError::not_found("block", &block))?;
        let expect = req.base_updated_ms.unwrap_or(b.updated_ms);
        let changes_code = req.source.as_ref().is_some_and(|s| *s != b.source)
            || req.lang.as_ref().is_some_and(|l| *l != b.lang);
        if changes_code {
            // An admin's save approves the new source; anyone else's
            // leaves the grants with the source they were approved for.
            if who.check(w, Role::Admin, "").is_ok() {
                approval::approve(&mut b);
            } else {
                approval::pin(&mut b);
            }
        }
        if let Some(src) = req.source {
            b.source = src;
        }
        if let Some(l) = req.lang {
            b.lang = l;
        }
        if let Some(n) = req.name {
            b.name = n;
        }
        if let Some(e) = req.engine {
            b.engine = e;
        }
        Ok(store.put_block_if(&w.id, b, Some(expect))?)
    })
    .await?;
    Ok(Json(json!({
        "id": b.id, "updated_ms": b.updated_ms,
        "grants_pending": approval::grants_pending(&b),
        "input_schema": approval::input_schema(&b),
    })))
}

async fn remove(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, block)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        if store.delete_block(&w.id, &block)? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::not_found("block", block))
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsEdit {
    grants: Vec<String>,
    #[serde(default)]
    base_updated_ms: Option<u64>,
}

/// Changing what a saved block may touch is an admin's decision.
async fn set_grants(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, block)): Path<(String, String)>,
    Body(req): Body<GrantsEdit>,
) -> ApiResult<Json<Value>> {
    let grants = check_grants(&req.grants)?;
    let b = in_workspace(&s, who, ws, Role::Admin, move |store, w| {
        let mut b = store
            .get_block(&w.id, &block)?
            .ok_or_else(|| ApiError::not_found("block", &block))?;
        let expect = req.base_updated_ms.unwrap_or(b.updated_ms);
        b.grants = grants;
        // Setting grants approves them for the source as it is now.
        approval::approve(&mut b);
        Ok(store.put_block_if(&w.id, b, Some(expect))?)
    })
    .await?;
    Ok(Json(json!({
        "id": b.id, "grants": b.grants, "updated_ms": b.updated_ms,
        "grants_pending": false,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    input: Value,
    /// The document the run is in (default: the first holding the block).
    #[serde(default)]
    doc: Option<String>,
    /// `run` (default) or `dry_run`.
    #[serde(default)]
    mode: super::runs::Mode,
}

async fn run_block(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, block)): Path<(String, String)>,
    raw: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let RunBody { input, doc, mode } = super::optional_json::<RunBody>(&raw)?.unwrap_or_default();
    let (w, b) = in_workspace(&s, who, ws, Role::Editor, move |store, w| {
        let b = store
            .get_block(&w.id, &block)?
            .ok_or_else(|| ApiError::not_found("block", &block))?;
        Ok((w.clone(), b))
    })
    .await?;
    let started = s
        .hub
        .start(StartRun {
            doc,
            dry_run: mode.is_dry_run(),
            ..StartRun::for_block(w, b, input, json!({"kind": "manual", "via": "http"}))
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": started.id}))))
}
