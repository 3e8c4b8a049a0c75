// expect: ok
// A Map that holds itself, a Set that holds itself and a Map whose value
// is the Set: each is described once, the cycle as [Circular].
const m = new Map();
m.set("self", m);
const s = new Set();
s.add(s);
m.set("set", s);
export default { m, s };
