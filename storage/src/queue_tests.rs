#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The queue on a real PostgreSQL server (`QUIRE_TEST_POSTGRES_URL`, set
//! by `scripts/test.sh`; without it these tests say so and do nothing).
//! Each test gets a fresh database; two `Store`s on it stand for two
//! processes (each has its own connection pool and listener).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::Store;

const LEASE: Duration = Duration::from_secs(30);

fn two_processes() -> Option<(Store, Store)> {
    crate::testing::two_postgres_stores("the run queue")
}

fn job(ws: WorkspaceId, run: &str, max_concurrent: u32, max_queued: u32) -> Enqueue {
    Enqueue {
        workspace: ws,
        run_id: run.into(),
        job: json!({"run": run, "nested": {"deep": [1, 2, 3]}}),
        max_concurrent,
        max_queued,
        runs_per_minute: 10_000,
    }
}

fn q(s: &Store) -> &RunQueue {
    s.run_queue().expect("a PostgreSQL store has a run queue")
}

#[test]
fn concurrent_workers_never_claim_one_run_twice() {
    let Some((a, b)) = two_processes() else {
        return;
    };
    let ws = WorkspaceId::random();
    for i in 0..60 {
        q(&a)
            .enqueue(job(ws, &format!("r{i:03}"), 1000, 1000))
            .unwrap()
            .unwrap();
    }
    let claimed: Vec<Vec<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|w| {
                let store = if w % 2 == 0 { a.clone() } else { b.clone() };
                s.spawn(move || {
                    let mut mine = Vec::new();
                    while let Some(c) = q(&store).claim(&format!("w{w}"), LEASE).unwrap() {
                        assert_eq!(c.job["run"], json!(c.run_id), "the job comes back whole");
                        mine.push(c.run_id);
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in claimed.iter().flatten() {
        *seen.entry(r.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), 60, "every run was claimed");
    assert!(
        seen.values().all(|n| *n == 1),
        "no run was claimed twice: {seen:?}"
    );
}

#[test]
fn a_workspace_never_runs_more_than_its_limit_whatever_the_workers() {
    let Some((a, b)) = two_processes() else {
        return;
    };
    let ws = WorkspaceId::random();
    // Two "api processes" enqueue at once: max_concurrent 2, max_queued 3.
    let accepted: usize = std::thread::scope(|s| {
        let hs: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .map(|(p, store)| {
                s.spawn(move || {
                    (0..10)
                        .filter(|i| {
                            q(&store)
                                .enqueue(job(ws, &format!("p{p}-{i}"), 2, 3))
                                .unwrap()
                                .is_ok()
                        })
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(accepted, 5, "2 slots + 3 queued, counted under one lock");
    let refusal = q(&a).enqueue(job(ws, "late", 2, 3)).unwrap();
    assert_eq!(
        refusal,
        Err(Refusal::MaxQueued {
            running: 0,
            queued: 5
        })
    );
    // Eight workers in two processes race for the slots, each trying a
    // while (a claim that meets the lane locked by another claimer finds
    // nothing this time, as a real worker would, and tries again).
    let got: Vec<(String, Claimed)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|w| {
                let store = if w % 2 == 0 { a.clone() } else { b.clone() };
                s.spawn(move || {
                    let me = format!("w{w}");
                    for _ in 0..40 {
                        if let Some(c) = q(&store).claim(&me, LEASE).unwrap() {
                            return Some((me, c));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    None
                })
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got.len(), 2, "only max_concurrent runs are claimed");
    assert_eq!(q(&b).counts(&ws).unwrap().running, 2);
    assert!(q(&a).claim("w9", LEASE).unwrap().is_none());
    // One ends: one more may start.
    let (holder, done) = &got[0];
    q(&a).finish(&done.run_id, holder).unwrap();
    assert!(q(&b).claim("w9", LEASE).unwrap().is_some());
    assert!(q(&b).claim("w9", LEASE).unwrap().is_none());
}

#[test]
fn runs_per_minute_is_counted_across_processes() {
    let Some((a, b)) = two_processes() else {
        return;
    };
    let ws = WorkspaceId::random();
    let mut e = job(ws, "x", 10, 100);
    e.runs_per_minute = 3;
    for (i, s) in [&a, &b, &a].iter().enumerate() {
        let mut e = e.clone();
        e.run_id = format!("r{i}");
        q(s).enqueue(e).unwrap().unwrap();
    }
    e.run_id = "r3".into();
    match q(&b).enqueue(e).unwrap() {
        Err(Refusal::RunsPerMinute { resets_at_ms }) => {
            assert!(resets_at_ms > crate::now_ms() && resets_at_ms <= crate::now_ms() + 61_000);
        }
        other => panic!("expected a runs_per_minute refusal, got {other:?}"),
    }
    // Another workspace is not affected.
    q(&b)
        .enqueue(job(WorkspaceId::random(), "other", 1, 1))
        .unwrap()
        .unwrap();
}

#[test]
fn fewest_running_first_then_round_robin() {
    let Some((a, _b)) = two_processes() else {
        return;
    };
    let (busy, quiet) = (WorkspaceId::random(), WorkspaceId::random());
    for i in 0..6 {
        q(&a)
            .enqueue(job(busy, &format!("busy{i}"), 100, 100))
            .unwrap()
            .unwrap();
    }
    for i in 0..2 {
        q(&a)
            .enqueue(job(quiet, &format!("quiet{i}"), 100, 100))
            .unwrap()
            .unwrap();
    }
    let order: Vec<String> = std::iter::from_fn(|| q(&a).claim("w", LEASE).unwrap())
        .map(|c| c.run_id)
        .collect();
    // The quiet workspace's runs are not stuck behind the busy one's six.
    let pos = |r: &str| order.iter().position(|x| x == r).unwrap();
    assert!(pos("quiet0") <= 1 && pos("quiet1") <= 3, "order: {order:?}");
    assert_eq!(order.len(), 8);
    let busy_order: Vec<&String> = order.iter().filter(|r| r.starts_with("busy")).collect();
    assert_eq!(
        busy_order,
        ["busy0", "busy1", "busy2", "busy3", "busy4", "busy5"],
        "a workspace's runs in order"
    );
}

#[test]
fn a_stopped_workers_runs_are_requeued_or_handed_back_as_lost() {
    let Some((a, b)) = two_processes() else {
        return;
    };
    let ws = WorkspaceId::random();
    for r in ["claimed-only", "started"] {
        q(&a).enqueue(job(ws, r, 10, 10)).unwrap().unwrap();
    }
    let short = Duration::from_millis(50);
    let first = q(&a).claim("dead", short).unwrap().unwrap();
    let second = q(&a).claim("dead", short).unwrap().unwrap();
    assert_eq!(first.run_id, "claimed-only");
    assert!(q(&a).start(&second.run_id, "dead", short).unwrap());
    std::thread::sleep(Duration::from_millis(150));
    let lost = q(&b).reap().unwrap();
    assert_eq!(
        lost,
        vec![Lost {
            workspace: ws,
            run_id: "started".into(),
            worker: "dead".into(),
            started: true
        }],
        "a started run is handed back to be closed, not run again"
    );
    // The run that never started goes to another worker.
    let again = q(&b).claim("alive", LEASE).unwrap().unwrap();
    assert_eq!((again.run_id.as_str(), again.attempts), ("claimed-only", 1));
    // The stopped worker, if it comes back, holds nothing and may not start it.
    assert!(q(&a).renew("dead", LEASE).unwrap().is_empty());
    assert!(!q(&a).start("claimed-only", "dead", LEASE).unwrap());
    assert!(q(&b).start("claimed-only", "alive", LEASE).unwrap());
    assert!(
        q(&b).reap().unwrap().is_empty(),
        "a renewed lease is not reaped"
    );
}

#[test]
fn a_run_claimed_and_lost_too_often_is_given_up() {
    let Some((a, _b)) = two_processes() else {
        return;
    };
    let ws = WorkspaceId::random();
    q(&a).enqueue(job(ws, "cursed", 10, 10)).unwrap().unwrap();
    let short = Duration::from_millis(20);
    let mut lost = Vec::new();
    for _ in 0..MAX_CLAIMS {
        assert!(q(&a).claim("dying", short).unwrap().is_some());
        std::thread::sleep(Duration::from_millis(60));
        lost = q(&a).reap().unwrap();
    }
    assert_eq!(lost.len(), 1);
    assert!(!lost[0].started);
    assert!(q(&a).claim("w", LEASE).unwrap().is_none());
}

#[test]
fn cancel_dequeues_or_flags_and_stays_in_its_workspace() {
    let Some((a, b)) = two_processes() else {
        return;
    };
    let (ws, other) = (WorkspaceId::random(), WorkspaceId::random());
    for r in ["waiting", "held"] {
        q(&a).enqueue(job(ws, r, 1, 10)).unwrap().unwrap();
    }
    let held = q(&a).claim("w", LEASE).unwrap().unwrap();
    assert_eq!(held.run_id, "waiting", "oldest first");
    // Another workspace's id cannot touch either.
    assert_eq!(q(&b).cancel(&other, "held").unwrap(), Cancelled::NotQueued);
    assert_eq!(
        q(&b).cancel(&other, "waiting").unwrap(),
        Cancelled::NotQueued
    );
    assert_eq!(q(&b).cancel(&ws, "held").unwrap(), Cancelled::Dequeued);
    assert_eq!(q(&b).cancel(&ws, "waiting").unwrap(), Cancelled::Requested);
    assert_eq!(
        q(&a).renew("w", LEASE).unwrap(),
        vec![("waiting".to_string(), true)]
    );
    q(&a).finish("waiting", "w").unwrap();
    assert_eq!(q(&b).cancel(&ws, "waiting").unwrap(), Cancelled::NotQueued);
    assert!(
        q(&a).claim("w", LEASE).unwrap().is_none(),
        "the dequeued run never starts"
    );
    assert_eq!(
        q(&a).counts(&ws).unwrap(),
        LaneCounts {
            running: 0,
            queued: 0,
            last_minute: 2
        }
    );
}

#[test]
fn odd_ids_and_big_jobs_are_data_not_sql() {
    let Some((a, _b)) = two_processes() else {
        return;
    };
    let ws = WorkspaceId::random();
    let odd = "'; DROP TABLE run_queue; --\u{0}\u{1F600}";
    let mut e = job(ws, &odd.replace('\u{0}', ""), 1, 1);
    e.job = json!({"blob": "x".repeat(1 << 20)});
    q(&a).enqueue(e.clone()).unwrap().unwrap();
    assert_eq!(q(&a).enqueue(e.clone()).unwrap(), Err(Refusal::Duplicate));
    // A claim may find nothing once (SKIP LOCKED meets a row still locked
    // by the enqueue's commit); a worker tries again, as here.
    let c = (0..40)
        .find_map(|_| {
            let got = q(&a).claim("w", LEASE).unwrap();
            if got.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            got
        })
        .expect("the run is claimed");
    assert_eq!(c.job["blob"].as_str().map(str::len), Some(1 << 20));
    assert_eq!(q(&a).state(&c.run_id).unwrap().as_deref(), Some("claimed"));
    // Done, its id still cannot be enqueued again (a retried enqueue, a
    // scheduler after a crash, never runs it twice).
    q(&a).finish(&c.run_id, "w").unwrap();
    assert_eq!(q(&a).state(&c.run_id).unwrap(), None);
    assert_eq!(q(&a).enqueue(e).unwrap(), Err(Refusal::Duplicate));
    assert_eq!(
        q(&a).counts(&ws).unwrap().last_minute,
        1,
        "refusals are not counted"
    );
}

#[test]
fn workers_are_woken_by_enqueues_in_another_process() {
    let Some((a, b)) = two_processes() else {
        return;
    };
    let mut rx = q(&b).wakeups();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The listener is up once it ticked for its connection.
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n > 0)).await
    })
    .expect("the listener connects")
    .unwrap();
    rx.borrow_and_update();
    q(&a)
        .enqueue(job(WorkspaceId::random(), "wake", 1, 1))
        .unwrap()
        .unwrap();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.changed()).await })
        .expect("a notification arrives")
        .unwrap();
}
