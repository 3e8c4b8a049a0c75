// expect: wall_limit
// limits: wall_ms=300
await new Promise((r) => setTimeout(r, 1e9));
