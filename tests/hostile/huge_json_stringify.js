// expect: stack_overflow
// limits: cpu_ms=2000
const root = [];
let x = root;
for (let i = 0; i < 1e5; i++) { const n = []; x.push(n); x = n; }
JSON.stringify(root);
