// expect: ok
// result: ["Error: ownKeys", "Error: get", "TypeError", "TypeError", "TypeError", "Error: iterator", "TypeError", 2]
// Headers built from objects a block rigs: proxies whose traps throw,
// Symbol keys, values past U+00FF, pairs that are not pairs and
// iterators that throw. Each is an error the block can catch.
const out = [];
const tryIt = (f) => {
  try {
    f();
    out.push("no error");
  } catch (e) {
    out.push(e.name === "TypeError" ? "TypeError" : e.name + ": " + e.message);
  }
};
tryIt(() => new Headers(new Proxy({}, { ownKeys() { throw new Error("ownKeys"); } })));
tryIt(() => new Headers(new Proxy({ a: "1" }, { get(t, k) { if (k === "a") throw new Error("get"); return t[k]; } })));
tryIt(() => new Headers({ [Symbol("s")]: "v" }));
tryIt(() => new Headers({ a: "\u0100" }));
tryIt(() => new Headers([["a", "b", "c"]]));
tryIt(() => new Headers({ [Symbol.iterator]() { throw new Error("iterator"); } }));
tryIt(() => new Headers().append("bad name", "v"));
const h = new Headers([["Set-Cookie", "a=1"], ["set-cookie", "b=2"]]);
export default [...out, h.getSetCookie().length];
