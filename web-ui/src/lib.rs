//! # quire-web
//!
//! quire's server: the JSON API under `/api/v1`, WebSocket live runs,
//! per-workspace tokens and roles, `/metrics` (for the metrics token or a
//! server admin, or on a listener of its own) and `/healthz`.
//!
//! **Owns:** HTTP and WebSocket handling, authentication and roles, rate
//! and body limits, how the run service's errors read as statuses, and
//! serving until shutdown.
//!
//! **Does not own:** starting runs, admission, quotas, history and the
//! scheduler (`quire-service`, whose modules it re-exports by their old
//! names), running JavaScript (`quire-engine`), what a block may touch
//! (`quire-host-api` checks grants), or how data is kept
//! (`quire-storage`). It never reads the environment or flags: the binary
//! fills in a [`ServerConfig`].
//!
//! ```no_run
//! # async fn demo(store: quire_storage::Store, engine: quire_engine::Engine) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! let api = quire_host_api::HostApi::new(store.clone(), Default::default())?;
//! let state = quire_web::AppState::new(store, Arc::new(engine), api, quire_web::ServerConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! quire_web::serve(listener, state, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod auth;
mod config;
#[cfg(test)]
mod depth_tests;
mod error;
#[cfg(test)]
mod grant_tests;
#[cfg(test)]
mod history_tests;
pub mod live;
#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod quota_tests;
mod routes;
#[cfg(test)]
mod scheduler_tests;
#[cfg(test)]
mod testkit;

// The run service's modules, by the names this crate's code has always
// used for them.
pub use quire_service::{admission, scheduler};
use quire_service::{approval, hub, metrics};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use quire_engine::Engine;
use quire_host_api::HostApi;
use quire_storage::Store;

pub use auth::{Auth, Principal, Role, TokenHash};
pub use config::{ServerConfig, MAX_HISTORY_PAGE};
pub use error::{ApiError, ApiResult};
pub use hub::{LiveRun, RunHub, ShutdownReport, StartRun, Started};
pub use metrics::Metrics;

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The run hub.
    pub hub: Arc<RunHub>,
    /// Token checks and rate limits.
    pub auth: Arc<Auth>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// The time schedules are computed from.
    pub clock: Arc<dyn scheduler::Clock>,
    /// The MCP endpoint's service (`…/workspaces/{ws}/mcp`).
    pub mcp: quire_mcp::HttpService,
    /// Ends the MCP endpoint's sessions at shutdown.
    pub mcp_stop: quire_mcp::Stop,
    /// Which token opened each MCP session, in which workspace (see
    /// `routes::mcp`).
    pub(crate) mcp_sessions: Arc<routes::McpSessions>,
}

impl AppState {
    /// Wire a store, an engine and a host API into server state.
    pub fn new(store: Store, engine: Arc<Engine>, api: HostApi, config: ServerConfig) -> Self {
        let metrics = Arc::new(Metrics::default());
        let hub = RunHub::with_cluster(
            engine,
            api,
            store.clone(),
            metrics.clone(),
            config.run_limits.clone(),
            config.max_active_runs,
            config.cluster.clone(),
        );
        let auth = Arc::new(Auth::new(
            config.admin_token.as_deref(),
            config.rate_per_sec,
            config.rate_burst,
        ));
        let mcp_stop = quire_mcp::Stop::new();
        let mcp = quire_mcp::http_service(hub.clone(), store.clone(), mcp_stop.clone());
        Self {
            store,
            hub,
            auth,
            metrics,
            config: Arc::new(config),
            clock: Arc::new(scheduler::SystemClock),
            mcp,
            mcp_stop,
            mcp_sessions: Arc::default(),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("hub", &self.hub).finish()
    }
}

/// The whole HTTP surface, ready to serve or to test with `oneshot`.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Only `GET /metrics` (Prometheus text), with no token, and 404 for every
/// other path: for a second listener on an address only the scraper can
/// reach (`quire serve --metrics-addr`). On the main [`app`], `/metrics`
/// needs the metrics token ([`ServerConfig::metrics_token`]) or a
/// server-admin token.
pub fn metrics_app(state: AppState) -> Router {
    routes::metrics_router(state)
}

/// Serve [`metrics_app`] on `listener` until `shutdown` resolves. Runs and
/// the scheduler belong to [`serve`]; this only reads the same counters.
///
/// # Errors
/// When the listener fails.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Close runs a previous process left `running` (see
/// [`RunHub::close_interrupted`]), then serve `app(state)` on `listener`
/// until `shutdown` resolves, then stop
/// taking runs, let in-flight runs finish (or cancel them after
/// [`ServerConfig::shutdown_grace_ms`]) with their history written, and
/// return what happened to them.
///
/// # Errors
/// When the listener fails, or the store cannot be read at start.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<ShutdownReport> {
    let hub = state.hub.clone();
    let mcp_stop = state.mcp_stop.clone();
    let h = hub.clone();
    let closed = tokio::task::spawn_blocking(move || h.close_interrupted())
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    if closed > 0 {
        tracing::warn!(
            runs = closed,
            "closed runs left running by the previous process"
        );
    }
    let roles = state.config.roles;
    if roles.scheduler {
        let mut sched =
            scheduler::Scheduler::new(state.store.clone(), state.hub.clone(), state.clock.clone());
        if let Some(c) = &state.config.cluster {
            let leadership = state
                .store
                .scheduler_leadership(&c.worker_id)
                .map_err(std::io::Error::other)?;
            if let Some(l) = leadership {
                sched = sched.with_leadership(l);
            }
        }
        let sched = Arc::new(sched);
        tokio::spawn(sched.run(Duration::from_millis(state.config.schedule_tick_ms)));
    }
    if roles.worker && state.config.cluster.is_some() {
        tokio::spawn(quire_service::cluster::work(state.hub.clone()));
    }
    let grace = Duration::from_millis(state.config.shutdown_grace_ms);
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let runs = tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new runs");
        let report = hub.shutdown(grace).await;
        mcp_stop.cancel();
        let _ = done_tx.send(true);
        report
    });
    let mut done = done_rx.clone();
    // Live events are small writes that must leave at once: without
    // TCP_NODELAY, Nagle's algorithm holds each one for the client's
    // delayed ACK (~40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let router = if roles.api {
        app(state)
    } else {
        routes::worker_router(state)
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = done.wait_for(|d| *d).await;
        })
        .await?;
    runs.await
        .map_err(|e| std::io::Error::other(format!("shutdown task failed: {e}")))
}
