// expect: ok
// grants: kv:read kv:write
// result: ["RangeError: an argument of `kv.set` is nested deeper than the limit of 64 levels of arrays and objects", 64]
// A host-call argument past the depth limit is refused before it reaches
// the host; one at the limit is stored and read back.
import { kv } from "quire";
const deep = (n) => JSON.parse("[".repeat(n) + "]".repeat(n));
let msg;
try { await kv.set("deep", deep(65)); } catch (e) { msg = e.name + ": " + e.message; }
await kv.set("deep", deep(64));
let depth = 0;
for (let v = await kv.get("deep"); Array.isArray(v); v = v[0]) depth++;
export default [msg, depth];
