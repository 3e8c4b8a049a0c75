// expect: cpu_limit
// limits: cpu_ms=200
async function* g() { for (;;) yield 1; }
for await (const x of g()) { void x; }
