use serde_json::{json, Value};

use super::*;
use crate::patch_document;
use crate::testing::store;

fn ws(n: u8) -> WorkspaceId {
    WorkspaceId::from_bytes([n; 16])
}

fn row(collection: &str, id: &str) -> Target {
    Target::Row {
        collection: collection.into(),
        id: id.into(),
    }
}

fn filed(s: &Store, w: &WorkspaceId, run: &str, changes: Vec<Change>, expires_ms: u64) -> String {
    let d = StagedDiff {
        run: run.into(),
        digest: digest(&changes),
        bytes: 0,
        count: changes.len(),
        changes,
        created_ms: 1,
        expires_ms,
        run_ok: true,
        status: DiffStatus::Pending,
        decided_ms: None,
    };
    s.put_diff(w, &d).unwrap();
    d.digest
}

fn update(t: Target, before: Value, after: Value) -> Change {
    Change {
        target: t,
        op: ChangeOp::Update,
        before,
        after,
    }
}

#[test]
fn a_diff_applies_once_in_full_and_only_where_it_was_filed() {
    let s = store().unwrap();
    let (a, b) = (ws(1), ws(2));
    s.insert_rows(
        &a,
        "tasks",
        &[json!({"id": "r1", "done": false}), json!({"id": "r2"})],
    )
    .unwrap();
    s.kv_set(&a, "gone", &json!(1)).unwrap();
    let changes = vec![
        update(
            row("tasks", "r1"),
            json!({"id": "r1", "done": false}),
            json!({"id": "r1", "done": true}),
        ),
        Change {
            target: row("tasks", "r3"),
            op: ChangeOp::Insert,
            before: Value::Null,
            after: json!({"id": "r3"}),
        },
        Change {
            target: Target::Kv { key: "gone".into() },
            op: ChangeOp::Delete,
            before: json!(1),
            after: Value::Null,
        },
    ];
    let dg = filed(&s, &a, "run1", changes, u64::MAX);
    // Another workspace, a wrong digest: refused, nothing written.
    assert_eq!(
        s.apply_diff(&b, "run1", &dg, 5).unwrap(),
        Err(ApplyRefusal::NotFound)
    );
    assert_eq!(
        s.apply_diff(&a, "run1", "00", 5).unwrap(),
        Err(ApplyRefusal::Digest)
    );
    assert_eq!(
        s.get_record(&a, &row("tasks", "r1")).unwrap(),
        Some(json!({"id": "r1", "done": false}))
    );
    assert_eq!(s.apply_diff(&a, "run1", &dg, 5).unwrap(), Ok(3));
    assert_eq!(
        s.get_record(&a, &row("tasks", "r1")).unwrap(),
        Some(json!({"id": "r1", "done": true}))
    );
    assert_eq!(
        s.get_record(&a, &row("tasks", "r3")).unwrap(),
        Some(json!({"id": "r3"}))
    );
    assert_eq!(s.kv_get(&a, "gone").unwrap(), None);
    assert_eq!(
        s.apply_diff(&a, "run1", &dg, 6).unwrap(),
        Err(ApplyRefusal::Decided(DiffStatus::Applied))
    );
    assert_eq!(
        s.get_diff(&a, "run1").unwrap().unwrap().status,
        DiffStatus::Applied
    );
}

#[test]
fn a_record_changed_since_the_dry_run_refuses_the_whole_diff_and_names_it() {
    let s = store().unwrap();
    let a = ws(1);
    s.insert_rows(
        &a,
        "tasks",
        &[json!({"id": "r1", "n": 1}), json!({"id": "r2", "n": 1})],
    )
    .unwrap();
    let changes = vec![
        update(
            row("tasks", "r1"),
            json!({"id": "r1", "n": 1}),
            json!({"id": "r1", "n": 2}),
        ),
        update(
            row("tasks", "r2"),
            json!({"id": "r2", "n": 1}),
            json!({"id": "r2", "n": 2}),
        ),
        Change {
            target: Target::Kv { key: "new".into() },
            op: ChangeOp::Insert,
            before: Value::Null,
            after: json!("x"),
        },
    ];
    let dg = filed(&s, &a, "run1", changes, u64::MAX);
    s.update_row(&a, "tasks", "r2", &json!({"n": 5})).unwrap();
    s.kv_set(&a, "new", &json!("someone else")).unwrap();
    assert_eq!(
        s.apply_diff(&a, "run1", &dg, 5).unwrap(),
        Err(ApplyRefusal::Conflicts(vec![
            row("tasks", "r2"),
            Target::Kv { key: "new".into() }
        ]))
    );
    // Nothing of it was written; it can be discarded still.
    assert_eq!(
        s.get_record(&a, &row("tasks", "r1")).unwrap(),
        Some(json!({"id": "r1", "n": 1}))
    );
    assert_eq!(s.discard_diff(&a, "run1", 6).unwrap(), Ok(()));
    assert_eq!(
        s.apply_diff(&a, "run1", &dg, 7).unwrap(),
        Err(ApplyRefusal::Decided(DiffStatus::Discarded))
    );
}

