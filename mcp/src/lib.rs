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
//! Transport: stdio here ([`McpServer::serve_stdio`], `quire mcp`); the
//! protocol is rmcp's (the official Rust SDK), which negotiates the
//! revision the client asks for among those it knows (2024-11-05 through
//! 2026-07-28).
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
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};

/// The MCP server of one workspace.
#[derive(Clone)]
pub struct McpServer {
    hub: Arc<RunHub>,
    store: Store,
    workspace: Workspace,
}

impl McpServer {
    /// A server for `workspace`, running through `hub`.
    pub fn new(hub: Arc<RunHub>, store: Store, workspace: Workspace) -> Self {
        Self {
            hub,
            store,
            workspace,
        }
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

    /// Every tool, in a stable order: the fixed ones, then one per stored
    /// block with a declared input schema, by block id.
    async fn all_tools(&self) -> Result<Vec<Tool>, McpError> {
        let (store, ws) = (self.store.clone(), self.workspace.id);
        let blocks = blocking(move || Ok(store.list_blocks(&ws)?))
            .await
            .map_err(internal)?;
        let mut out = tools::fixed();
        out.extend(tools::for_blocks(&blocks));
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
            .with_instructions(format!(
                "quire runs JavaScript/TypeScript code blocks in isolates under hard limits, in workspace '{}'. \
                 run_code runs your code (no grants: pure computation); list_blocks, list_documents, list_runs \
                 and read_run let you look before you act; each block with a declared input runs as its own tool.",
                self.workspace.name
            ))
    }

    async fn list_tools(
        &self,
        _req: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.all_tools().await?))
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = Value::Object(req.arguments.unwrap_or_default());
        let name = req.name.to_string();
        let span = tracing::info_span!("mcp_tool", tool = %name, workspace = %self.workspace.name);
        let _g = span.enter();
        match name.as_str() {
            "run_code" => tools::run_code(self, &args, ctx).await,
            "list_blocks" => tools::list_blocks(self).await,
            "list_documents" => tools::list_documents(self).await,
            "list_runs" => tools::list_runs(self, &args).await,
            "read_run" => tools::read_run(self, &args).await,
            other => match tools::block_of_tool(other) {
                Some(block) => tools::run_block(self, block, &args, ctx).await,
                None => Err(McpError::invalid_params(
                    format!("unknown tool '{other}': see tools/list"),
                    Some(json!({"tool": other})),
                )),
            },
        }
    }
}
