// expect: cpu_limit
// limits: cpu_ms=200
function* g() { for (;;) yield 1; }
for (const x of g()) { void x; }
