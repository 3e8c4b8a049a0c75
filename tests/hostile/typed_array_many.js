// expect: memory_limit
// limits: memory_mb=32
const keep = [];
for (;;) keep.push(new Float64Array(1e6));
