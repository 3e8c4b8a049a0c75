// expect: exception
// Maps nested 100 levels deep in a result: a Map is described as text,
// but its entries count levels like arrays and objects do, so this is
// refused at the depth limit (64) instead of recursing without bound.
let m = new Map();
for (let i = 0; i < 100; i++) m = new Map([["k", m]]);
export default m;
