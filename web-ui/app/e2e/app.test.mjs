// End-to-end tests of the browser app in headless Debian Chromium against
// a real `quire serve` (runner isolation, sled store, samples loaded).
// They also write the screenshots in docs/screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, launch, signIn, shot } from "./harness.mjs";

let srv, browser;
before(async () => {
  srv = await startServer();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

async function api(method, path, body) {
  const res = await fetch(`${srv.url}api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${srv.token}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// A fresh document holding one code block with `source`.
async function docWith(title, source, lang = "js", grants = []) {
  const b = await api("POST", "/workspaces/default/blocks", { source, lang, grants, name: title });
  const d = await api("POST", "/workspaces/default/docs", {
    title, blocks: [{ type: "text", text: `Test: ${title}` }, { type: "code", lang, block: b.id, source: "" }],
  });
  return { doc: d.id, block: b.id };
}

async function page(viewport = { width: 1280, height: 800 }) {
  const p = await browser.newPage({ viewport });
  p.on("pageerror", (e) => console.error("page error:", e.message));
  await signIn(p, srv);
  return p;
}

async function open(p, doc) {
  await p.goto(`${srv.url}#/w/default/d/${encodeURIComponent(doc)}`);
  // Until this document is shown, the page may still hold the one open
  // before (sign-in opens the first document).
  await p.locator(`.cells[data-doc="${doc}"] .cell.code`).first().waitFor();
}

// Replace the source of the code block in `cell` (as a user would paste).
async function setSource(p, cell, text) {
  await cell.locator(".cm-content").click();
  await p.keyboard.press("Control+A");
  await p.keyboard.press("Delete");
  await p.keyboard.insertText(text);
}

test("signs in and shows a sample document as a notebook, in order", async () => {
  const p = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await p.goto(srv.url);
  await p.getByLabel("Access token").fill("qt_wrong");
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.getByRole("alert").filter({ hasText: "not valid" }).waitFor();
  await p.getByLabel("Access token").fill(srv.token);
  await shot(p, "signin");
  await p.keyboard.press("Enter");
  await p.getByRole("link", { name: "Q4 roadmap" }).click();
  await p.locator(".cell.code").nth(1).waitFor();
  const kinds = await p.locator(".cells > .cell").evaluateAll((els) => els.map((e) => e.classList.contains("code") ? `code:${e.dataset.block}` : "text"));
  assert.deepEqual(kinds, ["text", "code:tasks-summary", "code:tasks-chart", "text", "code:filter-tasks"]);
  await assert.doesNotReject(p.getByRole("heading", { name: "Q4 roadmap" }).first().waitFor());
  assert.match(await p.locator(".cell.code").first().locator(".grants").innerText(), /db:read:tasks/);
  await p.locator(".cell.code").first().getByRole("button", { name: "Run", exact: true }).click();
  await p.locator(".cell.code").first().locator(".finished-ok").waitFor();
  assert.match(await p.locator(".cell.code").first().locator(".output").innerText(), /Result/);
  await shot(p, "document");
  await p.close();
});

test("an editor switches a block to V8 and its runs use V8", async () => {
  // V8 has Intl; QuickJS does not.
  const { doc, block } = await docWith("Engines", "export default typeof Intl;");
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.locator(".cm-content").click();
  await p.keyboard.press("Control+Enter");
  await cell.locator(".finished-ok").waitFor();
  assert.match(await cell.locator(".output .result").innerText(), /undefined/);
  await cell.locator("select.engine").selectOption("v8");
  await cell.locator(".save-status", { hasText: "Engine: V8" }).waitFor();
  assert.equal((await api("GET", `/workspaces/default/blocks/${block}`)).engine, "v8");
  await cell.locator("button.primary", { hasText: "Run" }).click();
  await cell.locator(".output .result", { hasText: "object" }).waitFor();
  await cell.locator(".finished-ok").waitFor();
  // The workspace default (admins, on the quota page); blocks that never
  // chose follow it.
  await p.getByRole("link", { name: "Quota and usage" }).click();
  await p.locator("#ws-engine").selectOption("v8");
  await p.locator("[role=status]", { hasText: "Default engine: V8." }).waitFor();
  assert.equal((await api("GET", "/workspaces/default")).default_engine, "v8");
  await api("PUT", "/workspaces/default/settings", { default_engine: "quickjs" });
  await p.close();
});

test("edits a block, runs it with Ctrl+Enter, and sees output before the run ends", async () => {
  const { doc, block } = await docWith("Live output", "export default 1;");
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await setSource(p, cell, 'console.log("first");\nawait new Promise((r) => setTimeout(r, 2000));\nconsole.log("second");\nexport default { done: true };');
  await cell.locator(".save-status.saved").waitFor();
  const stored = await api("GET", `/workspaces/default/blocks/${block}`);
  assert.match(stored.source, /console.log\("second"\)/);
  await cell.locator(".cm-content").click();
  await p.keyboard.press("Control+Enter");
  await cell.locator(".output .log", { hasText: "first" }).waitFor();
  // The run is still going: "second" has not been logged yet.
  assert.equal(await cell.locator(".run-status").innerText(), "Running…");
  assert.equal(await cell.locator(".output .log", { hasText: "second" }).count(), 0);
  await shot(p, "run-live");
  await cell.locator(".output .log", { hasText: "second" }).waitFor();
  await cell.locator(".finished-ok").waitFor();
  await p.close();
});

test("Shift+Enter runs a block and moves to the next one", async () => {
  const a = await api("POST", "/workspaces/default/blocks", { source: 'console.log("first ran");', lang: "js", name: "first" });
  const b = await api("POST", "/workspaces/default/blocks", { source: 'console.log("second ran");', lang: "js", name: "second" });
  const d = await api("POST", "/workspaces/default/docs", {
    title: "Shift Enter", blocks: [{ type: "code", lang: "js", block: a.id, source: "" }, { type: "code", lang: "js", block: b.id, source: "" }],
  });
  const p = await page();
  await open(p, d.id);
  const [first, second] = [p.locator(".cell.code").nth(0), p.locator(".cell.code").nth(1)];
  await first.locator(".cm-content").click();
  await p.keyboard.press("Shift+Enter");
  await first.locator(".output .log", { hasText: "first ran" }).waitFor();
  // The focus is in the next block's editor: Shift+Enter again runs it.
  assert.ok(await second.locator(".cm-editor").evaluate((el) => el.classList.contains("cm-focused")));
  await p.keyboard.press("Shift+Enter");
  await second.locator(".output .log", { hasText: "second ran" }).waitFor();
  // The source did not get a new line from either key press.
  assert.equal((await api("GET", `/workspaces/default/blocks/${a.id}`)).source, 'console.log("first ran");');
  await p.close();
});

test("Run all runs the blocks in order and stops at the first failure, saying so", async () => {
  const mk = (name, source) => api("POST", "/workspaces/default/blocks", { source, lang: "js", name });
  const a = await mk("load", 'await new Promise((r) => setTimeout(r, 200)); console.log("one");');
  const b = await mk("check", 'console.log("two"); throw new Error("bad row");');
  const c = await mk("report", 'console.log("three");');
  const d = await api("POST", "/workspaces/default/docs", {
    title: "Run all", blocks: [a, b, c].map((x) => ({ type: "code", lang: "js", block: x.id, source: "" })),
  });
  const p = await page();
  await open(p, d.id);
  await p.getByRole("button", { name: "Run all" }).click();
  const status = p.locator(".run-all-status");
  await status.filter({ hasText: "Stopped at" }).waitFor();
  assert.equal(await status.innerText(), "Stopped at “check”: it failed (exception); 1 later block did not run.");
  const cells = p.locator(".cell.code");
  await cells.nth(0).locator(".output .log", { hasText: "one" }).waitFor();
  await cells.nth(1).locator(".output .error", { hasText: "bad row" }).waitFor();
  assert.equal(await cells.nth(2).locator(".output .log").count(), 0);
  // Fixed, everything runs.
  await api("PUT", `/workspaces/default/blocks/${b.id}`, { source: 'console.log("two");', base_updated_ms: (await api("GET", `/workspaces/default/blocks/${b.id}`)).updated_ms });
  await p.reload();
  await p.locator(".cell.code").first().waitFor();
  await p.getByRole("button", { name: "Run all" }).click();
  await status.filter({ hasText: "Ran all 3 blocks." }).waitFor();
  await cells.nth(2).locator(".output .log", { hasText: "three" }).waitFor();
  await p.close();
});

test("a run clicked while the live connection is down waits for the server, then runs", async () => {
  const { doc } = await docWith("Offline", 'console.log("back");\nexport default 5;');
  const p = await page();
  // The live connection is refused until `down` is cleared; then it goes
  // through to the real server.
  let down = false;
  await p.routeWebSocket(/\/live/, (ws) => {
    if (down) ws.close();
    else ws.connectToServer();
  });
  await open(p, doc);
  down = true;
  // Drop the open connection: the app reconnects into the refusal.
  await p.evaluate(() => new Promise((r) => setTimeout(r, 50)));
  await p.reload();
  await p.locator(`.cells[data-doc="${doc}"] .cell.code`).first().waitFor();
  await p.getByText("Live connection lost; reconnecting…").waitFor();
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.getByRole("status").filter({ hasText: "Waiting for the server" }).waitFor();
  down = false;
  await cell.locator(".finished-ok").waitFor({ timeout: 15000 });
  assert.match(await cell.locator(".output").innerText(), /back/);
  await p.close();
});

test("inputs: a form from the block's declared schema, a JSON box otherwise, checked before the run; writes are shown before Run", async () => {
  const schema = 'export const input = { type: "object", required: ["project"], properties: { project: { type: "string", enum: ["atlas", "beacon"], description: "Which project" }, limit: { type: "integer", minimum: 1, default: 3 }, verbose: { type: "boolean" } } };';
  const { doc } = await docWith("Inputs", `${schema}\nexport default (ctx) => ctx.input;`);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  const panel = cell.locator(".input-panel");
  assert.equal(await panel.getAttribute("open"), "", "a required input opens the panel");
  await cell.getByLabel("project (required)").selectOption("beacon");
  const limit = cell.getByLabel("limit");
  assert.equal(await limit.inputValue(), "3", "the schema's default");
  await limit.fill("2.5");
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.getByRole("status").filter({ hasText: '"limit" must be a whole number' }).waitFor();
  assert.equal(await limit.getAttribute("aria-invalid"), "true");
  assert.equal(await cell.locator(".finished").count(), 0, "nothing ran");
  await limit.fill("2");
  await cell.getByLabel("verbose").check();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  const shown = await cell.locator(".result").innerText();
  for (const part of ["beacon", "2", "true"]) assert.ok(shown.includes(part), shown);
  await panel.scrollIntoViewIfNeeded();
  await shot(p, "input-form");
  // No schema: a JSON box.
  const plain = await docWith("Input JSON", "export default (ctx) => ctx.input?.n ?? 'none';");
  await open(p, plain.doc);
  const c2 = p.locator(".cell.code").first();
  await c2.locator(".input-panel summary").click();
  const box = c2.getByLabel("Input as JSON");
  await box.fill("{bad");
  await c2.getByRole("button", { name: "Run", exact: true }).click();
  await c2.getByRole("status").filter({ hasText: "not valid JSON" }).waitFor();
  await box.fill('{"n": 4}');
  await c2.getByRole("button", { name: "Run", exact: true }).click();
  await c2.locator(".finished-ok").waitFor();
  assert.match(await c2.locator(".result").innerText(), /4/);
  // A block that writes says so beside Run.
  const writer = await docWith("Writer", "export default 1;", "js", ["db:write:tasks", "db:read:tasks"]);
  await open(p, writer.doc);
  assert.equal(await p.locator(".cell.code").first().locator(".writes").innerText(), "This block writes rows of tasks");
  await p.close();
});

test("cancels a long run", async () => {
  const { doc } = await docWith("Long run", 'console.log("working");\nawait new Promise((r) => setTimeout(r, 4500));\nconsole.log("never");');
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".output .log", { hasText: "working" }).waitFor();
  await cell.getByRole("button", { name: "Cancel the run" }).click();
  // Shown as cancelled, not as a failure.
  await cell.locator(".output .cancelled").waitFor();
  await cell.locator(".output .finished-cancelled", { hasText: /^Cancelled after/ }).waitFor();
  assert.equal(await cell.locator(".output .error").count(), 0);
  assert.equal(await cell.locator(".run-status").innerText(), "Cancelled");
  assert.equal(await cell.locator(".output .log", { hasText: "never" }).count(), 0);
  assert.equal(await cell.getByRole("button", { name: "Run", exact: true }).isEnabled(), true);
  await p.close();
});

test("shows a capability error at its line in the editor", async () => {
  const src = '// This block reads kv but has no kv:read grant.\nimport { kv } from "quire";\n\nconst visits = await kv.get("visits");\nexport default visits;';
  const { doc } = await docWith("Denied", src);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  const err = cell.locator(".output .error");
  await err.waitFor();
  const text = await err.innerText();
  assert.match(text, /capability_denied/);
  assert.match(text, /kv:read/);
  assert.match(text, /line 4/);
  // The editor marks line 4: an error range and a gutter marker on it.
  await cell.locator(".cm-lintRange-error").waitFor();
  const marked = await cell.locator(".cm-lintRange-error").evaluate((el) => el.closest(".cm-line")?.textContent);
  assert.match(marked, /kv\.get\("visits"\)/);
  await cell.locator(".cm-lint-marker-error").waitFor();
  // An admin grants what it needs in one click, the words first.
  const offer = cell.locator(".grant-offer");
  assert.match(await offer.innerText(), /It needs kv:read: Read this workspace's key-value store/);
  // Frames in quire's own module have no line of the block to jump to.
  assert.deepEqual(await cell.locator(".output .error .stack li button").allInnerTexts(), ["line 4:25"]);
  await shot(p, "capability-error");
  await offer.getByRole("button", { name: "Grant kv:read" }).click();
  await offer.getByText("Granted kv:read. Run the block again.").waitFor();
  await cell.locator(".chip", { hasText: "kv:read" }).waitFor();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  // An editor is told whom to ask.
  const { token } = await api("POST", "/workspaces/default/tokens", { role: "editor", label: "e2e-ask" });
  const denied = await docWith("Denied for an editor", src);
  const q = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await q.goto(srv.url);
  await q.getByLabel("Access token").fill(token);
  await q.getByRole("button", { name: "Sign in" }).click();
  await open(q, denied.doc);
  const c2 = q.locator(".cell.code").first();
  await c2.getByRole("button", { name: "Run", exact: true }).click();
  await c2.locator(".grant-offer").waitFor();
  assert.match(await c2.locator(".grant-offer").innerText(), /Ask an admin of this workspace to grant it/);
  assert.equal(await c2.locator(".grant-offer button").count(), 0);
  await q.close();
  await p.close();
});

test("an error's stack frames jump to their lines; a CPU limit says where the block was", async () => {
  const { doc } = await docWith("Stack", 'function inner() {\n  throw new TypeError("bad");\n}\nfunction outer() { inner(); }\nouter();');
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-error").waitFor();
  const frames = cell.locator(".output .error .stack li");
  assert.deepEqual((await frames.allInnerTexts()).map((t) => t.replace(/\s+/g, " ").trim()), ["inner line 2:13", "outer line 4:20", "(top level) line 5:1"]);
  await cell.getByRole("button", { name: "Show line 4 in the editor" }).click();
  assert.match(await cell.locator(".cm-activeLine").innerText(), /function outer/);
  // A CPU limit: the line it was running.
  const spin = await docWith("Spin", "let i = 0;\nfunction spin() {\n  for (;;) i++;\n}\nspin();");
  await open(p, spin.doc);
  const c2 = p.locator(".cell.code").first();
  await c2.getByRole("button", { name: "Run", exact: true }).click();
  await c2.locator(".finished-error").waitFor({ timeout: 15000 });
  assert.match(await c2.locator(".output .error").innerText(), /cpu_limit/);
  assert.match(await c2.locator(".stopped-at").innerText(), /It was running spin when it was stopped: line 3/);
  await c2.locator(".stopped-at button").click();
  assert.match(await c2.locator(".cm-activeLine").innerText(), /for \(;;\) i\+\+/);
  await p.close();
});

test("the editor completes the host API from the quire module's own signatures", async () => {
  const { doc } = await docWith("Completion", 'import { db } from "quire";\n');
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.locator(".cm-content").click();
  await p.keyboard.press("Control+End");
  await p.keyboard.type("const rows = await db.");
  const list = p.locator(".cm-tooltip-autocomplete");
  await list.waitFor();
  const labels = await list.locator(".cm-completionLabel").allInnerTexts();
  assert.deepEqual([...labels].sort(), ["delete", "insert", "query", "update"]);
  assert.match(await list.innerText(), /\(collection, options\) → Promise/);
  await p.keyboard.type("qu");
  await list.locator("[aria-selected] .cm-completionLabel", { hasText: "query" }).waitFor();
  await p.keyboard.press("Enter");
  assert.match(await cell.locator(".cm-content").innerText(), /await db\.query\(/);
  await p.close();
});

test("two tabs editing the same block: the second save is a conflict and keeps its text", async () => {
  const { doc, block } = await docWith("Conflict", "export default 'original';");
  const a = await page();
  const b = await page();
  await open(a, doc);
  await open(b, doc);
  const ca = a.locator(".cell.code").first();
  const cb = b.locator(".cell.code").first();
  await setSource(a, ca, "export default 'from tab A';");
  await ca.locator(".save-status.saved").waitFor();
  await setSource(b, cb, "export default 'from tab B';");
  await cb.locator(".save-status.conflict").waitFor();
  assert.match(await cb.locator(".cm-content").innerText(), /from tab B/);
  assert.equal((await api("GET", `/workspaces/default/blocks/${block}`)).source, "export default 'from tab A';");
  // Keeping B's version is an explicit choice.
  await cb.getByRole("button", { name: "Keep mine" }).click();
  await cb.locator(".save-status.saved").waitFor();
  assert.equal((await api("GET", `/workspaces/default/blocks/${block}`)).source, "export default 'from tab B';");
  await a.close();
  await b.close();
});

test("the live connection carries the token as a subprotocol, never in its URL", async () => {
  const p = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const urls = [];
  p.on("websocket", (ws) => urls.push(ws.url()));
  await signIn(p, srv);
  const { doc } = await docWith("Live token", 'console.log("live");');
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".output .log", { hasText: "live" }).waitFor();
  await cell.locator(".finished-ok").waitFor();
  assert.ok(urls.length >= 1, "a live connection was made");
  for (const u of urls) assert.ok(!u.includes("token") && !u.includes(srv.token), u);
  await p.close();
});

test("the Integrations sample calls this server on whatever port it listens on", async () => {
  // The harness serves on a random port: the sample's grant, its secret's
  // bound hosts and its URL were pointed at it when the samples loaded.
  const p = await page();
  await open(p, "integrations");
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  const port = new URL(srv.url).port;
  await cell.locator(".output .log", { hasText: `200 OK from http://127.0.0.1:${port}/healthz` }).waitFor();
  await p.close();
});

test("arrays of records render as a sortable table, 100 rows a page; other values stay a tree", async () => {
  const src = [
    'const rows = Array.from({ length: 250 }, (_, i) => ({ id: i + 1, name: `task ${String(i + 1).padStart(3, "0")}`, points: (i * 7) % 13, tags: i === 0 ? ["a"] : undefined }));',
    'display(rows);',
    'display([1, 2, 3]);',
    'export default [{ k: "b", v: 2 }, { k: "a", v: 1 }];',
  ].join("\n");
  const { doc } = await docWith("Records", src);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  const table = cell.locator(".display .records").first();
  assert.deepEqual(await table.locator("thead th").allInnerTexts(), ["id", "name", "points", "tags"]);
  assert.equal(await table.locator("tbody tr").count(), 100);
  assert.equal(await table.locator(".table-status").innerText(), "Rows 1–100 of 250");
  // A nested value is the JSON tree inside its cell; a missing one is empty.
  assert.equal(await table.locator("tbody tr").first().locator("details.json").count(), 1);
  await table.getByRole("button", { name: "Next" }).click();
  assert.equal(await table.locator(".table-status").innerText(), "Rows 101–200 of 250");
  assert.equal(await table.locator("tbody tr").first().locator("td").first().innerText(), "101");
  // Sorting by a column, with its state for screen readers; back to page 1.
  const byPoints = table.getByRole("button", { name: "points" });
  await byPoints.click();
  assert.equal(await table.locator("thead th").nth(2).getAttribute("aria-sort"), "ascending");
  assert.equal(await table.locator("tbody tr").first().locator("td").nth(2).innerText(), "0");
  await byPoints.click();
  assert.equal(await table.locator("thead th").nth(2).getAttribute("aria-sort"), "descending");
  assert.equal(await table.locator("tbody tr").first().locator("td").nth(2).innerText(), "12");
  assert.equal(await table.locator(".table-status").innerText(), "Rows 1–100 of 250");
  // Keyboard: a header is a button reached with Tab and pressed with Enter.
  await table.getByRole("button", { name: "name" }).focus();
  await p.keyboard.press("Enter");
  assert.equal(await table.locator("tbody tr").first().locator("td").nth(1).innerText(), "task 001");
  // An array of plain values stays a tree; the result's records are a table.
  await cell.locator(".display details.json").first().waitFor();
  assert.deepEqual(await cell.locator(".result .records tbody td").allInnerTexts(), ["b", "2", "a", "1"]);
  assert.equal(await cell.locator(".result .records .table-status").innerText(), "2 rows");
  await shot(p, "records-table");
  await p.close();
});

test("renders display outputs safely and lists run history", async () => {
  const src = [
    'display({ tasks: 3, by: { open: 2, done: 1 } });',
    'display("name,points\\natlas,5\\n\\"beacon, search\\",8", { mime: "text/csv" });',
    'display("<b id=x>bold</b><script>parent.document.title = \'pwned\'</script><div style=\'height:600px\'>tall</div><img src=x onerror=\'parent.document.title = 1\'>", { mime: "text/html" });',
    'export default { status: "ok", m: new Map([["a", 1]]), e: new RangeError("too far") };',
  ].join("\n");
  const { doc } = await docWith("Displays", src);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  await cell.locator(".output details.json").first().waitFor();
  assert.deepEqual(await cell.locator(".output table td").allInnerTexts(), ["atlas", "5", "beacon, search", "8"]);
  const frame = cell.locator("iframe.html-output");
  // No scripts in it (no allow-scripts); it grows to fit its 600 px of content.
  assert.equal(await frame.getAttribute("sandbox"), "allow-same-origin");
  assert.equal(await p.frameLocator("iframe.html-output").locator("#x").innerText(), "bold");
  await p.waitForFunction(() => document.querySelector("iframe.html-output").getBoundingClientRect().height > 600);
  assert.notEqual(await p.title(), "pwned");
  // A Map and an Error in the result read as a console shows them.
  assert.equal(await cell.locator(".result li", { hasText: "m:" }).innerText(), 'm: "Map(1) {"a" => 1}"');
  assert.match(await cell.locator(".result pre.json-text").innerText(), /^RangeError: too far\n\s+at /);
  await cell.getByRole("button", { name: "History" }).click();
  const row = cell.locator(".history tbody tr").first();
  await row.waitFor();
  const cells = await row.locator("td").allInnerTexts();
  assert.match(cells[1], /^ok/);
  assert.equal(cells[2], "manually");
  assert.match(cells[3], /ms$/);
  assert.match(cells[4], /ms$/);
  assert.equal(await p.title(), "Displays · quire");
  await shot(p, "displays-history");
  await p.close();
});

test("images and Vega-Lite charts render; a chart neither loads URLs nor reaches the app", async () => {
  // A 1x1 PNG, as base64 split over lines (display() makes it canonical).
  const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhf\\nDwAChwGA60e6kgAAAABJRU5ErkJggg==";
  const spec = (extra) => JSON.stringify({ data: { values: [{ a: "x", b: 3 }, { a: "y", b: 5 }] }, mark: "bar", encoding: { x: { field: "a", type: "nominal" }, y: { field: "b", type: "quantitative" } }, ...extra });
  const vl = '{ mime: "application/vnd.vegalite.v5+json" }';
  const src = [
    `display("<svg xmlns='http://www.w3.org/2000/svg' width='40' height='20'><rect width='40' height='20' fill='teal'/><script>parent.document.title = 'pwned'</script></svg>", { mime: "image/svg+xml" });`,
    `display("${png}", { mime: "image/png" });`,
    `display(${spec({})}, ${vl});`,
    `display(${spec({ data: { url: `${srv.url}api/v1/workspaces` } })}, ${vl});`,
    `display(${spec({ transform: [{ calculate: "parent.document.title = 'pwned'", as: "x" }] })}, ${vl});`,
    'export default "drawn";',
  ].join("\n");
  const { doc } = await docWith("Charts", src);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  const imgs = cell.locator("img.image-output");
  assert.equal(await imgs.count(), 2);
  await p.waitForFunction(() => [...document.querySelectorAll("img.image-output")].every((i) => i.complete && i.naturalWidth > 0));
  assert.deepEqual(await imgs.evaluateAll((xs) => xs.map((i) => i.alt)), ["SVG image output of the block", "PNG image output of the block"]);
  const frames = cell.locator("iframe.chart-output");
  assert.equal(await frames.count(), 3);
  for (const sandbox of await frames.evaluateAll((fs) => fs.map((f) => f.getAttribute("sandbox")))) assert.equal(sandbox, "allow-scripts");
  // The chart is drawn, as SVG, two bars.
  await cell.frameLocator("iframe.chart-output >> nth=0").locator("svg .mark-rect path").first().waitFor();
  assert.equal(await cell.frameLocator("iframe.chart-output >> nth=0").locator("svg .mark-rect path").count(), 2);
  // A spec that names a URL is refused, in words, and nothing loads.
  await cell.locator(".chart-error").filter({ hasText: "cannot load data from a URL" }).waitFor();
  await p.waitForTimeout(300);
  assert.notEqual(await p.title(), "pwned");
  await cell.locator("img.image-output").first().scrollIntoViewIfNeeded();
  await shot(p, "chart-and-images");
  await p.close();
});

test("outputs stay: a reopened document shows each block's last run, when and how it ran", async () => {
  const { doc, block } = await docWith("Outputs stay", 'console.log("from history");\nexport default { kept: 42 };');
  const { run } = await api("POST", `/workspaces/default/blocks/${block}/runs`, { input: null });
  for (let i = 0; i < 300; i++) {
    const r = await api("GET", `/workspaces/default/runs/${run}`);
    if (r.status === "ok") break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const p = await page();
  for (const visit of ["open", "reload"]) {
    if (visit === "open") await open(p, doc);
    else {
      await p.reload();
      await p.locator(".cell.code").first().waitFor();
    }
    const cell = p.locator(".cell.code").first();
    const head = cell.locator(".output .last-run");
    await head.waitFor();
    assert.match(await head.innerText(), /^Last run: ran (just now|\d+ min ago) · by API · [\d.]+ ms · View run$/);
    await cell.locator(".output .log", { hasText: "from history" }).waitFor();
    await cell.locator(".output .result", { hasText: "42" }).waitFor();
    await cell.locator(".output .finished-ok").waitFor();
    if (visit === "open") await shot(p, "outputs-stay");
  }
  // Its link opens the run in the block's history.
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Show this run in the history" }).click();
  await cell.locator(".history tbody tr").first().waitFor();
  await cell.locator(".output .log", { hasText: "from history" }).waitFor();
  // A new run replaces it.
  await setSource(p, cell, 'console.log("fresh");');
  await cell.locator(".save-status.saved").waitFor();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".output .log", { hasText: "fresh" }).waitFor();
  assert.equal(await cell.locator(".output .last-run").count(), 0);
  await p.close();
});

test("long outputs collapse behind 'Show all', the page scrolls (not the output), and Clear empties it", async () => {
  const src = 'for (let i = 0; i < 30; i++) {\n  for (let j = 0; j < 10; j++) console.log("line", i * 10 + j);\n  await new Promise((r) => setTimeout(r, 10));\n}\nexport default { lines: 300 };';
  const { doc } = await docWith("Long output", src);
  const p = await page({ width: 1280, height: 700 });
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  // No fixed-height scroll areas inside the cell.
  const styles = await cell.evaluate((el) => [".output", ".cm-editor"].map((s) => {
    const c = getComputedStyle(el.querySelector(s));
    return [c.maxHeight, c.overflowY];
  }));
  assert.deepEqual(styles, [["none", "visible"], ["none", "visible"]]);
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  // The first 100 lines show; the rest wait behind the button; the result
  // and the timing stay visible.
  const more = cell.getByRole("button", { name: "Show all 300 lines (200 more)" });
  await more.waitFor();
  assert.equal(await cell.locator(".output .log:visible").count(), 100);
  assert.ok(await cell.locator(".output .result").isVisible());
  // The output followed the run: its end is on screen.
  const box = await cell.locator(".output .finished").boundingBox();
  assert.ok(box && box.y + box.height <= 700 + 1, `the end of the output is at ${box?.y}`);
  await more.click();
  assert.equal(await cell.locator(".output .log:visible").count(), 300);
  await cell.getByRole("button", { name: "Clear the output of Long output" }).click();
  assert.equal(await cell.locator(".output .log").count(), 0);
  assert.ok(!(await cell.locator(".output").isVisible()), "an empty output takes no room");
  await p.close();
});

test("text blocks and text/markdown output render CommonMark, and raw HTML or script links never run", async () => {
  const text = [
    "# Plan", "", "- one *two* **three**", "- [docs](https://example.com/docs)", "", "1. first", "2. second", "",
    "> quoted", "", "| a | b |", "| - | - |", "| 1 | 2 |", "", "```js", "let x = 1;", "```", "",
    "<img src=x onerror=\"document.title='pwned'\"> [bad](javascript:document.title='pwned')",
  ].join("\n");
  const b = await api("POST", "/workspaces/default/blocks", { source: 'display("## Out\\n\\n* a\\n* b", { mime: "text/markdown" });', lang: "js", name: "md" });
  const d = await api("POST", "/workspaces/default/docs", {
    title: "Markdown", blocks: [{ type: "text", text }, { type: "code", lang: "js", block: b.id, source: "" }],
  });
  const p = await page();
  await open(p, d.id);
  const prose = p.locator(".cell.text .prose").first();
  assert.equal(await prose.locator("h2").innerText(), "Plan");
  assert.deepEqual(await prose.locator("ul > li").allInnerTexts(), ["one two three", "docs"]);
  assert.equal(await prose.locator("em").innerText(), "two");
  assert.equal(await prose.locator("ol > li").count(), 2);
  assert.equal(await prose.locator("blockquote").innerText(), "quoted");
  assert.deepEqual(await prose.locator("td").allInnerTexts(), ["1", "2"]);
  assert.equal((await prose.locator("pre code").innerText()).trim(), "let x = 1;");
  const link = prose.locator("a", { hasText: "docs" });
  assert.equal(await link.getAttribute("href"), "https://example.com/docs");
  assert.match(await link.getAttribute("rel"), /noopener/);
  // Raw HTML is shown as text; the javascript: link is not a link.
  assert.equal(await prose.locator("img").count(), 0);
  assert.match(await prose.innerText(), /<img src=x/);
  assert.equal(await prose.locator("a", { hasText: "bad" }).count(), 0);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  assert.equal(await cell.locator(".output .display h3").innerText(), "Out");
  assert.equal(await cell.locator(".output .display li").count(), 2);
  assert.notEqual(await p.title(), "pwned");
  await p.close();
});

test("adds, moves and deletes blocks; admins edit grants in plain words", async () => {
  const { doc } = await docWith("Layout", "export default 1;");
  const p = await page();
  await open(p, doc);
  await p.getByRole("button", { name: "+ TypeScript block" }).click();
  await p.locator(".cells > .cell").nth(2).waitFor();
  assert.equal(await p.locator(".cells > .cell.code").count(), 2);
  // Move the new block (last) up one place.
  const last = p.locator(".cells > .cell").nth(2);
  const name = await last.locator("h3").innerText();
  await last.getByRole("button", { name: `Move ${name} up` }).click();
  await p.locator(".cells > .cell").nth(1).locator("h3", { hasText: name }).waitFor();
  const d = await api("GET", `/workspaces/default/docs/${doc}`);
  assert.equal(d.blocks[1].type, "code");
  assert.equal(d.blocks[1].lang, "ts");
  // Grants: edit, with a description a person can read.
  const cell = p.locator(".cells > .cell").nth(1);
  await cell.getByRole("button", { name: "Edit grants" }).click();
  // Picked from what the workspace has: its collections, its secrets and
  // their hosts, each in words.
  const picker = cell.locator(".grant-form");
  await picker.getByRole("group", { name: "Database" }).waitFor();
  await picker.getByLabel(/db:read:tasks — Read rows of the "tasks" collection/).check();
  await picker.getByLabel(/kv:read/).check();
  assert.equal(await picker.getByLabel(/secret:DEMO_TOKEN/).count(), 1, "the sample's secret is offered");
  assert.ok(await picker.getByRole("group", { name: "Network" }).getByRole("checkbox").count() >= 1, "its bound hosts are offered");
  await cell.getByRole("button", { name: "Save grants" }).click();
  await cell.locator(".chip", { hasText: "db:read:tasks" }).waitFor();
  await cell.locator(".chip", { hasText: "kv:read" }).waitFor();
  await cell.getByText("What can this block do?").click();
  assert.match(await cell.locator(".grant-help").innerText(), /Read rows of the "tasks" collection/);
  // A bad grant is refused with the server's reason.
  await cell.getByRole("button", { name: "Edit grants" }).click();
  assert.equal(await cell.locator(".grant-form").getByLabel(/db:read:tasks/).isChecked(), true, "the picker shows the grants it has");
  await cell.getByLabel("Other grants (space separated)").fill("db:read:");
  await cell.getByRole("button", { name: "Save grants" }).click();
  await cell.locator(".grant-form .error").waitFor();
  await cell.locator(".grant-form").getByRole("button", { name: "Cancel", exact: true }).click();
  p.once("dialog", (dlg) => dlg.accept());
  await cell.getByRole("button", { name: `Delete ${name} from the document` }).click();
  await p.waitForFunction(() => document.querySelectorAll(".cells > .cell.code").length === 1);
  await p.close();
});

test("works with the keyboard alone and fits a 390-px phone", async () => {
  const p = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  await p.goto(srv.url);
  // The token field has focus; Enter submits.
  await p.keyboard.insertText(srv.token);
  await p.keyboard.press("Enter");
  // The sidebar folds behind a menu button at phone width.
  const menu = p.getByRole("button", { name: "Menu" });
  await menu.waitFor();
  assert.equal(await menu.getAttribute("aria-expanded"), "false");
  assert.equal(await p.getByRole("link", { name: "Daily standup notes" }).isVisible(), false);
  await menu.focus();
  await p.keyboard.press("Enter");
  assert.equal(await menu.getAttribute("aria-expanded"), "true");
  await p.getByRole("link", { name: "Daily standup notes" }).focus();
  await p.keyboard.press("Enter");
  await p.locator(".cell.code").first().waitFor();
  // Following a link folds it again.
  assert.equal(await menu.getAttribute("aria-expanded"), "false");
  assert.equal(await p.getByRole("link", { name: "Daily standup notes" }).isVisible(), false);
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  // Every button has an accessible name.
  const unnamed = await p.locator("button").evaluateAll((bs) => bs.filter((b) => !(b.getAttribute("aria-label") || b.textContent.trim())).length);
  assert.equal(unnamed, 0);
  await shot(p, "phone");
  await p.close();
});

test("a viewer reads and follows but cannot edit or run", async () => {
  const { token } = await api("POST", "/workspaces/default/tokens", { role: "viewer", label: "e2e" });
  const p = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await p.goto(srv.url);
  await p.getByLabel("Access token").fill(token);
  await p.getByRole("button", { name: "Sign in" }).click();
  await p.getByRole("link", { name: "Q4 roadmap" }).click();
  const cell = p.locator(".cell.code").first();
  await cell.waitFor();
  assert.equal(await cell.getByRole("button", { name: "Run", exact: true }).isDisabled(), true);
  assert.equal(await cell.locator(".cm-content").getAttribute("contenteditable"), "false");
  assert.equal(await p.getByRole("button", { name: "+ Text" }).count(), 0);
  assert.equal(await cell.getByRole("button", { name: "Edit grants" }).count(), 0);
  assert.match(await p.locator(".who").innerText(), /viewer/);
  await p.close();
});

test("runs a block from the keyboard: Tab to Run, Enter", async () => {
  const { doc } = await docWith("Keyboard", 'console.log("typed");\nexport default 7;');
  const p = await page();
  await open(p, doc);
  const run = p.locator(".cell.code").first().getByRole("button", { name: "Run", exact: true });
  let focused = false;
  for (let i = 0; i < 40 && !focused; i++) {
    await p.keyboard.press("Tab");
    focused = await run.evaluate((el) => el === document.activeElement);
  }
  assert.ok(focused, "Run is not reachable with Tab");
  await p.keyboard.press("Enter");
  await p.locator(".cell.code").first().locator(".finished-ok").waitFor();
  assert.match(await p.locator(".cell.code").first().locator(".output").innerText(), /typed/);
  await p.close();
});

test("displays update in place, live meters turn amber near a limit, for a second tab and a reopened run too", async () => {
  const src = [
    'const bar = display.progress(0, "working");',
    'const box = display("tick 0", { id: "box" });',
    'const gone = display("temporary");',
    '// 900 KiB of the 1 MiB output limit, shown and taken away again',
    'display("x".repeat(900 * 1024), { id: "big" }).clear();',
    "for (let i = 1; i <= 12; i++) {",
    "  await new Promise((r) => setTimeout(r, 300));",
    '  bar.update(i / 12, "step " + i);',
    '  box.update("tick " + i);',
    "}",
    "gone.clear();",
    'export default "ok";',
  ].join("\n");
  const { doc } = await docWith("In place", src);
  const watcher = await page();
  await open(watcher, doc);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  const seen = watcher.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  // While it runs: one box, updated in place; meters with output near its
  // limit. (Polls can miss one tick: any of several will do.)
  await cell.locator(".output .display[data-display-id=box]", { hasText: /^tick [3-8]$/ }).waitFor();
  assert.equal(await cell.locator(".output .display[data-display-id=box]").count(), 1);
  await cell.locator(".run-meters .meters:not(.final) .meter-row.near[data-meter=output_bytes]").waitFor();
  assert.equal(await cell.locator(".run-meters .meter-row.near[data-meter=host_calls]").count(), 0);
  assert.match(await cell.locator(".run-meters").innerText(), /CPU left today/);
  // The other tab follows the same run, also in place.
  await seen.locator(".output .display[data-display-id=box]", { hasText: /^tick ([3-9]|1[0-2])$/ }).waitFor();
  assert.equal(await seen.locator(".output .display[data-display-id=box]").count(), 1);
  await shot(p, "in-place-meters");
  await cell.locator(".finished-ok").waitFor();
  for (const c of [cell, seen]) {
    await c.locator(".finished-ok").waitFor();
    assert.equal(await c.locator(".output .display").count(), 2, "the progress bar and the box; the cleared ones are gone");
    assert.match(await c.locator(".output .display[data-display-id=box]").innerText(), /^tick 12$/);
    assert.equal(await c.locator(".output progress").getAttribute("value"), "1");
    assert.match(await c.locator(".output .progress-output").innerText(), /100%\s*step 12/);
  }
  // A reopened document replays the run from history: its final state,
  // with the final meters.
  const later = await page();
  await open(later, doc);
  const again = later.locator(".cell.code").first();
  await again.locator(".output .display[data-display-id=box]", { hasText: "tick 12" }).waitFor();
  assert.equal(await again.locator(".output .display").count(), 2);
  await again.locator(".run-meters .meters.final").waitFor();
  await Promise.all([p.close(), watcher.close(), later.close()]);
});

test("blocks build on each other: the graph is shown, Run all follows it, dependents re-run live, outputs say where they came from and turn stale", async () => {
  const load = await api("POST", "/workspaces/default/blocks", { source: "export default [{ v: 2 }, { v: 3 }];", lang: "js", name: "flow-load" });
  const sum = await api("POST", "/workspaces/default/blocks", {
    source: "import { results } from 'quire';\nconst rows = await results.get('flow-load');\nexport default rows.reduce((a, r) => a + r.v, 0);",
    lang: "js", name: "flow-sum",
  });
  // The reader comes first in the document.
  const d = await api("POST", "/workspaces/default/docs", {
    title: "Flow", blocks: [{ type: "code", lang: "js", block: sum.id, source: "" }, { type: "code", lang: "js", block: load.id, source: "" }],
  });
  const p = await page();
  await open(p, d.id);
  const sumCell = p.locator(".cell.code").nth(0);
  const loadCell = p.locator(".cell.code").nth(1);
  await sumCell.locator(".dataflow .reads", { hasText: "flow-load" }).waitFor();
  await loadCell.locator(".dataflow .read-by", { hasText: "flow-sum" }).waitFor();
  // Run all follows the graph: the block read first.
  await p.getByRole("button", { name: "Run all" }).click();
  await p.locator(".run-all-status", { hasText: "Ran all 2 blocks." }).waitFor();
  assert.match(await sumCell.locator(".output .result").innerText(), /5/);
  // Its output says where it came from.
  await p.waitForFunction((sel) => /read flow-load \(run/.test(document.querySelectorAll(sel)[0]?.title || ""), ".cell.code .output");
  // Opted in, a new result of flow-load re-runs flow-sum on the server,
  // shown live in its cell.
  await p.getByLabel("Re-run the blocks that read a block's result when it changes").check();
  await p.locator(".rerun", { hasText: "Dependents re-run" }).waitFor();
  await setSource(p, loadCell, "export default [{ v: 10 }, { v: 20 }];");
  await loadCell.locator(".save-status.saved").waitFor();
  // Edited and not run: its output is out of date.
  await loadCell.locator(".stale-note", { hasText: "its code changed since" }).waitFor();
  await loadCell.getByRole("button", { name: "Run", exact: true }).click();
  await sumCell.locator(".run-status", { hasText: "Finished (started by dataflow)" }).waitFor();
  assert.match(await sumCell.locator(".output .result").innerText(), /30/);
  await loadCell.locator(".stale-note").waitFor({ state: "detached" });
  assert.equal(await sumCell.locator(".stale-note").count(), 0);
  await shot(p, "dataflow");
  await p.close();
});

test("schedules and webhooks: managed under the block, and their runs appear live in the open document", async () => {
  const { doc, block } = await docWith("Triggered", "export default function (ctx) {\n  console.log('started by ' + ctx.trigger.kind);\n  return ctx.input ?? 'no input';\n}\n");
  const p = await page();
  p.on("dialog", (d) => d.accept());
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByText("Schedules and webhooks").click();
  await cell.getByText("No schedules.").waitFor();
  // A bad expression is refused with the server's reason.
  await cell.getByLabel("Cron expression").fill("61 * * * *");
  await cell.getByLabel("Time zone").fill("UTC");
  await cell.getByRole("button", { name: "Add schedule" }).click();
  await cell.getByRole("alert").filter({ hasText: /cron/i }).waitFor();
  assert.equal(await cell.getByLabel("Cron expression").getAttribute("aria-invalid"), "true");
  // Every second: its runs start on the server and stream into this cell.
  await cell.getByLabel("Cron expression").fill("* * * * * *");
  await cell.getByRole("button", { name: "Add schedule" }).click();
  await cell.locator("ul.schedules li").first().waitFor();
  assert.match(await cell.locator("ul.schedules").innerText(), /\* \* \* \* \* \* \(UTC\)/);
  await cell.locator(".run-status").filter({ hasText: "Finished (started by schedule)" }).waitFor({ timeout: 15000 });
  assert.match(await cell.locator(".output").innerText(), /started by schedule/);
  // The list follows the runs: "Last" is filled in live, "next run" counts down.
  await cell.locator("ul.schedules li").filter({ hasText: /Last: (?!never)/ }).waitFor({ timeout: 15000 });
  assert.match(await cell.locator("ul.schedules .until").innerText(), /^\((in \d+ s|due now)\)$/);
  assert.ok(!(await cell.locator("ul.schedules").innerText()).includes(".."), "one period, not two");
  const scheduled = await api("GET", `/workspaces/default/runs?block=${block}`);
  assert.ok(scheduled.runs.some((r) => r.trigger.kind === "schedule"), JSON.stringify(scheduled.runs[0]));
  await shot(p, "triggers");
  // Pause, then delete.
  await cell.getByRole("button", { name: "Pause the schedule * * * * * *" }).click();
  await cell.locator("ul.schedules").filter({ hasText: "Paused." }).waitFor();
  const { schedules } = await api("GET", "/workspaces/default/schedules");
  assert.equal(schedules.find((s) => s.block === block).paused, true);
  await cell.getByRole("button", { name: "Delete the schedule * * * * * *" }).click();
  await cell.getByText("No schedules.").waitFor();
  // A webhook URL is shown once; POSTing to it runs the block with the
  // body as ctx.input, live in the open cell, and answers the result.
  await cell.getByRole("button", { name: "Create webhook URL" }).click();
  const url = await cell.getByLabel(/Webhook URL/).inputValue();
  assert.match(url, /\/hooks\/[0-9a-f]+\/[0-9a-f]+$/);
  const res = await fetch(`${url}?wait=true`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ n: 5 }) });
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).result, { n: 5 });
  await cell.locator(".run-status").filter({ hasText: "Finished (started by webhook)" }).waitFor();
  assert.match(await cell.locator(".output").innerText(), /started by webhook/);
  await cell.locator("ul.webhooks li").first().waitFor();
  await cell.getByRole("button", { name: /Delete webhook/ }).click();
  await cell.getByText("No webhooks.").waitFor();
  assert.equal((await fetch(url, { method: "POST", body: "{}" })).status, 404);
  await p.close();
});

