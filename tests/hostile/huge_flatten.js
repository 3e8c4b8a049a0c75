// expect: memory_limit
// limits: memory_mb=32 cpu_ms=10000 wall_ms=20000
// One rope of 64 Mi characters flattened at once: a single allocation of
// twice the limit. V8 lets it through (a heap at its limit gets room for
// one more allocation) and checks only at its next full collection, which
// this run ends before: the runner's end-of-run heap check ends it.
let s = "x".repeat(1 << 20);
for (let i = 0; i < 6; i++) s = s + s;
s.charCodeAt(5);
export default s.length;
