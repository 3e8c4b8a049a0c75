// expect: cpu_limit
// limits: cpu_ms=200
new Function("for (;;) {}")();
