// expect: memory_limit
// limits: memory_mb=32 cpu_ms=10000 wall_ms=20000
// A Response body stream that never ends, read whole with text(): the
// chunks gather in the isolate until its memory limit ends the run.
const chunk = new Uint8Array(1 << 20);
const body = new ReadableStream({ pull(c) { c.enqueue(new Uint8Array(chunk)); } });
await new Response(body).text();
