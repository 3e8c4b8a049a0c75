// expect: stack_overflow
function r() { return r() + 1; }
r();
