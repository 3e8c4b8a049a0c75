// expect: output_limit
// limits: cpu_ms=10000 wall_ms=20000
// Clearing is output too: show-and-clear forever still ends.
for (;;) display("x", { id: "same" }).clear();
