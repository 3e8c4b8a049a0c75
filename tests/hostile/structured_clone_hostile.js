// expect: ok
// result: ["DataCloneError", "DataCloneError", "DataCloneError", 0, 3, true, "TypeError"]
// structuredClone's transfer list and values a block rigs: a buffer twice,
// something not transferable, a function inside, a value nested past the
// stack; each is an error the block can catch, and a failed clone
// detaches nothing.
const out = [];
const name = (f) => {
  try {
    f();
    return "no error";
  } catch (e) {
    return e.name;
  }
};
const buf = new Uint8Array([1, 2, 3]).buffer;
out.push(name(() => structuredClone(buf, { transfer: [buf, buf] })));
out.push(name(() => structuredClone(1, { transfer: [{}] })));
out.push(name(() => structuredClone({ buf, f() {} }, { transfer: [buf] })));
const moved = structuredClone(buf, { transfer: [buf] });
out.push(buf.byteLength, moved.byteLength);
let deep = [];
for (let i = 0; i < 200000; i++) deep = [deep];
let threw = false;
try {
  structuredClone(deep);
} catch (e) {
  threw = true;
}
out.push(threw);
out.push(name(() => structuredClone(1, "options")));
export default out;
