// The smallest useful block: log something and return a result.
console.log("hello from quire", { at: new Date(0).toISOString() });
export default { greeting: "hello", n: 42 };
