//! `quire serve`: the HTTP API and live runs over an embedded sled store.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use quire_engine::runner::RunnerConfig;
use quire_engine::{Engine, EngineConfig, Isolation};
use quire_host_api::{HostApi, HostConfig};
use quire_web::{AppState, Auth, Role, ServerConfig, TokenHash};

use crate::cli_run::IsolationChoice;

/// Flags of `quire serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: String,
    /// Directory of the embedded store (created, and loaded with the
    /// samples, on first start).
    #[arg(long, default_value = "quire-data")]
    pub data: std::path::PathBuf,
    /// Keep the store in PostgreSQL at this URL instead of `--data` (also
    /// `QUIRE_POSTGRES_URL`; secrets need `QUIRE_SECRET_KEY`, 64 hex
    /// digits). Several processes may serve one database: runs go
    /// through its shared queue.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// With `--postgres`: NATS with JetStream (`nats://host:port`, also
    /// `QUIRE_NATS_URL`) carries runs' live events between processes;
    /// without it a run of another process is followed from PostgreSQL.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// What this process does, comma-separated: `api` (HTTP, app,
    /// WebSocket; enqueues runs), `worker` (runs what it claims from the
    /// queue), `scheduler` (fires schedules). Roles other than all three
    /// need `--postgres`. Without `api` the address serves only
    /// `/healthz` and `/metrics`.
    #[arg(long, default_value = "api,worker,scheduler", value_name = "ROLES")]
    pub role: String,
    /// With `--postgres`: how long a worker's claim on a run holds without
    /// renewal (renewed every third of it). A killed worker's runs are
    /// closed this long after it stopped.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub lease_ms: u64,
    /// Requests (and WebSocket run operations) each token may make per
    /// second, sustained; bursts of four times that are allowed.
    #[arg(long, default_value_t = 50.0, value_name = "N")]
    pub token_rate_per_sec: f64,
    /// Where blocks run: sandboxed runner processes, or this process.
    #[arg(long, value_enum, default_value = "runner")]
    pub isolation: IsolationChoice,
    /// Mint a new server-admin token and print it (the old ones keep
    /// working until deleted).
    #[arg(long)]
    pub new_admin_token: bool,
    /// Seconds in-flight runs may keep going on shutdown before they are
    /// cancelled.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace_s: u64,
    /// Also serve `GET /metrics` on this address, with no token and
    /// nothing else (port 0 picks a free port). Keep it private: anyone
    /// who reaches it reads the server-wide metrics. On `--addr`,
    /// `/metrics` needs `QUIRE_METRICS_TOKEN` or a server-admin token.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}

/// Shorter metrics tokens get a warning: they are bearer secrets.
const MIN_METRICS_TOKEN_BYTES: usize = 32;

