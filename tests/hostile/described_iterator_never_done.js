// expect: ok
// A Set whose values() never ends: the description stops at its first
// 100 entries ("…") instead of iterating forever.
const s = new Set([1]);
s.values = function () {
  let n = 0;
  return { next: () => ({ value: n++, done: false }) };
};
export default s;
