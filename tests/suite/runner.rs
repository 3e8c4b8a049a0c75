//! Runs in sandboxed runner processes: the same contract as in-process, a
//! forbidden system call kills only the runner, a killed or lying runner
//! ends its runs with `internal` and is replaced, the server enforces the
//! wall clock on a runner that stops answering, and grants stay on the
//! server.

use std::sync::OnceLock;
use std::time::Duration;

use quire_engine::runner::RunnerConfig;
use quire_engine::{
    Engine, EngineConfig, ErrorKind, EventBody, Isolation, Lang, Limits, RunRequest,
};
use quire_host_api::Grants;
use serde_json::json;

use crate::common::{run_req, Ran};

fn runner_config() -> RunnerConfig {
    RunnerConfig::new(
        env!("CARGO_BIN_EXE_quire"),
        vec!["__runner".into(), "--test-hooks".into()],
    )
}

/// One runner-backed engine for the tests that do not break runners.
pub fn runner_engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        Engine::new(EngineConfig {
            isolation: Isolation::Runners(runner_config()),
            ..EngineConfig::default()
        })
        .unwrap()
    })
}

/// A runner-backed engine of its own (its own runner processes).
pub fn fresh_runner_engine() -> Engine {
    own_engine(runner_config())
}

fn own_engine(config: RunnerConfig) -> Engine {
    Engine::new(EngineConfig {
        isolation: Isolation::Runners(config),
        ..EngineConfig::default()
    })
    .unwrap()
}

fn run_on(engine: &Engine, src: &str) -> Ran {
    run_req(
        engine,
        RunRequest::new(src, Lang::Js).with_limits(Limits {
            // Far above the CPU limit: on a loaded machine (tests in
            // parallel, a busy runner reniced) a CPU loop may get a
            // fraction of a core, and must still end on CPU, not wall.
            wall_time_ms: 20_000,
            ..Limits::default()
        }),
    )
}

#[test]
fn runs_in_runners_keep_the_event_contract() {
    let e = runner_engine();
    let r = run_on(e, "console.log('a'); display({x: 1}); export default await new Promise(r => setTimeout(() => r(42), 5));");
    assert_eq!(r.result(), Some(&json!(42)), "{:?}", r.outcome.error);
    assert_eq!(r.logs(), vec!["a".to_string()]);
    let r = run_on(e, "for (;;) {}");
    assert_eq!(r.kind(), Some(ErrorKind::CpuLimit));
    let r = run_on(e, "throw new TypeError('x')");
    assert_eq!(r.kind(), Some(ErrorKind::Exception));
    assert_eq!(r.outcome.error.as_ref().unwrap().line, Some(1));
    crate::common::assert_sandboxed(e.sandbox_reports());
}

#[test]
fn output_limits_are_enforced_by_the_server_too() {
    let e = runner_engine();
    let r = run_req(
        e,
        RunRequest::new(
            "for (let i = 0; i < 1e6; i++) console.log('x'.repeat(100));",
            Lang::Js,
        )
        .with_limits(Limits {
            output_bytes: 10_000,
            ..Limits::default()
        }),
    );
    assert_eq!(r.kind(), Some(ErrorKind::OutputLimit));
    let logged: usize = r.logs().iter().map(String::len).sum();
    assert!(
        logged <= 10_000,
        "{logged} bytes of logs passed a 10,000-byte limit"
    );
}

#[test]
fn a_forbidden_syscall_kills_the_runner_not_the_server() {
    let e = own_engine(runner_config());
    let r = run_on(
        &e,
        "console.log('before'); await new Promise(r => setTimeout(r, 100)); __quire_test_forbidden_syscall(); export default 'escaped';",
    );
    assert_eq!(r.kind(), Some(ErrorKind::Internal), "{:?}", r.outcome);
    assert!(r.message().contains("SIGSYS"), "{}", r.message());
    // What the runner sent before it died is kept.
    assert_eq!(r.logs(), vec!["before".to_string()]);
    assert_eq!(r.result(), None);
    // The pool replaced it.
    assert_eq!(run_on(&e, "export default 1").result(), Some(&json!(1)));
    assert!(e.stats().runners_lost >= 1);
}

