// expect: ok
// result: {"a":[1,2],"b":"ok"}
Object.prototype.toJSON = () => "hacked";
Array.prototype.toJSON = () => "hacked";
JSON.stringify = () => "\"hacked\"";
Array.prototype.map = () => ["hacked"];
Object.keys = () => ["hacked"];
Object.defineProperty(Object.prototype, "injected", { get() { return "hacked"; }, enumerable: true });
export default { a: [1, 2], b: "ok" };
