//! The tools: their schemas, and what each does with its arguments.

use std::sync::Arc;

use quire_engine::{EngineKind, Lang};
use quire_service::{blocking, StartRun};
use quire_storage::{BlockRecord, DocBlock};
use rmcp::model::{CallToolResponse, JsonObject, Tool};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{json, Value};

use crate::{internal, result, Caller, McpServer};

/// The longest source `run_code` takes, in bytes (as the HTTP API).
pub const MAX_SOURCE_BYTES: usize = 512 * 1024;

/// The prefix of a block's tool name: `block_<id>`.
const BLOCK_TOOL: &str = "block_";

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

/// What a run's tool result holds (`run_code` and every block's tool).
fn run_output_schema() -> Arc<JsonObject> {
    schema(json!({
        "type": "object",
        "properties": {
            "run": {"type": "string", "description": "the run's id (read_run shows its events)"},
            "status": {"type": "string", "enum": ["ok", "error"]},
            "result": {"description": "the block's result (its default export), JSON"},
            "logs": {"type": "array", "items": {"type": "object", "properties": {
                "level": {"type": "string"}, "text": {"type": "string"}}}},
            "logs_dropped": {"type": "integer"},
            "displays": {"type": "array", "description": "display() outputs in their final state",
                "items": {"type": "object", "properties": {
                    "display_id": {"type": "string"}, "mime": {"type": "string"}, "data": {}}}},
            "error": {"description": "why the run failed, or null", "anyOf": [
                {"type": "null"},
                {"type": "object", "properties": {
                    "kind": {"type": "string"}, "message": {"type": "string"},
                    "line": {"type": ["integer", "null"]}, "column": {"type": ["integer", "null"]}}}]},
            "usage": {"type": "object", "properties": {
                "cpu_ms": {"type": "number"}, "wall_ms": {"type": "number"},
                "peak_memory_bytes": {"type": "integer"}}},
            "diff": {"type": "object", "description": "a dry-run's staged changes: nothing was \
                written; an editor applies them with POST /api/v1/workspaces/{ws}/runs/{run}/apply \
                {digest}", "properties": {
                "changes": {"type": "array", "items": {"type": "object"}},
                "digest": {"type": "string"}, "expires_ms": {"type": "integer"}}},
        },
        "required": ["run", "status", "result", "logs", "displays", "error", "usage"],
    }))
}

/// The tools every workspace has, in order.
pub(crate) fn fixed() -> Vec<Tool> {
    vec![
        Tool::new(
            "run_code",
            "Run JavaScript or TypeScript (an ES module; its default export, or what its default \
             function returns, is the result) in a fresh isolate under the workspace's limits, with \
             the grants the workspace's admin set for agent code (`import {doc, db, kv} from \"quire\"`; \
             none unless set). By default a dry-run: its writes are staged, its own reads see them, and \
             the result's `diff` lists every change (before and after) for a person to apply; nothing \
             is written. mode \"run\" runs with the read grants only. Logs and displays stream as progress.",
            schema(json!({
                "type": "object",
                "properties": {
                    "source": {"type": "string", "description": "the module's source"},
                    "lang": {"type": "string", "enum": ["js", "ts"], "default": "js"},
                    "input": {"description": "ctx.input for a default-exported function"},
                    "engine": {"type": "string", "enum": ["quickjs", "v8"]},
                    "mode": {"type": "string", "enum": ["dry_run", "run"], "default": "dry_run",
                        "description": "dry_run stages writes as a diff; run has read grants only"},
                },
                "required": ["source"],
                "additionalProperties": false,
            })),
        )
        .with_raw_output_schema(run_output_schema()),
        Tool::new(
            "list_blocks",
            "The workspace's stored code blocks: id, name, language, grants, engine and declared input.",
            schema(json!({"type": "object", "properties": {}, "additionalProperties": false})),
        ),
        Tool::new(
            "list_documents",
            "The workspace's documents: id, title and the blocks each holds, in order.",
            schema(json!({"type": "object", "properties": {}, "additionalProperties": false})),
        ),
        Tool::new(
            "list_runs",
            "Recent runs of the workspace, or of one block, newest first.",
            schema(json!({
                "type": "object",
                "properties": {
                    "block": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
                },
                "additionalProperties": false,
            })),
        ),
        Tool::new(
            "read_run",
            "One run: its status, trigger, error, provenance and events from from_seq (about 256 KiB \
             of them; next_seq asks for more).",
            schema(json!({
                "type": "object",
                "properties": {
                    "run": {"type": "string"},
                    "from_seq": {"type": "integer", "minimum": 0, "default": 0},
                },
                "required": ["run"],
                "additionalProperties": false,
            })),
        ),
    ]
}

