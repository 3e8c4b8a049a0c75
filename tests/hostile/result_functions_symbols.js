// expect: ok
// result: {"f":"[Function: hello]","s":"[Symbol(tag)]","big":"12345678901234567890n","nan":"NaN"}
export default { f: function hello() {}, s: Symbol("tag"), big: 12345678901234567890n, nan: NaN, u: undefined };
