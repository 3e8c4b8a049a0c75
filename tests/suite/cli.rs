//! The `quire run` command: flags, exit codes, `--json`, live streaming.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn quire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_quire"))
}

fn block(dir: &tempdir::Dir, name: &str, src: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(src.as_bytes())
        .unwrap();
    p
}

mod tempdir {
    //! A tiny temp dir (removed on drop) to avoid a dependency.
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let p = std::env::temp_dir().join(format!("quire-test-{}", uuid_like()));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn uuid_like() -> String {
        use std::time::{SystemTime, UNIX_EPOCH};
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!(
            "{}-{t}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    }
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn json_output_and_exit_codes() {
    let d = tempdir::Dir::new();
    let ok = block(
        &d,
        "ok.js",
        "console.log('hello'); export default (ctx) => ({ n: 42, input: ctx.input });",
    );
    let out = quire()
        .args(["run", "--json", "--input", "{\"a\":1}"])
        .arg(&ok)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ev = json_lines(&out.stdout);
    assert_eq!(ev[0]["type"], "started");
    assert_eq!(ev.last().unwrap()["type"], "finished");
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["seq"], i);
    }
    assert!(ev
        .iter()
        .any(|e| e["type"] == "result"
            && e["value"] == serde_json::json!({"n": 42, "input": {"a": 1}})));

    let lp = block(&d, "loop.js", "for (;;) {}");
    let out = quire()
        .args(["run", "--json", "--cpu-ms", "100"])
        .arg(&lp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(json_lines(&out.stdout)
        .iter()
        .any(|e| e["kind"] == "cpu_limit"));

    let ts = block(
        &d,
        "b.ts",
        "const x: number = 1;\nthrow new Error('ts ' + x);\n",
    );
    let out = quire().args(["run"]).arg(&ts).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[exception]: Error: ts 1") && err.contains("b.ts:2:"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let d = tempdir::Dir::new();
    let out = quire()
        .args(["run", "/definitely/not/here.js"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here.js"));
    let ok = block(&d, "ok.js", "export default 1");
    for bad in [
        vec!["run", "--cpu-ms", "abc"],
        vec!["run", "--input", "{not json"],
        vec!["run", "--engine", "spidermonkey"],
        vec!["run", "--memory-mb", "0"],
        vec!["run", "--cap", "nonsense"],
        vec!["run", "--bogus-flag"],
    ] {
        let out = quire().args(&bad).arg(&ok).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty(), "{bad:?} must explain itself");
    }
    let bin = block(&d, "bin.js", "");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    let out = quire().args(["run"]).arg(&bin).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UTF-8"));
}

#[test]
fn serve_refuses_bad_roles_and_rates_before_touching_anything() {
    let d = tempdir::Dir::new();
    for (args, says) in [
        (vec!["--role", "api,bogus"], "unknown role 'bogus'"),
        (vec!["--role", ""], "unknown role ''"),
        (vec!["--role", "api,,worker"], "unknown role ''"),
        (vec!["--role", "worker"], "needs --postgres"),
        (vec!["--nats", "nats://127.0.0.1:1"], "add --postgres"),
        (vec!["--token-rate-per-sec", "0"], "positive number"),
        (vec!["--token-rate-per-sec", "NaN"], "positive number"),
        (vec!["--token-rate-per-sec=-5"], "positive number"),
    ] {
        let out = quire()
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(d.path().join("data"))
            .args(&args)
            .env_remove("QUIRE_POSTGRES_URL")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} must say '{says}': {err}");
        assert!(
            !d.path().join("data").exists(),
            "{args:?} created the store"
        );
    }
}

#[test]
fn serve_with_a_bad_postgres_setting_exits_2_and_says_what_to_fix() {
    let key = "ab".repeat(32);
    let serve = |url: &str, key: Option<&str>| {
        let mut cmd = quire();
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--postgres", url])
            .env_remove("QUIRE_SECRET_KEY")
            .env_remove("QUIRE_POSTGRES_URL");
        if let Some(k) = key {
            cmd.env("QUIRE_SECRET_KEY", k);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // No operator key: secrets could not be encrypted.
    let (code, err) = serve("postgres://quire@127.0.0.1:1/x", None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--postgres needs QUIRE_SECRET_KEY"), "{err}");
    // A key that is not 64 hex digits.
    let (code, err) = serve("postgres://quire@127.0.0.1:1/x", Some("12zz"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("64 hexadecimal digits"), "{err}");
    // A URL that is not one, and a server that is not there: a message,
    // never a panic.
    for url in [
        "not a url",
        "postgres://quire:pw-s3cret@127.0.0.1:notaport/x",
        "postgres://quire@127.0.0.1:1/x",
    ] {
        let (code, err) = serve(url, Some(&key));
        assert_eq!(code, Some(2), "{url}: {err}");
        assert!(
            !err.contains("pw-s3cret"),
            "the password is never echoed: {err}"
        );
        assert!(
            err.contains("cannot open the store") && err.contains("--postgres URL"),
            "{url}: {err}"
        );
        assert!(!err.contains("panicked"), "{url}: {err}");
    }
}

#[test]
fn logs_stream_before_a_wait_ends() {
    let d = tempdir::Dir::new();
    let f = block(
        &d,
        "slow.js",
        "console.log('early'); await new Promise(r => setTimeout(r, 2000)); console.log('late');",
    );
    let mut child = quire()
        .args(["run", "--json"])
        .arg(&f)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut early = false;
    for line in lines.by_ref() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["text"] == "early" {
            early = true;
            break;
        }
    }
    assert!(early);
    // The log arrived while the block was still waiting: the process has
    // not finished and the late log has not been written yet.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the early log must arrive before the wait ends"
    );
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(rest.iter().any(|l| l.contains("late")));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

fn json_events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The result value of a `--json` run that must have exited 0.
fn ok_result(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_events(out)
        .into_iter()
        .find(|e| e["type"] == "result")
        .expect("a result event")["value"]
        .clone()
}

fn sample(name: &str) -> String {
    format!("{}/samples/blocks/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn grants_come_from_cap_flags_and_denials_exit_1() {
    assert_eq!(summary_run(&[]).1["total"], 320);

    let denied = quire()
        .args(["run", &sample("tasks_summary.ts")])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(
        err.contains("error[capability_denied]") && err.contains("--cap db:read:tasks"),
        "{err}"
    );

    // A block's own "CapabilityDenied" is an exception, with no hint.
    let dir = tempdir::Dir::new();
    let forged = dir.path().join("forged.js");
    std::fs::write(
        &forged,
        "const e = new Error('x is denied: it needs the grant secret:PROD_DB_PASSWORD'); \
         e.name = 'CapabilityDenied'; throw e;",
    )
    .unwrap();
    let out = quire()
        .args(["run", &forged.to_string_lossy()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[exception]"), "{err}");
    assert!(!err.contains("hint:") && !err.contains("--cap"), "{err}");

    let bad = quire()
        .args(["run", &sample("hello.js"), "--cap", "db:read:"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid grant 'db:read:'"));
}

#[test]
fn data_dir_persists_between_runs_and_records_them() {
    let dir = tempdir::Dir::new();
    let data = dir.path().join("store");
    let data_s = data.to_str().unwrap();
    let visits = |extra: &[&str]| {
        let mut args = vec![
            "run", "--json", "--cap", "kv:read", "--cap", "kv:write", "--data", data_s,
        ];
        args.extend_from_slice(extra);
        let file = sample("visit_counter.js");
        args.push(&file);
        ok_result(&quire().args(&args).output().unwrap())["visits"].clone()
    };
    assert_eq!(visits(&[]), 1);
    // A dry-run sees its own write, shows it, and leaves the store as it was.
    assert_eq!(visits(&["--dry-run"]), 2);
    let out = quire()
        .args([
            "run",
            "--cap",
            "kv:read",
            "--cap",
            "kv:write",
            "--dry-run",
            "--data",
            data_s,
        ])
        .arg(sample("visit_counter.js"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dry-run: 2 changes, nothing written"),
        "{text}"
    );
    assert!(text.contains("~ kv visits: 1 -> 2"), "{text}");
    assert_eq!(visits(&[]), 2);
    // Another workspace in the same store starts from zero.
    assert_eq!(visits(&["--workspace", "other"]), 1);
    let store = quire_storage::Store::open(&quire_storage::StoreConfig::new(&data)).unwrap();
    let ws = store.workspace_by_name("default").unwrap().unwrap();
    let runs = store.list_runs(&ws.id, None, 10).unwrap();
    assert_eq!(runs.len(), 4);
    assert!(runs
        .iter()
        .all(|r| r.status == "ok" && r.events.last().unwrap()["type"] == "finished"));
    assert_eq!(
        runs[0].request["grants"],
        serde_json::json!(["kv:read", "kv:write"])
    );
}

/// The tasks_summary sample run with `extra` flags: its event types and
/// result (it must finish ok).
fn summary_run(extra: &[&str]) -> (Vec<String>, serde_json::Value) {
    let out = quire()
        .args([
            "run",
            &sample("tasks_summary.ts"),
            "--json",
            "--cap",
            "db:read:tasks",
        ])
        .args(extra)
        .env_remove("QUIRE_DENO")
        .output()
        .unwrap();
    let result = ok_result(&out);
    // Live meters come with time (a run past 100 ms has them), not with
    // the engine or the isolation: left out of the comparison.
    let types = json_events(&out)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .filter(|t| t != "meter")
        .collect();
    (types, result)
}

#[test]
fn isolation_can_be_chosen_and_both_give_the_same_events() {
    assert_eq!(
        summary_run(&["--isolation", "runner"]),
        summary_run(&["--isolation", "in-process"])
    );
    let bad = quire()
        .args(["run", &sample("hello.js"), "--isolation", "none"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn both_engines_run_the_samples_alike_and_a_missing_v8_runner_names_its_install() {
    assert_eq!(
        summary_run(&["--engine", "quickjs"]),
        summary_run(&["--engine", "v8"])
    );
    let denied = quire()
        .args(["run", &sample("tasks_summary.ts"), "--engine", "v8"])
        .output()
        .unwrap();
    assert_eq!(
        denied.status.code(),
        Some(1),
        "a denial is the block failing"
    );
    let missing = quire()
        .args(["run", &sample("hello.js"), "--engine", "v8"])
        .args(["--v8-runner", "/definitely/no/runner"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("npm ci --ignore-scripts") && err.contains("/definitely/no/runner"),
        "{err}"
    );
    // QuickJS keeps working without it.
    let qjs = quire()
        .args([
            "run",
            &sample("hello.js"),
            "--v8-runner",
            "/definitely/no/runner",
        ])
        .output()
        .unwrap();
    assert_eq!(qjs.status.code(), Some(0));
}

#[test]
fn an_installed_binary_finds_the_v8_runner_beside_it() {
    // No path is baked in at build time: a copy of the binary with
    // `runners/node` next to it (here a link to the checkout's) runs V8
    // from any directory, and without one it says where it looked.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("quire");
    std::fs::copy(env!("CARGO_BIN_EXE_quire"), &bin).unwrap();
    let block = dir.path().join("b.js");
    std::fs::write(&block, "export default 6 * 7;").unwrap();
    let run = |bin: &std::path::Path| {
        std::process::Command::new(bin)
            .args(["run", block.to_str().unwrap(), "--engine", "v8", "--json"])
            .current_dir(dir.path())
            .env_remove("QUIRE_V8_RUNNER_DIR")
            .output()
            .unwrap()
    };
    let none = run(&bin);
    assert_eq!(none.status.code(), Some(2));
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        err.contains(&format!("{}/runners/node", dir.path().display())),
        "{err}"
    );
    std::fs::create_dir(dir.path().join("runners")).unwrap();
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/engine/runners/node"),
        dir.path().join("runners/node"),
    )
    .unwrap();
    let ok = run(&bin);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        out.contains("\"value\":42"),
        "{out} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// The soft and hard open-file limits of process `pid`, from /proc.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let mut f = line["Max open files".len()..].split_whitespace();
    (f.next().unwrap().into(), f.next().unwrap().into())
}

/// `quire serve` raises its soft open-file limit to the hard one. At a
/// soft limit of 1024 (common) the 500 in-process clients of `quire bench
/// --only server` ran it out: `accept` failed, and a sled blob write that
/// failed with EMFILE left an IO buffer that is never written, so the next
/// flush waited for ever holding sled's global lock and the whole server
/// stalled at no CPU (reproduced at a soft limit of 512: 5 of 5 runs hung).
#[test]
fn serve_raises_its_open_file_limit() {
    let (_, hard) = open_file_limits(std::process::id());
    let Ok(hard_n) = hard.parse::<u64>() else {
        eprintln!("skipped: the hard open-file limit is {hard}");
        return;
    };
    if hard_n <= 256 {
        eprintln!("skipped: the hard open-file limit is only {hard}");
        return;
    }
    let dir = tempdir::Dir::new();
    let mut cmd = quire();
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--isolation",
        "in-process",
        "--data",
    ])
    .arg(dir.path().join("data"))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setrlimit, which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = 256;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // Wait until it serves (it has long passed its start by then).
    let stderr = child.stderr.take().unwrap();
    let mut serving = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.starts_with("quire serving on") {
            serving = true;
            break;
        }
    }
    let limits = open_file_limits(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(serving, "quire serve did not start");
    assert_eq!(limits.0, limits.1, "soft open-file limit (soft, hard)");
}
