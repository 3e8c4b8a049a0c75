// expect: memory_limit
// limits: memory_mb=32 cpu_ms=10000 wall_ms=20000
// (V8 may spend up to ~1 s of CPU collecting garbage at its memory limit
// before it ends the run; the CPU limit is raised so memory decides.)
let s = "x";
for (;;) { s += s; s.charCodeAt(s.length - 1); }
