//! Server configuration: plain data, filled in once by the binary.

use quire_engine::Limits;

use crate::auth::TokenHash;

/// Everything the server needs to know besides its store and engine.
/// Every field documents its unit and default.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A server-admin token given by the operator (`QUIRE_ADMIN_TOKEN`).
    /// Only its SHA-256 is kept in memory. `None`: only server-admin
    /// tokens minted into the store work. Default: `None`.
    pub admin_token: Option<String>,
    /// The hash of the metrics token given by the operator
    /// (`QUIRE_METRICS_TOKEN`): `Authorization: Bearer <it>` opens
    /// `GET /metrics` on the main address and nothing else. Server-admin
    /// tokens open `/metrics` too; workspace tokens never do. `None`: only
    /// server-admin tokens (and the separate, tokenless
    /// [`crate::metrics_app`] listener). Default: `None`.
    pub metrics_token: Option<TokenHash>,
    /// Largest request body accepted, in bytes; larger ones answer 413.
    /// Default: 1 MiB.
    pub max_body_bytes: usize,
    /// Requests (and WebSocket run operations) each token may make per
    /// second, sustained. Default: 50.
    pub rate_per_sec: f64,
    /// Requests a token may make in a burst above the sustained rate.
    /// Default: 200.
    pub rate_burst: f64,
    /// Limits every run gets, except CPU, wall-clock, memory and output,
    /// which come from its workspace's quota. Default: [`Limits::default`].
    pub run_limits: Limits,
    /// Runs executing at once, server-wide; further runs wait in
    /// admission, where workspaces take turns. Default: 64.
    pub max_active_runs: usize,
    /// Largest WebSocket message a client may send, in bytes. Default:
    /// 1 MiB.
    pub ws_max_message_bytes: usize,
    /// Messages queued for one WebSocket client before the server stops
    /// pulling events for it (the events stay in the run's log; nothing
    /// is dropped). Default: 256.
    pub ws_queue_messages: usize,
    /// How long one message may wait for a client's socket to accept it,
    /// in milliseconds, before the server closes the connection with code
    /// 4008 ("too slow"). Default: 10,000.
    pub ws_send_timeout_ms: u64,
    /// Runs one WebSocket connection may follow at once. Default: 64.
    pub ws_max_followed_runs: usize,
    /// Blocks one WebSocket connection may subscribe to. Default: 64.
    pub ws_max_subscriptions: usize,
    /// On shutdown, how long in-flight runs may keep going before they are
    /// cancelled, in milliseconds. Default: 10,000.
    pub shutdown_grace_ms: u64,
    /// How often the scheduler looks for due schedules, in milliseconds.
    /// Default: 1000.
    pub schedule_tick_ms: u64,
    /// Runs a history listing returns when the request gives no `limit`.
    /// Default: 50 (at most 500 on request).
    pub history_page: usize,
    /// Bytes of events one `GET .../runs/{run}` answer holds at most
    /// (about: a page ends after the event that reaches it); the answer's
    /// `next_seq` asks for the next page. Default: 4 MiB.
    pub run_page_bytes: usize,
    /// What this process does: serve the API (`api`), run claimed runs
    /// (`worker`), fire schedules (`scheduler`). Without `api` the
    /// listener serves only `/metrics`. Default: all three.
    pub roles: quire_service::cluster::Roles,
    /// Take part in a cluster through the store's shared run queue (a
    /// store on PostgreSQL). Default: `None` (runs are admitted in this
    /// process, as on one machine).
    pub cluster: Option<quire_service::cluster::ClusterConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            admin_token: None,
            metrics_token: None,
            max_body_bytes: 1024 * 1024,
            rate_per_sec: 50.0,
            rate_burst: 200.0,
            run_limits: Limits::default(),
            max_active_runs: 64,
            ws_max_message_bytes: 1024 * 1024,
            ws_queue_messages: 256,
            ws_send_timeout_ms: 10_000,
            ws_max_followed_runs: 64,
            ws_max_subscriptions: 64,
            shutdown_grace_ms: 10_000,
            history_page: 50,
            run_page_bytes: 4 * 1024 * 1024,
            schedule_tick_ms: 1000,
            roles: quire_service::cluster::Roles::default(),
            cluster: None,
        }
    }
}

/// The most runs one history page may hold.
pub const MAX_HISTORY_PAGE: usize = 500;
