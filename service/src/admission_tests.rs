use super::*;

const T0: u64 = 1_800_000_000_000;

fn ws(n: u8) -> WorkspaceId {
    WorkspaceId::from_bytes([n; 16])
}

fn quota(concurrent: u32) -> Quota {
    Quota {
        max_concurrent_runs: concurrent,
        ..Quota::default()
    }
}

/// Tickets of `n` runs of `w`.
fn queue(a: &Arc<Admission>, w: WorkspaceId, n: usize, q: &Quota) -> Vec<(WorkspaceId, Ticket)> {
    (0..n)
        .map(|_| {
            (
                w,
                a.request(w, q, T0)
                    .map_err(|e| e.to_string())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect()
}

/// Let the server run one run at a time and record which workspace each
/// start belonged to, releasing each run as soon as it started.
fn drain_order(mut tickets: Vec<(WorkspaceId, Ticket)>) -> Vec<WorkspaceId> {
    let mut order = Vec::new();
    loop {
        let mut started = None;
        for (i, (w, t)) in tickets.iter_mut().enumerate() {
            if let Some(p) = t.try_now() {
                started = Some((i, *w, p));
                break;
            }
        }
        let Some((i, w, permit)) = started else { break };
        tickets.remove(i);
        order.push(w);
        drop(permit);
    }
    assert!(tickets.is_empty(), "{} runs never started", tickets.len());
    order
}

#[test]
fn workspaces_take_turns_whatever_order_runs_were_queued_in() {
    let a = Admission::new(1);
    let (wa, wb, wc) = (ws(1), ws(2), ws(3));
    let q = quota(100);
    let mut tickets = queue(&a, wa, 6, &q);
    tickets.extend(queue(&a, wb, 2, &q));
    tickets.extend(queue(&a, wc, 1, &q));
    let order = drain_order(tickets);
    // A's first run started when it asked; after that A, B and C alternate
    // until B and C have nothing left, however many A queued first.
    assert_eq!(order, vec![wa, wa, wb, wc, wa, wb, wa, wa, wa]);
}

#[test]
fn a_flooding_workspace_gets_no_second_start_before_a_newcomer() {
    let a = Admission::new(2);
    let (wa, wb) = (ws(1), ws(2));
    let q = quota(100);
    let mut flood = queue(&a, wa, 50, &q);
    let running: Vec<Permit> = flood.iter_mut().filter_map(|(_, t)| t.try_now()).collect();
    assert_eq!(running.len(), 2, "A holds both server slots");
    let mut hello = queue(&a, wb, 1, &q).remove(0).1;
    assert!(hello.try_now().is_none(), "no free slot yet");
    let mut running = running.into_iter();
    drop(running.next());
    let started = hello.try_now();
    assert!(started.is_some(), "B takes the first freed slot");
    assert_eq!(a.stats(&wa, T0).queued, 48);
    assert_eq!(a.running(), 2);
}

#[test]
fn max_concurrent_runs_is_per_workspace() {
    let a = Admission::new(10);
    let (wa, wb) = (ws(1), ws(2));
    let mut ta = queue(&a, wa, 3, &quota(2));
    let now: Vec<_> = ta.iter_mut().map(|(_, t)| t.try_now()).collect();
    let started: Vec<bool> = now.iter().map(Option::is_some).collect();
    assert_eq!(started, vec![true, true, false]);
    assert_eq!(
        a.stats(&wa, T0),
        LaneStats {
            running: 2,
            queued: 1,
            last_minute: 3
        }
    );
    let mut tb = queue(&a, wb, 1, &quota(2));
    assert!(
        tb[0].1.try_now().is_some(),
        "B is not held back by A's limit"
    );
}

#[test]
fn runs_per_minute_refuses_with_the_reset_time_and_reopens_after_it() {
    let a = Admission::new(10);
    let w = ws(1);
    let q = Quota {
        runs_per_minute: 3,
        ..Quota::default()
    };
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(a.request(w, &q, T0 + i * 1000));
    }
    assert!(held.iter().all(Result::is_ok));
    let e = a.request(w, &q, T0 + 30_000).err();
    let e = e.unwrap_or_else(|| panic!("the 4th run in a minute was accepted"));
    assert_eq!(
        (e.quota, e.limit, e.resets_at_ms),
        ("runs_per_minute", 3, Some(T0 + 60_000))
    );
    assert!(e.message.contains("3 runs per minute"), "{}", e.message);
    assert!(
        a.request(w, &q, T0 + 60_000).is_ok(),
        "the oldest run left the window"
    );
    assert!(
        a.request(ws(2), &q, T0 + 30_000).is_ok(),
        "other workspaces are unaffected"
    );
}

#[test]
fn max_queued_runs_refuses_past_the_queue() {
    let a = Admission::new(10);
    let w = ws(1);
    let q = Quota {
        max_concurrent_runs: 1,
        max_queued_runs: 2,
        ..Quota::default()
    };
    let held: Vec<_> = (0..3).map(|_| a.request(w, &q, T0)).collect();
    assert!(held.iter().all(Result::is_ok));
    let e = a.request(w, &q, T0).err();
    let e = e.unwrap_or_else(|| panic!("a 3rd waiting run was accepted"));
    assert_eq!(
        (e.quota, e.limit, e.resets_at_ms),
        ("max_queued_runs", 2, None)
    );
    drop(held);
    assert!(
        a.request(w, &q, T0).is_ok(),
        "dropped tickets leave the queue"
    );
}

#[test]
fn a_ticket_dropped_while_waiting_does_not_hold_a_slot() {
    let a = Admission::new(1);
    let w = ws(1);
    let q = quota(10);
    let mut first = a.request(w, &q, T0).map_err(|e| e.to_string());
    let permit = first.as_mut().ok().and_then(Ticket::try_now);
    assert!(permit.is_some());
    let abandoned = a.request(w, &q, T0);
    let mut next = a.request(ws(2), &q, T0).map_err(|e| e.to_string());
    drop(abandoned);
    drop(permit);
    let started = next.as_mut().ok().and_then(Ticket::try_now);
    assert!(started.is_some());
    assert_eq!(a.running(), 1);
}