#[test]
fn kill_9_of_a_runner_mid_run_ends_its_runs_with_internal() {
    let mut config = runner_config();
    config.warm_runners = 0;
    let e = own_engine(config);
    let mut req = RunRequest::new(
        "console.log(String(__quire_test_pid())); await new Promise(r => setTimeout(r, 10000));",
        Lang::Js,
    )
    .with_limits(Limits {
        wall_time_ms: 20_000,
        ..Limits::default()
    });
    req.workspace = Some("kill-test".into());
    let h = e.run(req);
    let first = h.events().recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(first.body, EventBody::Started));
    let log = h.events().recv_timeout(Duration::from_secs(10)).unwrap();
    // The block says which runner it is in (test hook); kill exactly that
    // one (other tests' runners share this process).
    let EventBody::Log { text, .. } = log.body else {
        panic!("expected a log")
    };
    let pid: i32 = text.parse().unwrap();
    assert_ne!(pid as u32, std::process::id());
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let out = h.wait();
    assert_eq!(
        out.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Internal),
        "{out:?}"
    );
    assert!(out.error.unwrap().message.contains("SIGKILL"));
    assert_eq!(
        run_on(&e, "export default 'alive'").result(),
        Some(&json!("alive"))
    );
}

/// A fake runner: a shell script that says it is ready, then misbehaves.
fn fake_runner(after_start: &str) -> RunnerConfig {
    let ready = r#"{"t":"ready","pid":1,"sandbox":{"seccomp":true,"landlock":true,"rlimits":true,"parent_death_signal":true}}"#;
    let len = ready.len() + 1;
    let script = format!(
        "printf '\\000\\000\\{:03o}\\{:03o}\\001%s' '{ready}'; head -c 4 >/dev/null; {after_start}",
        len >> 8,
        len & 0xff
    );
    let mut c = RunnerConfig::new("/bin/sh", vec!["-c".into(), script]);
    c.warm_runners = 1;
    c.kill_grace_ms = 200;
    c
}

#[test]
fn a_runner_that_breaks_the_protocol_is_ended() {
    for (name, misbehave) in [
        ("garbage", "printf 'garbage garbage garbage'; sleep 5"),
        ("huge frame", "printf '\\377\\377\\377\\377\\001'; sleep 5"),
        (
            "bad version",
            "printf '\\000\\000\\000\\003\\007{}'; sleep 5",
        ),
        ("bad json", "printf '\\000\\000\\000\\004\\001{x}'; sleep 5"),
        ("exit", "exit 3"),
    ] {
        let e = own_engine(fake_runner(misbehave));
        let r = run_on(&e, "export default 1");
        assert_eq!(
            r.kind(),
            Some(ErrorKind::Internal),
            "{name}: {:?}",
            r.outcome
        );
        assert!(r.message().contains("runner"), "{name}: {}", r.message());
    }
}

#[test]
fn a_silent_runner_is_killed_at_the_wall_clock_deadline() {
    let e = own_engine(fake_runner("sleep 30"));
    let t = std::time::Instant::now();
    let r = run_req(
        &e,
        RunRequest::new("export default 1", Lang::Js).with_limits(Limits {
            wall_time_ms: 300,
            ..Limits::default()
        }),
    );
    assert_eq!(r.kind(), Some(ErrorKind::WallLimit), "{:?}", r.outcome);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the server waited for a silent runner"
    );
}

#[test]
fn host_calls_from_a_runner_use_the_runs_grants_on_the_server() {
    let fx = crate::host::fixture();
    let e = runner_engine();
    let src = "import { kv, db } from 'quire'; let denied; try { await db.query('tasks'); } catch (e) { denied = e.name; } export default [await kv.get('k'), denied];";
    let host = fx
        .api
        .session(fx.a.id, Grants::parse(&["kv:read"]).unwrap());
    let r = run_req(e, RunRequest::new(src, Lang::Js).with_host(host));
    assert_eq!(
        r.result(),
        Some(&json!(["kv A", "CapabilityDenied"])),
        "{:?}",
        r.outcome.error
    );
    // Without a host, nothing is reachable, whatever the runner is told.
    let r = run_req(
        e,
        RunRequest::new(
            "export default await globalThis.__quire_host('kv.get', ['k'])",
            Lang::Js,
        ),
    );
    assert_eq!(r.kind(), Some(ErrorKind::CapabilityDenied));
}

