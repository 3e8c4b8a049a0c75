//! The block semantics, globals, error kinds, TypeScript and the event
//! contract, through the engine API.

use std::time::Duration;

use quire_engine::{Engine, EngineConfig, ErrorKind, EventBody, Lang, Limits, RunRequest};
use serde_json::json;

use crate::common::{assert_healthy, engine, on_each_engine, run_js, run_req, run_with};

fn limits(cpu_ms: u64, wall_ms: u64) -> Limits {
    Limits {
        cpu_time_ms: cpu_ms,
        wall_time_ms: wall_ms,
        ..Limits::default()
    }
}

#[test]
fn events_come_in_contract_order() {
    on_each_engine(|_engine| {
        let r = run_js("console.log('a'); display({x: 1}); export default 7;");
        let types: Vec<_> = r
            .events
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(types, ["started", "log", "display", "result", "finished"]);
        let fin = serde_json::to_value(r.events.last().unwrap()).unwrap();
        assert_eq!(fin["status"], "ok");
        assert!(fin["peak_memory_bytes"].as_u64().unwrap() > 0);
        assert!(fin["cpu_ms"].as_f64().unwrap() >= 0.0);
    });
}

#[test]
fn default_export_forms() {
    on_each_engine(|_engine| {
        assert_eq!(
            run_js("export default {n: 42}").result(),
            Some(&json!({"n": 42}))
        );
        assert_eq!(
            run_js("export default Promise.resolve(5)").result(),
            Some(&json!(5))
        );
        assert_eq!(
            run_js("export default {then(r) { r('thenable') }}").result(),
            Some(&json!("thenable"))
        );
        let mut req = RunRequest::new(
        "export default async (ctx) => ({ input: ctx.input, trigger: ctx.trigger.kind, ws: ctx.workspace, block: ctx.block })",
        Lang::Js,
    )
    .with_input(json!({"x": [1, 2]}));
        req.workspace = Some("acme".into());
        req.block = json!({"id": "b1"});
        let r = run_req(engine(), req);
        assert_eq!(
            r.result(),
            Some(
                &json!({"input": {"x": [1, 2]}, "trigger": "manual", "ws": "acme", "block": {"id": "b1"}})
            )
        );
        let none = run_js("console.log('no export')");
        assert!(none.result().is_none());
        assert!(!none
            .events
            .iter()
            .any(|e| matches!(e.body, EventBody::Result { .. })));
        assert_eq!(
            run_js("const x = await Promise.resolve(3); export default x * 2").result(),
            Some(&json!(6))
        );
    });
}

#[test]
fn every_error_kind_the_engine_produces() {
    on_each_engine(|_engine| {
        let cases: Vec<(&str, Limits, ErrorKind)> = vec![
            ("let = ;", Limits::default(), ErrorKind::Syntax),
            (
                "throw new TypeError('bad')",
                Limits::default(),
                ErrorKind::Exception,
            ),
            ("for(;;){}", limits(100, 5000), ErrorKind::CpuLimit),
            (
                "await new Promise(r => setTimeout(r, 60000))",
                limits(1000, 200),
                ErrorKind::WallLimit,
            ),
            (
                "const a = []; for(;;) a.push(new Array(1000).fill(1))",
                Limits {
                    memory_bytes: 8 << 20,
                    ..Limits::default()
                },
                ErrorKind::MemoryLimit,
            ),
            (
                "const f = () => f(); f()",
                Limits::default(),
                ErrorKind::StackOverflow,
            ),
            (
                "for(;;) console.log('x')",
                Limits {
                    output_bytes: 1000,
                    ..Limits::default()
                },
                ErrorKind::OutputLimit,
            ),
        ];
        for (src, l, kind) in cases {
            let r = run_with(src, Lang::Js, l);
            assert_eq!(r.kind(), Some(kind), "{src}: {:?}", r.outcome);
        }
        assert_healthy(engine());
    });
}

#[test]
fn limit_messages_name_the_limit() {
    on_each_engine(|_engine| {
        let r = run_with("for(;;){}", Lang::Js, limits(150, 5000));
        assert!(r.message().contains("150 ms"), "{}", r.message());
        let r = run_with(
            "for(;;) console.log('x')",
            Lang::Js,
            Limits {
                output_bytes: 4096,
                ..Limits::default()
            },
        );
        assert!(r.message().contains("4096 bytes"), "{}", r.message());
        let r = run_with(
            "new Uint8Array(1e8)",
            Lang::Js,
            Limits {
                memory_bytes: 8 << 20,
                ..Limits::default()
            },
        );
        assert!(
            r.message().contains(&(8u64 << 20).to_string()),
            "{}",
            r.message()
        );
    });
}

