//! Run history, unsaved-source runs, cancelling, and the live WebSocket.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::blocks::{check_lang, check_source};
use super::{blocking, in_workspace, Body};
use crate::auth::{Principal, Role};
use crate::config::MAX_HISTORY_PAGE;
use crate::error::{ApiError, ApiResult};
use crate::hub::StartRun;
use crate::live::{self, Outgoing};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{ws}/runs", get(list).post(run_source))
        .route("/workspaces/{ws}/runs/{run}", get(one))
        .route("/workspaces/{ws}/runs/{run}/cancel", post(cancel))
        .route("/workspaces/{ws}/runs/{run}/apply", post(apply))
        .route("/workspaces/{ws}/runs/{run}/discard", post(discard))
        .route("/workspaces/{ws}/live", get(live_socket))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    block: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// A run id: list runs older than it (the next page).
    #[serde(default)]
    before: Option<String>,
}

/// How a run treats its writes: `run` commits them, `dry_run` stages them
/// for a preview (`POST …/runs/{run}/apply` commits them later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Writes commit as the run makes them (the default).
    #[default]
    Run,
    /// Writes are staged; the run ends with a `diff` event.
    DryRun,
}

impl Mode {
    /// Whether this is a dry-run.
    pub fn is_dry_run(self) -> bool {
        self == Mode::DryRun
    }
}

/// A run's mode as history records it.
fn mode_of(request: &Value) -> &'static str {
    if request["mode"] == "dry_run" {
        "dry_run"
    } else {
        "run"
    }
}

/// A run as listings show it; a dry-run's with its preview's state.
fn summary(
    store: &quire_storage::Store,
    ws: &quire_storage::WorkspaceId,
    r: &quire_storage::RunRecord,
) -> ApiResult<Value> {
    let mode = mode_of(&r.request);
    let mut v = json!({
        "run": r.id, "status": r.status, "block": r.block, "trigger": r.trigger,
        "started_ms": r.started_ms, "cpu_ms": r.cpu_ms, "wall_ms": r.wall_ms,
        "peak_memory_bytes": r.peak_memory_bytes,
        "error": r.error, "provenance": r.provenance, "mode": mode,
    });
    if mode == "dry_run" {
        v["preview"] = store
            .get_diff_head(ws, &r.id)?
            .map_or(Value::Null, |d| quire_service::preview::summary(&d));
    }
    Ok(v)
}

async fn list(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::field("query", e.body_text()))?;
    let limit = q.limit.unwrap_or(s.config.history_page);
    if limit == 0 || limit > MAX_HISTORY_PAGE {
        return Err(ApiError::field(
            "limit",
            format!("must be 1-{MAX_HISTORY_PAGE}"),
        ));
    }
    let runs = in_workspace(&s, who, ws, Role::Viewer, move |store, w| {
        let before = match &q.before {
            Some(id) => Some(
                store
                    .get_run(&w.id, id)?
                    .ok_or_else(|| ApiError::field("before", format!("no run '{id}'")))?,
            ),
            None => None,
        };
        let runs = store.recent_runs(&w.id, q.block.as_deref(), limit, before.as_ref())?;
        let next = (runs.len() == limit).then(|| runs.last().map(|r| r.id.clone()));
        let shown = runs
            .iter()
            .map(|r| summary(store, &w.id, r))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok((shown, next))
    })
    .await?;
    let (runs, next) = runs;
    Ok(Json(json!({
        "runs": runs,
        "next_before": next.flatten(),
    })))
}

/// Which of a run's events `GET .../runs/{run}` returns.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// The first event's seq (default 0): a previous answer's `next_seq`.
    #[serde(default)]
    from_seq: u64,
}

