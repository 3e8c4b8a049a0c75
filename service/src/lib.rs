//! quire's run service: everything about runs that is not a transport.
//!
//! It owns starting runs (grants, quotas and the limits they give, the
//! host session, the engine), fair admission across workspaces, each
//! run's live event log and its history, retention, the scheduler and the
//! counters `/metrics` shows. It knows nothing of HTTP or WebSocket:
//! `quire-web` maps [`ServiceError`] to statuses and speaks the protocols;
//! the service is what any front end (the server, a CLI, a cluster
//! worker) drives.
//!
//! Dependencies point one way: this crate uses `quire-engine` (runs),
//! `quire-host-api` (what a block may reach) and `quire-storage`
//! (history, quotas, schedules); none of them knows of it.

pub mod admission;
pub mod approval;
pub mod bus;
pub mod cluster;
mod counting;
pub mod dataflow;
mod error;
pub mod hub;
pub mod metrics;
pub mod preview;
mod retention;
mod run_log;
pub mod scheduler;

pub use error::{blocking, ServiceError, ServiceResult};
pub use hub::{
    block_engine, block_lang, Followed, LiveRun, OperatorRun, RunHub, ShutdownReport, StartRun,
    Started,
};
pub use metrics::{Gauges, Metrics};
