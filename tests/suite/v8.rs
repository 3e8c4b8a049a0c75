//! The V8 engine's own boundary: what the isolate and the sandbox refuse
//! even when code gets past the source checks (through `eval`, which the
//! import rewrite cannot see), the sandbox report, the globals a block
//! sees against QuickJS's, and that a V8 run that hits a limit or crashes
//! its process leaves the pool working.

use quire_engine::{EngineKind, ErrorKind, Lang, Limits, RunRequest};
use serde_json::json;

use crate::common::{assert_healthy, engine, on_each_engine, run_req, run_with};

fn v8(src: &str) -> crate::common::Ran {
    run_req(
        engine(),
        RunRequest::new(src, Lang::Js)
            .with_engine(EngineKind::V8)
            .with_limits(Limits {
                wall_time_ms: 4000,
                ..Limits::default()
            }),
    )
}

#[test]
fn code_made_at_run_time_cannot_reach_files_network_env_or_processes() {
    // `eval` code is not rewritten: its import() reaches V8, which has no
    // module loader in a run's isolate; no Node API is there either.
    let r = v8(r#"
const out = {};
const tryIt = async (name, f) => { try { out[name] = "ALLOWED: " + String(await f()).slice(0, 60); } catch (e) { out[name] = "refused"; } };
await tryIt("file_import", () => eval("import('file:///etc/passwd')"));
await tryIt("npm_import", () => eval("import('npm:is-number')"));
await tryIt("https_import", () => eval("import('https://example.com/x.js')"));
await tryIt("fs_read", async () => (await eval("import('node:fs')")).readFileSync("/etc/passwd", "utf8"));
await tryIt("env", async () => (await eval("import('node:process')")).default.env.HOME ?? "none");
await tryIt("spawn", async () => (await eval("import('node:child_process')")).execSync("id").toString());
await tryIt("net", async () => { const net = await eval("import('node:net')"); return await new Promise((ok, no) => { const s = net.connect(1, "127.0.0.1", () => ok("connected")); s.on("error", no); }); });
await tryIt("deno", () => typeof Deno === "undefined" ? Promise.reject("gone") : Deno.readTextFileSync("/etc/passwd"));
await tryIt("process", () => typeof process === "undefined" ? Promise.reject("gone") : process.env.HOME);
await tryIt("require", () => typeof require === "undefined" ? Promise.reject("gone") : require("fs"));
await tryIt("worker", () => new Worker("data:text/javascript,1", { type: "module" }));
export default out;
"#);
    let out = r
        .result()
        .unwrap_or_else(|| panic!("{:?}", r.outcome))
        .clone();
    for (k, v) in out.as_object().unwrap() {
        assert_eq!(v, "refused", "{k} was allowed: {v}");
    }
    assert_eq!(out.as_object().unwrap().len(), 11);
}

#[test]
fn v8_runners_are_sandboxed() {
    let r = v8("export default 1");
    assert_eq!(r.result(), Some(&json!(1)), "{:?}", r.outcome);
    crate::common::assert_sandboxed(engine().v8_sandbox_reports());
}

#[test]
fn a_block_sees_quires_globals_in_both_engines() {
    // Every global a V8 block sees is one a QuickJS block sees too, or a
    // listed V8 extra (JavaScript built-ins QuickJS lacks).
    const V8_EXTRAS: &[&str] = &[
        "Intl",
        "SharedArrayBuffer",
        "Atomics",
        "FinalizationRegistry",
        "WeakRef",
        "AggregateError",
        "Iterator",
        "Float16Array",
        "escape",
        "unescape",
        "__qi__",
        "__quire_module",
        "Temporal",
        "DisposableStack",
        "AsyncDisposableStack",
        "SuppressedError",
    ];
    let src = "export default Object.getOwnPropertyNames(globalThis).sort()";
    let mut seen = Vec::new();
    on_each_engine(|_| {
        let r = run_req(engine(), RunRequest::new(src, Lang::Js));
        let names: Vec<String> = serde_json::from_value(r.result().unwrap().clone()).unwrap();
        seen.push(names);
    });
    let (qjs, v8) = (&seen[0], &seen[1]);
    let extra: Vec<_> = v8
        .iter()
        .filter(|n| !qjs.contains(n) && !V8_EXTRAS.contains(&n.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "V8 blocks see globals QuickJS blocks do not: {extra:?}"
    );
    // QuickJS's own error type for engine failures; V8 has none.
    const QUICKJS_ONLY: &[&str] = &["InternalError"];
    let missing: Vec<_> = qjs
        .iter()
        .filter(|n| !v8.contains(n) && !QUICKJS_ONLY.contains(&n.as_str()))
        .collect();
    assert!(missing.is_empty(), "V8 blocks lack globals: {missing:?}");
}

#[test]
fn limits_and_crashes_leave_the_v8_pool_working() {
    for (src, kind) in [
        ("for (;;) {}", ErrorKind::CpuLimit),
        ("const a = []; for (;;) a.push(new Array(1e5).fill(1.5));", ErrorKind::MemoryLimit),
        ("const k = []; for (;;) k.push(new Uint8Array(8 << 20));", ErrorKind::MemoryLimit),
        ("await new Promise(r => setTimeout(r, 60000));", ErrorKind::WallLimit),
        ("Function.prototype.call = () => 0; await new Promise(r => setTimeout(r, 1)); for (let i = 0; ; i++) console.log(i);", ErrorKind::OutputLimit),
    ] {
        let r = run_req(
            engine(),
            RunRequest::new(src, Lang::Js)
                .with_engine(EngineKind::V8)
                .with_limits(Limits {
                    // Only the CPU case is about CPU: the others get room
                    // (near its memory limit V8 spends CPU collecting
                    // garbage first, more so on a loaded machine).
                    cpu_time_ms: if kind == ErrorKind::CpuLimit { 300 } else { 5_000 },
                    // Far above the CPU limit: on a loaded machine (tests
                    // in parallel, a busy runner reniced) a CPU loop may
                    // get a fraction of a core.
                    wall_time_ms: if kind == ErrorKind::WallLimit { 1000 } else { 20_000 },
                    memory_bytes: 32 << 20,
                    output_bytes: 10_000,
                    ..Limits::default()
                }),
        );
        assert_eq!(r.kind(), Some(kind), "{src}: {:?}", r.outcome);
    }
    on_each_engine(|k| {
        if k == EngineKind::V8 {
            assert_healthy(engine());
        }
    });
}

/// How deep plain recursion gets under `stack_bytes`, and how the run
/// ends when the overflow is not caught.
fn depth_at(stack_bytes: u64) -> (u64, Option<ErrorKind>) {
    let limits = Limits {
        stack_bytes,
        wall_time_ms: 20_000,
        ..Limits::default()
    };
    let caught = run_with(
        "let n = 0; function f() { n++; f(); } try { f(); } catch (e) { if (e.name !== 'RangeError' && e.name !== 'InternalError') throw e; } export default n;",
        Lang::Js,
        limits.clone(),
    );
    let depth = caught
        .result()
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("{:?}", caught.outcome));
    let uncaught = run_with("function f() { f(); } f();", Lang::Js, limits);
    (depth, uncaught.kind())
}

#[test]
fn a_runs_stack_limit_holds_in_both_engines() {
    // V8 fixes its stack when a process starts: a run asking for another
    // size than the warm runners' gets a process started for it.
    on_each_engine(|k| {
        let (small, small_end) = depth_at(256 << 10);
        let (default, default_end) = depth_at(Limits::default().stack_bytes);
        let (big, big_end) = depth_at(4 << 20);
        for end in [small_end, default_end, big_end] {
            assert_eq!(end, Some(ErrorKind::StackOverflow), "{k:?}");
        }
        eprintln!("{k:?} depth: 256 KiB {small}, 1 MiB {default}, 4 MiB {big}");
        // Depth grows with the limit, roughly in proportion.
        assert!(
            small * 2 < default,
            "{k:?}: 256 KiB gave {small}, 1 MiB {default}"
        );
        assert!(
            default * 2 < big,
            "{k:?}: 1 MiB gave {default}, 4 MiB {big}"
        );
        if k == EngineKind::V8 {
            assert_healthy(engine());
        }
    });
}

#[test]
fn what_the_isolate_cannot_bound_is_not_there() {
    // WebAssembly's memories are reserved by V8 outside the isolate's
    // counted allocations, and `Atomics.waitAsync` cannot settle under
    // isolated-vm: neither is a global of a V8 run (QuickJS has neither).
    let r =
        v8("export default [typeof WebAssembly, typeof Atomics.waitAsync, typeof Atomics.wait];");
    assert_eq!(
        r.result(),
        Some(&json!(["undefined", "undefined", "function"])),
        "{:?}",
        r.outcome
    );
    // A wait nothing can end is found at once.
    let r = v8("await new Promise(() => {});");
    assert_eq!(r.kind(), Some(ErrorKind::WallLimit), "{:?}", r.outcome);
    let msg = &r.outcome.error.as_ref().unwrap().message;
    assert!(msg.contains("can never settle"), "{msg}");
}

#[test]
fn a_runner_past_its_resident_memory_ceiling_is_replaced_and_its_runs_end_out_of_memory() {
    // isolated-vm's per-isolate limit is soft; behind it the pool kills a
    // runner process whose resident memory passes the ceiling. With a
    // ceiling below an idle Node process, any run that waits is past it.
    let mut v8 = crate::common::v8_config();
    v8.rss_ceiling_mb = 1;
    v8.warm_runners = 1;
    let low = quire_engine::Engine::new(quire_engine::EngineConfig {
        worker_threads: 1,
        v8: Some(v8),
        ..quire_engine::EngineConfig::default()
    })
    .expect("engine starts");
    let r = run_req(
        &low,
        RunRequest::new(
            "await new Promise((r) => setTimeout(r, 2000)); export default 1;",
            Lang::Js,
        )
        .with_engine(EngineKind::V8),
    );
    assert_eq!(r.kind(), Some(ErrorKind::MemoryLimit), "{:?}", r.outcome);
    // The ordinary engine is untouched.
    assert_healthy(engine());
}

#[test]
fn a_run_that_makes_v8_lose_an_isolate_ends_alone() {
    // A dictionary grown past the memory limit often makes V8 lose
    // control of the isolate (its thread is parked for good). The run
    // ends memory_limit; a run of the same workspace in the same runner
    // process goes on to its own result, and the pool goes on working.
    let mut v8 = crate::common::v8_config();
    v8.warm_runners = 1;
    let own = quire_engine::Engine::new(quire_engine::EngineConfig {
        worker_threads: 1,
        v8: Some(v8),
        ..quire_engine::EngineConfig::default()
    })
    .expect("engine starts");
    let limits = Limits {
        memory_bytes: 32 << 20,
        cpu_time_ms: 10_000,
        wall_time_ms: 20_000,
        ..Limits::default()
    };
    let req = |src: &str| {
        let mut r = RunRequest::new(src, Lang::Js)
            .with_engine(EngineKind::V8)
            .with_limits(limits.clone());
        r.workspace = Some("w-lost".into());
        own.run(r)
    };
    for round in 0..3 {
        let sibling = req("await new Promise((r) => setTimeout(r, 1500)); export default 42;");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let bomb = req("const o = {}; for (let i = 0; ; i++) o['k' + i] = i;").wait();
        let kind = bomb.error.as_ref().map(|e| e.kind);
        assert_eq!(
            kind,
            Some(ErrorKind::MemoryLimit),
            "round {round}: {bomb:?}"
        );
        let sibling = sibling.wait();
        assert!(sibling.error.is_none(), "round {round}: {sibling:?}");
        assert_eq!(sibling.result, Some(json!(42)), "round {round}");
    }
    let after = req("export default 7").wait();
    assert_eq!(after.result, Some(json!(7)), "{after:?}");
}
