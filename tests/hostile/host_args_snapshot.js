// expect: ok
// grants: kv:read kv:write
// result: {"n":1}
// Arguments are copied when the call is made; mutating them afterwards
// changes nothing.
import { kv } from "quire";
const v = { n: 1 };
const p = kv.set("snap", v);
v.n = 2;
await p;
export default await kv.get("snap");
