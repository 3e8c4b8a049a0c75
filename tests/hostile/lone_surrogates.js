// expect: ok
// result: {"k\ufffd\ufffd\ufffd":"v\ufffd\ufffd\ufffd"}
console.log("lone \ud800 surrogate", { ["k\ud800"]: 1 });
export default { ["k\udc00"]: "v\ud800" };
