//! Runner processes: isolates outside the server process.
//!
//! QuickJS is C; a memory-safety bug in it must not hand a block the
//! server. With [`crate::Isolation::Runners`], the engine runs every block
//! in a pool of sandboxed child processes (`pool`) that speak a
//! length-prefixed, versioned protocol (`protocol`) over their stdin and
//! stdout; a runner (`child`) drops its privileges (`sandbox`) before it
//! runs any user code.

mod child;
pub(crate) mod pool;
mod procfs;
pub mod protocol;
pub(crate) mod sandbox;

pub use child::{runner_main, RunnerArgs};
pub use pool::RunnerConfig;
pub use sandbox::SandboxLimits;
