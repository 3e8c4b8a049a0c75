// expect: memory_limit
// limits: memory_mb=32
let s = "x";
for (;;) { s += s; s.charCodeAt(s.length - 1); }
