// expect: output_limit
// limits: cpu_ms=10000 wall_ms=20000
// Updates in place count against the output limit like new displays.
const h = display({ rows: [1, 2, 3] });
for (;;) h.update({ rows: [1, 2, 3] });