#[test]
fn cpu_limit_cannot_be_caught_and_is_final() {
    on_each_engine(|_engine| {
        let src = "let n = 0; for(;;) { try { for(;;){} } catch (e) { n++; console.log('caught', String(e)); } }";
        let r = run_with(src, Lang::Js, limits(100, 5000));
        assert_eq!(r.kind(), Some(ErrorKind::CpuLimit));
        assert!(
            r.logs().is_empty(),
            "the block must not see the interrupt: {:?}",
            r.logs()
        );
        assert!(r.outcome.finished.cpu_ms >= 100.0);
    });
}

#[test]
fn exceptions_carry_positions_and_stack() {
    on_each_engine(|_engine| {
        let r = run_js("const a = 1;\nfunction f() {\n  null.x;\n}\nf();");
        let e = r.outcome.error.unwrap();
        assert_eq!(e.kind, ErrorKind::Exception);
        assert!(e.message.starts_with("TypeError"), "{}", e.message);
        assert_eq!(e.line, Some(3));
        assert!(e.column.is_some());
        assert!(e.stack.unwrap().contains("block.js:3"));
        let s = run_js("let ok = 1;\nlet = ;").outcome.error.unwrap();
        assert_eq!((s.kind, s.line), (ErrorKind::Syntax, Some(2)));
    });
}

#[test]
fn typescript_is_stripped_and_lines_map_to_the_ts_source() {
    on_each_engine(|_engine| {
        let src = r#"import type { Thing } from "quire";
interface Point { x: number; y: number }
enum Color { Red, Green = 5 }
type Pair<T> = [T, T];
function first<T>(p: Pair<T>): T { return p[0]; }
const pt: Point = { x: 1, y: 2 };
class Box<T> { constructor(private value: T) {} get(): T { return this.value; } }
const b = new Box<number>(3);
console.log(Color.Green, first<number>([9, 8]), pt.x, b.get());
if ((pt as any).x === 1) {
  throw new RangeError("line eleven");
}
"#;
        let r = run_with(src, Lang::Ts, Limits::default());
        assert_eq!(r.logs(), vec!["5 9 1 3".to_string()]);
        let e = r.outcome.error.unwrap();
        assert_eq!(e.message, "RangeError: line eleven");
        assert_eq!(e.line, Some(11), "{e:?}");
        assert!(e.stack.unwrap().contains("block.ts:11:"));
        let syn = run_with("const x: number = ;\n", Lang::Ts, Limits::default())
            .outcome
            .error
            .unwrap();
        assert_eq!((syn.kind, syn.line), (ErrorKind::Syntax, Some(1)));
    });
}

#[test]
fn imports_other_than_the_host_module_fail_clearly() {
    on_each_engine(|_engine| {
        for src in [
            "import fs from 'fs'",
            "import x from './other.js'",
            "await import('https://evil.example/x.js')",
        ] {
            let r = run_js(src);
            assert_eq!(r.kind(), Some(ErrorKind::Exception), "{src}");
            assert!(
                r.message().contains("not allowed") || r.message().contains("quire"),
                "{src}: {}",
                r.message()
            );
        }
    });
}

