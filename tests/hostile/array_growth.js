// expect: memory_limit
// limits: memory_mb=16 cpu_ms=5000 wall_ms=10000
const a = [];
for (;;) a.push({ n: a.length, s: "row" + a.length });
