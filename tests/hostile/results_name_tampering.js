// expect: ok
// grants:
// result: ["TypeError", "TypeError", "TypeError", "CapabilityDenied"]
// Names that are not strings are refused before any lookup (an object
// whose toString says a block id, an array, a number); calling the host
// function directly, past the glue, is checked the same (denied here: no
// document).
import { results } from "quire";
const out = [];
for (const name of [{ toString: () => "load" }, ["load"], 42]) {
  try {
    await results.get(name);
    out.push("read");
  } catch (e) {
    out.push(e.name);
  }
}
try {
  await globalThis.__quire_host?.("results.get", ["load"]);
  out.push("read past the glue");
} catch (e) {
  out.push(e.name);
}
export default out;
