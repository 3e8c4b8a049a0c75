// expect: stack_overflow
// v8-expect: memory_limit|stack_overflow|ok
// (V8's JSON.parse is not recursive: 1e6 nested arrays fit in the memory
// limit or run out of it, never of stack, and never crash the runner.)
// limits: cpu_ms=10000 wall_ms=20000
// (CPU room: near its memory limit V8 collects garbage first.)
JSON.parse("[".repeat(1e6) + "]".repeat(1e6));
