//! Embedding quire-engine: run a block, stream its events, cancel a slow one.
//!
//! `cargo run -p quire-engine --example run_block`

use std::time::Duration;

use quire_engine::{Engine, EngineConfig, EventBody, Lang, Limits, RunRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(EngineConfig::default())?;

    // 1. A TypeScript block with input; events arrive as they happen.
    let source = r#"
        interface Task { title: string; done: boolean }
        export default async (ctx: { input: Task[] }) => {
            console.log("checking", ctx.input.length, "tasks");
            await new Promise((r) => setTimeout(r, 50));
            return ctx.input.filter((t) => !t.done).map((t) => t.title);
        };
    "#;
    let request = RunRequest::new(source, Lang::Ts)
        .with_input(serde_json::json!([{"title": "write docs", "done": false}, {"title": "ship", "done": true}]))
        .with_limits(Limits {
            cpu_time_ms: 200,
            ..Limits::default()
        });
    let run = engine.run(request);
    for event in run.events().iter() {
        match &event.body {
            EventBody::Log { text, .. } => eprintln!("log: {text}"),
            EventBody::Result { value } => eprintln!("result: {value}"),
            EventBody::Finished(f) => eprintln!("finished {:?} in {:.1} ms", f.status, f.wall_ms),
            other => eprintln!("{other:?}"),
        }
    }

    // 2. Cancel a run from another thread.
    let slow = engine.run(RunRequest::new("for (;;) {}", Lang::Js));
    let canceller = slow.canceller();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        canceller.cancel();
    });
    let outcome = slow.wait();
    eprintln!("slow run ended with {:?}", outcome.error.map(|e| e.kind));
    Ok(())
}