async fn one(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, run)): Path<(String, String)>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<RunAnswer>> {
    let Query(q) = q.map_err(|e| ApiError::field("query", e.body_text()))?;
    let from = usize::try_from(q.from_seq).map_err(|_| ApiError::field("from_seq", "too large"))?;
    let page_bytes = s.config.run_page_bytes;
    let store = s.store.clone();
    let hub = s.hub.clone();
    blocking(move || {
        let w = who.enter(&store, &ws, Role::Viewer)?;
        // A live run answers from the hub (events so far); a finished one
        // from history. The hub keeps a run until its history is written.
        if let Some(live) = hub.get(&w.id, &run) {
            // Status first: once it is final, the page read after it
            // holds every event.
            let status = live.status();
            let (_, error, fin) = live.outcome();
            let (lines, next) = live.page(from, page_bytes)?;
            // Between `finished` and the history write, report its usage.
            let usage = |k: &str| {
                if fin.is_null() {
                    json!(0)
                } else {
                    fin[k].clone()
                }
            };
            let head = json!({
                "run": live.id, "status": status, "block": live.block,
                "trigger": live.trigger, "started_ms": live.started_ms,
                "cpu_ms": usage("cpu_ms"), "wall_ms": usage("wall_ms"),
                "peak_memory_bytes": usage("peak_memory_bytes"),
                "error": error, "request": live.request,
                "provenance": live.provenance(), "mode": mode_of(&live.request),
            });
            let mut head = head;
            if mode_of(&live.request) == "dry_run" {
                // Filed before `finished` went out.
                head["preview"] = store
                    .get_diff_head(&w.id, &live.id)?
                    .map_or(Value::Null, |d| quire_service::preview::summary(&d));
            }
            return Ok(Json(RunAnswer::new(head, lines.iter().map(|l| &**l), next)));
        }
        let r = store
            .get_run_head(&w.id, &run)?
            .ok_or_else(|| ApiError::not_found("run", &run))?;
        let page = store.run_events(&w.id, &run, from as u64, page_bytes)?;
        let mut head = summary(&store, &w.id, &r)?;
        head["request"] = r.request;
        Ok(Json(RunAnswer::new(
            head,
            page.lines.iter().map(String::as_str),
            page.next,
        )))
    })
    .await
}

/// A run and a page of its events, sent as they are stored (parsed only
/// to check them, never built into a tree: a page is megabytes).
#[derive(serde::Serialize)]
struct RunAnswer {
    #[serde(flatten)]
    head: Value,
    events: Vec<Box<serde_json::value::RawValue>>,
    next_seq: Option<u64>,
}

impl RunAnswer {
    fn new<'a>(head: Value, lines: impl Iterator<Item = &'a str>, next_seq: Option<u64>) -> Self {
        let events = lines.filter_map(raw_event).collect();
        Self {
            head,
            events,
            next_seq,
        }
    }
}

/// One stored event line as raw JSON; one nested past the parser's
/// default limit (stored before the depth limit) is parsed without it.
fn raw_event(line: &str) -> Option<Box<serde_json::value::RawValue>> {
    if let Ok(raw) = serde_json::value::RawValue::from_string(line.to_string()) {
        return Some(raw);
    }
    let mut de = serde_json::Deserializer::from_str(line);
    de.disable_recursion_limit();
    let v = <Value as serde::Deserialize>::deserialize(&mut de).ok()?;
    serde_json::value::to_raw_value(&v).ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceRun {
    source: String,
    lang: String,
    #[serde(default)]
    input: Value,
    /// Run with this saved block's grants, filed under it.
    #[serde(default)]
    block: Option<String>,
    /// `quickjs` or `v8` (default: the block's, else QuickJS).
    #[serde(default)]
    engine: Option<String>,
    /// The document the run is in (its `results.get` reads it).
    #[serde(default)]
    doc: Option<String>,
    /// `run` (default) or `dry_run`.
    #[serde(default)]
    mode: Mode,
}

async fn run_source(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    Body(req): Body<SourceRun>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let lang = check_lang(&req.lang)?;
    check_source(&req.source)?;
    let engine = req
        .engine
        .as_deref()
        .map(|e| crate::routes::blocks::check_engine("engine", e))
        .transpose()?;
    let store = s.store.clone();
    let block_id = req.block.clone();
    let (w, block, admin_caller) = blocking(move || {
        let w = who.enter(&store, &ws, Role::Editor)?;
        let admin_caller = who.check(&w, Role::Admin, "").is_ok();
        let block = match &block_id {
            Some(b) => Some(
                store
                    .get_block(&w.id, b)?
                    .ok_or_else(|| ApiError::not_found("block", b))?,
            ),
            None => None,
        };
        Ok((w, block, admin_caller))
    })
    .await?;
    let started = s
        .hub
        .start(StartRun {
            workspace: w,
            block,
            source: req.source,
            lang,
            input: req.input,
            trigger: json!({"kind": "manual", "via": "http", "unsaved": true}),
            run_id: None,
            engine,
            admin_caller,
            agent: false,
            doc: req.doc,
            dry_run: req.mode.is_dry_run(),
            operator: None,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": started.id}))))
}

async fn cancel(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, run)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let store = s.store.clone();
    let w = blocking(move || who.enter(&store, &ws, Role::Editor)).await?;
    match s.hub.attach(w.id, &run).await? {
        // Ended, but still held live while its history is written.
        Some(live) if !matches!(live.status().as_str(), "running" | "queued") => Err(
            ApiError::Conflict(format!("run '{run}' already finished ({})", live.status())),
        ),
        Some(live) => {
            live.cancel();
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"run": run, "cancelling": true})),
            ))
        }
        None => {
            let store = s.store.clone();
            let id = run.clone();
            let stored = blocking(move || Ok(store.get_run(&w.id, &id)?)).await?;
            match stored {
                Some(r) => Err(ApiError::Conflict(format!(
                    "run '{run}' already finished ({})",
                    r.status
                ))),
                None => Err(ApiError::not_found("run", run)),
            }
        }
    }
}

