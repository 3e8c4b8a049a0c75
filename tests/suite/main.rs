#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests of the engine API and the `quire` binary: the block
//! semantics and event contract, every limit, the hostile-code suite
//! (tests/hostile/*.js, each with its expected outcome), and the CLI.

mod cli;
mod cluster;
mod common;
mod dry_run;
mod fetch;
mod host;
mod hostile;
mod http;
mod living;
mod runner;
mod server;
mod server_live;
mod spec;
mod v8;
mod wpt;
mod wpt_any;
