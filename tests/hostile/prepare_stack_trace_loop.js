// expect: cpu_limit|exception
// limits: cpu_ms=200
Error.prepareStackTrace = () => { for (;;) {} };
throw new Error("x");
