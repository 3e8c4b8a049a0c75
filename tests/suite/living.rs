//! The living notebook's engine contract (issue 20), on both engines:
//! displays that update in place (`display_id`, `update_display`,
//! `clear_display`, `display.progress`) and live meters.

use quire_engine::{ErrorKind, EventBody, Lang, Limits, RunEvent, PROGRESS_MIME};
use serde_json::{json, Value};

use crate::common::{on_each_engine, run_js, run_with};

/// `(type, display_id, data)` of the display events, in order.
fn displays(events: &[RunEvent]) -> Vec<(&'static str, String, Value)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Display {
                display_id, data, ..
            } => Some(("display", display_id.clone(), data.clone())),
            EventBody::UpdateDisplay {
                display_id, data, ..
            } => Some(("update", display_id.clone(), data.clone())),
            EventBody::ClearDisplay { display_id } => {
                Some(("clear", display_id.clone(), Value::Null))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn displays_update_and_clear_in_place_in_order() {
    on_each_engine(|_| {
        let r = run_js(
            "const a = display({ n: 1 });\n\
             const b = display('hi', { id: 'status' });\n\
             a.update({ n: 2 });\n\
             b.update('<b>x</b>', { mime: 'text/html' });\n\
             b.clear();\n\
             b.clear();\n\
             const errors = [];\n\
             try { b.update('late'); } catch (e) { errors.push(e.name + ': ' + e.message); }\n\
             display('again', { id: 'status' });\n\
             display({ n: 3 }, { id: a.id });\n\
             let deep = 1; for (let i = 0; i < 100; i++) deep = [deep];\n\
             try { a.update(deep); errors.push('updated too deep'); } catch (e) { errors.push(e.name); }\n\
             for (const id of ['', 'a b', 'x'.repeat(65), '../x', 'é', { toString() { return 'ok:1'; } }]) {\n\
               try { display(1, { id }); errors.push('shown ' + id); } catch (e) { errors.push(e.name); }\n\
             }\n\
             export default { ids: [a.id, b.id], errors };",
        );
        assert_eq!(
            displays(&r.events),
            vec![
                ("display", "d1".into(), json!({"n": 1})),
                ("display", "status".into(), json!("hi")),
                ("update", "d1".into(), json!({"n": 2})),
                ("update", "status".into(), json!("<b>x</b>")),
                ("clear", "status".into(), Value::Null),
                ("display", "status".into(), json!("again")),
                ("update", "d1".into(), json!({"n": 3})),
                ("display", "ok:1".into(), json!(1)),
            ],
            "{:?}",
            r.events
        );
        let update_mime = r.events.iter().find_map(|e| match &e.body {
            EventBody::UpdateDisplay {
                display_id, mime, ..
            } if display_id == "status" => Some(mime.clone()),
            _ => None,
        });
        assert_eq!(update_mime.as_deref(), Some("text/html"));
        let result = r.result().cloned().unwrap_or_default();
        assert_eq!(result["ids"], json!(["d1", "status"]));
        let errors = result["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors[0]
                .as_str()
                .unwrap_or("")
                .contains("'status' was cleared"),
            "{errors:?}"
        );
        assert_eq!(
            &errors[1..],
            &[
                json!("RangeError"),
                json!("TypeError"),
                json!("TypeError"),
                json!("TypeError"),
                json!("TypeError"),
                json!("TypeError"),
                json!("shown ok:1")
            ]
        );
    });
}

#[test]
fn a_progress_bar_updates_only_when_it_visibly_changes() {
    on_each_engine(|_| {
        let r = run_js(
            "const p = display.progress(0, 'load');\n\
             for (let i = 0; i <= 10000; i++) p.update(i / 10000);\n\
             p.update(2);\n\
             p.update(NaN, 'odd');\n\
             display(0.5, { mime: 'application/vnd.quire.progress+json' });\n\
             display({ fraction: -1, label: 7, extra: true }, { mime: 'application/vnd.quire.progress+json' });\n\
             export default p.id;",
        );
        let shown = displays(&r.events);
        let updates = shown.iter().filter(|d| d.0 == "update").count();
        // 1% steps: 100 updates for the loop, then "odd" at 0.
        assert_eq!(updates, 101, "{shown:?}");
        assert_eq!(shown[0].2, json!({"fraction": 0, "label": "load"}));
        assert_eq!(shown[100].2, json!({"fraction": 1, "label": "load"}));
        assert_eq!(shown[101].2, json!({"fraction": 0, "label": "odd"}));
        assert_eq!(shown[102].2, json!({"fraction": 0.5}));
        assert_eq!(shown[103].2, json!({"fraction": 0, "label": "7"}));
        for e in &r.events {
            if let EventBody::Display { mime, data, .. }
            | EventBody::UpdateDisplay { mime, data, .. } = &e.body
            {
                assert_eq!(mime, PROGRESS_MIME);
                assert!(quire_engine::check_display(mime, data).is_ok(), "{data}");
            }
        }
    });
}

#[test]
fn updates_and_clears_count_against_the_output_limits() {
    on_each_engine(|_| {
        let bytes = run_with(
            "const h = display('x'); for (let i = 0; ; i++) h.update('y'.repeat(100));",
            Lang::Js,
            Limits {
                output_bytes: 10_000,
                ..Limits::default()
            },
        );
        assert_eq!(bytes.kind(), Some(ErrorKind::OutputLimit));
        let shown = displays(&bytes.events);
        assert!(shown.len() < 110, "{}", shown.len());
        let events = run_with(
            "for (;;) display(1, { id: 'x' }).clear();",
            Lang::Js,
            Limits {
                output_events: 50,
                ..Limits::default()
            },
        );
        assert_eq!(events.kind(), Some(ErrorKind::OutputLimit));
        assert_eq!(displays(&events.events).len(), 50);
    });
}

#[test]
fn meters_come_at_most_every_100_ms_and_stop_at_finished() {
    on_each_engine(|engine| {
        // CPU-bound: the meters' CPU climbs; the final meter is numbered.
        let busy = run_with(
            "const t = Date.now(); let x = 0; while (Date.now() - t < 700) x++; export default x > 0;",
            Lang::Js,
            Limits {
                cpu_time_ms: 5000,
                wall_time_ms: 20_000,
                ..Limits::default()
            },
        );
        assert_eq!(busy.result(), Some(&json!(true)), "{:?}", busy.events);
        assert!(busy.meters.len() >= 2, "{engine:?}: {:?}", busy.meters);
        let mut cpu = 0.0;
        for m in &busy.meters {
            let EventBody::Meter(m) = &m.body else {
                unreachable!()
            };
            assert!(m.cpu_ms >= cpu, "{:?}", busy.meters);
            cpu = m.cpu_ms;
            assert_eq!(m.limits.cpu_ms, 5000);
            assert_eq!(m.limits.wall_ms, 20_000);
            assert_eq!(m.limits.output_bytes, Limits::default().output_bytes);
            assert!(m.cpu_day_left_ms.is_none(), "only the server sets it");
        }
        let last = busy.events.iter().rev().nth(1).map(|e| &e.body);
        assert!(
            matches!(last, Some(EventBody::Meter(m)) if m.last && m.cpu_ms >= cpu),
            "{:?}",
            busy.events
        );
        // Waiting, with output and host-call-free work between the
        // waits: meters follow the output.
        let waiting = run_js(
            "for (let i = 0; i < 5; i++) { console.log('x'.repeat(1000)); await new Promise((r) => setTimeout(r, 120)); }",
        );
        assert!(!waiting.meters.is_empty(), "{engine:?}");
        let outputs: Vec<u64> = waiting
            .meters
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Meter(m) => Some(m.output_bytes),
                _ => None,
            })
            .collect();
        assert!(outputs.windows(2).all(|w| w[0] <= w[1]), "{outputs:?}");
        assert!(outputs.iter().all(|&o| o >= 1000), "{outputs:?}");
        // A short run has no meters at all.
        let quick = run_js("export default 1;");
        assert!(quick.meters.is_empty());
        assert!(!quick
            .events
            .iter()
            .any(|e| matches!(e.body, EventBody::Meter(_))));
    });
}