#[test]
fn cancelling_a_run_in_a_runner() {
    let e = runner_engine();
    let h = e.run(RunRequest::new(
        "await new Promise(r => setTimeout(r, 10000));",
        Lang::Js,
    ));
    let first = h.events().recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(first.body, EventBody::Started));
    h.cancel();
    let out = h.wait();
    assert_eq!(out.error.map(|e| e.kind), Some(ErrorKind::Cancelled));
}

#[test]
fn a_runner_serves_one_workspace_only() {
    let mut config = runner_config();
    config.warm_runners = 1;
    let e = own_engine(config);
    let pid_in = |ws: &str| {
        let mut req = RunRequest::new("export default __quire_test_pid()", Lang::Js);
        req.workspace = Some(ws.into());
        let r = run_req(&e, req);
        r.result()
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("{:?}", r.outcome))
    };
    let a1 = pid_in("alpha");
    let b1 = pid_in("beta");
    let a2 = pid_in("alpha");
    let b2 = pid_in("beta");
    assert_ne!(a1, b1, "two workspaces shared a runner");
    assert_eq!(a1, a2, "a workspace's runs should reuse its bound runner");
    assert_eq!(b1, b2);
    assert_ne!(
        a1 as u32,
        std::process::id(),
        "the block ran in the server process"
    );
    // Many workspaces, never a shared runner.
    let mut seen = std::collections::HashMap::new();
    for i in 0..6 {
        let ws = format!("ws{i}");
        let pid = pid_in(&ws);
        if let Some(other) = seen.insert(pid, ws.clone()) {
            panic!("{ws} ran in {other}'s runner");
        }
    }
}

fn nested(levels: usize) -> serde_json::Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!([v]);
    }
    v
}

#[test]
fn too_deep_values_end_only_their_own_run_and_keep_the_runner() {
    let fx = crate::host::fixture();
    // Stored before the depth limit existed (storage itself takes it).
    fx.store.kv_set(&fx.a.id, "deep", &nested(124)).unwrap();
    let mut config = runner_config();
    config.warm_runners = 1;
    let e = own_engine(config);
    let req = |src: &str| {
        let mut r = RunRequest::new(src, Lang::Js).with_host(
            fx.api
                .session(fx.a.id, Grants::parse(&["kv:read"]).unwrap()),
        );
        r.workspace = Some("alpha".into());
        r
    };
    let sleeper = e.run(req(
        "await new Promise(r => setTimeout(r, 400)); export default __quire_test_pid()",
    ));
    let first = sleeper
        .events()
        .recv_timeout(Duration::from_secs(10))
        .unwrap();
    assert!(matches!(first.body, EventBody::Started));
    // An input, a result, a display and a host reply past the limit, in
    // the same workspace (so the same runner) while the sleeper waits.
    let r = run_req(&e, req("export default 1").with_input(nested(126)));
    assert_eq!(r.kind(), Some(ErrorKind::Exception), "{:?}", r.outcome);
    assert!(
        r.message()
            .contains("ctx.input is nested deeper than the limit of 64"),
        "{}",
        r.message()
    );
    let r = run_req(
        &e,
        req("export default JSON.parse('['.repeat(126) + ']'.repeat(126))"),
    );
    assert_eq!(r.kind(), Some(ErrorKind::Exception), "{:?}", r.outcome);
    assert!(
        r.message().contains("the result is nested deeper"),
        "{}",
        r.message()
    );
    let r = run_req(
        &e,
        req("display(JSON.parse('['.repeat(126) + ']'.repeat(126)))"),
    );
    assert_eq!(r.kind(), Some(ErrorKind::Exception), "{:?}", r.outcome);
    let r = run_req(
        &e,
        req("import { kv } from 'quire'; let m; try { await kv.get('deep'); } catch (e) { m = e.name + ': ' + e.message; } export default m;"),
    );
    assert_eq!(
        r.result(),
        Some(&json!("RangeError: the value the host returned is nested deeper than the limit of 64 levels of arrays and objects")),
        "{:?}",
        r.outcome
    );
    let out = sleeper.wait();
    assert_eq!(out.error, None, "the other run survived");
    let pid = out.result.and_then(|v| v.as_u64());
    let again = run_req(&e, req("export default __quire_test_pid()"));
    assert_eq!(
        again.result().and_then(|v| v.as_u64()),
        pid,
        "the runner was not replaced"
    );
}
