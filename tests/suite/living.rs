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
