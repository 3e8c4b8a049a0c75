//! The `quire` command: `quire run`, `quire serve`, `quire bench`.
//!
//! The only place that reads flags and the environment; library crates get
//! config structs.

#[allow(clippy::print_stdout)]
mod bench;
mod bench_cluster;
mod bench_dry_run;
mod bench_fair;
#[allow(clippy::print_stdout)]
mod bench_host;
mod bench_living;
mod bench_server;
mod bench_soak;
mod bench_v8;
mod bench_web;
mod cli_run;
mod limits;
mod mcp;
mod samples;
mod serve;
mod v8paths;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run untrusted notebook-style code blocks under hard limits.
#[derive(Debug, Parser)]
#[command(name = "quire", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one block file (.js or .ts) and print its events.
    Run(cli_run::RunArgs),
    /// Serve the HTTP API, live runs and the browser app.
    Serve(serve::ServeArgs),
    /// An MCP server over stdio for an AI agent: run_code, stored blocks
    /// as tools, and tools to look at blocks, documents and runs.
    Mcp(mcp::McpArgs),
    /// A sandboxed runner process (started by the server, not by people).
    #[command(name = "__runner", hide = true)]
    Runner {
        /// Enable test-only natives.
        #[arg(long)]
        test_hooks: bool,
        /// JavaScript worker threads (the pool passes its
        /// `threads_per_runner`).
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// A sandboxed V8 runner: sandbox, then exec Node with the isolate
    /// runner (started by the server, not by people).
    #[command(name = "__v8-runner", hide = true)]
    V8Runner {
        /// The Node binary.
        #[arg(long)]
        node: std::path::PathBuf,
        /// The runner script (`runner.mjs`).
        #[arg(long)]
        script: std::path::PathBuf,
        /// Heap limit of the runner's own isolate, in MiB.
        #[arg(long, default_value_t = 512)]
        heap_mb: u64,
        /// V8 stack of the runs, in KiB.
        #[arg(long, default_value_t = 1024)]
        stack_kb: u64,
    },
    /// Measure start latency, throughput, memory and CPU speed, with Node.js
    /// measured side by side.
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Measure only one part.
        #[arg(long, value_enum)]
        only: Option<bench::Only>,
        /// PostgreSQL for `--only cluster` (also `QUIRE_POSTGRES_URL`): a
        /// role that may create databases.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// NATS for `--only cluster` (also `QUIRE_NATS_URL`): the live
        /// output case over NATS.
        #[arg(long, value_name = "URL")]
        nats: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUIRE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if matches!(
        cli.command,
        Command::Run(_) | Command::Serve(_) | Command::Mcp(_) | Command::Bench { .. }
    ) {
        limits::raise_open_files();
    }
    match cli.command {
        Command::Run(args) => cli_run::run(args),
        Command::Runner {
            test_hooks,
            threads,
        } => {
            let code = quire_engine::runner::runner_main(quire_engine::runner::RunnerArgs {
                test_hooks,
                threads,
                ..Default::default()
            });
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::V8Runner {
            node,
            script,
            heap_mb,
            stack_kb,
        } => {
            let code = quire_engine::v8::launch_main(quire_engine::v8::LaunchArgs {
                node,
                script,
                heap_mb,
                stack_kb,
            });
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Serve(args) => serve::serve(args),
        Command::Mcp(args) => mcp::mcp(args),
        Command::Bench {
            json,
            only,
            postgres,
            nats,
        } => match bench::run(
            json,
            only,
            postgres.or_else(|| std::env::var("QUIRE_POSTGRES_URL").ok()),
            nats.or_else(|| std::env::var("QUIRE_NATS_URL").ok()),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("quire bench: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
