//! Where the V8 engine's deno binary and runner script are: a flag, then
//! `QUIRE_DENO` / `QUIRE_DENO_RUNNER`, then this checkout's
//! `engine/runners/deno` (where `npm ci` installs deno).

use std::path::PathBuf;

use quire_engine::V8Config;

const RUNNERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/engine/runners/deno");

/// The V8 engine's configuration, with `deno` from `--deno` if given.
pub fn v8_config(deno: Option<PathBuf>) -> anyhow::Result<V8Config> {
    let deno = deno
        .or_else(|| std::env::var_os("QUIRE_DENO").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(RUNNERS).join("node_modules/@deno/linux-x64-glibc/deno"));
    let script = std::env::var_os("QUIRE_DENO_RUNNER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(RUNNERS).join("runner.ts"));
    let exe = std::env::current_exe()?;
    Ok(V8Config::new(exe, vec!["__v8-runner".into()], deno, script))
}
