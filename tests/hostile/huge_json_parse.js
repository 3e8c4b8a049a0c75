// expect: stack_overflow
// v8-expect: memory_limit|stack_overflow
// (V8's JSON.parse is not recursive: 1e6 nested arrays run out of memory,
// not stack.)
// limits: cpu_ms=2000
JSON.parse("[".repeat(1e6) + "]".repeat(1e6));
