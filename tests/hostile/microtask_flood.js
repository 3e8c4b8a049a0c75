// expect: cpu_limit
// limits: cpu_ms=200
function f() { queueMicrotask(f); }
f();
await new Promise(() => {});
