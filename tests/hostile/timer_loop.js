// expect: wall_limit
// limits: wall_ms=500
function t() { setTimeout(t, 0); }
t();
