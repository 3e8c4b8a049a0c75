// expect: cpu_limit
// limits: cpu_ms=200
const e = new Error("x");
Object.defineProperty(e, "message", { get() { for (;;) {} } });
throw e;