/// The live protocol's WebSocket subprotocol name.
pub(crate) const LIVE_PROTOCOL: &str = "quire.v1";

async fn live_socket(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let store = s.store.clone();
    let p = who.clone();
    let w = blocking(move || p.enter(&store, &ws, Role::Viewer)).await?;
    let max = s.config.ws_max_message_bytes;
    // The subprotocol a browser offers with its token is answered with
    // `quire.v1` (a browser fails a connection whose answer it did not offer).
    Ok(upgrade
        .protocols([LIVE_PROTOCOL])
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connection(s, who, w, socket)))
}

async fn connection(s: AppState, who: Principal, w: quire_storage::Workspace, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let sink = sink.with(|o: Outgoing| async move {
        Ok::<_, axum::Error>(match o {
            Outgoing::Text(t) => Message::Text(t.as_ref().into()),
            Outgoing::Close(code, reason) => Message::Close(Some(axum::extract::ws::CloseFrame {
                code,
                reason: reason.into(),
            })),
        })
    });
    let incoming = stream
        .take_while(|m| std::future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(|m| async move {
            match m {
                Ok(Message::Text(t)) => Some(t.as_str().to_string()),
                Ok(Message::Binary(_)) => {
                    Some("{\"op\":\"binary messages are not accepted\"}".into())
                }
                _ => None,
            }
        });
    let span = tracing::info_span!("live", workspace = %w.id, token = %who.token_id);
    tracing::Instrument::instrument(
        live::serve(s, who, w, Box::pin(sink), Box::pin(incoming)),
        span,
    )
    .await;
}

/// What `POST …/runs/{run}/apply` names: the diff as its event showed it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    /// The `digest` of the run's `diff` event.
    digest: String,
}

/// Commit a dry-run's diff (editor): all of it in one transaction, only
/// if no record it touches changed since the dry-run.
async fn apply(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, run)): Path<(String, String)>,
    Body(body): Body<ApplyBody>,
) -> ApiResult<Json<Value>> {
    if body.digest.len() > 128 {
        return Err(ApiError::field("digest", "a digest is 64 hex characters"));
    }
    let w = in_workspace(&s, who, ws, Role::Editor, |_, w| Ok(w.clone())).await?;
    let applied = s.hub.apply_preview(w.id, run.clone(), body.digest).await?;
    Ok(Json(json!({"run": run, "applied": applied})))
}

/// Discard a dry-run's diff (editor): it can no longer be applied.
async fn discard(
    State(s): State<AppState>,
    who: Principal,
    Path((ws, run)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let w = in_workspace(&s, who, ws, Role::Editor, |_, w| Ok(w.clone())).await?;
    s.hub.discard_preview(w.id, run.clone()).await?;
    Ok(Json(json!({"run": run, "discarded": true})))
}