/// One tool per block with a declared input schema, by block id (ids
/// that do not fit a tool name are left out).
pub(crate) fn for_blocks(blocks: &[BlockRecord]) -> Vec<Tool> {
    let mut blocks: Vec<&BlockRecord> = blocks.iter().collect();
    blocks.sort_by(|a, b| a.id.cmp(&b.id));
    let mut out = Vec::new();
    for b in blocks {
        let Value::Object(input) = quire_service::approval::input_schema(b) else {
            continue;
        };
        if !object_schema(&input) {
            continue;
        }
        let name = format!("{BLOCK_TOOL}{}", b.id);
        if !tool_name_ok(&name) {
            continue;
        }
        let described = input
            .get("description")
            .and_then(Value::as_str)
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        let grants = if b.grants.is_empty() {
            "no grants".to_string()
        } else {
            format!("grants {}", b.grants.join(", "))
        };
        let what = format!(
            "Run the stored block '{}'{described} ({grants}); the arguments are its ctx.input.",
            if b.name.is_empty() { &b.id } else { &b.name }
        );
        out.push(
            Tool::new(name, what, Arc::new(input)).with_raw_output_schema(run_output_schema()),
        );
    }
    out
}

/// Whether a declared input is a schema MCP clients take as a tool's
/// input: `type: "object"`, with `properties` (if any) an object of
/// objects and `required` (if any) a list of names. (One that is not
/// would make a client's whole tool list fail.)
fn object_schema(s: &JsonObject) -> bool {
    let props_ok = s.get("properties").is_none_or(|p| {
        p.as_object()
            .is_some_and(|o| o.values().all(Value::is_object))
    });
    let required_ok = s
        .get("required")
        .is_none_or(|r| r.as_array().is_some_and(|a| a.iter().all(Value::is_string)));
    s.get("type") == Some(&json!("object")) && props_ok && required_ok
}

/// MCP tool names: 1 to 128 of `A-Z a-z 0-9 _ - .`.
fn tool_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The block a tool name runs, if it names one.
pub(crate) fn block_of_tool(name: &str) -> Option<&str> {
    name.strip_prefix(BLOCK_TOOL).filter(|id| !id.is_empty())
}

/// A store failure: the caller's fault when what it named is invalid (a
/// malformed run id), the server's otherwise.
fn store_error(e: quire_service::ServiceError) -> McpError {
    match e {
        quire_service::ServiceError::Storage(quire_storage::StorageError::Invalid { .. }) => {
            bad(e.to_string())
        }
        e => internal(e),
    }
}

fn bad(message: impl Into<String>) -> McpError {
    McpError::invalid_params(message.into(), None)
}

fn string_arg<'a>(args: &'a Value, key: &str) -> Result<Option<&'a str>, McpError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("`{key}` must be a string"))),
    }
}

