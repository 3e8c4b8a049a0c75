// expect: stack_overflow
// v8-expect: ok|stack_overflow
// (V8's JSON.stringify does not recurse on the native stack: it succeeds.)
// limits: cpu_ms=2000
const root = [];
let x = root;
for (let i = 0; i < 1e5; i++) { const n = []; x.push(n); x = n; }
JSON.stringify(root);