mod dataflow {
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    use crate::server::{TestServer, Tokens};
    use quire_web::ServerConfig;

    const LOAD: &str = "export default [{ id: 1, v: 2 }, { id: 2, v: 3 }];";
    const SUM: &str = "import { results } from 'quire';\nconst rows = await results.get('load-tasks');\nexport default rows.reduce((a, r) => a + r.v, 0);";

    fn block(srv: &TestServer, ws: &str, t: &Tokens, id: &str, name: &str, source: &str) {
        let (s, v) = srv.call(
            "POST",
            &format!("/workspaces/{ws}/blocks"),
            &t.editor,
            Some(json!({"id": id, "name": name, "source": source, "lang": "js"})),
        );
        assert_eq!(s, 201, "{v}");
    }

    fn doc(srv: &TestServer, ws: &str, t: &Tokens, id: &str, blocks: &[&str], props: Value) {
        let body: Vec<Value> = blocks
            .iter()
            .map(|b| json!({"type": "code", "lang": "js", "source": "", "block": b}))
            .collect();
        let (s, v) = srv.call(
            "POST",
            &format!("/workspaces/{ws}/docs"),
            &t.editor,
            Some(json!({"id": id, "title": id, "blocks": body, "properties": props})),
        );
        assert_eq!(s, 201, "{v}");
    }

