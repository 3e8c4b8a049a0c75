//! `quire mcp --workspace NAME`: the MCP server over stdio, for a local
//! agent. Its stdout carries the protocol only; logs go to stderr.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use quire_engine::runner::RunnerConfig;
use quire_engine::{Engine, EngineConfig, Isolation, Limits};
use quire_host_api::{HostApi, HostConfig};
use quire_service::{Metrics, RunHub};

/// `quire mcp`'s flags.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The workspace the agent works in (created if missing).
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// The store's directory (the same as `quire serve --data`; not while
    /// a server has it open). Without it the store is ephemeral.
    #[arg(long)]
    pub data: Option<std::path::PathBuf>,
}

pub fn mcp(args: McpArgs) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quire mcp: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire mcp: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: McpArgs) -> anyhow::Result<()> {
    let store = match &args.data {
        Some(dir) => crate::cli_run::open_data_dir(dir, crate::samples::SERVE_PORT)?,
        None => {
            let store = quire_storage::Store::memory()?;
            crate::samples::seed(&store, crate::samples::SERVE_PORT)?;
            store
        }
    };
    let workspace = store
        .ensure_workspace(&args.workspace)
        .with_context(|| format!("cannot open workspace {:?}", args.workspace))?;
    let engine = Engine::new(EngineConfig {
        isolation: Isolation::Runners(RunnerConfig::new(
            std::env::current_exe().context("cannot find the quire executable")?,
            vec!["__runner".into()],
        )),
        v8: Some(crate::v8paths::v8_config(None)?),
        ..EngineConfig::default()
    })
    .context("could not start the engine")?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let hub = RunHub::new(
        Arc::new(engine),
        api,
        store.clone(),
        Arc::new(Metrics::default()),
        Limits::default(),
        quire_web::ServerConfig::default().max_active_runs,
    );
    let closed = hub.close_interrupted()?;
    if closed > 0 {
        tracing::warn!(
            runs = closed,
            "closed runs left running by an earlier process"
        );
    }
    tracing::info!(workspace = %workspace.name, "MCP server on stdio");
    let served = quire_mcp::McpServer::new(hub.clone(), store, workspace)
        .serve_stdio()
        .await;
    // The client is gone: runs still going end, with their history.
    hub.shutdown(std::time::Duration::from_secs(2)).await;
    served.context("the MCP session failed")
}
