// expect: ok
// result: "alive"
// A setter on Object.prototype cannot reshape what display.progress sends
// (on V8 a malformed display once made the server drop the whole runner,
// with every run on it).
Object.defineProperty(Object.prototype, "label", {
  set(v) {
    this.fraction = 7;
    this.extra = v;
  },
  configurable: true,
});
const p = display.progress(0.5, "x");
p.update(0.9, "y");
export default "alive";
