// expect: cpu_limit
// limits: cpu_ms=200
export default { get x() { for (;;) {} } };
