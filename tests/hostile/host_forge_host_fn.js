// expect: capability_denied
// v8-expect: capability_denied|internal
// (In V8 the block shares its isolate with the runner: replacing
// Function.prototype.call breaks deno's own pipe I/O, so the runner dies and
// the run ends `internal`. No grant is skipped either way.)
// grants:
// Replacing the host function, Function.prototype.call or Promise does not
// skip the grant check: it is in Rust.
try { globalThis.__quire_host = async () => "forged"; } catch {}
Function.prototype.call = function () { return "forged"; };
globalThis.Promise = function () {};
const { kv } = await import("quire");
export default await kv.get("k");
