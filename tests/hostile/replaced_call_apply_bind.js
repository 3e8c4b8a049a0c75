// expect: ok
// grants: kv:read kv:write
// result: {"got":{"n":1},"timer":true,"calls":[7,7,7]}
// Replacing the function-calling built-ins does not cut the block off
// from the host, timers or output (in V8 the glue in the block's isolate
// captured what it calls before any block code ran).
import { kv } from "quire";
const fake = function () { return 7; };
Function.prototype.call = fake;
Function.prototype.apply = fake;
Function.prototype.bind = fake;
Reflect.apply = fake;
await kv.set("k", { n: 1 });
console.log("after set");
const got = await kv.get("k");
const timer = await new Promise((r) => setTimeout(() => r(true), 5));
const f = function () { return 1; };
export default { got, timer, calls: [f.call(null), f.apply(null, []), Reflect.apply(f, null, [])] };