test("admin tasks in the app: tokens shown once and revoked, write-only secrets, a new workspace that says what to do first", async () => {
  const p = await page();
  p.on("dialog", (d) => d.accept());
  await p.getByRole("link", { name: "Tokens, secrets and workspaces" }).click();
  await p.getByRole("heading", { name: "Access tokens" }).waitFor();
  // A token: made with a role, shown once, works, then revoked.
  await p.getByLabel("Label").fill("e2e-made");
  await p.getByLabel("Role", { exact: true }).selectOption("editor");
  await p.getByRole("button", { name: "Create token" }).click();
  const once = p.locator(".shown-once input");
  await once.waitFor();
  const token = await once.inputValue();
  const me = await fetch(`${srv.url}api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await me.json()).role, "editor");
  await p.getByRole("button", { name: "Revoke the token e2e-made" }).click();
  await p.getByRole("button", { name: "Revoke the token e2e-made" }).waitFor({ state: "detached" });
  const after = await fetch(`${srv.url}api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(after.status, 401);
  // A secret: set with its host, never shown back, deleted.
  await p.getByLabel("Name", { exact: true }).first().fill("E2E_KEY");
  await p.getByLabel("Value").fill("s3cret-value");
  await p.getByLabel("Hosts it may be sent to").fill("api.example.com");
  await p.getByRole("button", { name: "Save secret" }).click();
  const row = p.locator(".admin-section tr", { hasText: "E2E_KEY" });
  await row.waitFor();
  assert.match(await row.innerText(), /api\.example\.com/);
  assert.ok(!(await p.locator("body").innerText()).includes("s3cret-value"), "a secret's value is never shown");
  assert.equal(await p.getByLabel("Value").inputValue(), "");
  await p.getByRole("button", { name: "Delete the secret E2E_KEY" }).click();
  await row.waitFor({ state: "detached" });
  // A bad name is refused in words beside the form.
  await p.getByLabel("Name", { exact: true }).first().fill("bad name!");
  await p.getByLabel("Value").fill("x");
  await p.getByRole("button", { name: "Save secret" }).click();
  const refusal = p.locator(".admin-section", { hasText: "Secrets" }).getByRole("alert").filter({ hasText: /^Not saved: The name is not accepted: / });
  await refusal.waitFor();
  assert.doesNotMatch(await refusal.innerText(), /invalid name|invalid_field/, "in words, not the API's field names");
  await shot(p, "admin");
  // A server admin makes a workspace; it opens empty, saying what to do.
  await p.getByLabel("Name", { exact: true }).last().fill("e2e-space");
  await p.getByRole("button", { name: "Create workspace" }).click();
  await p.getByText("Admin token of “e2e-space”").waitFor();
  await p.getByRole("link", { name: "Open e2e-space" }).click();
  await p.getByRole("heading", { name: "e2e-space is empty" }).waitFor();
  assert.equal(await p.locator(".first-steps li").count(), 3);
  await p.close();
});

test("documents are renamed and deleted, blocks renamed, a deleted block comes back with Undo, and a moved block keeps focus", async () => {
  const { doc } = await docWith("To rename", "export default 1;");
  const p = await page();
  p.on("dialog", (d) => d.accept());
  await open(p, doc);
  await p.getByRole("button", { name: "Rename", exact: true }).click();
  await p.getByLabel("Title of the document").fill("Renamed doc");
  await p.getByRole("button", { name: "Save title" }).click();
  await p.getByRole("heading", { name: "Renamed doc", level: 1 }).waitFor();
  await p.getByRole("link", { name: "Renamed doc" }).waitFor();
  // Block rename.
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Rename To rename" }).click();
  await cell.getByLabel("Name of the block").fill("Counter");
  await cell.getByRole("button", { name: "Save name" }).click();
  await cell.locator("h3", { hasText: "Counter" }).waitFor();
  assert.equal((await api("GET", `/workspaces/default/docs/${doc}`)).title, "Renamed doc");
  // Moving the code block up keeps focus on its move button.
  await cell.getByRole("button", { name: "Move Counter up" }).click();
  await p.locator(".cells > .cell").first().locator("h3", { hasText: "Counter" }).waitFor();
  await p.waitForFunction(() => document.activeElement?.getAttribute("aria-label") === "Move Counter up");
  // Drag the text block by its handle onto the code block: they swap.
  await p.locator(".cells > .cell.text .drag-handle").dragTo(p.locator(".cells > .cell.code"));
  await p.locator(".cells > .cell").first().filter({ hasText: "Test: To rename" }).waitFor();
  assert.deepEqual((await api("GET", `/workspaces/default/docs/${doc}`)).blocks.map((b) => b.type), ["text", "code"]);
  // Delete the text block, then Undo.
  await p.getByRole("button", { name: "Delete this text" }).click();
  await p.waitForFunction(() => document.querySelectorAll(".cells > .cell").length === 1);
  await p.getByRole("button", { name: "Undo" }).click();
  await p.waitForFunction(() => document.querySelectorAll(".cells > .cell").length === 2);
  assert.match(await p.locator(".cells > .cell.text").innerText(), /Test: To rename/);
  // Delete the document.
  await p.getByRole("button", { name: "Delete document" }).click();
  await p.getByRole("link", { name: "Renamed doc" }).waitFor({ state: "detached" });
  await p.close();
});

test("sign-in is kept for a new tab only when asked, and the app lands in the workspace last used", async () => {
  await api("POST", "/workspaces", { name: "e2e-last" });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // Not remembered: a new tab asks again.
  const a = await ctx.newPage();
  await a.goto(srv.url);
  await a.getByLabel("Access token").fill(srv.token);
  await a.getByRole("button", { name: "Sign in" }).click();
  await a.getByRole("navigation").waitFor();
  const b = await ctx.newPage();
  await b.goto(srv.url);
  await b.getByLabel("Access token").waitFor();
  await b.close();
  await a.getByRole("button", { name: "Sign out" }).click();
  // Remembered: a new tab is signed in, in the workspace last opened.
  await a.getByLabel("Access token").fill(srv.token);
  await a.getByLabel("Remember me on this device").check();
  await a.getByRole("button", { name: "Sign in" }).click();
  await a.getByRole("navigation").waitFor();
  await a.goto(`${srv.url}#/w/e2e-last`);
  await a.getByRole("heading", { name: "e2e-last is empty" }).waitFor();
  const c = await ctx.newPage();
  await c.goto(srv.url);
  await c.getByRole("heading", { name: "e2e-last is empty" }).waitFor();
  assert.equal(await c.locator("#ws-select").inputValue(), "e2e-last");
  // Signing out forgets it everywhere.
  await c.getByRole("button", { name: "Sign out" }).click();
  const d = await ctx.newPage();
  await d.goto(srv.url);
  await d.getByLabel("Access token").waitFor();
  await ctx.close();
});

test("admins see usage against the quota and change it within the ceilings", async () => {
  const p = await page();
  // Earlier tests made more workspaces: open the default one's page.
  await p.goto(`${srv.url}#/w/default`);
  // Until the default workspace's page is drawn, the page may still show
  // the workspace sign-in landed in (the last used), whose links lead there.
  await p.waitForFunction(() => document.querySelector("#ws-select")?.value === "default");
  await p.getByRole("link", { name: "Quota and usage" }).click();
  await p.getByRole("heading", { name: "Usage now" }).waitFor();
  assert.equal(await p.locator("#ws-select").inputValue(), "default");
  const qf = p.locator(".q-form");
  // Earlier tests ran blocks: today's CPU and runs are metered.
  const cpu = await p.locator("#u-cpu").getAttribute("value");
  assert.ok(Number(cpu) > 0, `CPU meter ${cpu}`);
  assert.match(await p.locator(".usage-row").first().innerText(), /of 3,600,000 ms/);
  await qf.getByLabel("Runs at once").fill("3");
  await p.getByRole("button", { name: "Save quota" }).click();
  await p.getByText("Quota saved.").waitFor();
  assert.equal((await api("GET", "/workspaces/default/quota")).quota.max_concurrent_runs, 3);
  assert.match(await p.locator(".usage-row").nth(2).innerText(), /of 3/);
  // Over the server's ceiling: refused, the field marked, nothing saved.
  await qf.getByLabel("CPU time per run").fill("999999");
  await p.getByRole("button", { name: "Save quota" }).click();
  await p.getByRole("alert").filter({ hasText: "ceiling of 30000" }).waitFor();
  assert.equal(await qf.getByLabel("CPU time per run").getAttribute("aria-invalid"), "true");
  assert.equal((await api("GET", "/workspaces/default/quota")).quota.cpu_ms_per_run, 1000);
  assert.ok((await p.locator("table").last().innerText()).includes(new Date().toISOString().slice(0, 10)));
  // Sizes are edited in MiB, ceilings shown in MiB or GiB; the API keeps bytes.
  await qf.getByLabel("CPU time per run").fill("1000");
  assert.equal(await qf.getByLabel("Memory per run").inputValue(), "64");
  assert.match(await p.locator("#q-storage_bytes-max").innerText(), /server ceiling 10 GiB/);
  await qf.getByLabel("Output per run").fill("2.5");
  await p.getByRole("button", { name: "Save quota" }).click();
  await p.getByText("Quota saved.").waitFor();
  const saved = (await api("GET", "/workspaces/default/quota")).quota;
  assert.equal(saved.output_bytes_per_run, 2.5 * 1024 * 1024);
  assert.equal(saved.memory_bytes_per_run, 64 * 1024 * 1024, "an unchanged field is not sent");
  await shot(p, "quota");
  // A server admin sets the ceilings every workspace is held to.
  const cf = p.locator(".c-form");
  await cf.getByLabel("CPU time per run").fill("40000");
  await cf.getByRole("button", { name: "Save ceilings" }).click();
  await p.getByText("Ceilings saved.").waitFor();
  assert.equal((await api("GET", "/quota/ceilings")).ceilings.cpu_ms_per_run, 40000);
  assert.match(await p.locator("#q-cpu_ms_per_run-max").innerText(), /server ceiling 40,000/);
  await api("PUT", "/quota/ceilings", { cpu_ms_per_run: 30000 });
  await api("PUT", "/workspaces/default/quota", { output_bytes_per_run: 1024 * 1024 });
  await api("PUT", "/workspaces/default/quota", { max_concurrent_runs: 4 });
  await p.close();
});

test("an editor's change suspends a block's grants until an admin approves them", async () => {
  const { doc, block } = await docWith("Approval", 'import { kv } from "quire";\nexport default await kv.get("visits");', "js", ["kv:read"]);
  const { token } = await api("POST", "/workspaces/default/tokens", { role: "editor", label: "e2e-editor" });
  const res = await fetch(`${srv.url}api/v1/workspaces/default/blocks/${block}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ source: 'import { kv } from "quire";\nexport default ["changed", await kv.get("visits")];' }),
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).grants_pending, true);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  const pending = cell.locator(".grants-pending");
  await pending.waitFor();
  assert.match(await pending.innerText(), /Suspended/);
  // The block's own runs (here its webhook's) get no grants meanwhile.
  const hook = await api("POST", `/workspaces/default/blocks/${block}/webhooks`);
  const denied = await fetch(`${srv.url}${hook.path.replace(/^\//, "")}?wait=true`, { method: "POST" });
  assert.equal(denied.status, 422);
  assert.match((await denied.json()).error.message, /suspended/);
  await cell.getByRole("button", { name: "Approve for this source" }).click();
  await pending.waitFor({ state: "detached" });
  assert.equal((await api("GET", `/workspaces/default/blocks/${block}`)).grants_pending, false);
  await cell.getByRole("button", { name: "Run", exact: true }).click();
  await cell.locator(".finished-ok").waitFor();
  await p.close();
});

// A row of the `tasks` collection, read over the HTTP API.
async function taskRow(id) {
  const { rows } = await api("GET", `/workspaces/default/db/tasks/rows?where=${encodeURIComponent(JSON.stringify({ id }))}`);
  assert.equal(rows.length, 1, JSON.stringify(rows));
  return rows[0];
}

// What the kv store holds at `key` (null: nothing), read by a block run
// over HTTP (the API has no kv route).
async function kvValue(key) {
  const b = await api("POST", "/workspaces/default/blocks", {
    source: `import { kv } from "quire";\nexport default { value: (await kv.get(${JSON.stringify(key)})) ?? null };`,
    lang: "js", grants: ["kv:read"], name: `kv-reader-${Math.random().toString(36).slice(2)}`,
  });
  const { run } = await api("POST", `/workspaces/default/blocks/${b.id}/runs`, { input: null });
  for (let i = 0; i < 300; i++) {
    const r = await api("GET", `/workspaces/default/runs/${run}`);
    if (r.status !== "queued" && r.status !== "running") {
      const result = r.events.find((e) => e.type === "result");
      assert.ok(result, `the kv reader failed: ${JSON.stringify(r.events)}`);
      return result.value.value;
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error("the kv reader did not finish");
}

test("preview changes shows a diff and applies it", async () => {
  const id = `pv-${Date.now().toString(36)}`;
  const key = `${id}-note`;
  await api("POST", "/workspaces/default/db/tasks/rows", { rows: [{ id, title: "Check the preview", status: "open", points: 3 }] });
  const src = [
    'import { db, kv } from "quire";',
    `await db.update("tasks", "${id}", { status: "done", points: 5 });`,
    `await kv.set("${key}", "checked");`,
    'console.log("staged");',
    'export default "previewed";',
  ].join("\n");
  const { doc } = await docWith("Preview", src, "js", ["db:read:tasks", "db:write:tasks", "kv:write"]);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Preview changes", exact: true }).click();
  const preview = cell.locator(".output .preview");
  await preview.waitFor();
  await cell.locator(".output .finished-ok").waitFor();
  assert.equal(await cell.locator(".run-status").innerText(), "Preview finished: nothing was written");
  await cell.locator(".output .log", { hasText: "staged" }).waitFor();
  assert.equal(await preview.locator("h4").innerText(), "Preview: 2 changes, not written yet");
  // The row, field by field: what changes, before and after.
  const row = preview.locator("table.diff-record", { hasText: `row ${id} of tasks` });
  assert.deepEqual(await row.locator("thead th").allInnerTexts(), ["Field", "Before", "After"]);
  assert.deepEqual(await row.locator("tr[data-field=status] td").allInnerTexts(), ['"open"', '"done"']);
  assert.deepEqual(await row.locator("tr[data-field=points] td").allInnerTexts(), ["3", "5"]);
  assert.equal(await row.locator("tr[data-field=status]").getAttribute("class"), "field-changed");
  assert.equal(await row.locator("tr[data-field=title]").getAttribute("class"), "field-same");
  // The new kv key: only its value after.
  const kvTable = preview.locator("table.diff-record", { hasText: `kv key ${key}` });
  assert.deepEqual(await kvTable.locator("thead th").allInnerTexts(), ["Field", "After"]);
  assert.deepEqual(await kvTable.locator("tbody td").allInnerTexts(), ['"checked"']);
  // Nothing was written yet.
  assert.equal((await taskRow(id)).status, "open");
  assert.equal(await kvValue(key), null);
  await preview.scrollIntoViewIfNeeded();
  await shot(p, "preview-changes");
  await preview.getByRole("button", { name: "Apply", exact: true }).click();
  await preview.getByText("Applied (2 changes)").waitFor();
  assert.equal(await preview.getByRole("button", { name: "Apply", exact: true }).count(), 0);
  assert.equal(await preview.getByRole("button", { name: "Discard", exact: true }).count(), 0);
  const applied = await taskRow(id);
  assert.equal(applied.status, "done");
  assert.equal(applied.points, 5);
  assert.equal(await kvValue(key), "checked");
  await cell.getByRole("button", { name: "History" }).click();
  await cell.locator(".history tbody tr", { hasText: "preview · applied" }).waitFor();
  // Reopened, the run replays with its diff, settled: no Apply any more.
  await p.reload();
  const again = p.locator(".cell.code").first();
  await again.locator(".output .last-run", { hasText: "preview · applied" }).waitFor();
  const replayed = again.locator(".output .preview");
  await replayed.getByText("Applied (2 changes)").waitFor();
  assert.deepEqual(await replayed.locator("table.diff-record", { hasText: `row ${id} of tasks` }).locator("tr[data-field=status] td").allInnerTexts(), ['"open"', '"done"']);
  assert.equal(await replayed.getByRole("button", { name: "Apply", exact: true }).count(), 0);
  await p.close();
});

test("preview changes: a row changed after the preview makes Apply a conflict that names it", async () => {
  const id = `pvc-${Date.now().toString(36)}`;
  await api("POST", "/workspaces/default/db/tasks/rows", { rows: [{ id, title: "Contested", status: "open" }] });
  const src = `import { db } from "quire";\nawait db.update("tasks", "${id}", { status: "done" });`;
  const { doc } = await docWith("Preview conflict", src, "js", ["db:read:tasks", "db:write:tasks"]);
  const p = await page();
  await open(p, doc);
  const cell = p.locator(".cell.code").first();
  await cell.getByRole("button", { name: "Preview changes", exact: true }).click();
  const preview = cell.locator(".output .preview");
  await cell.locator(".output .finished-ok").waitFor();
  const row = preview.locator("table.diff-record", { hasText: `row ${id} of tasks` });
  assert.deepEqual(await row.locator("tr[data-field=status] td").allInnerTexts(), ['"open"', '"done"']);
  // Someone changes the row meanwhile.
  await api("PATCH", `/workspaces/default/db/tasks/rows/${id}`, { status: "blocked" });
  await preview.getByRole("button", { name: "Apply", exact: true }).click();
  const alert = preview.getByRole("alert");
  await alert.waitFor();
  assert.match(await alert.innerText(), /^Not applied: /);
  assert.deepEqual(await preview.locator("ul.conflicts li").allInnerTexts(), [`row ${id} of tasks`]);
  assert.match(await row.getAttribute("class"), /\bconflict\b/);
  assert.equal(await preview.getByRole("button", { name: "Apply", exact: true }).count(), 0);
  // Nothing of the preview was written: the row is as the API left it.
  assert.equal((await taskRow(id)).status, "blocked");
  await p.close();
});
