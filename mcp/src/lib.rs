//! quire's MCP server (issue 21): what an AI agent reaches quire through.
//!
//! It owns the Model Context Protocol side: the tool list (fixed tools,
//! and one tool per stored block that declares an input schema), reading
//! tool arguments, running code through the run service, streaming a
//! run's logs and displays as progress notifications, cancelling a run
//! when its request is cancelled, and shaping results (`structuredContent`
//! with an output schema, a text block, `isError` for a failed run). It
//! does not own runs, grants, quotas or storage: every run goes through
//! [`quire_service::RunHub::start`] like any other, in one workspace.
//!
//! Transports: stdio ([`McpServer::serve_stdio`], `quire mcp`, one
//! workspace, the local user), and streamable HTTP ([`http_service`],
//! which the HTTP server mounts per workspace after checking the bearer
//! token: it hands each request's [`Caller`] in the request's
//! extensions). The protocol is rmcp's (the official Rust SDK), which
//! negotiates the revision the client asks for among those it knows
//! (2024-11-05 through 2026-07-28).
//!
//! Agent-written code (`run_code`) runs with the workspace's agent grants:
//! none yet (pure computation only); admin-set agent grants and dry-runs
//! come next. A block's tool runs with the block's own grants, as
//! approved by an admin.

mod output;
mod tools;

use std::sync::Arc;

use quire_service::{blocking, RunHub};
use quire_storage::{Store, Workspace};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};

/// Who a request comes from: the workspace it acts in, and whether its
/// role may run code (editor or admin) or only look (viewer).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The workspace.
    pub workspace: Workspace,
    /// Whether it may run code (`run_code`, blocks' tools).
    pub can_run: bool,
}

/// The MCP server: over stdio for one caller, over HTTP for each
/// request's.
#[derive(Clone)]
pub struct McpServer {
    hub: Arc<RunHub>,
    store: Store,
    /// The caller of a stdio session (`None` over HTTP).
    fixed: Option<Caller>,
}

/// The MCP server's streamable HTTP service (see [`http_service`]).
pub type HttpService = StreamableHttpService<McpServer, LocalSessionManager>;

/// What ends every MCP session of an [`HttpService`] (on shutdown: open
/// streams would otherwise hold the server's graceful stop).
pub use tokio_util::sync::CancellationToken as Stop;

/// The streamable HTTP service of the MCP server, to be mounted behind a
/// check of the request's token that puts a [`Caller`] in its extensions
/// (a request without one is refused). Origin headers are refused (a
/// browser page cannot drive it); the Host header is left to the server.
pub fn http_service(hub: Arc<RunHub>, store: Store, stop: Stop) -> HttpService {
    let server = McpServer {
        hub,
        store,
        fixed: None,
    };
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_REQUEST_BYTES)
        .with_cancellation_token(stop);
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The largest MCP request body over HTTP: a `run_code` source at its
/// limit, with room for its input.
pub const MAX_REQUEST_BYTES: usize = 2 * tools::MAX_SOURCE_BYTES;

impl McpServer {
    /// A stdio server for `workspace`, running through `hub`, for the
    /// local user (who may run code).
    pub fn new(hub: Arc<RunHub>, store: Store, workspace: Workspace) -> Self {
        Self {
            hub,
            store,
            fixed: Some(Caller {
                workspace,
                can_run: true,
            }),
        }
    }

    /// The caller of a request: the stdio session's, or the one the HTTP
    /// server's token check attached to the request.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, McpError> {
        if let Some(c) = &self.fixed {
            return Ok(c.clone());
        }
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| McpError::invalid_request("no credentials on this request", None))
    }

    /// Serve over this process's stdin and stdout until the client goes.
    ///
    /// # Errors
    /// When the MCP session cannot start or ends with an error.
    pub async fn serve_stdio(self) -> Result<(), std::io::Error> {
        let running = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        running
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Every tool `caller` may call, in a stable order: the fixed ones,
    /// then one per stored block with a declared input schema, by block
    /// id (a caller who may not run code sees only the tools that look).
    async fn all_tools(&self, caller: &Caller) -> Result<Vec<Tool>, McpError> {
        let (store, ws) = (self.store.clone(), caller.workspace.id);
        // Reading each block's schema parses its source: off the async
        // threads.
        let blocks = blocking(move || Ok(tools::for_blocks(&store.list_blocks(&ws)?)))
            .await
            .map_err(internal)?;
        let mut out = tools::fixed();
        if caller.can_run {
            out.extend(blocks);
        } else {
            out.retain(|t| t.name != "run_code");
        }
        Ok(out)
    }
}

fn internal(e: impl std::fmt::Display) -> McpError {
    McpError::internal_error(e.to_string(), None)
}

/// A tool result: `structured` as `structuredContent`, and as text.
pub(crate) fn result(structured: Value, failed: bool) -> CallToolResponse {
    let text = serde_json::to_string_pretty(&structured).unwrap_or_default();
    let mut r = if failed {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    r.structured_content = Some(structured);
    r.into()
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("quire", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "quire runs JavaScript/TypeScript code blocks in isolates under hard limits, in one workspace. \
                 run_code runs your code (no grants: pure computation); list_blocks, list_documents, list_runs \
                 and read_run let you look before you act; each block with a declared input runs as its own tool.",
            )
    }

    async fn list_tools(
        &self,
        _req: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let caller = self.caller(&ctx)?;
        Ok(ListToolsResult::with_all_items(
            self.all_tools(&caller).await?,
        ))
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = self.caller(&ctx)?;
        let args = Value::Object(req.arguments.unwrap_or_default());
        let name = req.name.to_string();
        tracing::info!(tool = %name, workspace = %caller.workspace.name, "MCP tool call");
        let runs = name == "run_code" || tools::block_of_tool(&name).is_some();
        if runs && !caller.can_run {
            return Err(McpError::invalid_request(
                format!("'{name}' runs code, which this token's role (viewer) may not: an editor or admin token can"),
                None,
            ));
        }
        match name.as_str() {
            "run_code" => tools::run_code(self, &caller, &args, ctx).await,
            "list_blocks" => tools::list_blocks(self, &caller).await,
            "list_documents" => tools::list_documents(self, &caller).await,
            "list_runs" => tools::list_runs(self, &caller, &args).await,
            "read_run" => tools::read_run(self, &caller, &args).await,
            other => match tools::block_of_tool(other) {
                Some(block) => tools::run_block(self, &caller, block, &args, ctx).await,
                None => Err(McpError::invalid_params(
                    format!("unknown tool '{other}': see tools/list"),
                    Some(json!({"tool": other})),
                )),
            },
        }
    }
}
