// expect: cpu_limit
// limits: cpu_ms=200
for (;;) { try { await (async () => { for (;;) {} })(); } catch (e) { console.log("caught", e); } }
