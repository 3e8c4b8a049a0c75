// expect: exception
// grants: kv:write
// limits: host_value_bytes=100000
// Arguments over the host value limit are refused before they leave the isolate.
import { kv } from "quire";
await kv.set("big", "x".repeat(2_000_000));
