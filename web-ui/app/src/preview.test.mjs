// Unit tests of how a dry-run's diff is laid out (run by `npm test`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { fieldChanges, groupChanges, recordWords, previewMark, sameValue } from "./preview.js";

test("an update compares field by field: added, removed, changed and the same", () => {
  const lines = fieldChanges({
    kind: "row", collection: "tasks", id: "r1", op: "update",
    before: { id: "r1", status: "open", tags: ["a"], meta: { x: 1, y: 2 }, old: true },
    after: { id: "r1", status: "done", tags: ["a"], meta: { y: 2, x: 1 }, added: 5 },
  });
  assert.deepEqual(lines.map((l) => [l.field, l.state]), [
    ["id", "same"], ["status", "changed"], ["tags", "same"], ["meta", "same"], ["old", "removed"], ["added", "added"],
  ]);
  assert.deepEqual(lines[1], { field: "status", state: "changed", before: "open", after: "done" });
  assert.equal(lines[4].after, undefined);
  assert.equal(lines[5].before, undefined);
});

test("an insert has only after, a delete only before; a plain value is one line", () => {
  assert.deepEqual(fieldChanges({ kind: "row", op: "insert", before: null, after: { id: "r2", n: 1 } }).map((l) => [l.field, l.state, l.before, l.after]),
    [["id", "added", undefined, "r2"], ["n", "added", undefined, 1]]);
  assert.deepEqual(fieldChanges({ kind: "row", op: "delete", before: { id: "r3" }, after: null }).map((l) => [l.field, l.state, l.before, l.after]),
    [["id", "removed", "r3", undefined]]);
  assert.deepEqual(fieldChanges({ kind: "kv", key: "k", op: "update", before: 1, after: 2 }), [{ field: "value", state: "changed", before: 1, after: 2 }]);
  assert.deepEqual(fieldChanges({ kind: "kv", key: "k", op: "insert", before: null, after: "x" }), [{ field: "value", state: "added", before: undefined, after: "x" }]);
  // A kv value that was null, or becomes an object from a number, stays one line.
  assert.deepEqual(fieldChanges({ kind: "kv", key: "k", op: "update", before: 3, after: { a: 1 } }).map((l) => l.field), ["value"]);
});

test("changes group as documents, rows per collection, then kv keys", () => {
  const groups = groupChanges([
    { kind: "kv", key: "k" }, { kind: "row", collection: "tasks", id: "r1" }, { kind: "doc", id: "d1" },
    { kind: "row", collection: "notes", id: "n1" }, { kind: "row", collection: "tasks", id: "r2" },
  ]);
  assert.deepEqual(groups.map((g) => [g.title, g.changes.map((c) => c.id ?? c.key)]), [
    ["Documents", ["d1"]], ["Rows of tasks", ["r1", "r2"]], ["Rows of notes", ["n1"]], ["Key-value store", ["k"]],
  ]);
});

test("records and history markers in words", () => {
  assert.equal(recordWords({ kind: "row", collection: "tasks", id: "r1" }), "row r1 of tasks");
  assert.equal(recordWords({ kind: "kv", key: "visits" }), "kv key visits");
  assert.equal(recordWords({ kind: "doc", id: "d1" }), "document d1");
  assert.equal(previewMark({ mode: "dry_run", preview: { status: "applied", changes: 2 } }), "preview · applied");
  assert.equal(previewMark({ mode: "dry_run" }), "preview · pending");
  assert.equal(previewMark({ status: "ok" }), null);
  assert.ok(sameValue({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }));
  assert.ok(!sameValue({ a: 1 }, { a: 1, b: undefined }));
  assert.ok(!sameValue([1], { 0: 1 }));
});
