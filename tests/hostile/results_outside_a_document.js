// expect: capability_denied
// grants:
// A run in no document has no other blocks to read, whatever it names:
// an id, a path, another workspace's-looking id, or the empty string.
import { results } from "quire";
const tried = [];
for (const name of ["load", "../load", "ws:other/load", ""]) {
  try {
    await results.get(name);
    tried.push("read " + name);
  } catch (e) {
    tried.push(e.name);
  }
}
if (tried.some((t) => t.startsWith("read"))) throw new Error(tried.join());
await results.get("load");
