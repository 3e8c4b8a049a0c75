//! Run a block through runner processes (development smoke test):
//! `cargo run -p quire-engine --example runner_smoke -- target/debug/quire`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]
use quire_engine::runner::RunnerConfig;
use quire_engine::{Engine, EngineConfig, Isolation, Lang, RunRequest};

fn main() {
    let program = std::env::args().nth(1).expect("path to the quire binary");
    let src = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "console.log('hi from a runner'); export default 6 * 7".into());
    let engine = Engine::new(EngineConfig {
        isolation: Isolation::Runners(RunnerConfig::new(
            program,
            vec!["__runner".into(), "--test-hooks".into()],
        )),
        ..EngineConfig::default()
    })
    .unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let h = engine.run(RunRequest::new(src.clone(), Lang::Js));
        for ev in h.events().iter() {
            println!("{}", serde_json::to_string(&ev).unwrap());
        }
        println!("took {:?}", t.elapsed());
    }
    println!("{:?}", engine.sandbox_reports());
}
