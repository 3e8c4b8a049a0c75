// expect: cpu_limit
// limits: cpu_ms=200
try { for (;;) {} } finally { console.log("finally ran"); for (;;) {} }
