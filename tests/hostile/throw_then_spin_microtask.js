// expect: exception|cpu_limit
// limits: cpu_ms=200 wall_ms=3000
// The run has failed, but a microtask of its own still spins: the run
// still ends (the isolate is disposed), within its limits.
queueMicrotask(() => { for (;;) {} });
throw new Error("looks like an ordinary exception");
