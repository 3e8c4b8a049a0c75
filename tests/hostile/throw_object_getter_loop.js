// expect: cpu_limit
// limits: cpu_ms=200
throw { get message() { for (;;) {} } };
