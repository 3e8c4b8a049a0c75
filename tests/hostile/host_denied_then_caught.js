// expect: ok
// grants: kv:read
// result: "CapabilityDenied: kv.set is denied: it needs the grant kv:write (this block has kv:read)"
// A denial can be caught; the run goes on.
import { kv } from "quire";
let msg;
try { await kv.set("k", 1); } catch (e) { msg = e.name + ": " + e.message; }
export default msg;