    /// Run block `b` (in `doc` when given) and wait for its record.
    fn run(srv: &TestServer, ws: &str, t: &Tokens, b: &str, doc: Option<&str>) -> Value {
        let body = doc.map_or(json!({}), |d| json!({"doc": d}));
        let (s, v) = srv.call(
            "POST",
            &format!("/workspaces/{ws}/blocks/{b}/runs"),
            &t.editor,
            Some(body),
        );
        assert_eq!(s, 202, "{v}");
        srv.wait_run(ws, v["run"].as_str().unwrap_or_default(), &t.viewer)
    }

    fn result_of(rec: &Value) -> Value {
        rec["events"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["type"] == "result"))
            .map_or(Value::Null, |e| e["value"].clone())
    }

    #[test]
    fn results_get_reads_its_own_document_only_and_records_what_it_read() {
        let srv = TestServer::start(ServerConfig::default());
        let t = srv.workspace("w");
        block(&srv, "w", &t, "load", "load-tasks", LOAD);
        block(&srv, "w", &t, "sum", "sum", SUM);
        block(&srv, "w", &t, "spy", "spy", SUM);
        doc(&srv, "w", &t, "d1", &["load", "sum"], json!({}));
        doc(&srv, "w", &t, "d2", &["spy"], json!({}));
        // Nothing to read yet.
        let early = run(&srv, "w", &t, "sum", None);
        assert_eq!(early["error"]["kind"], "exception", "{early}");
        assert!(
            early["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("no result yet"),
            "{early}"
        );
        let load = run(&srv, "w", &t, "load", None);
        assert_eq!(load["status"], "ok");
        let sum = run(&srv, "w", &t, "sum", Some("d1"));
        assert_eq!(result_of(&sum), json!(5), "{sum}");
        let p = &sum["provenance"];
        assert_eq!(p["doc"], "d1");
        assert_eq!(
            p["upstream"],
            json!([{"block": "load", "run": load["run"]}])
        );
        assert_eq!(p["engine"], "quickjs");
        assert_eq!(p["grants"], json!([]));
        assert_eq!(p["block_version"].as_str().map(str::len), Some(64));
        assert_eq!(p["input_hash"].as_str().map(str::len), Some(32));
        // Another document's block is denied, whatever it names.
        let spy = run(&srv, "w", &t, "spy", None);
        assert_eq!(spy["error"]["kind"], "capability_denied", "{spy}");
        assert!(
            spy["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("own document"),
            "{spy}"
        );
        // Claiming a document the block is not in is refused before it runs.
        let (s, v) = srv.call(
            "POST",
            "/workspaces/w/blocks/spy/runs",
            &t.editor,
            Some(json!({"doc": "d1"})),
        );
        assert_eq!((s, v["field"].clone()), (400, json!("doc")), "{v}");
        let (s, v) = srv.call(
            "POST",
            "/workspaces/w/blocks/sum/runs",
            &t.editor,
            Some(json!({"doc": "nope"})),
        );
        assert_eq!(s, 400, "{v}");
        // Malformed document ids: too long, not text, a path.
        for bad in [
            json!("d".repeat(5000)),
            json!(7),
            json!({"id": "d1"}),
            json!("../d1"),
        ] {
            let body = Some(json!({ "doc": bad }));
            let (s, v) = srv.call("POST", "/workspaces/w/blocks/sum/runs", &t.editor, body);
            assert_eq!(s, 400, "{bad}: {v}");
        }
        // A viewer cannot start a run in a document.
        let body = Some(json!({"doc": "d1"}));
        let (s, _) = srv.call("POST", "/workspaces/w/blocks/sum/runs", &t.viewer, body);
        assert_eq!(s, 403);
        // Unsaved source in a document reads it; outside any, it reads nothing.
        let (s, v) = srv.call(
            "POST",
            "/workspaces/w/runs",
            &t.editor,
            Some(json!({"source": SUM, "lang": "js", "doc": "d1"})),
        );
        assert_eq!(s, 202, "{v}");
        let unsaved = srv.wait_run("w", v["run"].as_str().unwrap_or_default(), &t.viewer);
        assert_eq!(result_of(&unsaved), json!(5), "{unsaved}");
        let (_, v) = srv.call(
            "POST",
            "/workspaces/w/runs",
            &t.editor,
            Some(json!({"source": SUM, "lang": "js"})),
        );
        let loose = srv.wait_run("w", v["run"].as_str().unwrap_or_default(), &t.viewer);
        assert_eq!(loose["error"]["kind"], "capability_denied", "{loose}");
        // Another workspace with the same ids sees none of it.
        let t2 = srv.workspace("w2");
        block(&srv, "w2", &t2, "load", "load-tasks", LOAD);
        block(&srv, "w2", &t2, "sum", "sum", SUM);
        doc(&srv, "w2", &t2, "d1", &["load", "sum"], json!({}));
        let other = run(&srv, "w2", &t2, "sum", Some("d1"));
        assert!(
            other["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("no result yet"),
            "{other}"
        );
        let (s, _) = srv.call(
            "POST",
            "/workspaces/w/blocks/sum/runs",
            &t2.editor,
            Some(json!({"doc": "d1"})),
        );
        assert_eq!(s, 404);
    }

    #[test]
    fn the_graph_orders_blocks_marks_stale_outputs_and_names_cycles() {
        let srv = TestServer::start(ServerConfig::default());
        let t = srv.workspace("w");
        // Document order puts the reader first; run order does not.
        block(&srv, "w", &t, "sum", "sum", SUM);
        block(&srv, "w", &t, "load", "load-tasks", LOAD);
        block(&srv, "w", &t, "odd", "odd", "import { results } from 'quire';\nconst n = 'load';\nexport default await results.get(n + '-tasks');");
        doc(&srv, "w", &t, "d1", &["sum", "load", "odd"], json!({}));
        let graph = |token: &str| srv.call("GET", "/workspaces/w/docs/d1/graph", token, None);
        let (s, g) = graph(&t.viewer);
        assert_eq!(s, 200, "{g}");
        assert_eq!(g["order"], json!(["load", "sum", "odd"]), "{g}");
        assert_eq!(g["cycle"], Value::Null);
        assert_eq!(g["nodes"][0]["reads"], json!(["load"]));
        assert_eq!(g["nodes"][2]["unknown"][0]["line"], 3, "{g}");
        run(&srv, "w", &t, "load", None);
        run(&srv, "w", &t, "sum", None);
        let (_, g) = graph(&t.viewer);
        assert_eq!(g["nodes"][0]["stale"], json!([]), "{g}");
        // The upstream runs again: the reader's output is stale.
        run(&srv, "w", &t, "load", None);
        let (_, g) = graph(&t.viewer);
        assert_eq!(
            g["nodes"][0]["stale"],
            json!(["load-tasks has a newer result"]),
            "{g}"
        );
        // Its own code changes: stale too.
        let (s, v) = srv.call(
            "PUT",
            "/workspaces/w/blocks/load",
            &t.editor,
            Some(json!({"source": "export default [];", "lang": "js"})),
        );
        assert_eq!(s, 200, "{v}");
        let (_, g) = graph(&t.viewer);
        assert_eq!(
            g["nodes"][1]["stale"],
            json!(["its code changed since"]),
            "{g}"
        );
        // A cycle has no order and is named.
        block(
            &srv,
            "w",
            &t,
            "a",
            "alpha",
            "import { results } from 'quire';\nexport default await results.get('beta');",
        );
        block(
            &srv,
            "w",
            &t,
            "b",
            "beta",
            "import { results } from 'quire';\nexport default await results.get('alpha');",
        );
        doc(&srv, "w", &t, "loop", &["a", "b", "load"], json!({}));
        let (_, g) = srv.call("GET", "/workspaces/w/docs/loop/graph", &t.viewer, None);
        assert_eq!(g["order"], Value::Null, "{g}");
        let cycle = g["cycle"].as_array().cloned().unwrap_or_default();
        assert_eq!(cycle.len(), 3, "{g}");
        assert!(
            cycle.contains(&json!("alpha")) && cycle.contains(&json!("beta")),
            "{g}"
        );
        // Another workspace's token, or no such document: 404.
        let t2 = srv.workspace("w2");
        assert_eq!(graph(&t2.admin).0, 404);
        assert_eq!(
            srv.call("GET", "/workspaces/w/docs/nope/graph", &t.viewer, None)
                .0,
            404
        );
    }

    #[test]
    fn dependents_rerun_in_order_when_the_document_opts_in() {
        let srv = TestServer::start(ServerConfig::default());
        let t = srv.workspace("w");
        block(&srv, "w", &t, "load", "load-tasks", LOAD);
        block(&srv, "w", &t, "sum", "sum", SUM);
        block(
            &srv,
            "w",
            &t,
            "twice",
            "twice",
            "import { results } from 'quire';\nexport default 2 * await results.get('sum');",
        );
        doc(
            &srv,
            "w",
            &t,
            "d1",
            &["twice", "sum", "load"],
            json!({"rerun_dependents": true}),
        );
        let load = run(&srv, "w", &t, "load", None);
        // sum, then twice, each after what it reads, started by the server.
        let dataflow = |b: &str| {
            let r = newest_run(&srv, &t, b, |r| {
                r["trigger"]["kind"] == "dataflow" && r["status"] != "running"
            });
            srv.wait_run("w", r["run"].as_str().unwrap_or_default(), &t.viewer)
        };
        let sum = dataflow("sum");
        assert_eq!(result_of(&sum), json!(5), "{sum}");
        assert_eq!(sum["trigger"]["run"], load["run"]);
        assert_eq!(sum["provenance"]["upstream"][0]["run"], load["run"]);
        let twice = dataflow("twice");
        assert_eq!(result_of(&twice), json!(10), "{twice}");
        assert_eq!(twice["provenance"]["upstream"][0]["run"], sum["run"]);
        // Without the opt-in nothing re-runs.
        doc(&srv, "w", &t, "d2", &["load"], json!({}));
        let (s, v) = srv.call(
            "PATCH",
            "/workspaces/w/docs/d1",
            &t.editor,
            Some(json!({"properties": {"rerun_dependents": false}})),
        );
        assert_eq!(s, 200, "{v}");
        run(&srv, "w", &t, "load", None);
        std::thread::sleep(Duration::from_millis(500));
        let (_, v) = srv.call("GET", "/workspaces/w/runs?block=sum", &t.viewer, None);
        let dataflow_runs = v["runs"].as_array().map_or(0, |r| {
            r.iter()
                .filter(|r| r["trigger"]["kind"] == "dataflow")
                .count()
        });
        assert_eq!(dataflow_runs, 1, "{v}");
    }

    /// The newest run of `b` (in workspace `w`) that `wanted` accepts,
    /// once there is one.
    fn newest_run(srv: &TestServer, t: &Tokens, b: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let path = format!("/workspaces/w/runs?block={b}");
            let (_, v) = srv.call("GET", &path, &t.viewer, None);
            let found = v["runs"]
                .as_array()
                .and_then(|r| r.iter().find(|r| wanted(r)).cloned());
            if let Some(r) = found {
                return r;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no such run of {b}: {v}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The provenance of the newest run of `b` started by `kind`.
    fn provenance_of(srv: &TestServer, t: &Tokens, b: &str, kind: &str) -> Value {
        newest_run(srv, t, b, |r| {
            r["trigger"]["kind"] == kind && r["status"] == "ok"
        })["provenance"]
            .clone()
    }

    #[test]
    fn provenance_is_recorded_for_every_trigger() {
        let srv = TestServer::start(ServerConfig::default());
        let t = srv.workspace("w");
        block(&srv, "w", &t, "load", "load-tasks", LOAD);
        block(&srv, "w", &t, "sum", "sum", SUM);
        doc(&srv, "w", &t, "d1", &["load", "sum"], json!({}));
        let load = run(&srv, "w", &t, "load", None);
        let check = |p: &Value, what: &str, input: &Value| {
            assert_eq!(p["doc"], "d1", "{what}: {p}");
            assert_eq!(p["engine"], "quickjs", "{what}: {p}");
            assert_eq!(p["upstream"][0]["run"], load["run"], "{what}: {p}");
            assert_eq!(
                p["input_hash"],
                json!(quire_service::dataflow::input_hash(input)),
                "{what}: {p}"
            );
            assert_eq!(
                p["block_version"],
                json!(quire_service::approval::source_digest("js", SUM)),
                "{what}: {p}"
            );
        };
        // By hand over HTTP, with an input.
        let (s, v) = srv.call(
            "POST",
            "/workspaces/w/blocks/sum/runs",
            &t.editor,
            Some(json!({"input": {"n": 1}})),
        );
        assert_eq!(s, 202, "{v}");
        let rec = srv.wait_run("w", v["run"].as_str().unwrap_or_default(), &t.viewer);
        check(&rec["provenance"], "manual", &json!({"n": 1}));
        // A webhook, its body as input.
        let (s, v) = srv.call("POST", "/workspaces/w/blocks/sum/webhooks", &t.editor, None);
        assert_eq!(s, 201, "{v}");
        let url = format!(
            "{}{}?wait=true",
            srv.root,
            v["path"].as_str().unwrap_or_default()
        );
        let r = ureq::post(&url)
            .set("content-type", "application/json")
            .send_string(&json!({"from": "hook"}).to_string());
        assert!(r.is_ok(), "{r:?}");
        check(
            &provenance_of(&srv, &t, "sum", "webhook"),
            "webhook",
            &json!({"from": "hook"}),
        );
        // A schedule, every second.
        let (s, v) = srv.call(
            "POST",
            "/workspaces/w/blocks/sum/schedules",
            &t.editor,
            Some(json!({"cron": "* * * * * *", "timezone": "UTC"})),
        );
        assert_eq!(s, 201, "{v}");
        check(
            &provenance_of(&srv, &t, "sum", "schedule"),
            "schedule",
            &Value::Null,
        );
    }
}
