// expect: cpu_limit
// limits: cpu_ms=200
/^(([a-z])+.)+[A-Z]([a-z])+$/.test("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!");
