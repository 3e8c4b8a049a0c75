//! Random source through a whole run with small limits: the engine must
//! end every run with exactly one `finished` event, `seq` without gaps,
//! and never panic or hang.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quire_engine::{Engine, EngineConfig, EventBody, Lang, Limits, RunRequest};

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        Engine::new(EngineConfig {
            worker_threads: 1,
            isolate_pool_per_worker: 1,
            ..EngineConfig::default()
        })
        .expect("engine starts")
    })
}

fuzz_target!(|data: &[u8]| {
    let (lang, src) = match data.split_first() {
        Some((b, rest)) if b % 2 == 1 => (Lang::Ts, rest),
        Some((_, rest)) => (Lang::Js, rest),
        None => (Lang::Js, data),
    };
    let src = String::from_utf8_lossy(src).into_owned();
    let limits = Limits {
        cpu_time_ms: 50,
        wall_time_ms: 200,
        memory_bytes: 8 << 20,
        output_bytes: 16 << 10,
        ..Limits::default()
    };
    let h = engine().run(RunRequest::new(src, lang).with_limits(limits));
    // Live meters repeat the seq before them; the numbered events count.
    let events: Vec<_> = h
        .events()
        .iter()
        .filter(|e| !matches!(&e.body, EventBody::Meter(m) if !m.last))
        .collect();
    let out = h.wait();
    assert!(!events.is_empty());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "seq has a gap");
    }
    let finished = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Finished(_)))
        .count();
    assert_eq!(finished, 1, "exactly one finished event");
    assert!(matches!(
        events.last().map(|e| &e.body),
        Some(EventBody::Finished(_))
    ));
    assert_eq!(
        out.error.is_some(),
        out.status == quire_engine::RunStatus::Error
    );
});
