//! Soak test: run every program in a directory over and over with small
//! limits and print the process's resident memory after each round. RSS
//! must level off; growth round after round is a leak.
//! `cargo run --release -p quire-engine --example rss_soak -- tests/hostile 20`
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]
use quire_engine::{Engine, EngineConfig, Lang, Limits, RunRequest};

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/hostile".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let sources: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let engine = Engine::new(EngineConfig {
        worker_threads: 1,
        isolate_pool_per_worker: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let limits = Limits {
        cpu_time_ms: 50,
        wall_time_ms: 200,
        memory_bytes: 8 << 20,
        output_bytes: 16 << 10,
        ..Limits::default()
    };
    if std::env::var_os("PER_FILE").is_some() {
        for (f, src) in files.iter().zip(&sources) {
            let before = rss_kb();
            for _ in 0..20 {
                engine
                    .run(RunRequest::new(src.clone(), Lang::Js).with_limits(limits.clone()))
                    .wait();
            }
            let d = rss_kb() as i64 - before as i64;
            if d > 1000 {
                println!("{}: +{d} KiB over 20 runs", f.display());
            }
        }
        return;
    }
    for round in 0..rounds {
        for src in &sources {
            engine
                .run(RunRequest::new(src.clone(), Lang::Js).with_limits(limits.clone()))
                .wait();
        }
        println!(
            "round {round}: rss {} KiB, workers replaced {}",
            rss_kb(),
            engine.stats().workers_replaced
        );
    }
}
