// expect: ok
// result: 1
// Replacing String (or Number, Math) after the prelude loaded changes
// nothing quire sends: console, display and results use what was captured
// first (in V8 a block that could make the glue send a malformed frame
// would take down its whole runner process).
globalThis.String = () => ({ evil: [1, 2, 3] });
Number.isFinite = () => true;
Math.max = () => Infinity;
Math.min = () => 4e8;
console.log("x", NaN);
display("text", { mime: "text/plain" });
crypto.getRandomValues(new Uint8Array(16));
export default 1;
