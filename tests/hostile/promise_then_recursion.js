// expect: cpu_limit
// limits: cpu_ms=200
const spin = () => Promise.resolve().then(spin);
await spin();
