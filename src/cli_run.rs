//! `quire run FILE`: run one block through the run service (as the server
//! runs them) and print its events as they happen.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use quire_engine::runner::RunnerConfig;
use std::sync::Arc;

use quire_engine::{
    Engine, EngineConfig, EngineKind, ErrorKind, EventBody, Isolation, Lang, Limits, LogLevel,
    RunEvent, RunRequest, RunStatus,
};
use quire_host_api::{Grants, HostApi, HostConfig};
use quire_service::{Followed, LiveRun, Metrics, OperatorRun, RunHub, StartRun};
use quire_storage::{Store, StoreConfig};
use serde_json::Value;

/// Which JavaScript engine runs the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// QuickJS-ng, in-process isolates.
    Quickjs,
    /// V8: a fresh isolate per run, from a snapshot, in pooled Node runners.
    V8,
}

/// Where a block's isolate lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationChoice {
    /// A sandboxed runner process.
    Runner,
    /// This process.
    InProcess,
}

/// Flags of `quire run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The block's source file (.js, .mjs, .ts, .mts).
    pub file: std::path::PathBuf,
    /// Print events as JSON, one per line.
    #[arg(long)]
    pub json: bool,
    /// `ctx.input`, as JSON.
    #[arg(long, value_name = "JSON")]
    pub input: Option<String>,
    /// Grant a capability (repeatable), e.g. `db:read:tasks`.
    #[arg(long = "cap", value_name = "GRANT")]
    pub caps: Vec<String>,
    /// Directory of a persistent store (default: an ephemeral store).
    #[arg(long, value_name = "DIR")]
    pub data: Option<std::path::PathBuf>,
    /// Workspace the block runs in.
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// Engine to run the block on.
    #[arg(long, value_enum, default_value = "quickjs")]
    pub engine: EngineChoice,
    /// CPU time limit in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub cpu_ms: u64,
    /// Wall-clock limit in milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub wall_ms: u64,
    /// Where the block runs: a sandboxed runner process (seccomp, no
    /// filesystem, rlimits), or this process (faster to start, weaker).
    #[arg(long, value_enum, default_value = "runner")]
    pub isolation: IsolationChoice,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub memory_mb: u64,
    /// The V8 runner's directory for `--engine v8` (default:
    /// `QUIRE_V8_RUNNER_DIR`, then `engine/runners/node` or `runners/node`
    /// next to or above this binary, after `npm ci --ignore-scripts` there).
    #[arg(long = "v8-runner", value_name = "DIR")]
    pub v8_runner: Option<std::path::PathBuf>,
    /// Stage the block's `doc`, `db` and `kv` writes instead of making
    /// them, and print what they would change (the `diff` event) before
    /// the totals; `fetch` may only GET and HEAD.
    #[arg(long)]
    pub dry_run: bool,
}

/// A dry-run's changes, one line each: `+` inserted, `~` changed, `-`
/// deleted.
fn print_diff(out: &mut impl Write, changes: &Value) -> std::io::Result<()> {
    let list = changes.as_array().map(Vec::as_slice).unwrap_or_default();
    let n = list.len();
    let s = if n == 1 { "" } else { "s" };
    writeln!(out, "dry-run: {n} change{s}, nothing written")?;
    let text = |c: &Value, k: &str| {
        if c["before_hidden"] == true && k == "before" {
            "(not shown)".to_string()
        } else {
            c[k].to_string()
        }
    };
    for c in list {
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        let what = match c["kind"].as_str() {
            Some("doc") => format!("document {}", s("id")),
            Some("row") => format!("row {} of {}", s("id"), s("collection")),
            _ => format!("kv {}", s("key")),
        };
        match c["op"].as_str() {
            Some("insert") => writeln!(out, "  + {what} = {}", text(c, "after"))?,
            Some("delete") => writeln!(out, "  - {what} (was {})", text(c, "before"))?,
            _ => writeln!(
                out,
                "  ~ {what}: {} -> {}",
                text(c, "before"),
                text(c, "after")
            )?,
        }
    }
    Ok(())
}

