// expect: quota_exceeded
// v8-expect: quota_exceeded|memory_limit
// (In V8 the 5,000 calls made before the refusal hold 5,000 promises,
// closures and call-site errors in a heap collected lazily: resident
// memory can pass 64 MiB first. Either way the flood ends the run.)
// grants: kv:read
// limits: host_calls=1000
// 5,000 calls at once: the 1001st is refused; the run ends with quota_exceeded.
import { kv } from "quire";
await Promise.all(Array.from({ length: 5000 }, () => kv.get("k")));