/// Start `req` and follow it to its end.
async fn run(
    server: &McpServer,
    req: StartRun,
    ctx: RequestContext<RoleServer>,
) -> Result<CallToolResponse, McpError> {
    let started = match server.hub.start(req).await {
        Ok(s) => s,
        // Refused (a quota, a bad input): the agent reads why, in the
        // output schema's shape.
        Err(e) => {
            let refused = json!({
                "run": "", "status": "error", "result": null, "logs": [], "displays": [],
                "error": {"kind": "refused", "message": e.to_string(), "line": null, "column": null},
                "usage": {},
            });
            return Ok(result(refused, true));
        }
    };
    let live = started.live();
    drop(started);
    let (structured, failed) = crate::output::follow(live, &ctx).await.finish();
    Ok(result(structured, failed))
}

pub(crate) async fn run_code(
    server: &McpServer,
    caller: &Caller,
    args: &Value,
    ctx: RequestContext<RoleServer>,
) -> Result<CallToolResponse, McpError> {
    if let Some(k) = args.as_object().and_then(|o| {
        o.keys()
            .find(|k| !matches!(k.as_str(), "source" | "lang" | "input" | "engine" | "mode"))
    }) {
        return Err(bad(format!(
            "unknown argument `{k}` (source, lang, input, engine, mode)"
        )));
    }
    let dry_run = match string_arg(args, "mode")? {
        None | Some("dry_run") => true,
        Some("run") => false,
        Some(other) => return Err(bad(format!("`mode` must be dry_run or run, not {other:?}"))),
    };
    let source = string_arg(args, "source")?.ok_or_else(|| bad("`source` is required"))?;
    if source.len() > MAX_SOURCE_BYTES {
        return Err(bad(format!(
            "`source` is {} bytes; the limit is {MAX_SOURCE_BYTES}",
            source.len()
        )));
    }
    let lang = match string_arg(args, "lang")? {
        None | Some("js") => Lang::Js,
        Some("ts") => Lang::Ts,
        Some(other) => return Err(bad(format!("`lang` must be js or ts, not {other:?}"))),
    };
    let engine = match string_arg(args, "engine")? {
        None => None,
        Some(e) => Some(
            EngineKind::parse(e)
                .ok_or_else(|| bad(format!("`engine` must be quickjs or v8, not {e:?}")))?,
        ),
    };
    // The workspace as it is now: its agent grants may have changed.
    let (store, id) = (server.store.clone(), caller.workspace.id);
    let workspace = blocking(move || Ok(store.workspace(&id)?))
        .await
        .map_err(internal)?
        .unwrap_or_else(|| caller.workspace.clone());
    let req = StartRun {
        workspace,
        block: None,
        source: source.to_string(),
        lang,
        input: args.get("input").cloned().unwrap_or(Value::Null),
        trigger: json!({"kind": "mcp", "tool": "run_code"}),
        run_id: None,
        engine,
        admin_caller: false,
        agent: true,
        doc: None,
        dry_run,
        operator: None,
    };
    run(server, req, ctx).await
}

pub(crate) async fn run_block(
    server: &McpServer,
    caller: &Caller,
    block: &str,
    args: &Value,
    ctx: RequestContext<RoleServer>,
) -> Result<CallToolResponse, McpError> {
    let (store, ws, id) = (server.store.clone(), caller.workspace.id, block.to_string());
    let rec = blocking(move || {
        Ok(store
            .get_block(&ws, &id)?
            .filter(|b| for_blocks(std::slice::from_ref(b)).len() == 1))
    })
    .await
    .map_err(internal)?
    .ok_or_else(|| {
        bad(format!(
            "unknown tool '{BLOCK_TOOL}{block}': see tools/list"
        ))
    })?;
    let trigger = json!({"kind": "mcp", "tool": format!("{BLOCK_TOOL}{block}")});
    let req = StartRun::for_block(caller.workspace.clone(), rec, args.clone(), trigger);
    run(server, req, ctx).await
}

