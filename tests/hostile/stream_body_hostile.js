// expect: ok
// result: ["TypeError", "TypeError", "TypeError", "TypeError", "Error: pull", "hello", "TypeError"]
// Body streams a block rigs: chunks that are not bytes, a locked or read
// stream given as a body, a stream whose pull throws, a `then` put on
// Object.prototype while a body is read, a second read. Each is an error
// the block can catch, or the right text.
const out = [];
const name = async (f) => {
  try {
    await f();
    return "no error";
  } catch (e) {
    return e.name === "TypeError" ? "TypeError" : e.name + ": " + e.message;
  }
};
const of = (...chunks) => new ReadableStream({ start(c) { for (const x of chunks) c.enqueue(x); c.close(); } });
out.push(await name(() => new Response(of("text")).text()));
const locked = of(new Uint8Array([1]));
locked.getReader();
out.push(await name(() => new Response(locked)));
const read = of(new Uint8Array([1]), new Uint8Array([2]));
const r = read.getReader();
await r.read();
r.releaseLock();
out.push(await name(() => new Response(read)));
out.push(await name(() => new Request("https://example.com/", { method: "POST", body: of(new Uint8Array([1])) })));
out.push(await name(() => new Response(new ReadableStream({ pull() { throw new Error("pull"); } })).text()));
const resp = new Response(of(new TextEncoder().encode("hello")));
Object.prototype.then = function (ok) {
  delete Object.prototype.then;
  ok({ done: false, value: new TextEncoder().encode("bye") });
};
out.push(await resp.text());
delete Object.prototype.then;
out.push(await name(() => resp.text()));
export default out;