#[test]
fn expired_tampered_and_failed_diffs_are_refused() {
    let s = store().unwrap();
    let a = ws(1);
    let change = || Change {
        target: Target::Kv { key: "k".into() },
        op: ChangeOp::Insert,
        before: Value::Null,
        after: json!(1),
    };
    let dg = filed(&s, &a, "old", vec![change()], 100);
    assert_eq!(
        s.apply_diff(&a, "old", &dg, 101).unwrap(),
        Err(ApplyRefusal::Expired { expires_ms: 100 })
    );
    assert_eq!(
        s.discard_diff(&a, "old", 101).unwrap(),
        Err(ApplyRefusal::Expired { expires_ms: 100 })
    );
    // A stored diff whose changes were edited no longer matches its digest.
    let dg = filed(&s, &a, "t", vec![change()], u64::MAX);
    let mut d = s.get_diff(&a, "t").unwrap().unwrap();
    d.changes[0].after = json!(2);
    s.put_diff(&a, &d).unwrap();
    assert_eq!(
        s.apply_diff(&a, "t", &dg, 5).unwrap(),
        Err(ApplyRefusal::Digest)
    );
    let dg = filed(&s, &a, "f", vec![change()], u64::MAX);
    let mut d = s.get_diff(&a, "f").unwrap().unwrap();
    d.run_ok = false;
    s.put_diff(&a, &d).unwrap();
    assert_eq!(
        s.apply_diff(&a, "f", &dg, 5).unwrap(),
        Err(ApplyRefusal::RunFailed)
    );
    assert_eq!(s.kv_get(&a, "k").unwrap(), None);
    // Pruning drops the changes of expired and decided diffs, not pending ones.
    assert_eq!(s.prune_diffs(&a, 200).unwrap(), 1);
    let old = s.get_diff(&a, "old").unwrap().unwrap();
    assert_eq!(
        (old.status, old.changes.len(), old.count),
        (DiffStatus::Expired, 0, 1)
    );
    assert_eq!(s.get_diff(&a, "t").unwrap().unwrap().changes.len(), 1);
}

#[test]
fn an_applied_document_gets_a_newer_version() {
    let s = store().unwrap();
    let a = ws(1);
    let doc = s
        .put_doc(
            &a,
            serde_json::from_value(json!({"id": "d1", "title": "A"})).unwrap(),
        )
        .unwrap();
    let before = s
        .get_record(&a, &Target::Doc { id: "d1".into() })
        .unwrap()
        .unwrap();
    let after =
        serde_json::to_value(patch_document(before.clone(), &json!({"title": "B"})).unwrap())
            .unwrap();
    let dg = filed(
        &s,
        &a,
        "r",
        vec![update(Target::Doc { id: "d1".into() }, before, after)],
        u64::MAX,
    );
    assert_eq!(s.apply_diff(&a, "r", &dg, 5).unwrap(), Ok(1));
    let now = s.get_doc(&a, "d1").unwrap().unwrap();
    assert_eq!(now.title, "B");
    assert!(now.updated_ms > doc.updated_ms);
}

#[test]
fn change_json_names_its_record_flat() {
    let c = update(row("t", "r1"), json!(1), json!(2));
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v,
        json!({"kind": "row", "collection": "t", "id": "r1", "op": "update", "before": 1, "after": 2})
    );
    assert_eq!(serde_json::from_value::<Change>(v).unwrap(), c);
}

#[test]
fn diffs_count_as_history_and_go_with_their_runs() {
    let s = store().unwrap();
    let a = ws(1);
    let run = crate::RunRecord {
        status: "ok".into(),
        started_ms: 1,
        ..crate::RunRecord::queued("r1".into(), None, Value::Null, 1)
    };
    s.put_run(&a, &run).unwrap();
    let history = s.history_bytes(&a).unwrap();
    let change = Change {
        target: Target::Kv { key: "k".into() },
        op: ChangeOp::Insert,
        before: Value::Null,
        after: json!("x".repeat(5000)),
    };
    let dg = filed(&s, &a, "r1", vec![change], u64::MAX);
    assert!(s.history_bytes(&a).unwrap() > history + 5000);
    // Discarded: the changes go, the head says so.
    assert_eq!(s.discard_diff(&a, "r1", 2).unwrap(), Ok(()));
    assert!(s.history_bytes(&a).unwrap() < history + 1000);
    assert_eq!(s.get_diff(&a, "r1").unwrap().unwrap().changes.len(), 0);
    assert_eq!(
        s.apply_diff(&a, "r1", &dg, 3).unwrap(),
        Err(ApplyRefusal::Decided(DiffStatus::Discarded))
    );
    // Pruning the run deletes its diff.
    s.prune_history(&a, 0, u64::MAX).unwrap();
    assert_eq!(s.get_diff(&a, "r1").unwrap(), None);
    assert_eq!(s.get_diff_head(&a, "r1").unwrap(), None);
    assert_eq!(s.history_bytes(&a).unwrap(), 0);
}
