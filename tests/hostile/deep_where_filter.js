// expect: ok
// grants: db:read:tasks
// result: "RangeError: an argument of `db.query` is nested deeper than the limit of 64 levels of arrays and objects"
// A `where` filter nested past the limit is refused, not fed to a parser.
import { db } from "quire";
let where = { a: 1 };
for (let i = 0; i < 70; i++) where = { $and: [where] };
try { await db.query("tasks", { where }); } catch (e) { return_(e.name + ": " + e.message); }
function return_(v) { globalThis.out = v; }
export default globalThis.out;
