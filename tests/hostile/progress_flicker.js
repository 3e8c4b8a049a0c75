// expect: output_limit
// limits: cpu_ms=10000 wall_ms=20000
// A progress bar that jumps between 0% and 100% on every call sends an
// update each time; the output limit ends it.
const p = display.progress(0);
for (let i = 0; ; i++) p.update(i % 2);
