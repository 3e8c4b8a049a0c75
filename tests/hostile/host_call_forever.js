// expect: cpu_limit|wall_limit|quota_exceeded
// grants: kv:read
// limits: cpu_ms=200 wall_ms=1000 host_calls=100000000
// An endless loop of awaited host calls still ends at a limit.
import { kv } from "quire";
for (;;) await kv.get("k");