/// Run the command; exit 0 ok, 1 block failed, 2 usage or engine error.
pub fn run(args: RunArgs) -> ExitCode {
    match execute(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("quire run: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn request(args: &RunArgs) -> anyhow::Result<RunRequest> {
    let path = &args.file;
    let source = std::fs::read(path)
        .with_context(|| format!("cannot read block file {}", path.display()))?;
    let source = String::from_utf8(source).map_err(|e| {
        anyhow::anyhow!(
            "block file {} is not UTF-8 (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let input = match &args.input {
        Some(s) => {
            serde_json::from_str(s).with_context(|| format!("--input is not valid JSON: {s}"))?
        }
        None => serde_json::Value::Null,
    };
    let filename = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "block.js".into());
    let engine = match args.engine {
        EngineChoice::Quickjs => EngineKind::Quickjs,
        EngineChoice::V8 => EngineKind::V8,
    };
    let mut req = RunRequest::new(source, Lang::from_path(&filename))
        .with_input(input)
        .with_engine(engine);
    req.filename = Some(filename);
    req.workspace = Some(args.workspace.clone());
    req.limits = Some(Limits {
        cpu_time_ms: args.cpu_ms,
        wall_time_ms: args.wall_ms,
        memory_bytes: args.memory_mb * 1024 * 1024,
        ..Limits::default()
    });
    Ok(req)
}

/// Store settings for `dir`; the secret key comes from `QUIRE_SECRET_KEY`
/// (64 hex digits) when set, else from `DIR/secret.key` (created on first
/// start).
pub fn store_config(dir: &std::path::Path) -> anyhow::Result<StoreConfig> {
    let mut config = StoreConfig::new(dir);
    config.secret_key = secret_key_from_env()?;
    Ok(config)
}

/// The operator's key from `QUIRE_SECRET_KEY` (64 hex digits), if set.
fn secret_key_from_env() -> anyhow::Result<Option<quire_storage::SecretKey>> {
    let Ok(hex) = std::env::var("QUIRE_SECRET_KEY") else {
        return Ok(None);
    };
    let hex = hex.trim();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .unwrap_or_default();
    let key: [u8; 32] = bytes.try_into().map_err(|_| {
        anyhow::anyhow!("QUIRE_SECRET_KEY must be 64 hexadecimal digits (a 32-byte key)")
    })?;
    Ok(Some(quire_storage::SecretKey::from_bytes(key)))
}

/// Open (or create) the store in `dir`; a new store is seeded with the
/// samples, pointed at a server on `port`.
pub fn open_data_dir(dir: &std::path::Path, port: u16) -> anyhow::Result<Store> {
    let store = Store::open(&store_config(dir)?).map_err(|e| {
        let hint = if e.to_string().contains("could not acquire lock") {
            " (another quire process, such as `quire serve`, has it open)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot open the store in {}{hint}: {e}", dir.display())
    })?;
    if store.list_workspaces()?.is_empty() {
        crate::samples::seed(&store, port)?;
    }
    Ok(store)
}

/// The store in PostgreSQL at `url` (seeded with the samples when it is
/// new); secrets are encrypted with `QUIRE_SECRET_KEY`, which it needs.
pub fn open_postgres(url: &str, port: u16) -> anyhow::Result<Store> {
    let key = secret_key_from_env()?.ok_or_else(|| {
            anyhow::anyhow!("--postgres needs QUIRE_SECRET_KEY (64 hexadecimal digits): secrets in the database are encrypted with it")
        })?;
    let store = Store::open_postgres(&quire_storage::PgConfig::new(url), key)
        .map_err(|e| {
            anyhow::anyhow!("cannot open the store ({e}); check the --postgres URL (or QUIRE_POSTGRES_URL) and that the server accepts connections")
        })?;
    if store.list_workspaces()?.is_empty() {
        crate::samples::seed(&store, port)?;
    }
    Ok(store)
}

/// The store a run uses: `--data DIR` (seeded with the samples when it
/// is new), or an ephemeral one seeded with the samples.
fn open_store(args: &RunArgs) -> anyhow::Result<Store> {
    let store = match &args.data {
        Some(dir) => open_data_dir(dir, crate::samples::SERVE_PORT)?,
        None => {
            let store = Store::memory()?;
            crate::samples::seed(&store, crate::samples::SERVE_PORT)?;
            store
        }
    };
    Ok(store)
}

fn execute(args: &RunArgs) -> anyhow::Result<bool> {
    let req = request(args)?;
    let grants = Grants::parse(&args.caps).map_err(|e| anyhow::anyhow!("--cap: {e}"))?;
    let store = open_store(args)?;
    let ws = store
        .ensure_workspace(&args.workspace)
        .with_context(|| format!("--workspace {:?}", args.workspace))?;
    let api = HostApi::new(store.clone(), HostConfig::default())?;
    let engine = start_engine(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    // The run goes through the same run service as the server's: grants,
    // limits, history and the host session are set up in one place.
    let hub = RunHub::new(
        Arc::new(engine),
        api,
        store,
        Arc::new(Metrics::default()),
        Limits::default(),
        1,
    );
    rt.block_on(async {
        let started = hub
            .start(StartRun {
                workspace: ws,
                block: None,
                source: req.source,
                lang: req.lang,
                input: req.input,
                trigger: serde_json::json!({"kind": "cli"}),
                run_id: None,
                engine: Some(req.engine),
                admin_caller: true,
                agent: false,
                doc: None,
                dry_run: args.dry_run,
                operator: Some(OperatorRun {
                    grants,
                    limits: req.limits.unwrap_or_default(),
                    filename: req.filename,
                }),
            })
            .await?;
        let live = started.live();
        drop(started);
        let printed = print_events(args, &live).await;
        if printed.is_err() {
            // Nobody reads its output any more (a closed pipe): stop it.
            live.cancel();
        }
        // Its history is written (with `--data`, `GET .../runs` shows it).
        live.finished().await;
        printed
    })
}

/// The engine for one run: QuickJS in a runner process (or in this one),
/// and V8's pool when the run asks for V8.
fn start_engine(args: &RunArgs) -> anyhow::Result<Engine> {
    let isolation = match args.isolation {
        IsolationChoice::InProcess => Isolation::InProcess,
        IsolationChoice::Runner => {
            let mut rc = RunnerConfig::new(
                std::env::current_exe().context("cannot find the quire executable")?,
                vec!["__runner".into()],
            );
            rc.warm_runners = 1;
            Isolation::Runners(rc)
        }
    };
    let v8 = match args.engine {
        EngineChoice::V8 => {
            let mut v = crate::v8paths::v8_config(args.v8_runner.clone())?;
            v.warm_runners = 1;
            Some(v)
        }
        EngineChoice::Quickjs => None,
    };
    let engine = Engine::new(EngineConfig {
        worker_threads: 1,
        isolate_pool_per_worker: 1,
        isolation,
        v8,
        ..EngineConfig::default()
    })
    .context("could not start the engine")?;
    if args.engine == EngineChoice::V8 {
        if let Err(why) = engine.v8_status() {
            bail!("{why}");
        }
    }
    Ok(engine)
}

/// Print the run's events as they come; whether it finished ok.
async fn print_events(args: &RunArgs, live: &LiveRun) -> anyhow::Result<bool> {
    let mut changed = live.watch();
    let mut meters = live.meters();
    let mut cursor = 0;
    let mut ok = false;
    while let Some(next) = live
        .next_output(cursor, 64, &mut changed, &mut meters)
        .await?
    {
        let batch = match next {
            Followed::Events(batch) => batch,
            Followed::Meter(line) => vec![line],
        };
        for line in batch {
            let ev: RunEvent = serde_json::from_str(&line).context("an event did not parse")?;
            print_event(args, &line, &ev)?;
            if matches!(&ev.body, EventBody::Meter(m) if !m.last) {
                continue; // a live meter does not move the cursor
            }
            cursor += 1;
            if let EventBody::Finished(f) = &ev.body {
                ok = f.status == RunStatus::Ok;
            }
        }
    }
    Ok(ok)
}

/// A display for a person: a header line, then the data (a progress bar as
/// one line).
fn shown(what: &str, mime: &str, data: &serde_json::Value) -> anyhow::Result<String> {
    if mime == quire_engine::PROGRESS_MIME {
        let fraction = data["fraction"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
        let filled = (fraction * 20.0).floor() as usize;
        let label = data["label"].as_str().unwrap_or("");
        return Ok(format!(
            "[{what} progress] [{}{}] {:>3.0}% {label}",
            "#".repeat(filled),
            " ".repeat(20 - filled),
            fraction * 100.0
        ));
    }
    Ok(match data {
        serde_json::Value::String(s) => format!("[{what} {mime}]\n{s}"),
        v => format!("[{what} {mime}]\n{}", serde_json::to_string_pretty(v)?),
    })
}

fn print_event(args: &RunArgs, line: &str, ev: &RunEvent) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    if args.json {
        writeln!(out, "{line}")?;
        out.flush()?;
        return Ok(());
    }
    match &ev.body {
        EventBody::Started => {}
        EventBody::Log { level, text } => match level {
            LogLevel::Log | LogLevel::Info => writeln!(out, "{text}")?,
            other => writeln!(out, "[{}] {text}", other.as_str())?,
        },
        EventBody::Display { mime, data, .. } => {
            writeln!(out, "{}", shown("display", mime, data)?)?
        }
        EventBody::UpdateDisplay {
            display_id,
            mime,
            data,
        } => writeln!(
            out,
            "{}",
            shown(&format!("update {display_id}"), mime, data)?
        )?,
        EventBody::ClearDisplay { display_id } => writeln!(out, "[clear {display_id}]")?,
        // Meters are for watchers (`--json`, the app); a person reads the
        // totals in the last line.
        EventBody::Meter(_) => {}
        EventBody::Diff(d) => print_diff(&mut out, &d.changes)?,
        EventBody::Result { value } => {
            writeln!(out, "=> {}", serde_json::to_string_pretty(value)?)?
        }
        EventBody::Error(e) => {
            let at = match (e.line, e.column) {
                (Some(l), Some(c)) => format!(" (at {}:{l}:{c})", args.file.display()),
                _ => String::new(),
            };
            writeln!(stderr.lock(), "error[{}]: {}{at}", e.kind, e.message)?;
            // The grant comes from the host's record of the denial, never
            // from the block's message.
            if let (ErrorKind::CapabilityDenied, Some(grant)) = (e.kind, &e.grant) {
                writeln!(stderr.lock(), "hint: grant it with --cap {grant}")?;
            }
        }
        EventBody::Finished(f) => {
            writeln!(
                stderr.lock(),
                "-- {} in {:.1} ms (cpu {:.1} ms, peak memory {} KiB)",
                if f.status == RunStatus::Ok {
                    "ok"
                } else {
                    "failed"
                },
                f.wall_ms,
                f.cpu_ms,
                f.peak_memory_bytes / 1024
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
