// expect: ok
// result: {"name":"a","self":"[Circular]","list":[1,"[Circular]"]}
const a = { name: "a" };
a.self = a;
a.list = [1, a];
export default a;
