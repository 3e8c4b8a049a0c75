// quire's MCP server over stdio (`quire mcp`), driven by the official
// TypeScript SDK client: the tool list, run_code with progress, a failed
// run as isError, cancelling a run by aborting its request, no grants for
// agent code, a stored block as a tool, and bad arguments refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { binary } from "./quire.mjs";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

let client, data;
before(async () => {
  data = mkdtempSync(join(tmpdir(), "quire-mcp-"));
  const transport = new StdioClientTransport({
    command: binary(),
    args: ["mcp", "--workspace", "default", "--data", data],
    stderr: "inherit",
  });
  client = new Client({ name: "quire-mcp-test", version: "0.1.0" });
  await client.connect(transport);
});
after(async () => {
  await client?.close();
  rmSync(data, { recursive: true, force: true });
});

const run = (args, opts) => client.callTool({ name: "run_code", arguments: args }, undefined, opts);

test("tools/list is the fixed tools, then each block with a declared input, the same every time", async () => {
  const a = await client.listTools();
  const b = await client.listTools();
  assert.deepEqual(a, b);
  const names = a.tools.map((t) => t.name);
  assert.deepEqual(names.slice(0, 5), ["run_code", "list_blocks", "list_documents", "list_runs", "read_run"]);
  assert.ok(names.includes("block_filter-tasks"), names.join());
  const filter = a.tools.find((t) => t.name === "block_filter-tasks");
  assert.deepEqual(filter.inputSchema.properties.status.enum, ["open", "in_progress", "blocked", "done"]);
  assert.match(filter.description, /db:read:tasks/);
  assert.equal(a.tools[0].outputSchema.type, "object");
});

test("run_code returns the result, logs and displays, and streams them as progress", async () => {
  const progress = [];
  const r = await run(
    // The run goes on a little after its output: progress is for runs
    // still going (a notification may trail the result of one that ended).
    { source: "console.log('hi'); const h = display({ a: 1 }); h.update({ a: 2 }); await new Promise((r) => setTimeout(r, 300)); export default 6 * 7;" },
    { onprogress: (p) => progress.push(p) },
  );
  assert.equal(r.isError, false);
  const s = r.structuredContent;
  assert.equal(s.status, "ok");
  assert.equal(s.result, 42);
  assert.deepEqual(s.logs, [{ level: "log", text: "hi" }]);
  assert.deepEqual(s.displays, [{ display_id: "d1", mime: "application/json", data: { a: 2 } }]);
  assert.ok(s.usage.cpu_ms >= 0);
  assert.ok(progress.some((p) => p.message === "hi"), JSON.stringify(progress));
  assert.match(r.content[0].text, /"result": 42/);
  // Its events can be read back.
  const rr = await client.callTool({ name: "read_run", arguments: { run: s.run } });
  const types = rr.structuredContent.events.map((e) => e.type);
  assert.equal(types[0], "started");
  assert.equal(types.at(-1), "finished");
  assert.equal(rr.structuredContent.trigger.kind, "mcp");
});

test("a failed run is a tool result with isError, not a protocol error", async () => {
  const r = await run({ source: "const x = 1;\nthrow new Error('boom');", lang: "ts" });
  assert.equal(r.isError, true);
  assert.equal(r.structuredContent.error.kind, "exception");
  assert.match(r.structuredContent.error.message, /boom/);
  assert.equal(r.structuredContent.error.line, 2);
});

test("agent code has no grants: a host call is denied", async () => {
  const r = await run({ source: "import { kv } from 'quire'; export default await kv.get('x');" });
  assert.equal(r.isError, true);
  assert.equal(r.structuredContent.error.kind, "capability_denied");
});

test("aborting the request cancels the run", async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort("enough"), 300);
  await assert.rejects(run({ source: "for (;;) {}" }, { signal: ac.signal }));
  // The run ends as cancelled, well before its CPU limit would end it.
  const t0 = Date.now();
  let last;
  for (;;) {
    const r = await client.callTool({ name: "list_runs", arguments: { limit: 1 } });
    last = r.structuredContent.runs[0];
    if (last.status !== "running" && last.status !== "queued") break;
    assert.ok(Date.now() - t0 < 10000, "the run never ended");
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal(last.error?.kind, "cancelled", JSON.stringify(last));
});

test("a stored block with a declared input runs as its own tool, with its own grants", async () => {
  const r = await client.callTool({ name: "block_filter-tasks", arguments: { status: "open", minPriority: 4 } });
  assert.equal(r.isError, false, JSON.stringify(r.structuredContent));
  assert.ok(r.structuredContent.result.matched > 0);
  assert.equal(r.structuredContent.displays.length, 1);
});

test("bad arguments and unknown tools are protocol errors that say what is wrong", async () => {
  await assert.rejects(run({}), /source/);
  await assert.rejects(run({ source: "1", lang: "py" }), /lang/);
  await assert.rejects(run({ source: "1", extra: true }), /unknown argument/);
  await assert.rejects(run({ source: "1", mode: "commit" }), /mode/);
  await assert.rejects(run({ source: "1", mode: 7 }), /mode/);
  await assert.rejects(run({ source: "x".repeat(600 * 1024) }), /limit/);
  await assert.rejects(client.callTool({ name: "nope", arguments: {} }), /unknown tool/);
  await assert.rejects(client.callTool({ name: "block_hello", arguments: {} }), /unknown tool/);
  await assert.rejects(client.callTool({ name: "read_run", arguments: { run: "../x" } }));
  // The session is still fine.
  const ok = await run({ source: "export default 1;" });
  assert.equal(ok.structuredContent.result, 1);
});
