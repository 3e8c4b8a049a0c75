// expect: ok
// An Error whose stack getter throws after three reads and whose message
// is 100 KB: the description runs the getters under the run's limits,
// and a getter that throws is caught as for a thrown error: that copy is
// described without frames, on both engines.
const e = new RangeError("x");
let calls = 0;
Object.defineProperty(e, "stack", { get() { if (++calls > 3) throw new Error("stack getter"); return "at nowhere"; } });
Object.defineProperty(e, "message", { get() { return "m".repeat(100000); } });
export default { e, again: e, third: e, fourth: e };
