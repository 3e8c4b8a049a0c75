// expect: cpu_limit
// limits: cpu_ms=200
/(a+)+$/.test("a".repeat(40) + "b");
