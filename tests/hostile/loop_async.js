// expect: cpu_limit
// limits: cpu_ms=200
async function f() { for (;;) await null; }
await f();
