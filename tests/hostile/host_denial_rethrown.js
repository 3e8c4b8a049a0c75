// expect: capability_denied
// grants: kv:read
// The host's own denial, caught and thrown again, is still the host's.
import { kv } from "quire";
let denial;
try { await kv.set("k", 1); } catch (e) { denial = e; }
throw denial;
