// expect: quota_exceeded
// grants: kv:read
// limits: host_calls=1000
// 5,000 calls at once: the 1001st is refused; the run ends with quota_exceeded.
import { kv } from "quire";
await Promise.all(Array.from({ length: 5000 }, () => kv.get("k")));
