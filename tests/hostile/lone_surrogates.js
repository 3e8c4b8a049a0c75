// expect: ok
// v8-result: {"k\ufffd":"v\ufffd"}
// (V8 replaces each lone surrogate with one U+FFFD, as WHATWG encoders
// do; QuickJS replaces each of its three CESU-8 bytes.)
// result: {"k\ufffd\ufffd\ufffd":"v\ufffd\ufffd\ufffd"}
console.log("lone \ud800 surrogate", { ["k\ud800"]: 1 });
export default { ["k\udc00"]: "v\ud800" };