/// Run the server until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quire serve: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire serve: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    // A new store's samples call this server on its own port.
    let postgres = args
        .postgres
        .clone()
        .or_else(|| std::env::var("QUIRE_POSTGRES_URL").ok())
        .filter(|u| !u.is_empty());
    let roles = quire_service::cluster::Roles::parse(&args.role).map_err(anyhow::Error::msg)?;
    if !(args.token_rate_per_sec.is_finite() && args.token_rate_per_sec > 0.0) {
        anyhow::bail!(
            "--token-rate-per-sec must be a positive number of requests per second, not {}",
            args.token_rate_per_sec
        );
    }
    if postgres.is_none() && roles != quire_service::cluster::Roles::default() {
        anyhow::bail!(
            "--role {} needs --postgres: processes share runs through a PostgreSQL queue (sled serves one process, with every role)",
            args.role
        );
    }
    if postgres.is_none()
        && (args.nats.is_some() || std::env::var("QUIRE_NATS_URL").is_ok_and(|u| !u.is_empty()))
    {
        anyhow::bail!(
            "--nats carries live events between processes that share a PostgreSQL store: add --postgres"
        );
    }
    let store = match &postgres {
        Some(url) => crate::cli_run::open_postgres(url, addr.port())?,
        None => crate::cli_run::open_data_dir(&args.data, addr.port())?,
    };
    let nats = args
        .nats
        .clone()
        .or_else(|| std::env::var("QUIRE_NATS_URL").ok())
        .filter(|u| !u.is_empty());
    // Checked above: --nats comes with --postgres.
    let bus = match &nats {
        None => None,
        Some(url) => Some(
            quire_service::bus::Bus::connect(&quire_service::bus::NatsConfig::new(url))
                .await
                .map_err(|e| anyhow::anyhow!("{e}; check --nats (or QUIRE_NATS_URL)"))?,
        ),
    };
    let cluster = store.run_queue().map(|q| {
        let mut c = quire_service::cluster::ClusterConfig::new(q.clone());
        c.lease = std::time::Duration::from_millis(args.lease_ms.max(300));
        c.bus = bus.clone();
        c
    });
    let admin_token = std::env::var("QUIRE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    // Kept only as its hash from here on.
    let metrics_token = match std::env::var("QUIRE_METRICS_TOKEN") {
        Ok(t) if !t.is_empty() => {
            if t.len() < MIN_METRICS_TOKEN_BYTES {
                tracing::warn!(
                    bytes = t.len(),
                    "QUIRE_METRICS_TOKEN is short; use {MIN_METRICS_TOKEN_BYTES} or more random characters (e.g. `openssl rand -hex 32`)"
                );
            }
            Some(TokenHash::of(&t))
        }
        _ => None,
    };
    let mut minted = None;
    if args.new_admin_token || (admin_token.is_none() && store.list_tokens(None)?.is_empty()) {
        let (_, token) = Auth::mint(&store, None, Role::Admin, "server admin")
            .map_err(|e| anyhow::anyhow!("cannot mint the admin token: {e}"))?;
        minted = Some(token);
    }
    let isolation = match args.isolation {
        IsolationChoice::InProcess => Isolation::InProcess,
        IsolationChoice::Runner => Isolation::Runners(RunnerConfig::new(
            std::env::current_exe().context("cannot find the quire executable")?,
            vec!["__runner".into()],
        )),
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let engine = Engine::new(EngineConfig {
        worker_threads: workers,
        isolation,
        v8: Some(crate::v8paths::v8_config(None)?),
        ..EngineConfig::default()
    })
    .context("could not start the engine")?;
    if let Err(why) = engine.v8_status() {
        tracing::warn!("blocks with engine \"v8\" will fail: {why}");
    }
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let config = ServerConfig {
        admin_token: admin_token.clone(),
        metrics_token: metrics_token.clone(),
        shutdown_grace_ms: args.shutdown_grace_s.saturating_mul(1000),
        roles,
        cluster,
        rate_per_sec: args.token_rate_per_sec,
        rate_burst: args.token_rate_per_sec * 4.0,
        ..ServerConfig::default()
    };
    let state = AppState::new(store.clone(), Arc::new(engine), api, config);
    let metrics_listener = match &args.metrics_addr {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} for metrics"))?,
        ),
        None => None,
    };
    let workspaces: Vec<String> = store
        .list_workspaces()?
        .into_iter()
        .map(|w| w.name)
        .collect();
    eprintln!(
        "quire serving on http://{addr}/  (data in {}, workspaces: {})",
        match &postgres {
            Some(_) => "PostgreSQL".to_string(),
            None => args.data.display().to_string(),
        },
        workspaces.join(", ")
    );
    match (&minted, &admin_token) {
        (Some(t), _) => eprintln!("server admin token (shown once; keep it): {t}"),
        (None, Some(_)) => eprintln!("server admin token: the one in QUIRE_ADMIN_TOKEN"),
        (None, None) => eprintln!(
            "server admin token: minted on first start and shown then; `quire serve --new-admin-token` mints another"
        ),
    }
    if metrics_token.is_some() {
        eprintln!(
            "metrics: GET /metrics takes the token in QUIRE_METRICS_TOKEN or a server-admin token"
        );
    } else {
        eprintln!("metrics: GET /metrics takes a server-admin token (QUIRE_METRICS_TOKEN sets a scrape token)");
    }
    if let Some(l) = metrics_listener {
        eprintln!(
            "metrics also on http://{}/metrics (no token: keep this address private)",
            l.local_addr()?
        );
        // Serves until the process ends (through shutdown too, so the
        // drain can be watched).
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = quire_web::serve_metrics(l, state, std::future::pending()).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let report = quire_web::serve(listener, state, shutdown_signal()).await?;
    store.flush()?;
    eprintln!(
        "quire stopped: {} runs finished during shutdown, {} cancelled; history written",
        report.finished, report.cancelled
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