#[test]
fn console_prints_like_a_browser() {
    on_each_engine(|_engine| {
        let r = run_js(
            r#"
console.log({a: 1, nested: {b: [1, 2, {c: 'x'}]}});
console.log(new Map([['k', 1]]), new Set([1, 2]));
console.log([1, 'two', null, undefined]);
console.log({ get bad() { throw new Error('nope'); }, fine: 1 });
console.log('%s is %d', 'n', 42);
const e = new Error('oops');
console.error(e);
const cyc = {}; cyc.self = cyc; console.log(cyc);
console.warn('w'); console.info('i'); console.debug('d');
"#,
        );
        let logs = r.logs();
        assert_eq!(logs[0], "{ a: 1, nested: { b: [ 1, 2, { c: 'x' } ] } }");
        assert_eq!(logs[1], "Map(1) { 'k' => 1 } Set(2) { 1, 2 }");
        assert_eq!(logs[2], "[ 1, 'two', null, undefined ]");
        assert!(logs[3].contains("fine: 1"), "{}", logs[3]);
        assert_eq!(logs[4], "n is 42");
        assert!(
            logs[5].starts_with("Error: oops\n") && logs[5].contains("block.js"),
            "{}",
            logs[5]
        );
        assert!(logs[6].contains("[Circular"), "{}", logs[6]);
        assert!(!logs.iter().any(|l| l.contains("[object Object]")));
        let levels: Vec<_> = r
            .events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Log { level, .. } => Some(level.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(&levels[levels.len() - 3..], ["warn", "info", "debug"]);
    });
}

#[test]
fn web_globals_work() {
    on_each_engine(|_engine| {
        let r = run_js(
            r#"
const out = {};
out.clone = structuredClone({ d: new Date(0), m: new Map([[1, { x: 1 }]]), a: [1, 2] });
out.cloneOk = out.clone.d instanceof Date && out.clone.m.get(1).x === 1;
out.enc = Array.from(new TextEncoder().encode('hé'));
out.dec = new TextDecoder().decode(new Uint8Array([104, 195, 169]));
const u = new URL('https://user@example.com:8080/a/b?x=1&y=2#frag');
out.url = [u.protocol, u.hostname, u.port, u.pathname, u.search, u.hash, u.origin, u.searchParams.get('y')];
u.searchParams.append('z', 'a b');
out.href = u.href;
out.rel = new URL('../c', 'https://example.com/a/b/').href;
out.badUrl = URL.canParse('not a url');
out.qs = new URLSearchParams({ a: '1', b: 'x&y' }).toString();
out.b64 = [btoa('hello'), atob('aGVsbG8=')];
const bytes = crypto.getRandomValues(new Uint8Array(16));
out.rand = bytes.length === 16 && bytes.some((b) => b !== 0);
out.uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID());
const order = [];
setTimeout(() => order.push('t2'), 20);
setTimeout(() => order.push('t1'), 5);
const cancelled = setTimeout(() => order.push('never'), 1);
clearTimeout(cancelled);
queueMicrotask(() => order.push('micro'));
let ticks = 0;
await new Promise((resolve) => { const iv = setInterval(() => { if (++ticks === 3) { clearInterval(iv); resolve(); } }, 1); });
await new Promise((r) => setTimeout(r, 30));
out.order = order;
out.ticks = ticks;
let cloneErr = '';
try { structuredClone({ f() {} }); } catch (e) { cloneErr = e.name; }
out.cloneErr = cloneErr;
export default out;
"#,
        );
        let v = r
            .result()
            .unwrap_or_else(|| panic!("{:?}", r.outcome))
            .clone();
        assert_eq!(v["cloneOk"], true);
        assert_eq!(v["enc"], json!([104, 195, 169]));
        assert_eq!(v["dec"], "hé");
        assert_eq!(
            v["url"],
            json!([
                "https:",
                "example.com",
                "8080",
                "/a/b",
                "?x=1&y=2",
                "#frag",
                "https://example.com:8080",
                "2"
            ])
        );
        assert_eq!(
            v["href"],
            "https://user@example.com:8080/a/b?x=1&y=2&z=a+b#frag"
        );
        assert_eq!(v["rel"], "https://example.com/a/c");
        assert_eq!(v["badUrl"], false);
        assert_eq!(v["qs"], "a=1&b=x%26y");
        assert_eq!(v["b64"], json!(["aGVsbG8=", "hello"]));
        assert_eq!(v["rand"], true);
        assert_eq!(v["uuid"], true);
        assert_eq!(v["order"], json!(["micro", "t1", "t2"]));
        assert_eq!(v["ticks"], 3);
        assert_eq!(v["cloneErr"], "DataCloneError");
    });
}

#[test]
fn timers_after_the_result_still_run() {
    on_each_engine(|_engine| {
        let r = run_js("setTimeout(() => console.log('later'), 10); export default 1;");
        assert_eq!(r.logs(), vec!["later".to_string()]);
        assert_eq!(r.result(), Some(&json!(1)));
    });
}

#[test]
fn result_serializer_ignores_tampering_and_describes_non_json() {
    on_each_engine(|_engine| {
        let r = run_js(
        "JSON.stringify = () => '1'; Object.prototype.toJSON = () => 'x';\n\
         class P { toJSON() { return 'own toJSON'; } }\n\
         export default { p: new P(), d: new Date(0), f: () => 1, n: -0, i: Infinity, nested: [[[]]] };",
    );
        assert_eq!(
            r.result(),
            Some(
                &json!({"p": "own toJSON", "d": "1970-01-01T00:00:00.000Z", "f": "[Function: f]", "n": 0, "i": "Infinity", "nested": [[[]]]})
            )
        );
    });
}

