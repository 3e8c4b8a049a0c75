// expect: wall_limit
// limits: wall_ms=300
setInterval(() => {}, 5);
