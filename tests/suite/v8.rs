//! The V8 engine's own boundary: what deno and the sandbox refuse even
//! when code gets past the source checks (through `eval`, which the
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
    // `eval` code is not rewritten: its import() goes to deno's loader,
    // where permissions (none) and the sandbox must refuse.
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
    assert_eq!(out.as_object().unwrap().len(), 9);
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
        "WebAssembly",
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
        "DOMException",
        "Event",
        "EventTarget",
        "ErrorEvent",
        "CloseEvent",
        "MessageEvent",
        "CustomEvent",
        "ProgressEvent",
        "PromiseRejectionEvent",
        "AbortController",
        "AbortSignal",
        "ReadableStream",
        "WritableStream",
        "TransformStream",
        "ReadableStreamDefaultReader",
        "ReadableStreamBYOBReader",
        "ReadableStreamBYOBRequest",
        "ReadableByteStreamController",
        "ReadableStreamDefaultController",
        "TransformStreamDefaultController",
        "WritableStreamDefaultWriter",
        "WritableStreamDefaultController",
        "ByteLengthQueuingStrategy",
        "CountQueuingStrategy",
        "TextEncoderStream",
        "TextDecoderStream",
        "URLPattern",
        "addEventListener",
        "removeEventListener",
        "dispatchEvent",
        "onerror",
        "onunhandledrejection",
        "onload",
        "onunload",
        "onbeforeunload",
        "name",
        "__qi__",
        "Temporal",
        "DisposableStack",
        "AsyncDisposableStack",
        "SuppressedError",
        "QuotaExceededError",
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
                    cpu_time_ms: 300,
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
fn v8s_own_async_work_is_not_taken_for_a_stuck_run() {
    // Timers inside V8 and deno that quire's timers do not see: the run
    // waits for them instead of ending as "can never settle".
    let r = v8(r#"
const ia = new Int32Array(new SharedArrayBuffer(16));
const waited = await Atomics.waitAsync(ia, 0, 0, 150).value;
const s = AbortSignal.timeout(120);
await new Promise((r) => s.addEventListener("abort", r));
const wasm = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]);
WebAssembly.compile(wasm).then((m) => console.log("compiled", m instanceof WebAssembly.Module));
export default [waited, s.reason.name];
"#);
    assert_eq!(
        r.result(),
        Some(&json!(["timed-out", "TimeoutError"])),
        "{:?}",
        r.outcome
    );
    assert_eq!(
        r.logs(),
        vec!["compiled true".to_string()],
        "a compile after the result still ends"
    );
    // A wait nothing can end (no timeout, no other agent) is still found.
    let r = v8(
        "const ia = new Int32Array(new SharedArrayBuffer(16)); await Atomics.waitAsync(ia, 0, 0).value;",
    );
    assert_eq!(r.kind(), Some(ErrorKind::WallLimit), "{:?}", r.outcome);
    let msg = &r.outcome.error.as_ref().unwrap().message;
    assert!(msg.contains("can never settle"), "{msg}");
}
