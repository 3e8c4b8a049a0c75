// expect: capability_denied
// grants:
// Replacing the host function, Function.prototype.call or Promise does not
// skip the grant check: it is in Rust.
try { globalThis.__quire_host = async () => "forged"; } catch {}
Function.prototype.call = function () { return "forged"; };
globalThis.Promise = function () {};
const { kv } = await import("quire");
export default await kv.get("k");