#[test]
fn maps_sets_errors_and_regexps_are_described_as_a_console_shows_them() {
    on_each_engine(|_engine| {
        let r = run_js(
            "const big = new Set(); for (let i = 0; i < 150; i++) big.add(i);\n\
             function boom() { return new TypeError('bad ' + 'input'); }\n\
             export default { m: new Map([['a', 1], [2, { x: [1n] }]]), s: new Set(['x', undefined]),\n\
               e: boom(), re: /a+b/gi, nested: [new Map()], big, plain: { k: new Map([[1, new Set([2])]]) } };",
        );
        let v = r.result().expect("a result").clone();
        assert_eq!(v["m"], r#"Map(2) {"a" => 1, 2 => {"x":["1n"]}}"#);
        assert_eq!(v["s"], r#"Set(2) {"x", undefined}"#);
        assert_eq!(v["re"], "/a+b/gi");
        assert_eq!(v["nested"], json!(["Map(0) {}"]));
        assert_eq!(
            v["plain"]["k"], r#"Map(1) {1 => "Set(1) {2}"}"#,
            "a collection inside one is described in place"
        );
        let big = v["big"].as_str().unwrap();
        assert!(big.starts_with("Set(150) {0, 1, 2,"), "{big}");
        assert!(big.ends_with(", 99, …}"), "{big}");
        let e = v["e"].as_str().unwrap();
        assert!(e.starts_with("TypeError: bad input\n    at "), "{e}");
        assert!(e.contains("boom"), "the stack names the function: {e}");
        // A thrown Map is described the same way in the error's message.
        let t = run_js("throw new Map([['k', 'v']])");
        assert_eq!(
            t.outcome.error.map(|e| e.message),
            Some(r#"Uncaught "Map(1) {\"k\" => \"v\"}""#.to_string())
        );
    });
}

#[test]
fn cancellation_from_another_thread() {
    on_each_engine(|_engine| {
        for src in [
            "for(;;){}",
            "await new Promise(r => setTimeout(r, 60000))",
            "await new Promise(() => { setInterval(() => {}, 1000) })",
        ] {
            let h =
                engine().run(RunRequest::new(src, Lang::Js).with_limits(limits(30_000, 60_000)));
            let c = h.canceller();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                c.cancel();
            });
            let out = h.wait();
            t.join().unwrap();
            assert_eq!(
                out.error.map(|e| e.kind),
                Some(ErrorKind::Cancelled),
                "{src}"
            );
            assert!(out.finished.wall_ms < 20_000.0);
        }
        assert_healthy(engine());
    });
}

#[test]
fn cancelling_a_queued_run_finishes_it() {
    let e = engine_with(1);
    let busy = e.run(RunRequest::new("for(;;){}", Lang::Js).with_limits(limits(500, 5000)));
    let queued = e.run(RunRequest::new("export default 1", Lang::Js));
    queued.cancel();
    let out = queued.wait();
    assert_eq!(out.error.map(|e| e.kind), Some(ErrorKind::Cancelled));
    assert_eq!(busy.wait().error.map(|e| e.kind), Some(ErrorKind::CpuLimit));
}

#[test]
fn no_state_leaks_between_runs_on_the_same_worker() {
    let e = Engine::new(EngineConfig {
        worker_threads: 1,
        isolate_pool_per_worker: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let set = run_req(&e, RunRequest::new("globalThis.leak = 1; Object.prototype.polluted = 1; Array.prototype.push = null; export default 0", Lang::Js));
    assert!(set.outcome.error.is_none());
    let check = run_req(
        &e,
        RunRequest::new("const a = []; a.push(1); export default [typeof leak, ({}).polluted === undefined, a.length]", Lang::Js),
    );
    assert_eq!(check.result(), Some(&json!(["undefined", true, 1])));
}

#[test]
fn bytecode_cache_serves_repeated_blocks() {
    let e = engine_with(1);
    let src = "export default (ctx) => ctx.input + 1";
    for i in 0..3 {
        let r = run_req(&e, RunRequest::new(src, Lang::Js).with_input(json!(i)));
        assert_eq!(r.result(), Some(&json!(i + 1)));
    }
    assert_eq!(e.stats().cached_blocks, 1);
    // A syntax error in a cached-key neighbour does not poison the cache.
    assert_eq!(
        run_req(&e, RunRequest::new("export default (", Lang::Js)).kind(),
        Some(ErrorKind::Syntax)
    );
}

#[test]
fn a_stuck_run_does_not_block_other_runs() {
    let e = engine_with(2);
    // Wall-clock far above the CPU limit: a loaded machine must not turn
    // this into a wall-clock stop.
    let stuck = e.run(RunRequest::new("for(;;){}", Lang::Js).with_limits(limits(2000, 30000)));
    for _ in 0..5 {
        let r = run_req(&e, RunRequest::new("export default 'fine'", Lang::Js));
        assert_eq!(r.result(), Some(&json!("fine")));
    }
    assert_eq!(
        stuck.wait().error.map(|e| e.kind),
        Some(ErrorKind::CpuLimit)
    );
}

#[test]
fn many_concurrent_waiting_runs_share_a_worker() {
    let e = engine_with(1);
    let handles: Vec<_> = (0..20)
        .map(|i| {
            e.run(RunRequest::new(
                format!("await new Promise(r => setTimeout(r, 200)); export default {i}"),
                Lang::Js,
            ))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.wait();
        assert_eq!(out.result, Some(json!(i)));
        // All 20 waited at once, not one after another (20 x 200 ms).
        assert!(out.finished.wall_ms < 3000.0, "{}", out.finished.wall_ms);
    }
}

#[test]
fn the_watchdog_ends_runs_stuck_in_native_code_and_replaces_the_worker() {
    let e = Engine::new(EngineConfig {
        worker_threads: 1,
        backstop_grace_ms: 100,
        test_native_spin: true,
        ..EngineConfig::default()
    })
    .unwrap();
    // Stands in for a QuickJS built-in that never polls the interrupt handler.
    let stuck = e.run(
        RunRequest::new("__quire_test_native_spin(3000)", Lang::Js)
            .with_limits(limits(200, 10_000)),
    );
    let out = stuck.wait();
    let err = out.error.expect("the stuck run fails");
    assert_eq!(err.kind, ErrorKind::CpuLimit);
    assert!(err.message.contains("native code"), "{}", err.message);
    // Ended at its deadline plus grace, not when the native code returned.
    assert!(out.finished.wall_ms < 2500.0, "{}", out.finished.wall_ms);
    assert_eq!(e.stats().workers_replaced, 1);
    assert_eq!(e.stats().workers, 1);
    // The replacement serves runs while the abandoned thread still spins.
    assert_healthy(&e);
    // The same for the wall-clock limit.
    let out = e
        .run(
            RunRequest::new("__quire_test_native_spin(3000)", Lang::Js)
                .with_limits(limits(10_000, 300)),
        )
        .wait();
    assert_eq!(out.error.map(|e| e.kind), Some(ErrorKind::WallLimit));
    assert_healthy(&e);
}

#[test]
fn a_panic_inside_a_native_is_an_error_the_block_catches() {
    let e = Engine::new(EngineConfig {
        worker_threads: 1,
        test_native_spin: true,
        ..EngineConfig::default()
    })
    .unwrap();
    let src = "let caught;\n\
               try { __quire_test_native_panic('begin > end (6 > 4)'); } catch (err) { caught = [err.name, err.message]; }\n\
               export default caught;";
    for _ in 0..3 {
        let out = e.run(RunRequest::new(src, Lang::Js)).wait();
        assert!(out.error.is_none(), "{:?}", out.error);
        let v = out.result.expect("a result");
        assert_eq!(v[0], "InternalError");
        let msg = v[1].as_str().unwrap();
        assert!(
            msg.contains("failed inside quire") && msg.contains("begin > end (6 > 4)"),
            "{msg}"
        );
    }
    // The same worker serves the next runs: nothing unwound through it.
    assert_eq!(e.stats().workers_replaced, 0);
    assert_healthy(&e);
}

#[test]
fn url_setters_follow_the_url_standard() {
    on_each_engine(|_engine| {
        let r = run_js(
            "const set = (href, k, v) => { const u = new URL(href); u[k] = v; return u.href; };\n\
             export default [\n\
               set('sc://test:12/', 'host', ''),\n\
               set('http://example.com/', 'host', 'example.com:8080stuff2'),\n\
               set('http://example.com/', 'port', '8080/stuff'),\n\
               set('http://example.com/', 'hostname', 'ex\\tample.com/x'),\n\
               set('http://a/b?x', 'search', '??a'),\n\
               set('file://localhost/x', 'host', 'localhost'),\n\
               set('data:text/plain,x', 'pathname', 'y'),\n\
             ];",
        );
        assert_eq!(
            r.result(),
            Some(&json!([
                "sc://test:12/",
                "http://example.com:8080/",
                "http://example.com:8080/",
                "http://example.com/",
                "http://a/b??a",
                "file:///x",
                "data:text/plain,x",
            ]))
        );
    });
}

#[test]
fn display_checks_mime_types_and_counts_as_output() {
    on_each_engine(|_engine| {
        let r = run_js(
        "display('<b>hi</b>', { mime: 'text/html' });\n\
         display('a,b\\n1,2', { mime: 'text/csv' });\n\
         display('# T\\n\\n*x*', { mime: 'text/markdown' });\n\
         display({ rows: [1, 2] });\n\
         display('plain');\n\
         display('<svg xmlns=\"http://www.w3.org/2000/svg\"/>', { mime: 'image/svg+xml' });\n\
         display(' iVBO\\nRw0K ', { mime: 'image/png' });\n\
         display(new Uint8Array([255, 216, 255]), { mime: 'image/jpeg' });\n\
         display({ mark: 'bar', data: { values: [{ a: 1 }] } }, { mime: 'application/vnd.vegalite.v5+json' });\n\
         const bad = [];\n\
         for (const [v, m] of [['x', 'application/x-evil'], ['not base64!', 'image/png'], [42, 'image/jpeg'], [[1], 'application/vnd.vegalite.v5+json'], [null, 'application/vnd.vegalite.v5+json']]) {\n\
           try { display(v, { mime: m }); bad.push('shown'); } catch (e) { bad.push(e.name + ': ' + e.message); }\n\
         }\n\
         export default bad;",
    );
        let shown: Vec<_> = r
            .events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Display { mime, data, .. } => Some((mime.clone(), data.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("text/html".to_string(), json!("<b>hi</b>")),
                ("text/csv".to_string(), json!("a,b\n1,2")),
                ("text/markdown".to_string(), json!("# T\n\n*x*")),
                ("application/json".to_string(), json!({"rows": [1, 2]})),
                ("text/plain".to_string(), json!("plain")),
                (
                    "image/svg+xml".to_string(),
                    json!("<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
                ),
                ("image/png".to_string(), json!("iVBORw0K")),
                ("image/jpeg".to_string(), json!("/9j/")),
                (
                    "application/vnd.vegalite.v5+json".to_string(),
                    json!({"mark": "bar", "data": {"values": [{"a": 1}]}})
                ),
            ]
        );
        let bad = r.result().unwrap().as_array().unwrap();
        assert_eq!(bad.len(), 5, "{bad:?}");
        assert!(
            bad[0].as_str().unwrap().contains("unsupported mime"),
            "{bad:?}"
        );
        for (b, what) in bad[1..]
            .iter()
            .zip(["base64", "base64", "Vega-Lite", "Vega-Lite"])
        {
            let b = b.as_str().unwrap();
            assert!(b.starts_with("TypeError: ") && b.contains(what), "{b}");
        }
        let big = run_with(
            "display({ data: 'x'.repeat(5000) })",
            Lang::Js,
            Limits {
                output_bytes: 1000,
                ..Limits::default()
            },
        );
        assert_eq!(big.kind(), Some(ErrorKind::OutputLimit));
        // Images and charts count against the output limit too.
        for src in [
            "display(new Uint8Array(5000), { mime: 'image/png' })",
            "display({ mark: 'bar', data: { values: Array(500).fill({ a: 1 }) } }, { mime: 'application/vnd.vegalite.v5+json' })",
        ] {
            let big = run_with(
                src,
                Lang::Js,
                Limits {
                    output_bytes: 1000,
                    ..Limits::default()
                },
            );
            assert_eq!(big.kind(), Some(ErrorKind::OutputLimit), "{src}");
        }
    });
}

#[test]
fn the_job_budget_ends_promise_floods() {
    let r = run_with(
        "const spin = () => Promise.resolve().then(spin); await spin();",
        Lang::Js,
        Limits {
            max_jobs: 1000,
            ..Limits::default()
        },
    );
    assert_eq!(r.kind(), Some(ErrorKind::CpuLimit));
    assert!(r.message().contains("job limit of 1000"), "{}", r.message());
}

pub fn engine_with(workers: usize) -> Engine {
    Engine::new(EngineConfig {
        worker_threads: workers,
        ..EngineConfig::default()
    })
    .unwrap()
}
