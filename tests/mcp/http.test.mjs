// quire's MCP endpoint on `quire serve` (…/workspaces/{ws}/mcp, the
// streamable HTTP transport), driven by the official TypeScript SDK
// client: tokens and roles, another workspace, no token, a browser
// Origin, and a run streamed and cancelled over HTTP.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { binary } from "./quire.mjs";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

let proc, url, data;
const admin = "mcp-admin-" + Math.random().toString(36).slice(2);
const tokens = {};

async function api(method, path, token, body) {
  const res = await fetch(`${url}api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

before(async () => {
  data = mkdtempSync(join(tmpdir(), "quire-mcp-http-"));
  proc = spawn(binary(), ["serve", "--addr", "127.0.0.1:0", "--data", data, "--shutdown-grace-s", "1"], {
    env: { ...process.env, QUIRE_ADMIN_TOKEN: admin },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve did not start:\n${log}`)), 30000);
    proc.stderr.on("data", (d) => {
      log += d;
      const m = /serving on (http:\/\/[0-9.:]+\/)/.exec(log);
      if (m) { clearTimeout(timer); ok(m[1]); }
    });
  });
  for (const role of ["viewer", "editor"]) {
    tokens[role] = (await api("POST", "/workspaces/default/tokens", admin, { role })).token;
  }
  tokens.other = (await api("POST", "/workspaces", admin, { name: "other" })).admin_token;
});
after(async () => {
  proc?.kill("SIGTERM");
  await new Promise((r) => proc.once("exit", r));
  rmSync(data, { recursive: true, force: true });
});

async function connect(token, ws = "default") {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(`${url}api/v1/workspaces/${ws}/mcp`), { requestInit: { headers } });
  const client = new Client({ name: "quire-mcp-http-test", version: "0.1.0" });
  await client.connect(transport);
  return client;
}

test("an editor lists every tool, runs code with progress, and cancels a run by aborting", async () => {
  const c = await connect(tokens.editor);
  const { tools } = await c.listTools();
  const names = tools.map((t) => t.name);
  assert.ok(names.includes("run_code") && names.includes("block_filter-tasks"), names.join());
  const progress = [];
  const r = await c.callTool({ name: "run_code", arguments: { source: "console.log('over http'); await new Promise((r) => setTimeout(r, 300)); export default 'ok';" } }, undefined, { onprogress: (p) => progress.push(p) });
  assert.equal(r.structuredContent.result, "ok");
  assert.ok(progress.some((p) => p.message === "over http"), JSON.stringify(progress));
  const ac = new AbortController();
  setTimeout(() => ac.abort("enough"), 300);
  await assert.rejects(c.callTool({ name: "run_code", arguments: { source: "for (;;) {}" } }, undefined, { signal: ac.signal }));
  const t0 = Date.now();
  let last;
  for (;;) {
    last = (await c.callTool({ name: "list_runs", arguments: { limit: 1 } })).structuredContent.runs[0];
    if (last.status !== "running" && last.status !== "queued") break;
    assert.ok(Date.now() - t0 < 10000, "the run never ended");
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal(last.error?.kind, "cancelled", JSON.stringify(last));
  await c.close();
});

test("a viewer may look but not run code", async () => {
  const c = await connect(tokens.viewer);
  const names = (await c.listTools()).tools.map((t) => t.name);
  assert.deepEqual(names, ["list_blocks", "list_documents", "list_runs", "read_run"]);
  await assert.rejects(c.callTool({ name: "run_code", arguments: { source: "1" } }), /viewer/);
  await assert.rejects(c.callTool({ name: "block_filter-tasks", arguments: {} }), /viewer/);
  const blocks = await c.callTool({ name: "list_blocks", arguments: {} });
  assert.ok(blocks.structuredContent.blocks.length > 0);
  await c.close();
});

test("another workspace's token, no token, and a browser Origin are refused", async () => {
  await assert.rejects(connect(tokens.other), /not_found/);
  await assert.rejects(connect(null), /unauthorized|token/i);
  // Its own workspace works for it.
  const mine = await connect(tokens.other, "other");
  assert.ok((await mine.listTools()).tools.length >= 5);
  await mine.close();
  const res = await fetch(`${url}api/v1/workspaces/default/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${tokens.editor}`, origin: "http://evil.example",
      "content-type": "application/json", accept: "application/json, text/event-stream",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } } }),
  });
  assert.equal(res.status, 403);
});

