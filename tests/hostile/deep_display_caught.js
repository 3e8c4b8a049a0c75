// expect: ok
// result: ["RangeError: the display() value is nested deeper than the limit of 64 levels of arrays and objects", 64]
// display() of a value past the depth limit throws in the block (it can
// catch it); one at the limit is shown.
const deep = (n) => JSON.parse("[".repeat(n) + "]".repeat(n));
let msg;
try { display(deep(65)); } catch (e) { msg = e.name + ": " + e.message; }
display(deep(64));
let depth = 0;
for (let v = deep(64); Array.isArray(v); v = v[0]) depth++;
export default [msg, depth];
