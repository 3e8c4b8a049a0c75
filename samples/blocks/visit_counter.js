// Count runs in the workspace's kv store.
//   quire run samples/blocks/visit_counter.js --cap kv:read --cap kv:write --data ./quire-data
// Grants: kv:read, kv:write.
import { kv } from "quire";

export default async function () {
  const n = ((await kv.get("visits")) ?? 0) + 1;
  await kv.set("visits", n);
  await kv.set("last_visit", new Date().toISOString());
  return { visits: n };
}
