// expect: exception|memory_limit|cpu_limit
// limits: cpu_ms=500
let x = 3n;
for (;;) x = x * x;