test("agent grants: admins set them; agent writes are only ever staged in a dry-run a person applies", async () => {
  const put = (token, grants) => fetch(`${url}api/v1/workspaces/default/agent-grants`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ grants }),
  });
  // Secrets and the network are never an agent's; an editor may not set grants.
  for (const g of ["secret:DEMO_TOKEN", "net:example.com", "nonsense"]) {
    const r = await put(admin, [g]);
    assert.equal(r.status, 400, g);
  }
  // Too many, and a body of the wrong shape.
  assert.equal((await put(admin, Array.from({ length: 65 }, (_, i) => `db:read:c${i}`))).status, 400);
  const malformed = await fetch(`${url}api/v1/workspaces/default/agent-grants`, {
    method: "PUT",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ grants: "db:read:tasks" }),
  });
  assert.equal(malformed.status, 400);
  assert.equal((await put(tokens.editor, ["db:read:tasks"])).status, 403);
  assert.equal((await put(tokens.other, ["db:read:tasks"])).status, 404);
  assert.equal((await put(admin, ["db:read:tasks", "db:write:tasks"])).status, 200);
  const c = await connect(tokens.editor);
  const count = async () => (await api("GET", "/workspaces/default/db/tasks/rows?limit=500", admin)).rows.length;
  const rowsBefore = await count();
  const read = await c.callTool({ name: "run_code", arguments: { source: "import { db } from 'quire'; export default (await db.query('tasks', { limit: 3 })).length;" } });
  assert.equal(read.isError, false, JSON.stringify(read.structuredContent));
  assert.equal(read.structuredContent.result, 3);
  // A write is staged (a dry-run by default): its own reads see it, nothing is written.
  const insert = "import { db } from 'quire'; await db.insert('tasks', { id: 'agent-1', title: 'x' }); export default (await db.query('tasks', { where: { id: 'agent-1' } })).length;";
  const write = await c.callTool({ name: "run_code", arguments: { source: insert } });
  assert.equal(write.isError, false, JSON.stringify(write.structuredContent));
  assert.equal(write.structuredContent.result, 1);
  const diff = write.structuredContent.diff;
  assert.deepEqual(diff.changes.map((ch) => [ch.kind, ch.id, ch.op]), [["row", "agent-1", "insert"]]);
  assert.equal(await count(), rowsBefore);
  // With mode "run" the agent has the read grants only, whatever it asks.
  const direct = await c.callTool({ name: "run_code", arguments: { source: insert, mode: "run" } });
  assert.equal(direct.isError, true);
  assert.equal(direct.structuredContent.error.kind, "capability_denied");
  const kv = await c.callTool({ name: "run_code", arguments: { source: "import { kv } from 'quire'; await kv.get('a');" } });
  assert.equal(kv.structuredContent.error.kind, "capability_denied");
  // A viewer may not apply the agent's diff; an editor does, once.
  const applyAs = (token) => fetch(`${url}api/v1/workspaces/default/runs/${write.structuredContent.run}/apply`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ digest: diff.digest }),
  });
  assert.equal((await applyAs(tokens.viewer)).status, 403);
  assert.equal((await applyAs(tokens.editor)).status, 200);
  assert.equal(await count(), rowsBefore + 1);
  assert.equal((await applyAs(tokens.editor)).status, 409);
  assert.equal((await put(admin, [])).status, 200);
  const none = await c.callTool({ name: "run_code", arguments: { source: "import { db } from 'quire'; await db.query('tasks');" } });
  assert.equal(none.structuredContent.error.kind, "capability_denied");
  await c.close();
});

test("a session belongs to the token that opened it", async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`${url}api/v1/workspaces/default/mcp`), { requestInit: { headers: { authorization: `Bearer ${tokens.editor}` } } });
  const c = new Client({ name: "owner", version: "1" });
  await c.connect(transport);
  const sid = transport.sessionId;
  assert.ok(sid, "a session id");
  const post = (token, ws = "default") => fetch(`${url}api/v1/workspaces/${ws}/mcp`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25",
      "content-type": "application/json", accept: "application/json, text/event-stream",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 99, method: "tools/list", params: {} }),
  });
  assert.equal((await post(tokens.viewer)).status, 404);
  assert.equal((await post(tokens.other, "other")).status, 404);
  assert.equal((await post(admin)).status, 404);
  // Its owner goes on.
  assert.ok((await c.listTools()).tools.length > 5);
  await c.close();
});

test("declared inputs that are no object schema are left out, and a refused run keeps the output schema", async () => {
  for (const [id, input] of [["odd-string", "{ type: 'string' }"], ["odd-empty", "{}"], ["odd-props", "{ type: 'object', properties: { a: 1 } }"]]) {
    await api("POST", "/workspaces/default/blocks", admin, { id, source: `export const input = ${input};\nexport default 1;`, lang: "js" });
  }
  const c = await connect(tokens.editor);
  const names = (await c.listTools()).tools.map((t) => t.name);
  assert.ok(!names.some((n) => n.startsWith("block_odd")), names.join());
  // An input nested past the depth limit is refused before it runs: a
  // tool error the SDK accepts (it checks structuredContent against the
  // output schema).
  let deep = 1;
  for (let i = 0; i < 80; i++) deep = [deep];
  const r = await c.callTool({ name: "run_code", arguments: { source: "export default 1;", input: deep } });
  assert.equal(r.isError, true);
  assert.equal(r.structuredContent.error.kind, "refused");
  assert.match(r.structuredContent.error.message, /deep|depth|nested/i);
  await c.close();
});
