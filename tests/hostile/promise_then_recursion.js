// expect: cpu_limit
// v8-expect: cpu_limit|memory_limit
// (V8 has no job counter; the chain's memory or CPU ends it.)
// limits: cpu_ms=200
const spin = () => Promise.resolve().then(spin);
await spin();