pub(crate) async fn list_blocks(
    server: &McpServer,
    caller: &Caller,
) -> Result<CallToolResponse, McpError> {
    let (store, ws) = (server.store.clone(), caller.workspace.id);
    // Reading each block's schema parses its source: off the async threads.
    let list: Vec<Value> = blocking(move || {
        Ok(store
            .list_blocks(&ws)?
            .iter()
            .map(|b| {
                json!({
                    "id": b.id, "name": b.name, "lang": b.lang, "grants": b.grants,
                    "engine": if b.engine.is_empty() { "default" } else { b.engine.as_str() },
                    "input_schema": quire_service::approval::input_schema(b),
                })
            })
            .collect())
    })
    .await
    .map_err(internal)?;
    Ok(result(json!({ "blocks": list }), false))
}

pub(crate) async fn list_documents(
    server: &McpServer,
    caller: &Caller,
) -> Result<CallToolResponse, McpError> {
    let (store, ws) = (server.store.clone(), caller.workspace.id);
    let docs = blocking(move || {
        let mut out = Vec::new();
        for s in store.list_docs(&ws)? {
            let Some(d) = store.get_doc(&ws, &s.id)? else {
                continue;
            };
            let blocks: Vec<&String> = d
                .blocks
                .iter()
                .filter_map(|b| match b {
                    DocBlock::Code { block, .. } => block.as_ref(),
                    DocBlock::Text { .. } => None,
                })
                .collect();
            out.push(json!({"id": d.id, "title": d.title, "blocks": blocks}));
        }
        Ok(out)
    })
    .await
    .map_err(internal)?;
    Ok(result(json!({ "documents": docs }), false))
}

fn summary(r: &quire_storage::RunRecord) -> Value {
    json!({
        "run": r.id, "status": r.status, "block": r.block, "trigger": r.trigger,
        "started_ms": r.started_ms, "cpu_ms": r.cpu_ms, "wall_ms": r.wall_ms,
        "error": r.error,
    })
}

pub(crate) async fn list_runs(
    server: &McpServer,
    caller: &Caller,
    args: &Value,
) -> Result<CallToolResponse, McpError> {
    let block = string_arg(args, "block")?.map(String::from);
    let limit = match args.get("limit") {
        None | Some(Value::Null) => 10,
        Some(v) => {
            v.as_u64()
                .filter(|n| (1..=50).contains(n))
                .ok_or_else(|| bad("`limit` must be an integer from 1 to 50"))? as usize
        }
    };
    let (store, ws) = (server.store.clone(), caller.workspace.id);
    let runs = blocking(move || Ok(store.recent_runs(&ws, block.as_deref(), limit, None)?))
        .await
        .map_err(store_error)?;
    let list: Vec<Value> = runs.iter().map(summary).collect();
    Ok(result(json!({ "runs": list }), false))
}

/// Bytes of events `read_run` returns at a time.
const READ_PAGE_BYTES: usize = 256 * 1024;

pub(crate) async fn read_run(
    server: &McpServer,
    caller: &Caller,
    args: &Value,
) -> Result<CallToolResponse, McpError> {
    let run = string_arg(args, "run")?
        .ok_or_else(|| bad("`run` is required"))?
        .to_string();
    let from = match args.get("from_seq") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("`from_seq` must be a non-negative integer"))?,
    };
    let (store, ws) = (server.store.clone(), caller.workspace.id);
    let found = blocking(move || {
        let Some(r) = store.get_run_head(&ws, &run)? else {
            return Ok(None);
        };
        let page = store.run_events(&ws, &run, from, READ_PAGE_BYTES)?;
        Ok(Some((r, page)))
    })
    .await
    .map_err(store_error)?;
    let Some((r, page)) = found else {
        return Err(bad("no such run in this workspace"));
    };
    let mut out = summary(&r);
    out["provenance"] = r.provenance.clone();
    out["events"] = Value::Array(page.values());
    out["next_seq"] = json!(page.next);
    Ok(result(out, false))
}
