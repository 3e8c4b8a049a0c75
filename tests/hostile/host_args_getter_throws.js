// expect: ok
// grants: kv:write
// result: "caught: boom"
// A getter in the arguments throws while they are serialized: the call
// throws in the block, nothing is stored, the host is not involved.
import { kv } from "quire";
let out;
try {
  await kv.set("k", { get x() { throw new Error("boom"); } });
  out = "stored";
} catch (e) {
  out = "caught: " + e.message;
}
export default out;
