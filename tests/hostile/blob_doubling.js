// expect: memory_limit
// limits: memory_mb=32
// A Blob made of itself twice, again and again: its bytes live in the
// isolate, so the run ends at its memory limit like any other value.
let b = new Blob(["x".repeat(1 << 20)]);
for (;;) b = new Blob([b, b]);
