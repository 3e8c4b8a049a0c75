// expect: stack_overflow
const a = (n) => b(n + 1);
const b = (n) => a(n + 1);
a(0);
