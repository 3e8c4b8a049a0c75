// expect: exception
// A Map whose iteration the block rewrites (its entries() hands out an
// iterator whose `done` getter throws after 50 steps; the shared
// iterator prototype's next() never says done). Iteration is guest code
// under the run's limits, like toJSON: the block's own error ends the
// run (the same on both engines); it never loops past the item cap.
const m = new Map([[1, 2]]);
const proto = Object.getPrototypeOf(new Map().entries());
let n = 0;
proto.next = function () {
  n++;
  return { value: ["k" + n, "x".repeat(1000)], done: false };
};
m.entries = function () {
  return { next: () => ({ get done() { if (n++ > 50) throw new Error("no"); return false; }, value: [n, n] }) };
};
export default [m, new Set([1, 2, 3])];
