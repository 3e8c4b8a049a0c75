#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The election on a real PostgreSQL server (`QUIRE_TEST_POSTGRES_URL`,
//! set by `scripts/test.sh`; without it these tests say so and stop).

use std::time::{Duration, Instant};

use super::*;
use crate::Store;

fn two_processes() -> Option<(Store, Store)> {
    crate::testing::two_postgres_stores("the scheduler election")
}

/// Wait until `f` holds (or panic after 20 s).
fn until(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_leads_a_deposed_leader_is_fenced_and_a_fire_is_claimed_once() {
    let Some((a, b)) = two_processes() else {
        return;
    };
    let la = a.scheduler_leadership("a").unwrap().unwrap();
    until("a leads", || la.term().is_some());
    let first = la.term().unwrap();
    assert_eq!(
        first,
        Term {
            epoch: 1,
            takeover: false
        },
        "the first term is a start"
    );
    let lb = b.scheduler_leadership("b").unwrap().unwrap();
    std::thread::sleep(RETRY * 3);
    assert_eq!(lb.term(), None, "one leader at a time");

    let ws = WorkspaceId::random();
    assert!(la.heartbeat(first.epoch).unwrap());
    assert_eq!(
        la.claim_fire(&ws, "s1", 1_000, first.epoch).unwrap(),
        FireClaim::Claimed
    );
    assert_eq!(
        la.claim_fire(&ws, "s1", 1_000, first.epoch).unwrap(),
        FireClaim::AlreadyClaimed
    );
    assert_eq!(
        la.claim_fire(&ws, "s1", 2_000, first.epoch).unwrap(),
        FireClaim::Claimed
    );
    assert_eq!(
        la.claim_fire(&WorkspaceId::random(), "s1", 1_000, first.epoch)
            .unwrap(),
        FireClaim::Claimed
    );
    // A stale epoch claims nothing, even a fire nobody claimed.
    assert_eq!(
        lb.claim_fire(&ws, "s1", 3_000, 0).unwrap(),
        FireClaim::Fenced
    );

    // The leader goes away: the other takes over, with a new epoch.
    drop(la);
    until("b takes over", || lb.term().is_some());
    let second = lb.term().unwrap();
    assert_eq!(
        second,
        Term {
            epoch: 2,
            takeover: true
        },
        "the last leader was alive just now"
    );
    // The old epoch is fenced: it claims nothing and its heartbeat says so.
    let stale = a.scheduler_leadership("a-again").unwrap().unwrap();
    assert_eq!(
        stale.claim_fire(&ws, "s1", 3_000, first.epoch).unwrap(),
        FireClaim::Fenced
    );
    assert!(!stale.heartbeat(first.epoch).unwrap());
    assert_eq!(
        lb.claim_fire(&ws, "s1", 3_000, second.epoch).unwrap(),
        FireClaim::Claimed
    );
    assert_eq!(
        lb.claim_fire(&ws, "s1", 1_000, second.epoch).unwrap(),
        FireClaim::AlreadyClaimed
    );
    assert_eq!(stale.term(), None, "b still leads");
}
