// expect: cpu_limit
// limits: cpu_ms=200 wall_ms=3000
// Calls answered by the runner's own thread (the clock, encoders) count as
// the run's CPU time: a loop of them ends at the CPU limit, not the wall.
for (;;) performance.now();
