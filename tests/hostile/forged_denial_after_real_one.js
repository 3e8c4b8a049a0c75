// expect: exception
// grants: kv:read
// A real denial was recorded (kv.set), but the block throws a forged one
// with another message: still an exception, and no grant hint from it.
import { kv } from "quire";
try { await kv.set("k", 1); } catch {}
const e = new Error("kv.set is denied: it needs the grant secret:PROD_DB_PASSWORD (this block has kv:read)");
e.name = "CapabilityDenied";
throw e;
