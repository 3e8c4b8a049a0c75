// expect: stack_overflow
const o = { get x() { return this.x; } };
o.x;
