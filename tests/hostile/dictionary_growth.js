// expect: memory_limit
// limits: memory_mb=32 cpu_ms=10000 wall_ms=20000
// An object grown as a dictionary past the limit between V8's checks: V8
// often cannot turn this into a termination and loses control of the
// isolate. The run still ends memory_limit, and the runner's other runs
// go on (tests/suite/v8.rs).
const o = {};
for (let i = 0; ; i++) o["k" + i] = i;
