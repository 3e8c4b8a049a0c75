// MCP round trips beside a plain HTTP run (issue 21's numbers; a
// benchmark, not a test): a hello-world `run_code` over stdio
// (`quire mcp`) and over HTTP (`quire serve`'s …/mcp), and the same block
// run through a webhook with `?wait=true` (one plain HTTP request that
// answers the result). Prints one JSON object.
//
//   QUIRE_BIN=target/release/quire node tests/mcp/bench.mjs [runs]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { binary } from "./quire.mjs";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const bin = binary();
const N = Number(process.argv[2] || 200);
const WARM = 20;
const SOURCE = "export default 'hello';";

function stats(ms) {
  ms.sort((a, b) => a - b);
  const q = (p) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))];
  return { p50_ms: q(0.5), p99_ms: q(0.99), runs: ms.length };
}

async function timed(n, f) {
  for (let i = 0; i < WARM; i++) await f();
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    out.push(performance.now() - t);
  }
  return stats(out);
}

const dirs = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "quire-mcp-bench-"));
  dirs.push(d);
  return d;
};

// stdio
const stdio = new Client({ name: "bench", version: "1" });
await stdio.connect(new StdioClientTransport({ command: bin, args: ["mcp", "--data", tmp()], stderr: "ignore" }));
const call = (c) => async () => {
  const r = await c.callTool({ name: "run_code", arguments: { source: SOURCE } });
  if (r.structuredContent?.result !== "hello") throw new Error(JSON.stringify(r));
};
const out = { stdio: await timed(N, call(stdio)) };
await stdio.close();

// HTTP: one server for the MCP endpoint and the webhook.
const admin = "bench-admin-token";
const proc = spawn(bin, ["serve", "--addr", "127.0.0.1:0", "--data", tmp(), "--token-rate-per-sec", "100000"], {
  env: { ...process.env, QUIRE_ADMIN_TOKEN: admin },
  stdio: ["ignore", "ignore", "pipe"],
});
let log = "";
const url = await new Promise((ok, fail) => {
  const timer = setTimeout(() => fail(new Error(log)), 30000);
  proc.stderr.on("data", (d) => {
    log += d;
    const m = /serving on (http:\/\/[0-9.:]+\/)/.exec(log);
    if (m) { clearTimeout(timer); ok(m[1]); }
  });
});
const api = async (method, path, body) => {
  const r = await fetch(`${url}api/v1${path}`, { method, headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  return r.json();
};
// The quota's runs per minute would stop a fast loop: lift it.
await api("PUT", "/workspaces/default/quota", { runs_per_minute: 100000 });
const http = new Client({ name: "bench", version: "1" });
await http.connect(new StreamableHTTPClientTransport(new URL(`${url}api/v1/workspaces/default/mcp`), { requestInit: { headers: { authorization: `Bearer ${admin}` } } }));
out.http = await timed(N, call(http));
await http.close();
await api("POST", "/workspaces/default/blocks", { id: "bench-hello", source: SOURCE, lang: "js" });
const hook = await api("POST", "/workspaces/default/blocks/bench-hello/webhooks", {});
out.plain_http_webhook_wait = await timed(N, async () => {
  const r = await fetch(`${url.replace(/\/$/, "")}${hook.path}?wait=true`, { method: "POST" });
  const v = await r.json();
  if (v.result !== "hello") throw new Error(JSON.stringify(v));
});
proc.kill("SIGTERM");
await new Promise((r) => proc.once("exit", r));
for (const d of dirs) rmSync(d, { recursive: true, force: true });
console.log(JSON.stringify({ mcp_round_trip: out, sdk: "@modelcontextprotocol/sdk 1.32.2" }, null, 1));
