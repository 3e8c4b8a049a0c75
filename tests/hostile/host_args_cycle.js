// expect: ok
// grants: kv:read kv:write
// result: {"self":"[Circular]"}
// Cyclic arguments cross the boundary as a description, never a hang.
import { kv } from "quire";
const a = {};
a.self = a;
await kv.set("cycle", a);
export default await kv.get("cycle");
