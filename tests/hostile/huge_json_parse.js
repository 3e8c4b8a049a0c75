// expect: stack_overflow
// limits: cpu_ms=2000
JSON.parse("[".repeat(1e6) + "]".repeat(1e6));
