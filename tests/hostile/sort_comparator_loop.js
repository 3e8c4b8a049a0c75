// expect: cpu_limit
// limits: cpu_ms=200
[3, 2, 1].sort(() => { for (;;) {} });
